"""One SSL run from the command line: per-epoch metrics and hyper-parameters to one Parquet file.

    python -m trainables.ssl.train --method tw-byol --epochs 10                  # the behaviour video
    python -m trainables.ssl.train --method byol --root-dir my_clips --window-size 8 --frame-step 2 \\
        --window-stride 4 --epochs 50 --out runs/byol.parquet --csv-log

The Parquet file has one row per epoch: every reported metric (the scaffold's contract keys
included) plus the run's configuration as ``config_<key>`` columns. ``--csv-log`` also writes,
beside it, the two CSV logs temporal-SSL users' scripts read: ``<stem>_loss.csv``
(``epoch,loss,learning_rate,decay_rate``: mean train loss, the learning rate at the epoch's end,
and the EMA target momentum at the epoch's end — empty for temporal SimCLR, which has no target)
and ``<stem>_acc.csv`` (``epoch,train_loss,train_acc,val_loss,val_acc,test_loss,test_acc``; acc is
the kNN accuracy, the val/test losses the reference SSL loss on held-out clips). Files are written
atomically (temporary file, then rename) after every epoch, so an interrupted run leaves whole
files. Bad input: one line ``train: error: …`` on stderr, exit status 2, nothing written (an error found
only while training, such as an undecodable frame in streaming mode, leaves the epochs before it).
"""

from __future__ import annotations

import argparse
import csv
import logging
import os
import sys
from collections.abc import Sequence

from ohgw import protocol
from ohgw.results import atomic_path
from trainables.checks import true_or_false

FLAGS = {  # flag → (config key, type)
    "--method": ("method", str), "--root-dir": ("root_dir", str), "--window-size": ("window_size", int),
    "--frame-step": ("frame_step", int), "--window-stride": ("window_stride", int), "--max-dt": ("max_dt", int),
    "--weighting": ("weighting", str), "--tau": ("tau", float), "--weight-norm": ("weight_norm", str),
    "--temperature": ("temperature", float), "--lr": ("lr", float), "--wd": ("wd", float),
    "--ema-momentum": ("ema_momentum", float), "--ema-schedule": ("ema_schedule", str),
    "--aug-strength": ("aug_strength", float), "--batch-size": ("batch_size", int),
    "--steps-per-epoch": ("steps_per_epoch", int), "--seed": (protocol.SEED_KEY, int),
    "--split-seed": ("split_seed", int), "--device": ("device", str), "--label": ("label", str),
    "--cache-dir": ("cache_dir", str), "--encoder": ("encoder", str), "--cache": ("cache", str),
    "--deterministic": ("deterministic", true_or_false),
}  # fmt: skip


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="train", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for flag, (key, typ) in FLAGS.items():
        p.add_argument(flag, dest=key, type=typ, default=None, help=f"config {key!r}")
    p.add_argument("--epochs", type=int, default=10, help="epochs (= max_t; default %(default)s)")
    p.add_argument("--out", default=None, help="Parquet file (default results/ssl_train/<method>-seed<seed>.parquet)")
    p.add_argument("--csv-log", action="store_true", help="also write <stem>_loss.csv and <stem>_acc.csv")
    p.add_argument("--threads", type=int, default=None, help="torch threads")
    return p


def _atomic_write(path: str, write) -> None:
    with atomic_path(path) as tmp:
        write(tmp)


def _write_csv(path: str, header: list[str], rows: list[list]) -> None:
    def write(tmp):
        with open(tmp, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(header)
            w.writerows(rows)

    _atomic_write(path, write)


def write_outputs(rows: list[dict], config: dict, out: str, csv_log: bool) -> None:
    import pandas as pd

    frame = pd.DataFrame([{**r, **{f"config_{k}": (v if isinstance(v, (int, float, str, bool)) or v is None
                                                    else str(v)) for k, v in config.items()}} for r in rows])
    _atomic_write(out, lambda tmp: frame.to_parquet(tmp, index=False))
    if csv_log:
        stem = os.path.splitext(out)[0]
        t = protocol.test_metric
        _write_csv(f"{stem}_loss.csv", ["epoch", "loss", "learning_rate", "decay_rate"],
                   [[r[protocol.ITERATION], r[protocol.TRAIN_LOSS], r.get("learning_rate"), r.get("ema_momentum", "")]
                    for r in rows])
        _write_csv(f"{stem}_acc.csv", ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "test_loss",
                                       "test_acc"],
                   [[r[protocol.ITERATION], r[protocol.TRAIN_LOSS], r.get("train_knn_acc"), r.get(protocol.VAL_LOSS),
                     r.get("val_knn_acc"), r.get(t(protocol.VAL_LOSS)), r.get(t("val_knn_acc"))] for r in rows])


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    config = {key: getattr(args, key) for key, _ in FLAGS.values() if getattr(args, key) is not None}
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    try:
        if args.epochs < 1:
            raise ValueError(f"--epochs must be >= 1, got {args.epochs}")
        config["max_t"] = args.epochs
        from trainables.scaffold import Trial, set_num_threads
        from trainables.ssl.config import resolve_config
        from trainables.ssl.run import SSLRun

        cfg = resolve_config(config)
        out = args.out or os.path.join("results", "ssl_train", f"{cfg['method']}-seed{cfg[protocol.SEED_KEY]}.parquet")
        if os.path.isdir(out):
            raise ValueError(f"--out {out!r} is a directory; give a file name")
        set_num_threads(args.threads)
        trial = Trial.start(SSLRun, config)
    except ValueError as e:
        print(f"train: error: {e}", file=sys.stderr)
        return 2
    from tqdm import tqdm

    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    rows: list[dict] = []
    with tqdm(total=args.epochs, desc=f"{cfg['method']}", unit="epoch", file=sys.stderr) as bar:
        while not trial.finished:
            try:
                r = trial.step()
            except ValueError as e:  # e.g. a frame the streaming store cannot decode; epochs so far stay written
                bar.close()
                print(f"train: error: {e}", file=sys.stderr)
                return 2
            rows.append(r)
            write_outputs(rows, cfg, out, args.csv_log)
            bar.set_postfix(loss=f"{r[protocol.TRAIN_LOSS]:.3f}", knn=f"{r.get('val_knn_acc', float('nan')):.3f}",
                            f1=f"{r.get('val_probe_f1', float('nan')):.3f}")
            bar.update(1)
    last = rows[-1]
    ending = "diverged" if last[protocol.DIVERGED] else ("collapsed" if last[protocol.COLLAPSED] else "done")
    print(f"{ending} after {len(rows)} epochs: val kNN {last.get('val_knn_acc', float('nan')):.3f}, "
          f"probe F1 {last.get('val_probe_f1', float('nan')):.3f}; wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
