"""DyHPO vs ASHA vs PASHA vs random search on LCBench learning curves: anytime regret on the epochs clock.

Curves: YAHPO Gym's LCBench surrogate (``trainables/lcbench``; task ``--task``, default 167149 as
the lcbench workload's presets), ``val_acc`` = val_accuracy / 100 exactly as the trainable reports
it. Seed s samples ``--trials`` configs (lr log-uniform, momentum and weight decay uniform over
:func:`trainables.lcbench.search_space`; the other inputs at the config-space defaults) and gives
every scheduler the same configs in the same order (paired seeds).

Harness: every scheduler is built by the study harness's factory
(:data:`ohgw.studies.methods.SCHEDULERS` with the same :class:`~ohgw.studies.methods.SchedulerArgs`:
max_t, grace period 1, reduction factor 3, one worker), except random search (Tune's
``FIFOScheduler``: every trial to max_t), and driven through its Tune hooks by
:class:`ohgw.testing.replay.Replay` (one worker, every epoch a report, pause/resume/stop as Tune
does). Not a Tuner run: an actor restart per DyHPO pause would cost seconds per epoch here, and
the epochs clock does not see it. Budget: ``--budget`` epochs (each reported epoch counts 1).

Reported: anytime regret r(b) = (best val_acc of the seed's configs at any epoch ≤ max_t) −
(best val_acc reported within the first b epochs), median and IQR over seeds at several b; the
mean regret over b = 1..budget (area under the curve / budget); and each scheduler's own decision
time (all hook calls, wall) per epoch. DyHPO refits every ``--refit-every`` decisions.

Run: ``.venv/bin/python benchmarks/lcbench_schedulers.py [--seeds 10 --budget 135 --trials 135]``.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _machine import cpu_model, load_line, run_header  # noqa: E402
from ray.tune.schedulers import FIFOScheduler  # noqa: E402

from ohgw import protocol  # noqa: E402
from ohgw.studies.methods import SCHEDULERS, SchedulerArgs  # noqa: E402
from ohgw.testing.replay import Replay  # noqa: E402
from trainables.lcbench import search_space  # noqa: E402
from trainables.lcbench import surrogate as sur  # noqa: E402
from trainables.lcbench.run import CONTINUOUS, FIXED, METRIC  # noqa: E402

METHODS = ("random", "asha", "pasha", "dyhpo")


def sample(seed: int, n: int, task: int, max_t: int) -> tuple[list[dict], np.ndarray]:
    """n configs of seed s and their val_acc curves (n × max_t)."""
    space = search_space()
    rng = np.random.default_rng(seed)
    u = space.u_low + rng.uniform(size=(n, len(space))) * space.u_range
    configs = [space.to_x(ui) for ui in u]
    inputs = [{**{k: sur.DEFAULTS[k] for k in FIXED}, **{CONTINUOUS[k]: v for k, v in c.items()}} for c in configs]
    acc = sur.curves(task, inputs)[:, :max_t, sur.OUTPUT_ORDER.index("val_accuracy")] / 100.0
    return configs, np.clip(acc, 0.0, 1.0)


def make(method: str, max_t: int, refit_every: int):
    if method == "random":
        return FIFOScheduler()
    args = SchedulerArgs(metric=METRIC, mode="max", max_t=max_t, grace_period=1, reduction_factor=3,
                         max_concurrent=1, space=search_space())
    if method == "dyhpo" and refit_every != 1:  # the harness's DyHPO, refitting less often
        from ohgw.dyhpo import DyHPO

        return DyHPO(time_attr=protocol.ITERATION, metric=METRIC, mode="max", max_t=max_t, increment=1,
                     space=args.space, max_concurrent=1, refit_every=refit_every)
    return SCHEDULERS[method](args)


class Timed:
    """Wraps every hook of a scheduler to add its wall time (the scheduler's own decision overhead)."""

    HOOKS = ("on_trial_add", "on_trial_result", "on_trial_complete", "on_trial_remove", "choose_trial_to_run")

    def __init__(self, scheduler) -> None:
        self.seconds = 0.0
        for name in self.HOOKS:
            setattr(scheduler, name, self._wrap(getattr(scheduler, name)))

    def _wrap(self, fn):
        def timed(*a, **k):
            t0 = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                self.seconds += time.perf_counter() - t0
        return timed


def run_one(method: str, configs: list[dict], acc: np.ndarray, budget: int, refit_every: int):
    max_t = acc.shape[1]
    s = make(method, max_t, refit_every)
    timer = Timed(s)
    r = Replay(s, n_trials=len(configs), max_t=max_t, metric_fn=lambda i, t: float(acc[i, t - 1]), metric=METRIC,
               time_attr=protocol.ITERATION, configs=lambda i: dict(configs[i]))
    r.add_all()
    while r.n_results < budget and r.step():
        pass
    values = [float(acc[i, it - 1]) for i, it, _ in r.log[:budget]]
    best = np.maximum.accumulate(values)
    if len(best) < budget:  # nothing left to run: the best stays
        best = np.concatenate([best, np.full(budget - len(best), best[-1])])
    return best, timer.seconds / max(1, min(r.n_results, budget))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--budget", type=int, default=135)
    ap.add_argument("--trials", type=int, default=None, help="configs per seed (default: the budget)")
    ap.add_argument("--max-t", type=int, default=27)
    ap.add_argument("--task", type=int, default=167149)
    ap.add_argument("--refit-every", type=int, default=1)
    args = ap.parse_args(argv)
    trials = args.trials or args.budget
    if args.seeds < 1 or args.budget < args.max_t or not 1 <= args.max_t <= sur.MAX_EPOCH or trials < 1 \
            or args.refit_every < 1:
        print(f"error: need --seeds >= 1, --max-t in 1..{sur.MAX_EPOCH}, --budget >= --max-t, --trials >= 1, "
              "--refit-every >= 1", file=sys.stderr)
        return 2
    if args.task not in sur.task_codes():
        print(f"error: --task must be one of {sorted(sur.task_codes())}", file=sys.stderr)
        return 2
    torch.set_num_threads(1)
    print(run_header(__file__, argv))
    print(f"# LCBench schedulers | task {args.task}, max_t {args.max_t}, budget {args.budget} epochs, {trials} configs "
          f"per seed, {args.seeds} seeds, one worker | DyHPO refit every {args.refit_every} | {cpu_model()}")
    print("# " + load_line("at start"))
    regret = {m: [] for m in METHODS}
    cost = {m: [] for m in METHODS}
    for seed in tqdm(range(args.seeds), desc="seeds"):
        configs, acc = sample(seed, trials, args.task, args.max_t)
        oracle = float(acc.max())
        for m in METHODS:
            best, per_epoch = run_one(m, configs, acc, args.budget, args.refit_every)
            regret[m].append(oracle - best)
            cost[m].append(per_epoch)
    marks = sorted({args.max_t, 2 * args.max_t, args.budget // 2, args.budget} & set(range(1, args.budget + 1)))
    head = " ".join(f"{'r@' + str(b):>20}" for b in marks)
    print(f"{'method':>7} {head} {'mean regret':>20} {'sched ms/epoch':>15}")
    summary = {}
    for m in METHODS:
        r = np.array(regret[m])
        cells = []
        for b in marks:
            q = np.percentile(r[:, b - 1], [25, 50, 75])
            cells.append(f"{q[1]:.4f} [{q[0]:.4f},{q[2]:.4f}]")
        auc = r.mean(axis=1)
        qa = np.percentile(auc, [25, 50, 75])
        summary[m] = (np.median(r[:, -1]), qa[1])
        print(f"{m:>7} " + " ".join(f"{c:>20}" for c in cells)
              + f" {f'{qa[1]:.4f} [{qa[0]:.4f},{qa[2]:.4f}]':>20} {1e3 * float(np.median(cost[m])):>15.2f}")
    print("# regret: median [IQR] over seeds; mean regret: over b = 1..budget")
    d, a = summary["dyhpo"], summary["asha"]
    ahead = d[1] < a[1] and d[0] <= a[0]
    print(f"# DyHPO ahead of ASHA here (lower mean and final median regret): {'YES' if ahead else 'NO'} "
          f"(final {d[0]:.4f} vs {a[0]:.4f}, mean {d[1]:.4f} vs {a[1]:.4f})")
    print("# " + load_line("at end"))
    return 0 if all(math.isfinite(v) for s in summary.values() for v in s) else 1


if __name__ == "__main__":
    sys.exit(main())
