"""The slow-features sweep: probe RMSE vs noise, per model and noise type, each cell tuned by ASHA (± OHGW).

For every (model, noise type, noise coefficient) cell, one Ray Tune study samples ``--samples`` configs
of the model's search space (:func:`trainables.jepa.search_space`: lr, wd and its loss
hyper-parameters, log-uniform) and runs them under ASHA (``max_t`` = ``--max-t``, grace 1, η = 3),
and with ``--ohgw`` a second study of the same configs (same Tune seed) under OHGW(ASHA). A cell's
result is the best ``val_rmse`` any trial reported, the ``test_rmse`` of that report, and the
reference lines (random-init encoder, mean position).

Noise types: ``changing`` (``dataset_noise`` = c), ``static`` (``dataset_static_noise`` = c),
``structured`` (a static texture per sequence: ``dataset_static_noise`` = c with
``dataset_structured_noise``), ``structured_changing`` (a fresh texture per frame).

Writes into ``--out`` (default ``results/jepa_noise_sweep``): ``cells.parquet`` (one row per cell and
method), ``trials.parquet`` (every trial's best report, its ψ and the warm-start's x, x′, g), ``slow_features.html`` (plotly:
best probe RMSE vs noise coefficient, one panel per noise type, one line per model and method, the
reference lines dotted), ``encoders/<cell>/`` (the encoder of the cell's best trial at its best epoch,
``encoder.pt`` + ``encoder.json``: :func:`trainables.jepa.load_encoder`; the only checkpoint kept) and
``logs/ray-tune-<time>.log`` (everything Ray and Tune say; named at the start, on the console too with
``--verbose``). Files are written atomically after every cell, so an interrupted sweep keeps the cells it
finished; a cell's Tune folder (``tune/<cell>``: its checkpoints) is deleted once the cell is written,
unless ``--keep-tune-dirs``. The console (as the main job's, :class:`ohgw.studies.tune_console.TuneConsole`):
one progress bar over the cells, one line per cell, the cells' table at the end. ``--smoke``: VICReg and
RSSM, changing and static noise at c = 1, two samples of two epochs on a small world: 2 minutes on 2 shared CPU cores (measured: 4 cells, 104 s of studies).

    python experiments/jepa_noise_sweep.py --smoke
    python experiments/jepa_noise_sweep.py --models VICReg,SimCLR,RSSM --coeffs 0,0.5,1,2 --samples 8 --ohgw
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import pandas as pd

NOISE_TYPES = {
    "changing": lambda c: {"dataset_noise": c},
    "static": lambda c: {"dataset_static_noise": c},
    "structured": lambda c: {"dataset_static_noise": c, "dataset_structured_noise": True},
    "structured_changing": lambda c: {"dataset_noise": c, "dataset_structured_noise": True},
}
FULL = {"models": "VICReg,SimCLR,RSSM", "noise_types": "changing,static,structured", "coeffs": "0,0.5,1,2",
        "samples": 8, "max_t": 5}
SMOKE = {"models": "VICReg,RSSM", "noise_types": "changing,static", "coeffs": "1.0", "samples": 2, "max_t": 2,
         "base": {"dataset_size": 256, "probe_size": 64, "val_size": 32, "test_size": 32, "embedding_dim": 128}}


def _atomic(df: pd.DataFrame, path: Path) -> None:
    from ohgw.results import atomic_path

    with atomic_path(path) as tmp:
        df.to_parquet(tmp, index=False)


def _atomic_text(text: str, path: Path) -> None:
    from ohgw.results import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_text(text)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default=None, help="comma-separated model types (default VICReg,SimCLR,RSSM)")
    p.add_argument("--noise-types", default=None,
                   help=f"comma-separated, of {list(NOISE_TYPES)} (default changing,static,structured)")
    p.add_argument("--coeffs", default=None, help="comma-separated noise coefficients >= 0 (default 0,0.5,1,2)")
    p.add_argument("--samples", type=int, default=None, help="configs per cell (default 8)")
    p.add_argument("--max-t", type=int, default=None, help="epochs of the longest trial, ASHA's max_t (default 5)")
    p.add_argument("--ohgw", action="store_true", help="also run each cell under OHGW(ASHA)")
    p.add_argument("--optimizer", default="adamw", choices=("adamw", "sgd"),
                   help="sgd gives the loss coefficients a one-step hyper-gradient (trainables/jepa/problem.py)")
    p.add_argument("--values", nargs="*", default=[], help="key=value overrides of every trial's config")
    p.add_argument("--cpus", type=int, default=2, help="CPUs for Ray (1 per trial)")
    p.add_argument("--seed", type=int, default=0, help="Tune's sampling seed (the same configs for both methods)")
    p.add_argument("--out", default="results/jepa_noise_sweep", help="output directory")
    p.add_argument("--smoke", action="store_true", help="the small sweep described above")
    p.add_argument("--verbose", action="store_true", help="Ray's and Tune's output on the console too")
    p.add_argument("--keep-tune-dirs", action="store_true", help="keep each cell's Tune folder (<out>/tune/<cell>)")
    args = p.parse_args(argv)
    defaults = SMOKE if args.smoke else FULL  # flags given explicitly win over both
    for name in ("models", "noise_types", "coeffs", "samples", "max_t"):
        if getattr(args, name) is None:
            setattr(args, name, defaults[name])
    return args


def check(args) -> tuple[list[str], list[str], list[float], dict]:
    """Validated (models, noise types, coefficients, base config); ValueError naming the bad value."""
    from trainables import checks
    from trainables.jepa import MODEL_TYPES, load_overrides, resolve_config

    models = [m.strip() for m in args.models.split(",") if m.strip()]
    for m in models:
        if m not in MODEL_TYPES:
            raise ValueError(f"--models: unknown model_type {m!r} (known: {', '.join(MODEL_TYPES)})")
    kinds = [k.strip() for k in args.noise_types.split(",") if k.strip()]
    for k in kinds:
        if k not in NOISE_TYPES:
            raise ValueError(f"--noise-types: unknown noise type {k!r} (known: {', '.join(NOISE_TYPES)})")
    try:
        coeffs = [float(c) for c in args.coeffs.split(",") if c.strip()]
    except ValueError:
        raise ValueError(f"--coeffs must be comma-separated numbers, got {args.coeffs!r}") from None
    for c in coeffs:
        if not math.isfinite(c) or c < 0:
            raise ValueError(f"--coeffs: a noise coefficient must be >= 0, got {c}")
    if args.samples < 1 or args.max_t < 1 or args.cpus < 1:
        raise ValueError("--samples, --max-t and --cpus must be >= 1")
    values = load_overrides((), args.values)
    if values.get("device", "cpu") != "cpu":  # trials get 1 CPU and no GPU each
        raise ValueError(f"--values device={values['device']}: this sweep trains every trial on the CPU")
    base = {**(SMOKE["base"] if args.smoke else {}), **values, "optimizer": args.optimizer, "device": "cpu",
            "max_t": args.max_t}
    checks.deterministic(base)
    for m in models:
        for k in kinds:
            resolve_config({**base, "model_type": m, **NOISE_TYPES[k](coeffs[0] if coeffs else 0.0)})
    if not (models and kinds and coeffs):
        raise ValueError("nothing to run: give at least one model, noise type and coefficient")
    return models, kinds, coeffs, base


def cell_name(model: str, kind: str, coeff: float, method: str) -> str:
    """A cell's Tune run name (its folder under ``<out>/tune``)."""
    return f"{model}-{kind}-{coeff:g}-{method.replace('+', '_')}"


def cells_table(cells: pd.DataFrame) -> str:
    """The cells as a text table: best val probe RMSE, its test RMSE and the reference lines, in px."""
    cols = ["model", "noise_type", "coeff", "method", "best_val_rmse", "test_rmse", "ref_random_init_rmse",
            "ref_mean_rmse", "trials", "errors"]
    return cells.reindex(columns=cols).to_string(index=False, float_format=lambda v: f"{v:.3f}") + "\n"


def run_cell(model, kind, coeff, method, base, args, storage: Path) -> tuple[dict, list[dict]]:
    """One Tune study of a cell; (cell row, trial rows)."""
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search import BasicVariantGenerator

    from ohgw import OHGW, protocol
    from trainables.jepa import METRIC, bounds, search_space, train_jepa

    box = bounds(model, args.optimizer)
    space = {k: tune.loguniform(lo, hi) for k, (lo, hi, _) in box.items()}
    param_space = {**base, "model_type": model, **NOISE_TYPES[kind](coeff), **space}
    sched = ASHAScheduler(max_t=args.max_t, grace_period=1, reduction_factor=3)
    callbacks = []
    if method == "asha+ohgw":
        sched = OHGW(sched, search_space(model, args.optimizer), batch_size=min(64, base.get("dataset_size", 1024)))
        callbacks = sched.callbacks()
    name = cell_name(model, kind, coeff, method)
    t0 = time.perf_counter()
    tuner = tune.Tuner(
        tune.with_resources(train_jepa, {"cpu": 1}),
        param_space=param_space,
        tune_config=tune.TuneConfig(metric=METRIC, mode="min", scheduler=sched, num_samples=args.samples,
                                    search_alg=BasicVariantGenerator(random_state=args.seed)),
        run_config=tune.RunConfig(storage_path=str(storage), name=name, verbose=1 if args.verbose else 0,
                                  callbacks=callbacks),
    )
    results = tuner.fit()
    from trainables.jepa.export import export_best_trial

    encoder = export_best_trial(results, storage.parent / "encoders" / name, METRIC)
    trials, best = [], None
    for r in results:
        df = r.metrics_dataframe
        if df is None or df.empty or METRIC not in df:
            continue
        i = df[METRIC].idxmin()
        row = df.loc[i]
        adjusted = protocol.adjusted_from_result(df.iloc[0].dropna().to_dict())  # the warm-start's x → x′, if any
        trials.append({"model": model, "noise_type": kind, "coeff": coeff, "method": method,
                       "epochs": int(df["training_iteration"].max()), "best_val_rmse": float(row[METRIC]),
                       "test_rmse": float(row.get("test_rmse", math.nan)), "collapsed": bool(df["collapsed"].any()),
                       "config_json": json.dumps({k: r.config.get(k) for k in box}, default=float),
                       "warm_start_json": json.dumps(adjusted, default=float) if adjusted else None})
        if best is None or row[METRIC] < best[METRIC]:
            best = row
    cell = {"model": model, "noise_type": kind, "coeff": coeff, "method": method, "trials": len(trials),
            "errors": len(results.errors), "wall_s": time.perf_counter() - t0,
            "encoder_dir": None if encoder is None else str(encoder.relative_to(storage.parent))}
    if best is not None:
        cell.update(best_val_rmse=float(best[METRIC]), test_rmse=float(best["test_rmse"]),
                    ref_random_init_rmse=float(best["ref_random_init_rmse"]),
                    ref_mean_rmse=float(best["ref_mean_rmse"]))
    return cell, trials


def figure(cells: pd.DataFrame):
    """The slow-features plot: best val probe RMSE vs noise coefficient, a panel per noise type."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    kinds = list(dict.fromkeys(cells["noise_type"]))
    fig = make_subplots(rows=1, cols=len(kinds), subplot_titles=kinds, shared_yaxes=True)
    for col, kind in enumerate(kinds, start=1):
        part = cells[cells["noise_type"] == kind].sort_values("coeff")
        for (model, method), g in part.groupby(["model", "method"], sort=False):
            fig.add_trace(go.Scatter(x=g["coeff"], y=g["best_val_rmse"], mode="lines+markers",
                                     name=f"{model} ({method})", legendgroup=f"{model}-{method}",
                                     showlegend=col == 1), row=1, col=col)
        for ref, label in (("ref_random_init_rmse", "random-init encoder"), ("ref_mean_rmse", "mean position")):
            g = part.groupby("coeff", as_index=False)[ref].mean()
            fig.add_trace(go.Scatter(x=g["coeff"], y=g[ref], mode="lines", line={"dash": "dot", "color": "grey"},
                                     name=label, legendgroup=label, showlegend=col == 1), row=1, col=col)
        fig.update_xaxes(title_text="noise coefficient (× dot peak)", row=1, col=col)
    fig.update_yaxes(title_text="probe RMSE (px), best of the cell", row=1, col=1)
    fig.update_layout(title="Slow features: dot-position probe RMSE vs noise", template="plotly_white")
    return fig


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        models, kinds, coeffs, base = check(args)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    from ohgw.studies.tune_console import TuneConsole, remove_tune_dir

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    storage = out / "tune"
    methods = ["asha", "asha+ohgw"] if args.ohgw else ["asha"]
    plan = [(m, k, c, meth) for m in models for k in kinds for c in coeffs for meth in methods]
    cells, trials = [], []
    with TuneConsole(out, total=len(plan), unit="cell", verbose=args.verbose, name="jepa_noise_sweep") as console:
        console.start_ray(num_cpus=args.cpus)
        for model, kind, coeff, method in plan:
            cell, rows = run_cell(model, kind, coeff, method, base, args, storage.resolve())
            cells.append(cell)
            trials.extend(rows)
            df = pd.DataFrame(cells)
            _atomic(df, out / "cells.parquet")
            _atomic(pd.DataFrame(trials), out / "trials.parquet")
            if "best_val_rmse" in df:
                _atomic_text(figure(df.dropna(subset=["best_val_rmse"])).to_html(include_plotlyjs=True),
                             out / "slow_features.html")
            remove_tune_dir(storage / cell_name(model, kind, coeff, method), keep=args.keep_tune_dirs)
            console.step(f"{model} {kind} c={coeff:g} {method}: best val_rmse "
                         f"{cell.get('best_val_rmse', math.nan):.3f} px (random-init "
                         f"{cell.get('ref_random_init_rmse', math.nan):.3f}), {cell['trials']} trials, "
                         f"{cell['errors']} errors, {cell['wall_s']:.0f} s")
    if storage.is_dir() and not any(storage.iterdir()):
        storage.rmdir()
    print(cells_table(pd.DataFrame(cells)), end="")
    print(f"wrote {out / 'cells.parquet'}, {out / 'trials.parquet'}, {out / 'slow_features.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
