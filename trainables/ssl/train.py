"""One SSL run from the command line: per-epoch metrics to Parquet, saved encoders, a learning-curve figure.

    python -m trainables.ssl.train --method tw-byol --epochs 10                  # the behaviour video
    python -m trainables.ssl.train --method byol --root-dir my_clips --window-size 8 --frame-step 2 \\
        --window-stride 4 --epochs 50 --out runs/byol.parquet --csv-log --save-dir runs/byol

The Parquet file has one row per epoch: every reported metric (the scaffold's contract keys
included) plus the run's configuration as ``config_<key>`` columns. ``--csv-log`` also writes,
beside it, the two CSV logs temporal-SSL users' scripts read: ``<stem>_loss.csv``
(``epoch,loss,learning_rate,decay_rate,ema_momentum``: mean train loss, the learning rate at the
epoch's end, ``decay_rate`` = that learning rate / the initial one (seed 003's meaning) and the EMA
target momentum at the epoch's end, empty for temporal SimCLR, which has no target) and
``<stem>_acc.csv`` (``epoch,train_loss,train_acc,val_loss,val_acc,test_loss,test_acc``; acc is the kNN
accuracy, the val/test losses the reference SSL loss on held-out clips). Without a labels.csv the
label-based columns are empty (null), never NaN. ``--save-dir D`` writes ``D/last/`` (every epoch)
and ``D/best/`` (the epoch best by the tuned metric), each ``encoder.pt`` + ``encoder.json``
(:mod:`trainables.ssl.export`; load with :func:`trainables.ssl.load_encoder`). At the end,
``<stem>_learning_curve.png`` and ``.pdf`` show loss and probe metrics per epoch.

Files are written atomically after every epoch, so an interrupted run leaves whole files. Bad input:
one line ``train: error: …`` on stderr, exit status 2, nothing written (an error found only while
training, such as an undecodable frame in streaming mode, leaves the epochs before it).
"""

from __future__ import annotations

import argparse
import csv
import logging
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from ohgw import protocol
from ohgw.results import atomic_path
from trainables.checks import true_or_false

# flag → (config key, type, meaning with units or choices); the default comes from DEFAULT_CONFIG
FLAGS = {
    "--method": ("method", str, "SSL method: byol | tw-byol | simclr-temporal"),
    "--root-dir": ("root_dir", str, "folder of clip folders of frames (README: layout, labels.csv)"),
    "--window-size": ("window_size", int, "frames per window (temporal SimCLR's T)"),
    "--frame-step": ("frame_step", int, "frames between a window's frames (also the Δt grid of view pairs)"),
    "--window-stride": ("window_stride", int, "frames between window starts"),
    "--max-dt": ("max_dt", int, "BYOL / TW-BYOL: largest frame distance of a view pair, frames (0: plain BYOL)"),
    "--weighting": ("weighting", str, "TW-BYOL weight of a pair at distance Δt: exp | uniform | binary | linear | "
                                      "inverse_square"),
    "--time-constant": ("tau", float, "TW-BYOL time constant τ of the weighting, frames (> 0; config key 'tau', "
                                      "seed 000's name)"),
    "--weight-norm": ("weight_norm", str, "TW-BYOL reduction: none ((w·l).mean(), as published) | mean (Σwl/Σw)"),
    "--temperature": ("temperature", float, "temporal SimCLR's InfoNCE temperature (> 0)"),
    "--optimizer": ("optimizer", str, "sgd (momentum, Nesterov) | adam (seed 000: Adam, wd 1e-6, lr 3e-4)"),
    "--lr": ("lr", float, "peak learning rate (cosine schedule to 0 over the epochs)"),
    "--wd": ("wd", float, "coupled L2 weight decay on the online weights"),
    "--ema-momentum": ("ema_momentum", float, "BYOL target EMA momentum m in [0, 1) (default 0.99)"),
    "--ema-schedule": ("ema_schedule", str, "EMA momentum schedule: constant | cosine (m → 1 over the run)"),
    "--aug-strength": ("aug_strength", float, "augmentation strength in [0, 1]: crop area, translation, brightness, "
                                              "contrast"),
    "--batch-size": ("batch_size", int, "per step: BYOL / TW-BYOL view pairs (default 64); temporal SimCLR windows "
                                        "of --window-size frames (default 16; seed 003's meaning)"),
    "--steps-per-epoch": ("steps_per_epoch", int, "optimizer steps per epoch (default: training frames // batch)"),
    "--seed": (protocol.SEED_KEY, int, "the trial's seed (init, batches, augmentation)"),
    "--split-seed": ("split_seed", int, "seed of the split by clip into train / val / test"),
    "--device": ("device", str, "auto | cpu | cuda[:N]"),
    "--label": ("label", str, "labels.csv column of the headline metrics (default: its first)"),
    "--cache-dir": ("cache_dir", str, "where the behaviour video is written (default: $OHGW_CACHE_DIR or "
                                      "~/.cache/ohgw-tune/ssl)"),
    "--encoder": ("encoder", str, "auto (conv up to 32 px, ResNet-20 trunk above) | conv | resnet20"),
    "--cache": ("cache", str, "frames: auto (device cache if it fits, else stream) | device | stream"),
    "--deterministic": ("deterministic", true_or_false, "deterministic CUDA kernels: true | false"),
}  # fmt: skip
# the seeds' flags that mean something else here or have another name: one line says what to use instead
MOVED = {
    "--tau": "--tau is the study scripts' target score; the TW-BYOL time constant is --time-constant (frames, "
             "config key 'tau')",
    "--checkpoint-dir": "--checkpoint-dir (seed 003) is --save-dir here: the encoder's best and last epochs",
    "--csv-log-path": "--csv-log-path (seed 003) is --csv-log here: <stem>_loss.csv and <stem>_acc.csv beside --out",
    "--eval-csv-log-path": "--eval-csv-log-path (seed 003) is --csv-log here: <stem>_acc.csv beside --out",
    "--num-workers": "--num-workers (seed 003) has no counterpart: frames are decoded once and cached (or streamed)",
    "--run-config": "--run-config (seed 000) has no counterpart: give flags, or --preset seed000 for the seed's run",
    "--results-dir": "--results-dir (seed 000) is --out (the metrics) and --save-dir (the encoders) here",
}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    from trainables.ssl.config import DEFAULT_CONFIG, SEED_PRESETS

    p = _Parser(prog="train", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for flag, (key, typ, meaning) in FLAGS.items():
        default = DEFAULT_CONFIG.get(key)
        shown = {"root_dir": "the embedded behaviour video", "batch_size": "64 pairs / 16 windows",
                 "ema_momentum": 0.99}.get(key, default)
        p.add_argument(flag, dest=key, type=typ, default=None, metavar=key.upper(),
                       help=f"{meaning} [default: {shown}]")
    for flag in MOVED:
        p.add_argument(flag, dest=f"moved_{flag[2:].replace('-', '_')}", default=None, help=argparse.SUPPRESS)
    p.add_argument("--preset", choices=sorted(SEED_PRESETS), default=None,
                   help="a seed's definitions as the defaults (flags given still win): seed000 TW-BYOL with Adam, "
                        "seed003 temporal SimCLR (docs/seeds.md) [default: none]")
    p.add_argument("--epochs", type=int, default=None, help="epochs (= max_t) [default: 10, or the preset's]")
    p.add_argument("--out", default=None, help="Parquet file of the per-epoch metrics "
                                               "[default: results/ssl_train/<method>-seed<seed>.parquet]")
    p.add_argument("--csv-log", action="store_true", help="also write <stem>_loss.csv and <stem>_acc.csv [default: off]")
    p.add_argument("--save-dir", default=None, help="folder for the best and last encoders (best/, last/: "
                                                    "encoder.pt + encoder.json) [default: none saved]")
    p.add_argument("--no-curves", action="store_true", help="skip the learning-curve PNG / PDF (they take a few "
                                                            "seconds of headless Chromium) [default: written]")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads [default: torch's]")
    return p


def _write_csv(path: str, header: list[str], rows: list[list]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


def _cell(v):
    """A CSV cell: empty for a missing or non-finite value, never 'nan'."""
    return "" if v is None or (isinstance(v, float) and not math.isfinite(v)) else v


def write_outputs(rows: list[dict], config: dict, out: str, csv_log: bool) -> None:
    import pandas as pd

    frame = pd.DataFrame([{**r, **{f"config_{k}": (v if isinstance(v, (int, float, str, bool)) or v is None
                                                    else str(v)) for k, v in config.items()}} for r in rows])
    with atomic_path(out) as tmp:
        frame.to_parquet(tmp, index=False)
    if csv_log:
        stem = os.path.splitext(out)[0]
        t = protocol.test_metric
        _write_csv(f"{stem}_loss.csv", ["epoch", "loss", "learning_rate", "decay_rate", "ema_momentum"],
                   [[_cell(v) for v in (r[protocol.ITERATION], r[protocol.TRAIN_LOSS], r.get("learning_rate"),
                                        r.get("decay_rate"), r.get("ema_momentum"))] for r in rows])
        _write_csv(f"{stem}_acc.csv", ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "test_loss",
                                       "test_acc"],
                   [[_cell(v) for v in (r[protocol.ITERATION], r[protocol.TRAIN_LOSS], r.get("train_knn_acc"),
                                        r.get(protocol.VAL_LOSS), r.get("val_knn_acc"), r.get(t(protocol.VAL_LOSS)),
                                        r.get(t("val_knn_acc")))] for r in rows])


def learning_curve(rows: list[dict], title: str):
    """The plotly figure: train loss and reference loss; kNN, probe F1, MRR, Spearman ρ per epoch."""
    import pandas as pd
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    df = pd.DataFrame(rows)
    x = df[protocol.ITERATION]
    fig = make_subplots(rows=1, cols=2, subplot_titles=("loss", "held-out metrics (validation clips)"))
    for key, name in ((protocol.TRAIN_LOSS, "training loss"), (protocol.VAL_LOSS, "reference SSL loss (val)")):
        if key in df:
            fig.add_trace(go.Scatter(x=x, y=df[key], mode="lines+markers", name=name), row=1, col=1)
    for key, name in (("val_knn_acc", "kNN accuracy"), ("val_probe_f1", "probe macro-F1"),
                      ("val_rankme_frac", "RankMe / dimension"),
                      ("val_mrr", "temporal-neighbour MRR"), ("val_spearman", "Spearman ρ (distance vs gap)")):
        if key in df and df[key].notna().any():
            fig.add_trace(go.Scatter(x=x, y=df[key], mode="lines+markers", name=name), row=1, col=2)
    for col in (1, 2):
        fig.update_xaxes(title_text="epoch", row=1, col=col)
    fig.update_layout(title=title, template="plotly_white", width=1100, height=420)
    return fig


def write_learning_curve(rows: list[dict], out: str, title: str) -> list[str]:
    """``<stem>_learning_curve.png`` and ``.pdf`` beside the Parquet file; the paths written."""
    from ohgw.analysis.report import export_static

    path = Path(out)
    return export_static({f"{path.stem}_learning_curve": learning_curve(rows, title)}, path.parent)


def _save(run, save_dir: Path, report: dict, best: bool) -> None:
    from trainables.ssl.export import encoder_state, write_encoder

    metrics = {k: (v if not isinstance(v, float) or math.isfinite(v) else None) for k, v in report.items()
               if isinstance(v, (int, float, str, bool))}
    spec = {**run.encoder_spec(), "metrics": metrics}
    state = encoder_state(run.net.state_dict())
    write_encoder(save_dir / "last", state, spec)
    if best:
        write_encoder(save_dir / "best", state, spec)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    for flag, line in MOVED.items():
        if getattr(args, f"moved_{flag[2:].replace('-', '_')}") is not None:
            print(f"train: error: {line}", file=sys.stderr)
            return 2
    from trainables.ssl.config import SEED_PRESETS

    given = {key: getattr(args, key) for key, *_ in FLAGS.values() if getattr(args, key) is not None}
    preset = dict(SEED_PRESETS[args.preset]) if args.preset else {}
    epochs = preset.pop("max_t", None)
    config = {**preset, **given}
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    try:
        epochs = args.epochs if args.epochs is not None else (epochs or 10)
        if epochs < 1:
            raise ValueError(f"--epochs must be >= 1, got {epochs}")
        config["max_t"] = epochs
        from trainables.scaffold import Trial, set_num_threads
        from trainables.ssl import LABEL_FREE_METRIC, tuned_metric
        from trainables.ssl.config import resolve_config
        from trainables.ssl.run import SSLRun

        cfg = resolve_config(config)
        out = args.out or os.path.join("results", "ssl_train", f"{cfg['method']}-seed{cfg[protocol.SEED_KEY]}.parquet")
        if os.path.isdir(out):
            raise ValueError(f"--out {out!r} is a directory; give a file name")
        if args.save_dir is not None and os.path.isfile(args.save_dir):
            raise ValueError(f"--save-dir {args.save_dir!r} is a file; give a folder")
        set_num_threads(args.threads)
        trial = Trial.start(SSLRun, config)
    except ValueError as e:
        print(f"train: error: {e}", file=sys.stderr)
        return 2
    from tqdm import tqdm

    metric = tuned_metric(cfg["root_dir"])
    if metric == LABEL_FREE_METRIC:
        print(f"train: {cfg['root_dir']} has no labels.csv: the best epoch is chosen by {metric} (RankMe of the "
              "features on held-out clips / their dimension); kNN and probe columns stay empty", file=sys.stderr)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    rows: list[dict] = []
    best = -math.inf
    with tqdm(total=epochs, desc=f"{cfg['method']}", unit="epoch", file=sys.stderr) as bar:
        while not trial.finished:
            try:
                r = trial.step()
            except ValueError as e:  # e.g. a frame the streaming store cannot decode; epochs so far stay written
                bar.close()
                print(f"train: error: {e}", file=sys.stderr)
                return 2
            rows.append(r)
            write_outputs(rows, cfg, out, args.csv_log)
            if args.save_dir is not None:
                value = r.get(metric)
                improved = value is not None and math.isfinite(value) and value > best
                best = value if improved else best
                _save(trial.run, Path(args.save_dir), r, improved or not rows[:-1])
            bar.set_postfix(loss=f"{r[protocol.TRAIN_LOSS]:.3f}", **{metric: f"{r.get(metric, float('nan')):.3f}"})
            bar.update(1)
    figures = [] if args.no_curves else write_learning_curve(rows, out, f"{cfg['method']}: learning curves")
    last = rows[-1]
    ending = "diverged" if last[protocol.DIVERGED] else ("collapsed" if last[protocol.COLLAPSED] else "done")
    saved = f"; encoders in {args.save_dir}/best and /last" if args.save_dir else ""
    print(f"{ending} after {len(rows)} epochs: {metric} {last.get(metric, float('nan')):.3f}; wrote {out}"
          f"{' and its learning curves' if figures else ''}{saved}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
