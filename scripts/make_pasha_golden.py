"""Record syne-tune 0.13.0's PASHA / promotion-ASHA decisions as a golden trace for tests/test_pasha.py.

Needs syne-tune 0.13.0, which is NOT a project dependency (and needs numpy < 1.27). Install it
into a separate throwaway virtualenv and run this script with that interpreter::

    python3 -m venv /tmp/synevenv
    /tmp/synevenv/bin/pip install "syne-tune==0.13.0" "numpy<1.27"
    /tmp/synevenv/bin/python scripts/make_pasha_golden.py            # writes tests/data/pasha_golden.json

It simulates W asynchronous workers on random learning curves (fixed seeds). Whenever a worker
is free it asks syne-tune's ``HyperbandScheduler(type="pasha" | "promotion")`` for a trial
(``suggest``: promote a paused trial or start a new one) and feeds every epoch's result to
``on_trial_result``. It records each suggestion and each report's decision, the current max
resource and eps. After ``num_trials`` new trials, requests for new trials leave the worker
idle (recorded as ``["new", null]``) and idle workers ask again after each report.

Determinism shim: the reference keeps the trials that reached an epoch in a Python ``set`` of
string ids and de-duplicates eps pairs as *ordered* tuples, so a pair whose hash order differs
between two epochs is counted twice and its eps (and, on some streams, its decisions) change
with PYTHONHASHSEED. This script replaces those sets by ones that iterate in trial start order
(``_StartOrderedSet``), so every pair has one orientation and is counted once, as
:mod:`ohgw.pasha.rungs` does. ``--no-shim`` runs the unmodified reference. Nothing else in the
reference is changed.
"""

from __future__ import annotations

import argparse
import heapq
import json
import math
import random
from datetime import datetime
from pathlib import Path

SCENARIOS = [
    # name, max_t, grace, eta, mode, type, workers, trials, noise, decimals, seed
    ("pasha_max_w1", 27, 1, 3, "max", "pasha", 1, 40, 0.03, None, 1),
    ("pasha_max_w3", 27, 1, 3, "max", "pasha", 3, 60, 0.04, None, 2),
    ("pasha_min_w2", 27, 1, 3, "min", "pasha", 2, 50, 0.03, None, 3),
    ("pasha_ties_w2", 27, 1, 3, "max", "pasha", 2, 40, 0.05, 1, 4),
    ("pasha_eta2_w4", 32, 2, 2, "min", "pasha", 4, 60, 0.05, None, 5),
    ("pasha_2rungs_w1", 9, 1, 3, "max", "pasha", 1, 12, 0.03, None, 6),
    ("asha_max_w2", 27, 1, 3, "max", "promotion", 2, 40, 0.03, None, 7),
    ("asha_min_ties_w3", 27, 1, 3, "min", "promotion", 3, 40, 0.05, 1, 8),
]


class _StartOrderedSet(dict):
    """Stand-in for ``set`` (add, len, in) that iterates in trial start order (ids are str(int))."""

    def add(self, item):
        self[item] = None

    def __iter__(self):
        return iter(sorted(super().__iter__(), key=int))


class _OrderedValues(dict):
    def __setitem__(self, key, value):
        super().__setitem__(key, _StartOrderedSet() if isinstance(value, set) else value)


def curve(rng: random.Random, max_t: int, noise: float, decimals, mode: str) -> list[float]:
    quality = rng.random()
    speed = rng.uniform(3.0, 12.0)
    values = []
    for t in range(1, max_t + 1):
        v = quality * (1.0 - math.exp(-t / speed)) + rng.gauss(0.0, noise)
        if mode == "min":
            v = 1.0 - v
        values.append(round(v, decimals) if decimals is not None else v)
    return values


def run_scenario(spec, shim: bool) -> dict:
    from syne_tune.backend.trial_status import Trial
    from syne_tune.config_space import uniform
    from syne_tune.optimizer.schedulers import HyperbandScheduler

    name, max_t, grace, eta, mode, kind, workers, num_trials, noise, decimals, seed = spec
    sched = HyperbandScheduler(
        {"x": uniform(0.0, 1.0)},
        type=kind,
        searcher="random",
        metric="value",
        mode=mode,
        resource_attr="epoch",
        max_t=max_t,
        grace_period=grace,
        reduction_factor=eta,
        random_seed=seed,
    )
    rs = sched.terminator._rung_systems[0]
    if shim and kind == "pasha":
        rs.epoch_to_trials = _OrderedValues()
    rng = random.Random(seed)
    curves: dict[int, list[float]] = {}
    epoch_time: dict[int, float] = {}
    trials: dict[int, Trial] = {}
    events: list[dict] = []
    heap: list[tuple[float, int, int, int]] = []  # (time, seq, trial_id, epoch)
    seq = 0
    next_id = 0
    started = 0
    idle = workers
    now = 0.0

    def state():
        if kind == "pasha":
            return {"current_max_t": int(rs.current_max_t), "eps": float(rs.epsilon)}
        return {}

    def ask():
        nonlocal next_id, started, idle, seq
        tid = next_id
        next_id += 1
        sugg = sched.suggest(tid)
        if sugg.spawn_new_trial_id:
            if started >= num_trials:
                events.append({"op": "suggest", "result": ["new", None]})
                return False
            started += 1
            trials[tid] = Trial(trial_id=tid, config=sugg.config, creation_time=datetime.now())
            sched.on_trial_add(trials[tid])
            curves[tid] = curve(rng, max_t, noise, decimals, mode)
            epoch_time[tid] = rng.uniform(0.5, 1.5)
            events.append({"op": "suggest", "result": ["new", str(tid)]})
            start_epoch = 1
        else:
            rid = sugg.checkpoint_trial_id
            info = rs._running[str(rid)]
            events.append(
                {"op": "suggest", "result": ["resume", str(rid), int(info["resume_from"]), int(info["milestone"])]}
            )
            tid = rid
            start_epoch = int(info["resume_from"]) + 1
        idle -= 1
        heapq.heappush(heap, (now + epoch_time[tid] * rng.uniform(0.8, 1.2), seq, tid, start_epoch))
        seq += 1
        return True

    while idle > 0 and ask():
        pass
    while heap:
        now, _, tid, epoch = heapq.heappop(heap)
        value = curves[tid][epoch - 1]
        decision = sched.on_trial_result(trials[tid], {"value": value, "epoch": epoch})
        events.append(
            {
                "op": "report",
                "trial": str(tid),
                "resource": epoch,
                "value": value,
                "decision": decision.lower(),
                **state(),
            }
        )
        if decision == "CONTINUE":
            heapq.heappush(heap, (now + epoch_time[tid] * rng.uniform(0.8, 1.2), seq, tid, epoch + 1))
            seq += 1
        else:
            idle += 1
        waiting = idle
        for _ in range(waiting):
            if not ask():
                break
    params = dict(max_t=max_t, grace_period=grace, reduction_factor=eta, mode=mode, progressive=kind == "pasha")
    return {"name": name, "params": params, "workers": workers, "events": events}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", default=str(Path(__file__).resolve().parents[1] / "tests" / "data" / "pasha_golden.json")
    )
    parser.add_argument("--no-shim", action="store_true", help="run the reference with its hash-ordered sets")
    parser.add_argument(
        "--check-hash-seeds",
        type=int,
        default=0,
        metavar="N",
        help="also run the unmodified reference under PYTHONHASHSEED=1..N and compare its decisions",
    )
    args = parser.parse_args()
    import syne_tune

    if syne_tune.__version__ != "0.13.0":
        raise SystemExit(f"error: needs syne-tune 0.13.0, found {syne_tune.__version__}")
    scenarios = [run_scenario(spec, shim=not args.no_shim) for spec in SCENARIOS]
    doc = {"generator": "scripts/make_pasha_golden.py", "syne_tune": syne_tune.__version__, "scenarios": scenarios}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(doc, separators=(",", ":")) + "\n")
    for s in scenarios:
        reports = [e for e in s["events"] if e["op"] == "report"]
        resumes = sum(e["op"] == "suggest" and e["result"][0] == "resume" for e in s["events"])
        final = {k: reports[-1][k] for k in ("current_max_t", "eps") if k in reports[-1]}
        print(f"{s['name']}: {len(s['events'])} events, {len(reports)} reports, {resumes} promotions, final {final}")
    if args.check_hash_seeds:
        check_hash_seeds(scenarios, args.check_hash_seeds)


def _decisions(scenario: dict) -> list:
    return [(e["op"], e.get("result"), e.get("decision"), e.get("current_max_t")) for e in scenario["events"]]


def check_hash_seeds(shimmed: list[dict], n: int) -> None:
    """Run the unmodified reference under n hash seeds; print, per scenario, whether its decisions
    depend on the seed and on how many seeds they equal the shimmed (start-ordered) trace."""
    import os
    import subprocess
    import sys
    import tempfile

    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(1, n + 1):
            out = os.path.join(tmp, f"noshim_{seed}.json")
            env = {**os.environ, "PYTHONHASHSEED": str(seed)}
            subprocess.run(
                [sys.executable, __file__, "--no-shim", "--out", out], env=env, check=True, capture_output=True
            )
            with open(out) as f:
                runs.append(json.load(f)["scenarios"])
    for i, s in enumerate(shimmed):
        traces = [_decisions(r[i]) for r in runs]
        varies = any(t != traces[0] for t in traces)
        same = sum(t == _decisions(s) for t in traces)
        print(
            f"  {s['name']}: reference decisions {'VARY' if varies else 'do not vary'} with PYTHONHASHSEED; "
            f"equal to the shimmed trace under {same}/{n} seeds"
        )


if __name__ == "__main__":
    main()
