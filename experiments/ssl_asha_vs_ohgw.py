"""ASHA vs ASHA+OHGW on temporal self-supervised pretraining (the embedded behaviour video, or your frames).

With no arguments: TW-BYOL (``--method``: byol, tw-byol, simclr-temporal) with the ``cpu`` preset of
:func:`trainables.ssl.workload`: 25-step epochs on the CPU, max_t 6, 3 paired seeds; the search space is the
method's lr, wd, EMA momentum (as log10(1 − m)), τ or temperature, and augmentation strength.
Tuned metric: ``val_probe_f1`` (:data:`trainables.ssl.STUDY_METRIC`, the linear probe's macro-F1 of the
action label on held-out clips; why not kNN accuracy: see there).

``--root-dir`` runs the studies on your own frames (the README shows the folder layout and the
``labels.csv`` format); ``--window-size``, ``--frame-step``, ``--window-stride`` and ``--steps-per-epoch``
set the windows and the epoch. Frames without any ``labels.csv`` are tuned on ``val_rankme_frac``
(:data:`trainables.ssl.LABEL_FREE_METRIC`: RankMe of the features on held-out clips / their dimension), said
in one line.

Each study's best encoder (its best report, by the tuned metric) is exported beside its Parquet tables,
in ``<out>/exports/experiment=…/method=…/seed=…/`` (``encoder.pt``, ``encoder.json``, ``best.json``; load
with :func:`trainables.ssl.load_encoder`); no other checkpoint is kept.
``--preset gpu`` runs full epochs on one GPU per study. Every other flag is the harness's
(``--help`` lists them and the presets).
"""

import argparse
import contextlib
import dataclasses
import os
import sys

from ohgw.studies.cli import main
from trainables.ssl import LABEL_FREE_METRIC, METHODS, workload

# the workload's flags: config key, type, meaning (default: the preset's, i.e. trainables.ssl.DEFAULT_CONFIG's)
FRAME_FLAGS = {
    "--root-dir": ("root_dir", str, "folder of clip folders of frames (default: the embedded behaviour video)"),
    "--window-size": ("window_size", int, "frames per window (default 4)"),
    "--frame-step": ("frame_step", int, "frames between a window's frames, also the Δt grid (default 2)"),
    "--window-stride": ("window_stride", int, "frames between window starts (default 1)"),
    "--steps-per-epoch": ("steps_per_epoch", int, "optimizer steps per epoch (default: the preset's)"),
}


def add_flags(group) -> None:
    group.add_argument("--method", choices=METHODS, default="tw-byol", help="SSL method (default: %(default)s)")
    for flag, (key, typ, meaning) in FRAME_FLAGS.items():
        group.add_argument(flag, dest=key, type=typ, default=None, metavar=key.upper(), help=meaning)


def read_flags(argv) -> tuple[str, dict]:
    """(method, frame config) from ``argv``: they pick the workload, so they are read before the harness parses."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--method", default="tw-byol")
    for flag, (key, _typ, _) in FRAME_FLAGS.items():
        pre.add_argument(flag, dest=key, default=None)
    args = pre.parse_known_args(argv)[0]
    frames = {}
    for key, typ, _ in FRAME_FLAGS.values():
        value = getattr(args, key)
        if value is not None:
            with contextlib.suppress(ValueError):  # the harness's parser refuses it, in one line like any bad flag
                frames[key] = typ(value)
    return (args.method if args.method in METHODS else "tw-byol"), frames


def build_workload(method: str, frames: dict | None = None):
    """The SSL workload of ``method`` on ``frames``, with this script's flags among the harness's (``--help``)."""
    return dataclasses.replace(workload(method, frames=frames), add_flags=add_flags)


def run(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    method, frames = read_flags(argv)
    name = "ssl_asha_vs_ohgw" if method == "tw-byol" else f"ssl_asha_vs_ohgw-{method}"
    wl = build_workload(method, frames)
    # a missing root is the harness's one error line; only a real folder without labels gets this note
    if wl.metric == LABEL_FREE_METRIC and os.path.isdir(frames["root_dir"]) and not {"-h", "--help"} & set(argv):
        print(f"{name}: {frames['root_dir']} has no labels.csv: the tuned metric is {LABEL_FREE_METRIC} "
              "(RankMe of the features on held-out clips / their dimension); label-based columns stay empty", file=sys.stderr)
    return main(name, wl, ["asha", "asha+ohgw"], __doc__, argv)


if __name__ == "__main__":
    sys.exit(run())
