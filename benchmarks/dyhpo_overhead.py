"""DyHPO's own overhead: decisions per second and surrogate refit time at 100, 1,000 and 5,000 observations.

For each size N, a :class:`ohgw.dyhpo.DyHPO` is loaded (through its public ``set_state``) with N
observations: N/10 started trials with 10 epochs each of saturating, noisy learning curves over a
3-dimensional space, plus 16 held new trials (the pool). Then it is driven through its Tune hooks
with stub trials (one worker): each report at a trial's milestone frees the worker and triggers
one decision (EI over every paused trial and the pool). Timed, one thread (as inside a Tune driver):

- ``decide``: a decision without a refit (median over ``--decisions`` decisions, ``refit_every`` large);
- ``refit``: one warm-started refit (``refit_steps`` = 50 Adam steps) on the capped training set
  (``max_observations`` = 256, the default: each trial's latest score plus a random sample);
- ``first fit``: the first fit (200 steps) from fresh weights, capped;
- ``uncapped step``: one Adam step of the exact-GP marginal likelihood on all N observations
  (O(N³)); ``x 50`` is what an uncapped refit would cost — the reason for the cap. Measured up to
  ``--max-uncapped`` observations (default 1,000); above, extrapolated as N³ from the largest
  measured size and marked ``~``.

Run: ``.venv/bin/python benchmarks/dyhpo_overhead.py [--sizes 100,1000,5000 --decisions 20]``.
Compare with a trainable epoch: the digits ResNet-20 epoch on one CPU thread is seconds
(``benchmarks/trainable_throughput.py``); a DyHPO decision must stay far below it.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _machine import cpu_model, load_line, run_header  # noqa: E402

from ohgw.dyhpo import DyHPO  # noqa: E402
from ohgw.dyhpo.surrogate import DeepKernelSurrogate  # noqa: E402
from ohgw.space import SearchSpace  # noqa: E402
from ohgw.testing.replay import stub_trial  # noqa: E402

SPACE = SearchSpace.from_bounds({"lr": (1e-4, 1e-1, "log10"), "momentum": (0.1, 0.99, "identity"),
                                 "wd": (1e-5, 1e-1, "identity")})
EPOCHS, MAX_T, POOL = 10, 50, 16


class Controller:
    """The tune_controller surface DyHPO uses."""

    def __init__(self, trials):
        self.trials = trials
        self.search_alg = self

    def is_finished(self):
        return True

    def get_trials(self):
        return self.trials

    def _set_trial_status(self, trial, status):
        trial.set_status(status)

    def stop_trial(self, trial):
        trial.set_status("TERMINATED")


def loaded(n_obs: int, seed: int = 0, **kw) -> tuple[DyHPO, Controller, dict]:
    rng = np.random.default_rng(seed)
    n_started = max(n_obs // EPOCHS, 2)
    u = rng.uniform(size=(n_started + POOL, 3))
    configs = [SPACE.to_x(SPACE.u_low + ui * SPACE.u_range) for ui in u]
    tops, speeds = rng.uniform(0.3, 0.95, n_started), rng.uniform(1, 8, n_started)
    curves = {}
    for i in range(n_started):
        e = np.arange(1, EPOCHS + 1)
        curves[f"t{i:05d}"] = (tops[i] * (1 - np.exp(-e / speeds[i])) + rng.normal(0, 0.01, EPOCHS)).tolist()
    trials = [stub_trial(i, configs[i]) for i in range(n_started + POOL)]
    s = DyHPO(metric="acc", mode="max", max_t=MAX_T, space=SPACE, max_concurrent=1, pool_size=POOL, **kw)
    state = s.get_state()
    state.update({
        "encoder": {"space": SPACE.to_dict(), "keys": list(SPACE.names)},
        "raw": {t.trial_id: dict(configs[i]) for i, t in enumerate(trials)},
        "started": list(curves), "curves": curves,
        "queue": [t.trial_id for t in trials[n_started:]],
    })  # fmt: skip
    s.set_state(state)
    c = Controller(trials)
    for t in trials:
        t.set_status("PAUSED")
        s.on_trial_add(c, t)  # not PENDING: registered, as Tune re-adds trials on restore
    return s, c, curves


def drive(s: DyHPO, c: Controller, n: int) -> None:
    """n decisions: hand out a trial, report its milestone epoch (which frees the worker and decides again)."""
    trial = s.choose_trial_to_run(c)
    for _ in range(n):
        trial.set_status("RUNNING")
        done = len(s.curves.get(trial.trial_id, []))
        s.on_trial_result(c, trial, {"training_iteration": done + 1, "acc": 0.5 + 0.001 * done})
        held = [d for d in s.decisions if d[0] in ("new", "advance")][-1][1]
        trial = next(t for t in c.trials if t.trial_id == held)
        if trial.status == "RUNNING":  # advanced straight away (CONTINUE)
            continue
        trial.set_status("PAUSED")


def uncapped_step(s: DyHPO, n_obs: int) -> float:
    sur = DeepKernelSurrogate(n_config=3, curve_len=MAX_T - 1)
    order = list(s._started)
    enc = dict(zip(order, s._encoder.encode([s._raw[t] for t in order])))
    s._max_obs = 10**9
    train = s._training_set(enc)
    assert len(train) >= n_obs
    t0 = time.perf_counter()
    sur.fit(train, steps=1)
    return time.perf_counter() - t0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="100,1000,5000")
    ap.add_argument("--decisions", type=int, default=20)
    ap.add_argument("--max-uncapped", type=int, default=1000)
    args = ap.parse_args(argv)
    try:
        sizes = [int(x) for x in args.sizes.split(",")]
        if any(n < 20 for n in sizes) or args.decisions < 2:
            raise ValueError
    except ValueError:
        print("error: --sizes must be integers >= 20, comma-separated, and --decisions >= 2", file=sys.stderr)
        return 2
    torch.set_num_threads(1)
    print(run_header(__file__, argv))
    print(f"# DyHPO overhead | torch {torch.__version__}, 1 thread | {cpu_model()}")
    print("# " + load_line("at start"))
    rows, last_measured = [], None
    for n in tqdm(sizes, desc="sizes"):
        s, c, _ = loaded(n, refit_every=10**9)
        drive(s, c, args.decisions + 1)  # the first decision includes the first fit
        first_fit = s.fits[0].seconds
        decide = statistics.median(s._decide_s[1:])
        s2, c2, _ = loaded(n, refit_every=1)
        drive(s2, c2, 4)
        refit = statistics.median(f.seconds for f in s2.fits[1:])
        n_train = s2.fits[-1].n
        if n <= args.max_uncapped:
            s3, _, _ = loaded(n)
            step = uncapped_step(s3, n)
            measured = (n, step)
            last_measured = measured
        elif last_measured is not None:
            step = last_measured[1] * (n / last_measured[0]) ** 3
        else:
            step = float("nan")
        rows.append((n, 1.0 / decide, decide, refit, n_train, first_fit, step, 50 * step, n <= args.max_uncapped))
    print(f"{'observations':>12} {'decisions/s':>11} {'decide ms':>9} {'refit s':>8} {'fit on':>6} "
          f"{'first fit s':>11} {'uncapped step s':>15} {'x 50 s':>8}")
    for n, rate, d, r, nt, ff, st, st50, meas in rows:
        mark = " " if meas else "~"
        print(f"{n:>12} {rate:>11.1f} {1e3 * d:>9.1f} {r:>8.3f} {nt:>6} {ff:>11.3f} {mark}{st:>14.3f} {mark}{st50:>7.1f}")
    print("# decide: EI over every paused trial + the pool, no refit; refit: 50 warm-started Adam steps on the "
          "capped set (fit on = its size)")
    print("# " + load_line("at end"))
    return 0 if all(math.isfinite(r[3]) for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
