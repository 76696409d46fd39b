"""TW-BYOL ablation: a Ray Tune grid over weighting × τ × seeds, plus temporal BYOL side by side.

Grid (defaults): weighting ∈ {uniform, binary, linear, inverse_square, exp} × τ ∈ {10, 20, 40} frames ×
2 seeds, and temporal BYOL (the same pairs, no weighting) for the same seeds. τ: seed 000's
15 / 30 / 60 frames at its 15 frames/s are 1 / 2 / 4 s; the behaviour video runs at a nominal
10 frames/s (trainables.ssl.behaviour.FPS), so they become 10 / 20 / 40 frames (``--taus`` changes
them; ``uniform`` ignores τ and is run at each τ only to keep the grid square). Pairs are drawn with
Δt ≤ ``--max-dt`` (default 2 × the largest τ: a cap at or below τ would make the binary cell at that τ
identical to uniform). Every trial uses the ``cpu`` preset's epochs (25 steps of 64 pairs) for
``--max-t`` epochs, one CPU each.

``--root-dir`` runs it on your own frames (README: layout, ``labels.csv``), with ``--window-size``,
``--frame-step``, ``--window-stride``; without labels the best trial is chosen by ``val_rankme_frac`` (one line
says so) and the label-based columns stay empty.

Writes into ``--out`` (default results/tw_byol_ablation): ``best_encoder/`` (``encoder.pt`` +
``encoder.json`` of the best trial at its best epoch, by the tuned metric; no other checkpoint is kept),
``runs.parquet`` (every epoch of every
trial, with its cell), ``table.txt`` / ``table.csv`` (mean ± sd over seeds, at the last epoch, of probe
F1, kNN accuracy, rare-action recall, Spearman ρ, MRR, kNN accuracy of the identity label, and the
trial's compute seconds — CPU or GPU, whichever the trial ran on) and the efficiency lines: TW-BYOL
vs BYOL wall seconds per epoch and training frames/s, measured side by side in the same Tune run.
Console (as the main job's, :class:`ohgw.studies.tune_console.TuneConsole`): one progress bar over the
trials, one line per finished trial, the table at the end; Ray's and Tune's output goes to
``<out>/logs/ray-tune-<time>.log`` (named at the start), also on the console with ``--verbose``. Tune's
trial folders (``<out>/_tune``: checkpoints) are deleted once ``runs.parquet`` is written, unless
``--keep-tune-dirs``. Bad input: one line, exit status 2, nothing written.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

BEST_ENCODER = "best_encoder"  # in --out: the best trial's encoder at its best epoch (trainables.ssl.load_encoder)
WEIGHTINGS = ("uniform", "binary", "linear", "inverse_square", "exp")
METRICS = ("val_probe_f1", "val_knn_acc", "val_rare_recall", "val_spearman", "val_mrr", "val_rankme_frac",
           "val_knn_acc_identity")


def ablation_trainable(config: dict) -> None:
    """The SSL trainable with the grid's cell (method, weighting, τ) folded into its config."""
    from trainables.scaffold import run_in_tune
    from trainables.ssl.run import SSLRun

    config = dict(config)
    cell = config.pop("cell")
    run_in_tune(SSLRun, {**config, **cell})


def cells(taus: list[float], weightings: list[str]) -> list[dict]:
    out = [{"method": "tw-byol", "weighting": w, "tau": t} for w in weightings for t in taus]
    return out + [{"method": "byol", "weighting": "uniform", "tau": taus[0]}]


def summarise(df, out: str) -> str:
    """mean ± sd per cell at each trial's last epoch, and the BYOL vs TW-BYOL efficiency lines."""
    from ohgw import protocol

    last = df.sort_values(protocol.ITERATION).groupby("trial_id").tail(1)
    keys = ["cell_method", "cell_weighting", "cell_tau"]
    cols = [c for c in (*METRICS, protocol.TRIAL_COMPUTE_S) if c in df]  # without labels: no label metrics
    agg = last.groupby(keys)[cols].agg(["mean", "std"])
    lines = [f"{'cell':<34}" + "".join(f"{c.replace('val_', ''):>22}" for c in cols)]
    rows = []
    for key, r in agg.iterrows():
        name = f"{key[0]} {key[1]} τ={key[2]:g}" if key[0] == "tw-byol" else "byol (temporal, uniform)"
        cells_txt = [f"{r[(c, 'mean')]:.3f} ± {r[(c, 'std')]:.3f}" for c in cols]
        lines.append(f"{name:<34}" + "".join(f"{t:>22}" for t in cells_txt))
        rows.append({"cell": name, **{f"{c}_mean": r[(c, 'mean')] for c in cols},
                     **{f"{c}_sd": r[(c, 'std')] for c in cols}, "n": int(last.groupby(keys).size()[key])})
    later = df[df[protocol.ITERATION] > 1]  # epoch 1 carries start-up costs
    eff = later.groupby("cell_method")[[protocol.EPOCH_S, protocol.SAMPLES_PER_S]].mean()
    if {"byol", "tw-byol"} <= set(eff.index):
        b, t = eff.loc["byol"], eff.loc["tw-byol"]
        lines += ["", f"efficiency (epochs ≥ 2, same Tune run): BYOL {b[protocol.EPOCH_S]:.2f} s/epoch, "
                      f"{b[protocol.SAMPLES_PER_S]:.0f} frames/s; TW-BYOL {t[protocol.EPOCH_S]:.2f} s/epoch, "
                      f"{t[protocol.SAMPLES_PER_S]:.0f} frames/s; TW/BYOL wall ratio "
                      f"{t[protocol.EPOCH_S] / b[protocol.EPOCH_S]:.3f}"]
    import pandas as pd

    text = "\n".join(lines) + "\n"
    _atomic(os.path.join(out, "table.txt"), lambda p: Path(p).write_text(text))
    _atomic(os.path.join(out, "table.csv"), lambda p: pd.DataFrame(rows).to_csv(p, index=False))
    return text


def export_best(results, metric: str, dest: str) -> str | None:
    """The encoder of the best report of all trials (by ``metric``, max) into ``dest`` (encoder.pt, encoder.json);
    the folder written, or None when no trial kept a checkpoint with a finite ``metric``."""
    from trainables.ssl import export_checkpoint

    try:
        best = results.get_best_result(metric, "max", scope="all", filter_nan_and_inf=True)
        checkpoint = best.get_best_checkpoint(metric, "max")
    except (RuntimeError, KeyError, ValueError):
        return None
    if checkpoint is None:
        return None
    export_checkpoint(checkpoint.path, dest)
    return dest


def _trial_line(trial) -> str:
    """A finished trial: its cell and seed, epochs, and its last probe F1 and kNN accuracy."""
    from ohgw import protocol

    cell, res = trial.config["cell"], trial.last_result or {}
    name = f"{cell['method']} {cell['weighting']} τ={cell['tau']:g}" if cell["method"] == "tw-byol" else "byol"
    return (f"{name} seed {trial.config[protocol.SEED_KEY]}: {res.get(protocol.ITERATION, 0)} epochs, probe F1 "
            f"{res.get('val_probe_f1', float('nan')):.3f}, kNN acc {res.get('val_knn_acc', float('nan')):.3f}")


def _atomic(path: str, write) -> None:
    from ohgw.results import atomic_path

    with atomic_path(path) as tmp:
        write(tmp)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="tw_byol_ablation.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.error = lambda msg: p.exit(2, f"tw_byol_ablation.py: error: {msg}\n")  # one line
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--max-t", type=int, default=3)
    p.add_argument("--taus", default="10,20,40", help="τ values in frames, comma-separated (default: seed 000's "
                                                     "15/30/60 frames at 15 fps, at the behaviour video's 10 fps)")
    p.add_argument("--max-dt", type=int, default=None, help="largest Δt of a view pair, frames (default: 2 × the "
                                                            "largest τ)")
    p.add_argument("--weightings", default=",".join(WEIGHTINGS))
    p.add_argument("--steps-per-epoch", type=int, default=25)
    p.add_argument("--root-dir", default=None, help="folder of clip folders of frames (README: layout, labels.csv; "
                                                    "default: the embedded behaviour video)")
    p.add_argument("--window-size", type=int, default=None, help="frames per window (default 4)")
    p.add_argument("--frame-step", type=int, default=None, help="frames between a window's frames (default 2)")
    p.add_argument("--window-stride", type=int, default=None, help="frames between window starts (default 1)")
    p.add_argument("--num-cpus", type=int, default=None, help="CPUs of the local Ray (default: all)")
    p.add_argument("--out", default=os.path.join("results", "tw_byol_ablation"))
    p.add_argument("--verbose", action="store_true", help="Ray's and Tune's output on the console too")
    p.add_argument("--keep-tune-dirs", action="store_true", help="keep Tune's trial folders (<out>/_tune)")
    args = p.parse_args(argv)
    try:
        taus = [float(t) for t in args.taus.split(",") if t.strip()]
        if not taus or any(t <= 0 for t in taus):
            raise ValueError(f"--taus must be numbers > 0, got {args.taus!r}")
        weightings = [w.strip() for w in args.weightings.split(",") if w.strip()]
        bad = [w for w in weightings if w not in WEIGHTINGS]
        if bad or not weightings:
            raise ValueError(f"--weightings must be from {WEIGHTINGS}, got {args.weightings!r}")
        for name in ("seeds", "max_t", "steps_per_epoch"):
            if getattr(args, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
        from trainables.ssl import PRESETS, check_study_config, tuned_metric

        frames = {k: getattr(args, k) for k in ("root_dir", "window_size", "frame_step", "window_stride")
                  if getattr(args, k) is not None}
        max_dt = args.max_dt if args.max_dt is not None else int(math.ceil(2 * max(taus)))
        base = {**PRESETS["cpu"]["base_config"], **frames, "steps_per_epoch": args.steps_per_epoch, "max_t": args.max_t,
                "max_dt": max_dt}
        check_study_config(base)
        metric = tuned_metric(args.root_dir)
    except (ValueError, ImportError) as e:
        print(f"tw_byol_ablation.py: error: {e}", file=sys.stderr)
        return 2
    from ray import tune

    from ohgw import protocol
    from ohgw.studies.tune_console import TuneConsole, remove_tune_dir

    os.makedirs(args.out, exist_ok=True)
    if metric != "val_probe_f1":
        print(f"tw_byol_ablation: {args.root_dir} has no labels.csv: the best trial is chosen by {metric} "
              "(RankMe of the features on held-out clips / their dimension); label-based columns stay empty", file=sys.stderr)
    grid = cells(taus, weightings)
    print(f"tw_byol_ablation: {len(grid)} cells × {args.seeds} seeds, {args.max_t} epochs each → {args.out}",
          file=sys.stderr, flush=True)
    t0 = time.time()
    with TuneConsole(args.out, total=len(grid) * args.seeds, verbose=args.verbose,
                     name="tw_byol_ablation") as console:
        console.start_ray(num_cpus=args.num_cpus)
        results = tune.Tuner(
            tune.with_resources(ablation_trainable, {"cpu": 1}),
            param_space={**base, "cell": tune.grid_search(grid), protocol.SEED_KEY: tune.grid_search(
                list(range(args.seeds)))},
            tune_config=tune.TuneConfig(reuse_actors=True),
            run_config=tune.RunConfig(storage_path=os.path.abspath(os.path.join(args.out, "_tune")),
                                      name="tw_byol_ablation", verbose=console.tune_verbose,
                                      callbacks=[console.callback(_trial_line)]),
        ).fit()
    import pandas as pd

    frames = []
    for r in results:
        if r.metrics_dataframe is None:
            continue
        d = r.metrics_dataframe.copy()
        cell = r.config["cell"]
        d["cell_method"], d["cell_weighting"], d["cell_tau"] = cell["method"], cell["weighting"], cell["tau"]
        d["seed"] = r.config[protocol.SEED_KEY]
        frames.append(d)
    if not frames:
        print("tw_byol_ablation.py: error: no trial reported a result", file=sys.stderr)
        return 1
    df = pd.concat(frames, ignore_index=True)
    keep = [c for c in df.columns if not isinstance(df[c].iloc[0], dict)]
    _atomic(os.path.join(args.out, "runs.parquet"), lambda p_: df[keep].to_parquet(p_, index=False))
    print(summarise(df, args.out), end="")
    exported = export_best(results, metric, os.path.join(args.out, BEST_ENCODER))
    remove_tune_dir(os.path.join(args.out, "_tune"), keep=args.keep_tune_dirs)  # the checkpoints: exported above
    print(f"{len(results)} trials ({len(results.errors)} errors) in {time.time() - t0:.0f} s; wrote "
          f"{args.out}/runs.parquet, table.txt, table.csv{', ' + BEST_ENCODER + '/' if exported else ''}",
          file=sys.stderr)
    return 1 if results.errors else 0


if __name__ == "__main__":
    sys.exit(main())
