"""Disk used by a study run: peak while it runs, what is left after, checkpoint folders; a projection.

What it measures: it runs a command (default: the default main job,
``experiments/asha_vs_ohgw.py --quiet --out OUT``, 12 digits studies) in a subprocess and,
every ``--every`` seconds, walks ``OUT`` and sums the apparent file sizes (what ``du -sb``
prints, a hard-linked file once) and counts Tune's checkpoint folders (``checkpoint_<index>``). It prints the peak of
both, the size left after the run (all of ``OUT`` and its ``_tune`` folder alone) and the
checkpoint folders left. The peak is a sampled one: a spike shorter than the interval can be
missed (a checkpoint lives one epoch, far longer).

Then a projection of the peak for a larger preset from its assumptions (flags): concurrent
studies × trials per study × checkpoints on disk per trial × checkpoint size. On disk per trial
is Tune's ``num_to_keep`` (:data:`ohgw.studies.checkpoints.CHECKPOINTS_KEPT`), plus the one being
written before the older one is let go, plus that older one until the stored experiment snapshot no
longer names it (:class:`ohgw.studies.checkpoints.KeepRestorable`; hard links, so only while Tune's
copy is already deleted). A pausing scheduler (PASHA, promotion-type ASHA,
HyperBand) also keeps one per *paused* trial, up to every trial the study started, so the
projection prints that bound too (``--paused-per-study``).

    python benchmarks/disk_usage.py                          # the default main job (~3 min idle, 2 cores)
    python benchmarks/disk_usage.py -- .venv/bin/python experiments/asha_vs_ohgw.py --quiet --seeds 1 --out {out}
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

from _machine import cpu_model, load_line, run_header

CKPT = re.compile(r"checkpoint_\d+")
GOAL_LEFT_MB, GOAL_PEAK_MB = 30.0, 150.0


def scan(root: str) -> tuple[int, int]:
    """(apparent bytes under root, checkpoint folders under root); files vanishing meanwhile are skipped.

    A file with several names (a retired checkpoint is a hard link of Tune's until Tune deletes its
    own) is counted once, as ``du`` does.
    """
    size = ckpts = 0
    seen: set[tuple[int, int]] = set()
    for d, dirs, files in os.walk(root):
        ckpts += sum(1 for x in dirs if CKPT.fullmatch(x))
        for f in files:
            with contextlib.suppress(OSError):
                st = os.lstat(os.path.join(d, f))
                if (st.st_dev, st.st_ino) not in seen:
                    seen.add((st.st_dev, st.st_ino))
                    size += st.st_size
    return size, ckpts


def run(cmd: list[str], out: str, every: float) -> dict:
    peak = {"bytes": 0, "ckpts": 0, "samples": 0}
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            b, c = scan(out)
            peak["bytes"], peak["ckpts"] = max(peak["bytes"], b), max(peak["ckpts"], c)
            peak["samples"] += 1
            done.wait(every)

    t = threading.Thread(target=sample, daemon=True)
    t0 = time.time()
    t.start()
    rc = subprocess.call(cmd)
    done.set()
    t.join()
    left, ckpts_left = scan(out)
    tune_left, _ = scan(os.path.join(out, "_tune"))
    return {"rc": rc, "wall_s": time.time() - t0, "peak_bytes": peak["bytes"], "peak_ckpts": peak["ckpts"],
            "samples": peak["samples"], "left_bytes": left, "tune_left_bytes": tune_left, "ckpts_left": ckpts_left}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", help="results folder (default: a fresh temporary one, deleted after)")
    p.add_argument("--every", type=float, default=1.0, help="seconds between samples (default: %(default)s)")
    p.add_argument("--ckpt-mb", type=float, default=2.2, help="projection: one checkpoint, MB (ResNet-20 + SGD)")
    p.add_argument("--studies", type=int, default=8, help="projection: studies running at once")
    p.add_argument("--trials", type=int, default=4, help="projection: trials running at once per study")
    p.add_argument("--paused-per-study", type=int, default=150,
                   help="projection: paused trials a pausing-scheduler study may hold at once")
    p.add_argument("cmd", nargs=argparse.REMAINDER, help="-- command; {out} is replaced by the results folder")
    args = p.parse_args()

    from ohgw.studies.checkpoints import CHECKPOINTS_KEPT

    out = args.out or tempfile.mkdtemp(prefix="disk_usage-")
    cmd = [c.replace("{out}", out) for c in args.cmd[1:]] if args.cmd[1:] else [
        sys.executable, "experiments/asha_vs_ohgw.py", "--quiet", "--out", out]
    print(run_header(__file__, None))
    print(f"cpu: {cpu_model()}")
    print(load_line("at start"))
    print("command:", " ".join(cmd))
    r = run(cmd, out, args.every)
    print(load_line("at end"))
    mb = 1e6
    print(f"exit status {r['rc']}, wall {r['wall_s']:.0f} s, {r['samples']} samples")
    print(f"peak during the run: {r['peak_bytes'] / mb:.1f} MB (goal <= {GOAL_PEAK_MB:g}), "
          f"{r['peak_ckpts']} checkpoint folders at once")
    print(f"left after the run: {r['left_bytes'] / mb:.1f} MB in all (goal <= {GOAL_LEFT_MB:g}), "
          f"_tune {r['tune_left_bytes'] / mb:.1f} MB, {r['ckpts_left']} checkpoint folders")
    per_trial = CHECKPOINTS_KEPT + 2
    stopping = args.studies * args.trials * per_trial * args.ckpt_mb
    pausing = args.studies * (args.trials * per_trial + args.paused_per_study) * args.ckpt_mb
    print(f"projection, stopping-type scheduler: {args.studies} studies x {args.trials} trials x {per_trial} "
          f"checkpoints x {args.ckpt_mb:g} MB = {stopping:.0f} MB peak")
    print(f"projection, pausing scheduler (all {args.studies} studies, up to {args.paused_per_study} paused "
          f"trials each): {pausing / 1e3:.2f} GB peak")
    if not args.out:
        shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
