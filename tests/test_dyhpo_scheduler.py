"""DyHPO driven through its hooks with stub trials, as Ray's own scheduler tests do: bad input, the pool,
idempotent choose_trial_to_run, 4+ concurrent trials with slow checkpoint saves, x′, mode, exact state."""

from __future__ import annotations

import math
import pickle

import pytest
from ray.tune.experiment import Trial
from ray.tune.schedulers import TrialScheduler

from ohgw import protocol
from ohgw.dyhpo import DyHPO
from ohgw.space import SearchSpace
from ohgw.testing.replay import Replay, stub_trial

SPACE = SearchSpace.from_bounds({"x": (0.0, 1.0, "identity")})
FAST = {"fit_steps": 15, "refit_steps": 3, "refit_every": 4}  # decisions stay cheap in tests


def xs(i: int) -> float:
    return (i * 0.6180339887) % 1.0


def curve(i: int, epoch: int) -> float:
    """Deterministic curves: the asymptote peaks at x = 0.7; criss-crossing early epochs."""
    x = xs(i)
    top = 0.95 - (x - 0.7) ** 2
    return top * (1 - math.exp(-epoch / (1 + 2 * x))) + 0.03 * math.sin(5 * x * epoch)


def configs(i: int) -> dict:
    return {"x": xs(i), protocol.SEED_KEY: i}


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"pool_size": 0}, "pool_size"),
        ({"increment": 0}, "increment"),
        ({"kernel": "cosine"}, "kernel"),
        ({"max_t": 2, "increment": 3}, "max_t"),
        ({"mode": "avg"}, "mode"),
        ({"refit_every": 0}, "refit_every"),
        ({"max_concurrent": 0}, "max_concurrent"),
        ({"max_observations": 1}, "max_observations"),
        ({"space": 3}, "space"),
    ],
)
def test_bad_input_is_a_value_error_naming_the_argument(kwargs, name):
    with pytest.raises(ValueError, match=name):
        DyHPO(**{"metric": "acc", **kwargs})


def test_mode_through_search_properties_is_checked_and_metric_is_needed():
    s = DyHPO(max_t=4)
    with pytest.raises(ValueError, match="mode"):
        s.set_search_properties("acc", "average")
    with pytest.raises(ValueError, match="metric and mode"):
        s.on_trial_add(None, stub_trial(0))
    assert s.set_search_properties("acc", "max") and not s.set_search_properties("acc", "min")


class Controller:
    """The tune_controller surface for hand-driven steps."""

    def __init__(self, scheduler, trials):
        self.scheduler, self.trials = scheduler, trials
        self.search_alg = self

    def is_finished(self):
        return True

    def get_trials(self):
        return list(self.trials)

    def _set_trial_status(self, trial, status):
        trial.set_status(status)

    def stop_trial(self, trial):
        self.scheduler.on_trial_remove(self, trial)
        trial.set_status(Trial.TERMINATED)


def test_choose_trial_to_run_is_idempotent_and_decides_only_for_free_workers():
    s = DyHPO(metric="acc", mode="max", max_t=4, max_concurrent=2, pool_size=3, space=SPACE, **FAST)
    trials = [stub_trial(i, configs(i)) for i in range(6)]
    c = Controller(s, trials)
    for t in trials:
        s.on_trial_add(c, t)
    assert [t.status for t in trials] == [Trial.PAUSED] * 6  # every new trial is held
    assert s.pool() == [t.trial_id for t in trials[:3]]
    first = s.choose_trial_to_run(c)
    assert s.choose_trial_to_run(c) is first and s.choose_trial_to_run(c) is first  # not started yet: same answer
    first.set_status(Trial.RUNNING)
    second = s.choose_trial_to_run(c)
    assert second is not first and s.choose_trial_to_run(c) is second
    second.set_status(Trial.RUNNING)
    assert s.choose_trial_to_run(c) is None  # both workers taken: no decision
    assert [d[0] for d in s.decisions] == ["new", "new"]
    assert s.pool() == [t.trial_id for t in trials[2:5]]  # refilled from the queue
    # a report at the milestone frees the worker; the next pick holds it
    decision = s.on_trial_result(c, first, {"training_iteration": 1, "acc": curve(0, 1)})
    assert decision == TrialScheduler.PAUSE and s.decisions[-1][0] == "new"  # a pool trial took the worker
    assert s.choose_trial_to_run(c) is not None


def run_replay(n_trials=10, max_t=5, workers=4, save_ticks=3, seed=0, steps=None, **kw):
    s = DyHPO(metric="acc", mode="max", max_t=max_t, max_concurrent=workers, space=SPACE, seed=seed,
              **{**FAST, "pool_size": 4, **kw})
    r = Replay(s, n_trials=n_trials, max_t=max_t, metric_fn=curve, workers=workers, save_ticks=save_ticks,
               configs=configs)
    return s, r, r.run(max_steps=steps)


def test_four_workers_with_slow_saves_finish_every_trial_and_never_oversubscribe():
    s, r, log = run_replay(n_trials=10, max_t=5, workers=4, save_ticks=3)
    assert r.stuck == [] and r.iterations == [5] * 10  # DyHPO advances every trial to max_t in the end
    holding = {}
    for d in s.decisions:  # replay the holding set from the decision log
        if d[0] in ("new", "advance"):
            holding[d[1]] = d[-1]
            assert len(holding) <= 4
        elif d[0] == "report" and d[3] in (TrialScheduler.PAUSE, TrialScheduler.STOP):
            holding.pop(d[1], None)
    # every trial reported each epoch exactly once, in order
    by_trial = {}
    for i, it, _ in log:
        by_trial.setdefault(i, []).append(it)
    assert all(seq == list(range(1, 6)) for seq in by_trial.values())
    assert s.overhead["fits"] >= 3 and s.overhead["decisions"] >= 40


def test_picked_while_saving_is_resumed_exactly_once():
    picked_saving = []

    class Watch(DyHPO):
        def _assign_free_worker(self):
            trial = super()._assign_free_worker()
            if trial is not None and trial.is_saving:
                picked_saving.append(trial.trial_id)
            return trial

    def dominant(i, t):  # trial 0 is far ahead: once paused (and saving), it is the one to advance
        return (0.9 if i == 0 else 0.2 + 0.01 * i) * (1 - math.exp(-t))

    s = Watch(metric="acc", mode="max", max_t=6, max_concurrent=4, pool_size=1, space=SPACE, **FAST)
    r = Replay(s, n_trials=6, max_t=6, metric_fn=dominant, workers=4, save_ticks=4, configs=configs)
    log = r.run()
    assert "t00000" in picked_saving, "trial 0 was not picked inside its checkpoint-save window"
    assert r.stuck == [] and r.iterations == [6] * 6
    assert sorted((i, it) for i, it, _ in log) == sorted({(i, it) for i, it, _ in log})  # no epoch twice


def test_the_pool_limits_new_candidates_to_the_oldest_held_trials():
    seen = []

    class Watch(DyHPO):
        def _assign_free_worker(self):
            pool = self.pool()
            trial = super()._assign_free_worker()
            if trial is not None and self.decisions[-1][0] == "new":
                seen.append((trial.trial_id, pool))
            return trial

    s = Watch(metric="acc", mode="max", max_t=3, max_concurrent=1, pool_size=2, space=SPACE, **FAST)
    Replay(s, n_trials=7, max_t=3, metric_fn=curve, configs=configs).run()
    assert len(seen) == 7 and all(tid in pool and len(pool) <= 2 for tid, pool in seen)


def test_surrogate_sees_x_prime_reported_by_the_trainable():
    xp = {0: 0.9, 1: 0.05}

    def extra(i, t):
        if t != 1 or i not in xp:
            return {}
        return protocol.warm_start_result({"x": {"x": xs(i)}, "x_prime": {"x": xp[i]}, "g": {"x": 1.0}})

    s = DyHPO(metric="acc", mode="max", max_t=2, max_concurrent=2, space=SPACE, **FAST)
    r = Replay(s, n_trials=4, max_t=2, metric_fn=curve, workers=2, configs=configs, extra_result=extra)
    r.run()
    got = s.configs()
    assert got["t00000"]["x"] == 0.9 and got["t00001"]["x"] == 0.05  # x′, not the sampled x
    assert got["t00002"]["x"] == pytest.approx(xs(2))


def test_min_mode_on_negated_curves_decides_exactly_as_max_mode():
    runs = []
    for mode, sign in (("max", 1.0), ("min", -1.0)):
        s = DyHPO(metric="m", mode=mode, max_t=4, max_concurrent=2, pool_size=3, space=SPACE, **FAST)
        r = Replay(s, n_trials=6, max_t=4, metric_fn=lambda i, t, k=sign: k * curve(i, t), metric="m", workers=2,
                   configs=configs)
        runs.append((r.run(), s))
    assert runs[0][0] == runs[1][0] and runs[0][1].decisions == runs[1][1].decisions
    assert runs[1][1].curves["t00000"][0] == pytest.approx(-curve(0, 1))  # reported in the metric's own sign


def test_inferred_encoding_without_a_space():
    s = DyHPO(metric="acc", mode="max", max_t=3, max_concurrent=2, **FAST)
    r = Replay(s, n_trials=5, max_t=3, metric_fn=curve, workers=2, configs=lambda i: {**configs(i), "k": 7})
    r.run()
    assert r.stuck == [] and s._encoder.keys == ["k", "x"]  # the seed is bookkeeping, not a hyper-parameter


def test_state_restore_gives_the_same_remaining_decisions():
    full, _, full_log = run_replay(n_trials=8, max_t=5, workers=3, save_ticks=2)
    s, r, _ = run_replay(n_trials=8, max_t=5, workers=3, save_ticks=2, steps=9)
    state = pickle.loads(pickle.dumps(s.get_state()))
    fresh = DyHPO(metric="acc", mode="max", max_t=5, max_concurrent=3, pool_size=4, space=SPACE, **FAST)
    fresh.set_state(state)
    for t in r.get_trials():  # Tune re-adds every trial on restore
        fresh.on_trial_add(r, t)
    r.scheduler = fresh
    r.run()
    assert r.log == full_log
    assert fresh.decisions == full.decisions
    assert fresh.get_state()["surrogate"]["net"].keys() == full.get_state()["surrogate"]["net"].keys()
    with pytest.raises(ValueError, match="pool_size"):
        DyHPO(metric="acc", mode="max", max_t=5, pool_size=5, **FAST).set_state(state)


def test_training_set_cap_keeps_every_trials_latest_score():
    s, r, _ = run_replay(n_trials=6, max_t=4, workers=2, save_ticks=0, max_observations=8)
    assert r.stuck == [] and s.n_observations() == 24
    late = [f for f in s.fits if f.n == 8]
    assert late, "no fit ran on the capped training set"
    assert all(f.n <= 8 for f in s.fits)
    order = list(s._started)
    train = s._training_set(dict(zip(order, s._encoder.encode([s._raw[t] for t in order]))))
    assert len(train) == 8
    # each trial's latest score (epoch 4, budget 1.0) is in the set
    assert int((train.budget == 1.0).sum()) == 6
