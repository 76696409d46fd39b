"""PASHA / promotion-type ASHA: golden trace from syne-tune 0.13.0, hand-made curves, mock Tune controller."""

from __future__ import annotations

import json
import random
import warnings
from pathlib import Path

import numpy as np
import pytest

from ohgw.pasha import PASHA, PromotionASHA
from ohgw.pasha.rungs import PashaRungs, _Rung, rung_levels

GOLDEN = Path(__file__).parent / "data" / "pasha_golden.json"


# ---------------------------------------------------------------- golden trace (syne-tune 0.13.0)
def _golden():
    return json.loads(GOLDEN.read_text())["scenarios"]


@pytest.mark.parametrize("scenario", _golden(), ids=lambda s: s["name"])
def test_reproduces_syne_tune_decisions(scenario):
    r = PashaRungs(**scenario["params"])
    for i, e in enumerate(scenario["events"]):
        if e["op"] == "suggest":
            got = r.schedule()
            kind = e["result"][0]
            if kind == "resume":
                assert got == tuple(e["result"][1:]), f"event {i}"
            else:
                assert got is None, f"event {i}: expected a new trial, got promotion {got}"
                if e["result"][1] is not None:
                    r.start(e["result"][1])
        else:
            decision = r.report(e["trial"], e["resource"], e["value"])
            assert decision == e["decision"], f"event {i}"
            if r.progressive:
                assert r.current_max_t == e["current_max_t"], f"event {i}"
                assert r.eps == e["eps"], f"event {i}"  # bit-identical
                if i % 7 == 0:  # the incremental eps sample equals the reference loop's
                    assert r.eps_sample() == r.eps_sample(from_scratch=True), f"event {i}"


def _replay_through_code(scenario):
    """Feed a golden scenario's inputs (reports, "a worker is free") to PashaRungs and keep what the
    code decided: its promotions, every max resource it took, and the final rungs object."""
    r = PashaRungs(**scenario["params"])
    promotions, max_ts = [], [r.current_max_t]
    for e in scenario["events"]:
        if e["op"] == "suggest":
            got = r.schedule()
            if got is not None:
                promotions.append(got)
            elif e["result"][1] is not None:
                r.start(e["result"][1])
        else:
            r.report(e["trial"], e["resource"], e["value"])
            max_ts.append(r.current_max_t)
    return r, promotions, max_ts


def test_golden_scenarios_drive_the_code_through_the_interesting_cases():
    scen = {s["name"]: s for s in _golden()}
    runs = {n: _replay_through_code(s) for n, s in scen.items()}
    for name, (r, promotions, max_ts) in runs.items():
        events = scen[name]["events"]
        final = [e for e in events if e["op"] == "report"][-1]
        # what the code ends with is what syne-tune ended with
        assert len(promotions) == sum(e["op"] == "suggest" and e["result"][0] == "resume" for e in events), name
        assert sum(e[2] for entries in r.rungs.values() for e in entries) == len(promotions), name
        if r.progressive:
            assert (r.current_max_t, r.eps) == (final["current_max_t"], final["eps"]), name
        else:  # promotion-type ASHA: fixed max resource, promotions out of every rung
            assert set(max_ts) == {r.max_t} and {p[1] for p in promotions} == set(r.levels), name
    # the code grew PASHA's max resource through every rung to max_t, and only as far as 9 in min mode
    assert sorted(set(runs["pasha_max_w1"][2])) == [3, 9, 27]
    assert runs["pasha_max_w3"][0].current_max_t == 27
    assert sorted(set(runs["pasha_min_w2"][2])) == [3, 9]
    assert sorted(set(runs["pasha_eta2_w4"][2]))[0] == 4 and runs["pasha_eta2_w4"][0].current_max_t > 4
    # the reference's two-rung quirk: max resource stays at the first level, nothing is promoted
    r, promotions, max_ts = runs["pasha_2rungs_w1"]
    assert set(max_ts) == {1} and promotions == []
    # criss-crossing curves gave the code a positive eps; promotions out of higher rungs happened
    assert all(runs[n][0].eps > 0 for n in ("pasha_max_w1", "pasha_min_w2", "pasha_eta2_w4"))
    assert any(p[1] > r.levels[0] for n in ("pasha_max_w1", "pasha_max_w3") for p in runs[n][1])
    assert sum(len(p) for _, p, _ in runs.values()) > 250
    # the ties scenario did put equal values side by side into the code's lowest rung
    ties = runs["pasha_ties_w2"][0].rungs[1]
    assert any(a[1] == b[1] for a, b in zip(ties, ties[1:]))


# ---------------------------------------------------------------- rung levels, initial max resource, bad input
def test_rung_levels_and_initial_max_resource():
    assert rung_levels(27, 1, 3) == [1, 3, 9]
    assert rung_levels(81, 1, 3) == [1, 3, 9, 27]
    assert rung_levels(32, 2, 2) == [2, 4, 8, 16]
    assert PashaRungs(27, 1, 3, "max").current_max_t == 3
    assert PashaRungs(100, 1, 4, "min").current_max_t == 4
    assert PashaRungs(32, 2, 2, "min").current_max_t == 4
    assert PashaRungs(27, 1, 3, "max", progressive=False).current_max_t == 27
    # the reference starts at the FIRST level when there are only two
    assert PashaRungs(9, 1, 3, "max").current_max_t == 1
    with pytest.warns(UserWarning, match="never promotes"):
        PASHA(metric="m", mode="max", max_t=9)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(max_t=3, grace_period=5), "max_t must be greater than grace_period"),
        (dict(max_t=5, grace_period=5), "max_t must be greater than grace_period"),
        (dict(max_t=27, reduction_factor=1), "reduction_factor must be a number > 1"),
        (dict(max_t=27, reduction_factor=0.5), "reduction_factor must be a number > 1"),
        (dict(max_t=27, mode="maximize"), "mode must be 'min' or 'max'"),
        (dict(max_t=27, grace_period=0), "grace_period must be a positive integer"),
        (dict(max_t=2.5), "max_t must be a positive integer"),
        (dict(max_t=3, reduction_factor=3), "at least two rung levels"),
        (dict(max_t=27, max_concurrent=0), "max_concurrent must be a positive integer"),
    ],
)
def test_bad_arguments_raise_value_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PASHA(metric="m", **{"mode": "max", **kwargs})


def test_single_rung_is_fine_for_promotion_asha():
    s = PromotionASHA(metric="m", mode="max", max_t=3, reduction_factor=3)
    assert s.rung_levels == [1] and s.current_max_t == 3


# ---------------------------------------------------------------- hand-made curves
def _run(r: PashaRungs, trial: str, values: dict[int, float]) -> str:
    """Report the given epochs in order; return the last decision."""
    out = ""
    for epoch in sorted(values):
        out = r.report(trial, epoch, values[epoch])
    return out


def test_consistent_ranking_keeps_max_resource_and_eps_from_criss_crossing_pairs():
    r = PashaRungs(27, 1, 3, "max")
    r.start("a")
    assert _run(r, "a", {1: 0.5}) == "pause"
    assert r.schedule() is None  # one entry: no cut yet
    r.start("b")
    assert _run(r, "b", {1: 0.45}) == "pause"
    # cut of [0.5, 0.45] at 1 - 1/3: 0.5 - (0.05 / 3) = 0.4833: a is promoted 1 -> 3
    assert r.schedule() == ("a", 1, 3)
    assert _run(r, "a", {2: 0.4, 3: 0.6}) == "pause"  # 3 is the current max resource: a waits there
    assert r.schedule() is None  # b (0.45) is below the cut; rung 3 is not below the max resource
    r.start("c")
    assert _run(r, "c", {1: 0.1}) == "pause"
    assert r.schedule() is None  # cut 0.4667 > 0.45
    r.start("d")
    assert _run(r, "d", {1: 0.05}) == "pause"
    assert r.schedule() == ("b", 1, 3)  # cut is exactly 0.45: at least as good promotes
    assert _run(r, "b", {2: 0.45}) == "continue"
    assert r.eps == 0.0  # (a, b) at epoch 2: reversed at 1, never back: no criss-cross
    assert _run(r, "b", {3: 0.5}) == "pause"
    # (a, b) at epoch 3: a > b; epoch 2 a < b (reversed); epoch 1 a > b (same again) -> |0.6 - 0.5|
    assert r.eps == pytest.approx(0.1)
    assert r.current_max_t == 3  # top rung a > b, rung below a > b: consistent
    r.start("e")
    _run(r, "e", {1: 0.02})
    assert r.schedule() is None
    r.start("g")
    _run(r, "g", {1: 0.48})
    assert r.schedule() == ("g", 1, 3)
    _run(r, "g", {2: 0.5, 3: 0.55})
    # new pair (a, g): 3: a > g, 2: a < g, 1: a > g -> 0.05; (b, g) never reverses
    assert r.eps_sample() == pytest.approx([0.05, 0.1])
    assert r.eps == pytest.approx(float(np.percentile([0.1, 0.05], 90)))  # 0.095
    assert r.current_max_t == 3
    # h flips below b and g at rung 3, but within eps of them at rung 1: soft ranking keeps the budget
    r.start("h")
    _run(r, "h", {1: 0.49})
    assert r.schedule() == ("h", 1, 3)
    _run(r, "h", {2: 0.3, 3: 0.3})
    assert [t for t, _, _ in r.rungs[3]] == ["a", "g", "b", "h"]
    assert r.current_max_t == 3


@pytest.mark.parametrize("mode", ["max", "min"])
def test_inconsistent_ranking_grows_max_resource_then_promotes_from_old_top(mode):
    def v(x):  # the same curves, as accuracies (max) or as errors 1 - acc (min)
        return x if mode == "max" else 1 - x

    r = PashaRungs(27, 1, 3, mode)
    for t, x in (("a", 0.5), ("b", 0.45)):
        r.start(t)
        _run(r, t, {1: v(x)})
    assert r.schedule() == ("a", 1, 3)
    _run(r, "a", {2: v(0.4), 3: v(0.3)})
    for t, x in (("c", 0.1), ("d", 0.05)):
        assert r.schedule() is None
        r.start(t)
        _run(r, t, {1: v(x)})
    assert r.schedule() == ("b", 1, 3)  # the cut is exactly b's value
    _run(r, "b", {2: v(0.45)})
    assert r.current_max_t == 3
    assert _run(r, "b", {3: v(0.5)}) == "pause"
    # rung 3: b better than a; rung 1 (same trials): a better than b; eps 0 -> inconsistent -> grow
    assert r.eps == 0.0
    assert r.current_max_t == 9
    # rung 3 is now below the max resource; b beats its cut and is promoted to 9
    assert r.schedule() == ("b", 3, 9)
    assert _run(r, "b", {e: v(0.5 + e / 100) for e in range(4, 9)}) == "continue"
    assert r.current_max_t == 9  # never shrinks, stays while consistent


def test_growth_after_last_rung_goes_to_max_t():
    r = PashaRungs(9, 1, 2, "min")  # levels 1, 2, 4, 8; starts at 2
    assert r.levels == [1, 2, 4, 8] and r.current_max_t == 2
    seen = {r.current_max_t}
    rng = random.Random(0)
    n = 0
    while n < 60:
        p = r.schedule()
        if p is None:
            tid = f"t{n}"
            n += 1
            r.start(tid)
            epochs = range(1, 2)
        else:
            tid, epochs = p[0], range(p[1] + 1, p[2] + 1)
        for e in epochs:
            if r.report(tid, e, rng.random()) != "continue":
                break
        seen.add(r.current_max_t)
    assert seen == {2, 4, 8, 9}


def test_promotion_order_ties_and_highest_rung_first():
    r = PashaRungs(27, 1, 3, "max", progressive=False)
    for t in ("a", "b", "c"):
        r.start(t)
        assert _run(r, t, {1: 0.5}) == "pause"
    assert [e[0] for e in r.rungs[1]] == ["a", "b", "c"]  # ties keep insertion order
    assert r.schedule() == ("a", 1, 3)
    assert r.rungs[1] == [("b", 0.5, False), ("c", 0.5, False), ("a", 0.5, True)]  # behind equal values
    assert _run(r, "a", {2: 0.6, 3: 0.7}) == "pause"
    r.start("d")
    _run(r, "d", {1: 0.1})
    r.start("e")
    _run(r, "e", {1: 0.2})
    # rung 3 has one entry (no cut); rung 1: best unpromoted b = 0.5 >= cut -> b
    assert r.schedule() == ("b", 1, 3)
    assert _run(r, "b", {2: 0.6, 3: 0.8}) == "pause"
    # rung 3 [b 0.8, a 0.7] has a cut (0.7667) that b beats: the highest rung goes first
    assert r.schedule() == ("b", 3, 9)
    assert r.promotable() == ("c", 1, 3)  # c (0.5) still beats rung 1's cut
    assert _run(r, "b", {e: 0.9 for e in range(4, 10)}) == "pause"
    assert r.schedule() == ("c", 1, 3)  # rung 9 has one entry (no cut): back to rung 1
    assert r.rungs[9] == [("b", 0.9, False)] and not r.is_running("b")


@pytest.mark.parametrize("mode", ["min", "max"])
def test_rung_cut_is_numpy_linear_quantile(mode):
    rng = np.random.default_rng(1)
    for n in range(2, 30):
        values = rng.random(n)
        q = 1 / 3
        rung = _Rung(1, q, mode)
        for v in values:
            rung.add("x", float(v))
        expected = np.quantile(values, q if mode == "min" else 1 - q)
        assert rung.quantile() == pytest.approx(expected, abs=1e-15)


def test_report_rejects_skipped_milestone_and_unknown_trial():
    r = PashaRungs(27, 1, 3, "max")
    r.start("a")
    with pytest.raises(ValueError, match="beyond its milestone"):
        r.report("a", 2, 0.1)
    with pytest.raises(ValueError, match="is not running"):
        r.report("zz", 1, 0.1)
    with pytest.raises(ValueError, match="finite"):
        r.report("a", 1, float("nan"))


def test_report_at_max_t_stops_and_is_not_recorded():
    r = PashaRungs(3, 1, 3, "max", progressive=False)  # one rung (1); max_t 3
    r.start("a")
    _run(r, "a", {1: 0.5})
    r.start("b")
    _run(r, "b", {1: 0.4})
    assert r.schedule() == ("a", 1, 3)
    assert r.report("a", 2, 0.6) == "continue"
    before = r.rungs
    assert r.report("a", 3, 0.9) == "stop"
    assert r.rungs == before and not r.is_running("a")


def test_core_state_round_trip_continues_identically():
    rng = random.Random(5)
    curves = {f"t{i}": [rng.random() for _ in range(27)] for i in range(120)}

    def drive(r, steps, queue, log):
        for _ in range(steps):
            p = r.schedule()
            if p is None:
                tid = queue.pop(0)
                r.start(tid)
                lo, hi = 1, 27
            else:
                tid, lo, hi = p[0], p[1] + 1, p[2]
            log.append(p)
            for e in range(lo, hi + 1):
                d = r.report(tid, e, curves[tid][e - 1])
                log.append((d, r.current_max_t, r.eps))
                if d != "continue":
                    break

    a, qa, la = PashaRungs(27, 1, 3, "max"), list(curves), []
    drive(a, 30, qa, la)
    b = PashaRungs(27, 1, 3, "max")
    b.set_state(json.loads(json.dumps(a.get_state())))  # plain data: survives JSON
    qb, lb = list(qa), list(la)
    drive(a, 25, qa, la)
    drive(b, 25, qb, lb)
    assert la == lb and a.get_state() == b.get_state()
    with pytest.raises(ValueError, match="does not match"):
        PashaRungs(27, 1, 3, "min").set_state(a.get_state())


# ---------------------------------------------------------------- Tune scheduler with a mock controller
class _Trial:
    def __init__(self, trial_id):
        self.trial_id = trial_id
        self.status = "PENDING"

    def set_status(self, status):
        self.status = status


class _Search:
    def __init__(self):
        self.finished = False

    def is_finished(self):
        return self.finished


class _Controller:
    def __init__(self, scheduler):
        self.scheduler = scheduler
        self.trials: list[_Trial] = []
        self.search_alg = _Search()
        self.stopped: list[str] = []

    def get_trials(self):
        return list(self.trials)

    def add(self, tid):
        t = _Trial(tid)
        self.trials.append(t)
        self.scheduler.on_trial_add(self, t)
        return t

    def _set_trial_status(self, trial, status):
        trial.status = status

    def stop_trial(self, trial):
        self.scheduler.on_trial_remove(self, trial)
        trial.status = "TERMINATED"
        self.stopped.append(trial.trial_id)

    def step(self):
        """What TuneController does with choose_trial_to_run's answer."""
        t = self.scheduler.choose_trial_to_run(self)
        if t is not None and t.status == "PAUSED":
            t.status = "PENDING"
        return t

    def start_pending(self):
        for t in self.trials:
            if t.status == "PENDING":
                t.status = "RUNNING"

    def result(self, trial, epoch, value):
        d = self.scheduler.on_trial_result(self, trial, {"training_iteration": epoch, "acc": value})
        if d in ("PAUSE", "STOP"):
            trial.status = "PAUSED" if d == "PAUSE" else "TERMINATED"
        return d


def test_tune_scheduler_holds_new_trials_and_hands_out_free_workers_idempotently():
    s = PASHA(metric="acc", mode="max", max_t=27, max_concurrent=2)
    c = _Controller(s)
    a, b, x = c.add("a"), c.add("b"), c.add("x")
    assert [t.status for t in c.trials] == ["PAUSED"] * 3  # held: Tune must not start them itself
    assert c.step() is a and a.status == "PENDING"
    assert c.step() is b  # second free worker
    assert c.step() is None and x.status == "PAUSED"  # both workers taken: nothing changes
    assert c.step() is None
    c.start_pending()
    assert c.result(a, 1, 0.5) == "PAUSE"  # a's worker goes to x right away (no promotion: 1 entry)
    assert s.decisions[-1] == ("new", "x") and x.status == "PAUSED"
    assert c.step() is x and c.step() is None  # idempotent: x is PENDING now, workers all held
    c.start_pending()
    # b enters rung 1 above a: b is promoted straight away, so Tune is told CONTINUE
    assert c.result(b, 1, 0.7) == "CONTINUE"
    assert s.decisions[-2:] == [("report", "b", 1, "PAUSE", 3), ("promote", "b", 1, 3)]
    assert c.result(b, 2, 0.7) == "CONTINUE"
    assert c.result(b, 3, 0.8) == "PAUSE"  # rung 3 = current max resource
    assert c.result(x, 1, 0.1) == "PAUSE"
    assert c.step() is None and c.stopped == []  # search not finished: wait for more trials
    c.search_alg.finished = True
    assert c.step() is None
    assert sorted(c.stopped) == ["a", "b", "x"]  # nothing can run any more: the paused trials end
    assert s.current_max_t == 3 and s.rungs[3] == [("b", 0.8, False)]


def test_tune_scheduler_state_round_trip_after_restore():
    s = PASHA(metric="acc", mode="max", max_t=27, max_concurrent=1)
    c = _Controller(s)
    trials = [c.add(f"t{i}") for i in range(4)]
    c.step()
    c.start_pending()
    c.result(trials[0], 1, 0.3)  # pauses; t1 gets the worker
    state = json.loads(json.dumps(s.get_state()))
    # a fresh scheduler after Tuner.restore: Tune re-adds every unfinished trial as PENDING
    s2 = PASHA(metric="acc", mode="max", max_t=27, max_concurrent=1)
    s2.set_state(state)
    c2 = _Controller(s2)
    again = [c2.add(f"t{i}") for i in range(4)]
    assert [t.status for t in again] == ["PAUSED"] * 4
    assert c2.step() is again[1]  # t1 held the worker: it runs first
    assert c2.step() is None
    assert s2.decisions == s.decisions and s2.rungs == s.rungs
    # as Ray's own restore: the snapshot's configuration wins over the target's (issue 10 §6)
    s3 = PASHA(metric="acc", mode="max", max_t=81)
    s3.set_state(state)
    assert s3.get_state() == s2.get_state() and s3.rung_levels == s.rung_levels


def test_tune_scheduler_needs_metric_mode_and_keys():
    s = PASHA(max_t=27)
    assert s.set_search_properties("acc", "max") is True
    assert s.set_search_properties("acc", "max") is False  # already set
    c = _Controller(s)
    t = c.add("a")
    c.step()
    with pytest.raises(ValueError, match="lacks 'acc'"):
        s.on_trial_result(c, t, {"training_iteration": 1})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match="needs metric and mode"):
            PASHA(max_t=27).on_trial_add(c, _Trial("z"))


def test_tune_scheduler_gives_a_retried_trial_its_worker_back_first():
    s = PASHA(metric="acc", mode="max", max_t=27, max_concurrent=1)
    c = _Controller(s)
    a, b = c.add("a"), c.add("b")
    assert c.step() is a
    c.start_pending()
    # Tune's retry after a failure: on_trial_error, status PENDING, on_trial_add again
    s.on_trial_error(c, a)
    a.status = "PENDING"
    s.on_trial_add(c, a)
    assert a.status == "PAUSED" and b.status == "PAUSED"
    assert c.step() is a  # a still holds the only worker: b waits
    assert c.step() is None
    c.start_pending()
    assert c.result(a, 1, 0.5) == "PAUSE"
    assert s.decisions[-1] == ("new", "b")
    # a late report from a trial this scheduler paused is not counted
    before = s.rungs
    assert s.on_trial_result(c, a, {"training_iteration": 2, "acc": 0.9}) == "PAUSE"
    assert s.rungs == before
