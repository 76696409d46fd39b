"""JEPA family throughput on the CPU: generation and training sequences/s, the evaluation's share, a default run.

What it measures, in one run of this script (numbers from one machine state; see the load lines):

1. *Generation*: sequences/s of :func:`trainables.jepa.world.generate` for the default world (Single,
   no noise), changing + static uniform noise, and structured noise (texture bank built beforehand),
   ``--gen`` sequences each, median of ``--repeats`` timings.
2. *Training*: sequences/s of :meth:`trainables.jepa.run.JepaRun.train_pass` per model (VICReg, SimCLR,
   RSSM at their defaults), ``--steps`` steps of 64 sequences after one warm-up step, median of
   ``--repeats``; models interleaved per round.
3. *A default VICReg run*: ``python -m trainables.jepa.train``'s run object driven by the scaffold for
   the default 5 epochs (1,024 training sequences per epoch, evaluation every epoch): total wall time
   (goal ≤ 2 min on 2 cores) and the evaluation's share of each epoch (``eval_share``, goal ≤ 10 %),
   the time from the scaffold's reports. ``--quick`` runs 2 epochs.

Prints a header (torch, threads, CPU, load at start and end) and one line per item. Use
``--threads 1`` on a shared machine (a Tune trial with 1 CPU runs that way).

    python benchmarks/jepa_throughput.py --threads 1
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _machine import cpu_model, load_line, run_header  # noqa: E402

from trainables.jepa import world  # noqa: E402
from trainables.jepa.run import JepaRun, train_epochs  # noqa: E402


def _median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    p.add_argument("--gen", type=int, default=1024, help="sequences per generation timing")
    p.add_argument("--steps", type=int, default=4, help="timed training steps per model and round")
    p.add_argument("--repeats", type=int, default=3, help="rounds (medians are printed)")
    p.add_argument("--quick", action="store_true", help="a 2-epoch default run instead of 5")
    args = p.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    print(run_header(__file__, argv))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU: {cpu_model()}")
    print(load_line("at start"))

    world.texture_bank()
    for label, spec in (("clean", world.WorldSpec()), ("uniform changing+static", world.WorldSpec(noise=1, static_noise=1)),
                        ("structured changing", world.WorldSpec(noise=1, structured_noise=True))):
        s = _median_time(lambda spec=spec: world.generate(spec, args.gen, seed=0), args.repeats)
        print(f"generation {label:24s}: {args.gen / s:9.0f} sequences/s ({s:.2f} s for {args.gen})")

    runs = {m: JepaRun({"model_type": m, "device": "cpu"}) for m in ("VICReg", "SimCLR", "RSSM")}
    for run in runs.values():
        run.train_pass(max_batches=1)  # warm-up (and the optimizer)
    times: dict[str, list[float]] = {m: [] for m in runs}
    for r in range(args.repeats):
        order = list(runs)[r % 3:] + list(runs)[:r % 3]
        for m in order:
            t0 = time.perf_counter()
            runs[m].train_pass(max_batches=args.steps)
            times[m].append(time.perf_counter() - t0)
    bs = 64
    for m, ts in times.items():
        s = statistics.median(ts)
        print(f"training {m:7s}: {args.steps * bs / s:7.1f} sequences/s ({s / args.steps:.3f} s per step of {bs})")

    epochs = 2 if args.quick else 5
    t0 = time.perf_counter()
    rows = train_epochs({"model_type": "VICReg", "device": "cpu", "max_t": epochs}, epochs)
    wall = time.perf_counter() - t0
    shares = [r["eval_share"] for r in rows]
    print(f"default VICReg run: {epochs} epochs in {wall:.1f} s wall (goal <= 120 s for 5 epochs: "
          f"{'met' if wall <= 120 or epochs != 5 else 'NOT met'}); val_rmse {rows[-1]['val_rmse']:.3f} px, "
          f"random-init {rows[-1]['ref_random_init_rmse']:.3f} px")
    print(f"evaluation share per epoch: {', '.join(f'{s:.3f}' for s in shares)} (epoch 1 includes the reference "
          f"lines; goal <= 0.10 from epoch 2: {'met' if max(shares[1:] or shares) <= 0.10 else 'NOT met'})")
    print(load_line("at end"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
