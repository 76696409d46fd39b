"""Scheduler overhead: decisions per second, and per-report latency against a trainable's epoch.

PASHA part: 1,000 simulated trials x 27 epochs (eta 3, rungs 1/3/9) on W asynchronous workers with
random, criss-crossing learning curves. It times

- ``core``: :class:`ohgw.pasha.rungs.PashaRungs` alone (report + schedule), PASHA and
  promotion-type ASHA (``progressive=False``) on the same curves;
- ``tune``: :class:`ohgw.pasha.PASHA` as Tune drives it (``on_trial_add``, ``on_trial_result``,
  ``choose_trial_to_run`` every controller step) through a minimal stand-in controller;
- ``eps``: the incremental eps update against recomputing the eps sample from scratch with the
  reference's loop, on sampled reports of the same run (and checks both give the same sample).

Run: ``.venv/bin/python benchmarks/scheduler_overhead.py [--trials 1000 --max-t 27 --workers 8]``.
All ratios printed are measured in this one run. Other parts (the OHGW wrapper) add functions
here and a call in :func:`main`.
"""

from __future__ import annotations

import argparse
import heapq
import math
import random
import time

import numpy as np
from _machine import run_header

from ohgw.pasha import PASHA
from ohgw.pasha.rungs import PashaRungs


def make_curves(n_trials: int, max_t: int, seed: int = 0, noise: float = 0.02) -> dict[str, list[float]]:
    """Saturating accuracy curves with per-epoch noise, so that rankings criss-cross."""
    rng = random.Random(seed)
    curves = {}
    for i in range(n_trials):
        q, speed = rng.random(), rng.uniform(2.0, 10.0)
        curves[f"t{i:05d}"] = [q * (1 - math.exp(-t / speed)) + rng.gauss(0.0, noise) for t in range(1, max_t + 1)]
    return curves


def simulate(rungs: PashaRungs, curves: dict[str, list[float]], workers: int, seed: int = 0, sample_eps_every: int = 0):
    """Event-driven run of ``rungs`` with ``workers`` free-running workers; times every call.

    Returns a dict with decision count, seconds spent in the scheduler, per-report latencies and
    (if ``sample_eps_every``) seconds of from-scratch eps recomputation on sampled reports.
    """
    rng = random.Random(seed)
    queue = list(curves)
    heap: list[tuple[float, int, str, int]] = []
    seq = 0
    spent = 0.0
    decisions = 0
    latencies = []
    scratch_s, checks = 0.0, 0

    def assign(now: float) -> bool:
        nonlocal seq, spent, decisions
        t0 = time.perf_counter()
        p = rungs.schedule()
        if p is None:
            if not queue:
                spent += time.perf_counter() - t0
                return False
            tid = queue.pop(0)
            rungs.start(tid)
            first = 1
        else:
            tid, first = p[0], p[1] + 1
        spent += time.perf_counter() - t0
        decisions += 1
        heapq.heappush(heap, (now + rng.uniform(0.8, 1.2), seq, tid, first))
        seq += 1
        return True

    for _ in range(workers):
        if not assign(0.0):
            break
    n_reports = 0
    while heap:
        now, _, tid, epoch = heapq.heappop(heap)
        t0 = time.perf_counter()
        d = rungs.report(tid, epoch, curves[tid][epoch - 1])
        dt = time.perf_counter() - t0
        spent += dt
        latencies.append(dt)
        decisions += 1
        n_reports += 1
        if sample_eps_every and rungs.progressive and n_reports % sample_eps_every == 0:
            t1 = time.perf_counter()
            fresh = rungs.eps_sample(from_scratch=True)
            scratch_s += time.perf_counter() - t1
            assert fresh == rungs.eps_sample(), "incremental eps sample differs from the reference loop"
            checks += 1
        if d == "continue":
            heapq.heappush(heap, (now + rng.uniform(0.8, 1.2), seq, tid, epoch + 1))
            seq += 1
        else:
            assign(now)
    return {
        "decisions": decisions,
        "reports": n_reports,
        "seconds": spent,
        "latencies": np.array(latencies),
        "scratch_eps_s": scratch_s,
        "eps_checks": checks,
        "current_max_t": rungs.current_max_t,
        "eps": rungs.eps,
    }


def bench_pasha_core(n_trials: int = 1000, max_t: int = 27, workers: int = 8, seed: int = 0) -> dict:
    curves = make_curves(n_trials, max_t, seed)
    out = {}
    for name, progressive in (("PASHA", True), ("PromotionASHA", False)):
        out[name] = simulate(PashaRungs(max_t, 1, 3, "max", progressive), curves, workers, seed)
    return out


def bench_eps_incremental(n_trials: int = 1000, max_t: int = 27, workers: int = 8, seed: int = 0, every: int = 50):
    """Time the reference's from-scratch eps loop on every ``every``-th report of a PASHA run."""
    curves = make_curves(n_trials, max_t, seed)
    return simulate(PashaRungs(max_t, 1, 3, "max", True), curves, workers, seed, sample_eps_every=every)


class _Trial:
    def __init__(self, trial_id: str):
        self.trial_id = trial_id
        self.status = "PENDING"

    def set_status(self, status: str) -> None:
        self.status = status


class _Search:
    def is_finished(self) -> bool:
        return True


class _Controller:
    """What PASHA sees of Tune's controller: trials, statuses, stop_trial, the searcher."""

    def __init__(self, scheduler: PASHA):
        self.scheduler = scheduler
        self.trials: list[_Trial] = []
        self.search_alg = _Search()

    def get_trials(self):
        return self.trials

    def _set_trial_status(self, trial, status):
        trial.status = status

    def stop_trial(self, trial):
        self.scheduler.on_trial_remove(self, trial)
        trial.status = "TERMINATED"


def bench_pasha_tune(n_trials: int = 1000, max_t: int = 27, workers: int = 8, seed: int = 0) -> dict:
    """PASHA as a TrialScheduler: every report and every controller step goes through its Tune API."""
    curves = make_curves(n_trials, max_t, seed)
    sched = PASHA(metric="acc", mode="max", max_t=max_t, grace_period=1, reduction_factor=3, max_concurrent=workers)
    ctl = _Controller(sched)
    rng = random.Random(seed)
    spent = 0.0
    calls = 0
    t0 = time.perf_counter()
    for tid in curves:
        t = _Trial(tid)
        ctl.trials.append(t)
        sched.on_trial_add(ctl, t)
    spent += time.perf_counter() - t0
    next_epoch = {tid: 1 for tid in curves}
    heap: list[tuple[float, int, _Trial]] = []
    seq = 0
    now = 0.0
    while True:
        # one controller step: choose_trial_to_run until it has nothing new to start
        while True:
            t0 = time.perf_counter()
            t = sched.choose_trial_to_run(ctl)
            spent += time.perf_counter() - t0
            calls += 1
            if t is None or t.status != "PAUSED":
                break
            t.status = "RUNNING"
            heapq.heappush(heap, (now + rng.uniform(0.8, 1.2), seq, t))
            seq += 1
        if not heap:
            break
        now, _, t = heapq.heappop(heap)
        epoch = next_epoch[t.trial_id]
        t0 = time.perf_counter()
        d = sched.on_trial_result(ctl, t, {"training_iteration": epoch, "acc": curves[t.trial_id][epoch - 1]})
        spent += time.perf_counter() - t0
        calls += 1
        next_epoch[t.trial_id] = epoch + 1
        if d == "CONTINUE":
            heapq.heappush(heap, (now + rng.uniform(0.8, 1.2), seq, t))
            seq += 1
        else:
            t.status = "PAUSED" if d == "PAUSE" else "TERMINATED"
    decisions = sum(d[0] in ("new", "promote", "report") for d in sched.decisions)
    return {"decisions": decisions, "calls": calls, "seconds": spent, "current_max_t": sched.current_max_t}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=1000)
    ap.add_argument("--max-t", type=int, default=27)
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--epoch-s", type=float, default=1.0, help="a trainable epoch to compare latencies with")
    args = ap.parse_args()
    for name, value in (("--trials", args.trials), ("--max-t", args.max_t), ("--workers", args.workers)):
        if value < 1:
            raise SystemExit(f"error: {name} must be >= 1, got {value}")
    n, max_t, w = args.trials, args.max_t, args.workers
    print(run_header(__file__, None))
    print(f"PASHA scheduler overhead: {n} trials x {max_t} epochs, eta 3, {w} workers")
    core = bench_pasha_core(n, max_t, w)
    for name, r in core.items():
        lat = r["latencies"]
        print(
            f"  core {name:14s} {r['decisions']:6d} decisions in {r['seconds']:.3f} s = {r['decisions'] / r['seconds']:9.0f}/s; "
            f"report latency p50 {np.median(lat) * 1e6:.0f} us, p99 {np.percentile(lat, 99) * 1e6:.0f} us, "
            f"max {lat.max() * 1e3:.2f} ms; final max resource {r['current_max_t']}"
        )
    ratio = core["PASHA"]["seconds"] / core["PromotionASHA"]["seconds"]
    worst = core["PASHA"]["latencies"].max()
    print(f"  PASHA / promotion-ASHA scheduler time: {ratio:.2f}x")
    print(f"  worst PASHA report vs a {args.epoch_s:g} s epoch: {worst / args.epoch_s:.2e}")
    tune = bench_pasha_tune(n, max_t, w)
    print(
        f"  tune PASHA (TrialScheduler API)  {tune['decisions']:6d} decisions, {tune['calls']} calls in "
        f"{tune['seconds']:.3f} s = {tune['decisions'] / tune['seconds']:9.0f} decisions/s"
    )
    eps = bench_eps_incremental(n, max_t, w, every=50)
    per_scratch = eps["scratch_eps_s"] / max(eps["eps_checks"], 1)
    per_incr = eps["seconds"] / eps["reports"]
    print(
        f"  eps: from-scratch reference loop {per_scratch * 1e3:.2f} ms per report ({eps['eps_checks']} sampled, "
        f"identical sample) vs whole incremental report {per_incr * 1e6:.0f} us: {per_scratch / per_incr:.0f}x"
    )


if __name__ == "__main__":
    main()
