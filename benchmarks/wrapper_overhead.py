"""Scheduler overhead of the OHGW wrapper: decisions per second, bare vs wrapped, in one run.

1,000 simulated trials × up to 27 epochs are fed through each scheduler's hooks by
:class:`ohgw.testing.replay.Replay` (no Ray runtime, as Ray's scheduler tests do; one
worker by default, ``--workers N`` interleaves N trials at once, ``--save-ticks K`` makes
each pause save take K ticks). Every trial's first result carries x′ (the
:mod:`ohgw.protocol` warm-start keys), so the wrapper records x′ for all of them. Also timed: one ``get_state()`` snapshot of the
finished wrapper (what ``SchedulerStateCallback`` saves at each experiment checkpoint)
and its pickled size.

    .venv/bin/python benchmarks/wrapper_overhead.py [--trials 1000] [--epochs 27] [--repeats 3]
        [--schedulers FIFO,ASHA,HyperBand,MedianStopping] [--workers 1] [--save-ticks 0]

Prints, per scheduler: decisions, decisions/s bare and wrapped, and the ratio
wrapped/bare of seconds per decision (1.00 = no overhead), the extra microseconds per
decision (trial creation and x′ recording included), whether the two decision logs are
identical, the trials left unfinished (bare/wrapped: with ``--save-ticks`` a bare HyperBand
can orphan a PAUSED trial, see :mod:`ohgw.tune.delegating`), and the state snapshot's time
and size.
"""

from __future__ import annotations

import argparse
import math
import pickle
import sys
import time

import numpy as np
from _machine import run_header
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, HyperBandScheduler, MedianStoppingRule

from ohgw import protocol
from ohgw.space import SearchSpace
from ohgw.testing.replay import Replay
from ohgw.tune.wrapper import OHGW
from ohgw.warmstart import WarmStartSettings

SPACE = SearchSpace.default()


def metric_fn(i: int, t: int) -> float:
    quality = ((i * 7919) % 997) / 997
    return quality * (1 - math.exp(-t / 5)) + 0.02 * math.sin(13 * i + 7 * t)


def config_of(i: int) -> dict:
    rng = np.random.default_rng(i)
    return {n: float(10 ** rng.uniform(p.u_low, p.u_high)) if p.is_log else float(rng.uniform(p.low, p.high))
            for n, p in zip(SPACE.names, SPACE.params)}


def first_report(i: int, t: int) -> dict:
    if t != 1:
        return {}
    x = config_of(i)
    out = {}
    for n in SPACE.names:
        out[protocol.X_PREFIX + n] = x[n]
        out[protocol.X_PRIME_PREFIX + n] = x[n]  # x' = x keeps every trial inside the space
        out[protocol.G_PREFIX + n] = 0.1
    return out


FACTORIES = {
    "FIFO": lambda e: FIFOScheduler(),
    "ASHA": lambda e: ASHAScheduler(metric="acc", mode="max", max_t=e, grace_period=1, reduction_factor=3),
    "HyperBand": lambda e: HyperBandScheduler(metric="acc", mode="max", max_t=e, reduction_factor=3),
    "MedianStopping": lambda e: MedianStoppingRule(time_attr="training_iteration", metric="acc", mode="max",
                                                   grace_period=3, min_samples_required=3),
}


def timed(make, n: int, epochs: int, wrapped: bool, workers: int = 1, save_ticks: int = 0) -> tuple[float, int, Replay]:
    np.random.seed(0)
    sched = make(epochs)
    if wrapped:
        sched = OHGW(sched, SPACE, WarmStartSettings(mode="hypergrad"))
    run = Replay(sched, n_trials=n, max_t=epochs, metric_fn=metric_fn, configs=config_of, extra_result=first_report,
                 workers=workers, save_ticks=save_ticks)
    t0 = time.perf_counter()
    run.run()
    return time.perf_counter() - t0, len(run.log), run


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=1000)
    ap.add_argument("--epochs", type=int, default=27)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--schedulers", default=",".join(FACTORIES))
    ap.add_argument("--workers", type=int, default=1, help="trials running at once (default 1)")
    ap.add_argument("--save-ticks", type=int, default=0, help="ticks a pause save takes (default 0: instant)")
    args = ap.parse_args(argv)
    if args.trials < 1 or args.epochs < 1 or args.repeats < 1 or args.workers < 1 or args.save_ticks < 0:
        print("error: --trials, --epochs, --repeats and --workers must be >= 1, --save-ticks >= 0", file=sys.stderr)
        return 2
    names = args.schedulers.split(",")
    unknown = [n for n in names if n not in FACTORIES]
    if unknown:
        print(f"error: --schedulers: unknown {unknown}; choose from {sorted(FACTORIES)}", file=sys.stderr)
        return 2
    print(run_header(__file__, argv))
    print(f"{args.trials} trials x up to {args.epochs} epochs, best of {args.repeats}, "
          f"{args.workers} worker(s), pause saves {args.save_ticks} tick(s)")
    print(f"{'scheduler':<15}{'decisions':>10}{'bare dec/s':>12}{'OHGW dec/s':>12}{'ratio':>8}"
          f"{'+us/dec':>9}{'same log':>10}{'unfinished':>12}{'state ms':>10}{'state KiB':>10}")
    for name in names:
        make = FACTORIES[name]
        opts = (args.workers, args.save_ticks)
        bare = min((timed(make, args.trials, args.epochs, False, *opts) for _ in range(args.repeats)), key=lambda r: r[0])
        wrap = min((timed(make, args.trials, args.epochs, True, *opts) for _ in range(args.repeats)), key=lambda r: r[0])
        same = bare[2].log == wrap[2].log
        t0 = time.perf_counter()
        blob = pickle.dumps(wrap[2].scheduler.get_state())
        state_ms = 1e3 * (time.perf_counter() - t0)
        ratio = (wrap[0] / wrap[1]) / (bare[0] / bare[1])
        print(f"{name:<15}{bare[1]:>10}{bare[1] / bare[0]:>12.0f}{wrap[1] / wrap[0]:>12.0f}{ratio:>8.2f}"
              f"{1e6 * (wrap[0] - bare[0]) / wrap[1]:>9.1f}{str(same):>10}"
              f"{f'{len(bare[2].stuck)}/{len(wrap[2].stuck)}':>12}{state_ms:>10.1f}{len(blob) / 1024:>10.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
