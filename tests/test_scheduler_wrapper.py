"""OHGW scheduler wrapper: injection, delegation equivalence, x′ recording, pickling, state restore.

All tests drive schedulers through their hooks with stub trials (ohgw.testing.replay), no Ray runtime.
"""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest
import ray.cloudpickle as cloudpickle
from ray.tune.experiment import Trial
from ray.tune.schedulers import (
    ASHAScheduler,
    FIFOScheduler,
    HyperBandScheduler,
    MedianStoppingRule,
    TrialScheduler,
)

from ohgw.protocol import GRADIENT_KEY, ORIGINAL_KEY
from ohgw.protocol import INSTRUCTION_KEY as CONFIG_KEY
from ohgw.space import SearchSpace
from ohgw.testing.replay import Replay, stub_trial
from ohgw.tune.state import reload, snapshot
from ohgw.tune.wrapper import OHGW, warm_start_seed
from ohgw.warmstart import WarmStartSettings, instruction, make_instruction

SPACE = SearchSpace.from_bounds({"lr": (1e-3, 1.0, "log10"), "wd": (1e-6, 1e-2, "log10")})
MAX_T = 27


def metric_fn(i: int, t: int) -> float:
    """Deterministic learning curves with crossings: trial i's quality plus noise that depends on (i, t)."""
    rng = np.random.default_rng(1000 * i + t)
    quality = ((i * 7919) % 97) / 97
    return quality * (1 - math.exp(-t / 5)) + 0.05 * rng.standard_normal()


def configs(i: int) -> dict:
    return {"lr": 10 ** (-3 + 3 * ((i * 37) % 100) / 100), "wd": 1e-4, "batch_size": 128}


def make(kind: str) -> TrialScheduler:
    if kind == "asha":
        return ASHAScheduler(metric="acc", mode="max", max_t=MAX_T, grace_period=1, reduction_factor=3)
    if kind == "asha3":
        return ASHAScheduler(metric="acc", mode="max", max_t=MAX_T, grace_period=1, reduction_factor=3, brackets=3)
    if kind == "hyperband":
        return HyperBandScheduler(metric="acc", mode="max", max_t=MAX_T, reduction_factor=3)
    if kind == "median":
        return MedianStoppingRule(
            time_attr="training_iteration", metric="acc", mode="max", grace_period=2, min_samples_required=2
        )
    if kind == "fifo":
        return FIFOScheduler()
    if kind == "pasha":
        from ohgw.pasha import PASHA

        return PASHA(metric="acc", mode="max", max_t=MAX_T, grace_period=1, reduction_factor=3, max_concurrent=1)
    raise AssertionError(kind)


def replay(sched: TrialScheduler, n: int = 40) -> Replay:
    return Replay(sched, n_trials=n, max_t=MAX_T, metric_fn=metric_fn, configs=configs)


# ---- bad input ------------------------------------------------------------------------
def test_rejects_what_is_not_a_trial_scheduler():
    with pytest.raises(ValueError, match="scheduler must be a ray.tune TrialScheduler"):
        OHGW("asha", SPACE)
    with pytest.raises(ValueError, match="scheduler is already wrapped"):
        OHGW(OHGW(FIFOScheduler(), SPACE), SPACE)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"space": {"lr": (1e-3, 1.0, "log10")}}, "space must be an ohgw.SearchSpace"),
        ({"mode": "hyper"}, "mode must be one of"),
        ({"step_rule": "sign"}, "step_rule must be one of"),
        ({"eta_h": -1.0}, "eta_h must be > 0"),
        ({"hyper_steps": 0}, "hyper_steps must be"),
        ({"seed": -3}, "seed must be an integer >= 0"),
    ],
)
def test_bad_arguments_name_the_argument(kwargs, match):
    args = {"space": SPACE, **kwargs}
    with pytest.raises(ValueError, match=match):
        OHGW(FIFOScheduler(), **args)


def test_settings_object_and_keyword_overrides():
    settings = WarmStartSettings(mode="random", eta_h=0.1, step_rule="raw", seed=4)
    by_settings = OHGW(FIFOScheduler(), SPACE, settings)
    by_keywords = OHGW(FIFOScheduler(), SPACE, mode="random", eta_h=0.1, step_rule="raw", seed=4)
    assert by_settings.settings == by_keywords.settings == settings
    assert OHGW(FIFOScheduler(), SPACE).settings == WarmStartSettings()
    # keywords override the settings object, field by field
    mixed = OHGW(FIFOScheduler(), SPACE, settings, seed=9, lookahead=2)
    assert mixed.settings == WarmStartSettings(mode="random", eta_h=0.1, step_rule="raw", seed=9, lookahead=2)
    assert settings.seed == 4  # the caller's object is not changed
    a, b = stub_trial(0, configs(0)), stub_trial(0, configs(0))
    by_settings.on_trial_add(None, a)
    by_keywords.on_trial_add(None, b)
    assert a.config == b.config


def test_rejects_bad_settings_and_unknown_keywords():
    with pytest.raises(ValueError, match="settings must be an ohgw.WarmStartSettings, got dict"):
        OHGW(FIFOScheduler(), SPACE, {"mode": "random"})
    with pytest.raises(ValueError, match=r"unknown keyword arguments \['etah'\]"):
        OHGW(FIFOScheduler(), SPACE, WarmStartSettings(), etah=0.1)
    with pytest.raises(ValueError, match="seed must be an integer >= 0"):
        OHGW(FIFOScheduler(), SPACE, WarmStartSettings(), seed=True)


def test_config_without_the_continuous_parameters_is_rejected_at_trial_creation():
    sched = OHGW(FIFOScheduler(), SPACE)
    with pytest.raises(ValueError, match=r"space: trial .* lacks the continuous hyper-parameters \['wd'\]"):
        sched.on_trial_add(None, stub_trial(0, {"lr": 0.1}))


# ---- injection ----------------------------------------------------------------------------
def test_injects_the_instruction_with_a_per_trial_seed_and_is_idempotent():
    sched = OHGW(FIFOScheduler(), SPACE, mode="hypergrad", step_rule="normalized", eta_h=0.1, lookahead=2, seed=7)
    trials = [stub_trial(i, configs(i)) for i in range(3)]
    for t in trials:
        sched.on_trial_add(None, t)
    for i, t in enumerate(trials):
        spec = t.config[CONFIG_KEY]
        expected = WarmStartSettings("hypergrad", 0.1, "normalized", 1, 2, 128, warm_start_seed(7, i))
        assert spec == {**make_instruction(SPACE, expected), "trial_index": i}
        settings, space = instruction(t.config)
        assert settings == expected and space.names == ("lr", "wd")
        assert t.config["lr"] == configs(i)["lr"]  # x itself is untouched at creation
    seeds = [t.config[CONFIG_KEY]["seed"] for t in trials]
    assert len(set(seeds)) == 3
    assert seeds == [warm_start_seed(7, i) for i in range(3)]
    assert warm_start_seed(8, 0) != warm_start_seed(7, 0)
    # a retry (on_trial_error, then on_trial_add again) or a restore: the config is not touched again
    before = pickle.dumps(trials[1].config)
    sched.on_trial_error(None, trials[1])
    sched.on_trial_add(None, trials[1])
    assert pickle.dumps(trials[1].config) == before
    assert sched.get_state()["n_added"] == 3


# ---- delegation -------------------------------------------------------------------------------
def test_delegates_search_properties_metric_buffering_and_debug_string():
    inner = HyperBandScheduler(max_t=9)
    sched = OHGW(inner, SPACE)
    assert sched.metric is None
    assert sched.set_search_properties("val_acc", "max") is True
    assert sched.metric == "val_acc" == inner.metric
    assert sched.set_search_properties("other", "min") is False  # the inner scheduler's answer
    assert sched.supports_buffered_results is False
    assert OHGW(ASHAScheduler(), SPACE).supports_buffered_results is True
    assert inner.debug_string() in sched.debug_string()
    assert sched.debug_string().startswith("OHGW(mode=hypergrad, step_rule=normalized, eta_h=0.05")


@pytest.mark.parametrize("kind", ["asha", "asha3", "hyperband", "median", "fifo", "pasha"])
def test_decisions_are_identical_to_the_bare_scheduler(kind):
    np.random.seed(0)
    bare = replay(make(kind)).run()
    np.random.seed(0)
    wrapped_run = replay(OHGW(make(kind), SPACE, mode="none"))
    wrapped = wrapped_run.run()
    assert wrapped == bare
    assert len(bare) >= 100
    decisions = {d for _, _, d in bare}
    if kind in ("asha", "asha3", "median"):
        assert TrialScheduler.STOP in decisions  # the stream exercises early stopping
    if kind in ("hyperband", "pasha"):
        assert TrialScheduler.PAUSE in decisions
    assert all(CONFIG_KEY in t.config for t in wrapped_run.trials)


@pytest.mark.parametrize("workers, max_live", [(2, None), (2, 2), (4, None), (4, 4)])
def test_hyperband_decisions_are_identical_with_several_trials_at_once(workers, max_live):
    """Several workers interleave results, HyperBand pauses and unpauses across them; saves end at once."""

    def run(sched):
        r = Replay(sched, 40, MAX_T, metric_fn, configs=configs, workers=workers, max_live=max_live)
        r.run()
        return r

    bare = run(make("hyperband"))
    wrapped = run(OHGW(make("hyperband"), SPACE, WarmStartSettings(mode="none")))
    assert wrapped.log == bare.log and len(bare.log) >= 100
    assert wrapped.iterations == bare.iterations
    assert [t.status for t in wrapped.trials] == [t.status for t in bare.trials] == [Trial.TERMINATED] * 40
    assert TrialScheduler.PAUSE in {d for _, _, d in bare.log}
    # results really interleave: some trial reports between two reports of another
    firsts = [i for i, _, _ in bare.log[:workers * 2]]
    assert len(set(firsts)) > 1


def test_decisions_are_identical_with_x_prime_reports_in_hypergrad_mode():
    def extra(i, t):
        if t != 1:
            return {}
        x = configs(i)
        return {"ohgw/x/lr": x["lr"], "ohgw/x_prime/lr": x["lr"] * 1.1, "ohgw/g/lr": -0.3,
                "ohgw/x/wd": 1e-4, "ohgw/x_prime/wd": 1e-4, "ohgw/g/wd": 0.0}

    bare = Replay(make("asha"), 40, MAX_T, metric_fn, configs=configs, extra_result=extra).run()
    run = Replay(OHGW(make("asha"), SPACE), 40, MAX_T, metric_fn, configs=configs, extra_result=extra)
    assert run.run() == bare
    for i, t in enumerate(run.trials):
        assert t.config["lr"] == pytest.approx(configs(i)["lr"] * 1.1)
        assert t.config[ORIGINAL_KEY] == {"lr": configs(i)["lr"], "wd": 1e-4}
        assert t.config[GRADIENT_KEY] == {"lr": -0.3, "wd": 0.0}
    assert len(run.scheduler.records) == 40


# ---- recording x' ----------------------------------------------------------------------------
def _first_result(x_lr=0.1, xp_lr=0.2, g_lr=-1.5):
    return {"training_iteration": 1, "acc": 0.5, "ohgw/x/lr": x_lr, "ohgw/x_prime/lr": xp_lr, "ohgw/g/lr": g_lr,
            "ohgw/x/wd": 1e-4, "ohgw/x_prime/wd": 2e-4, "ohgw/g/wd": 3.0, "ohgw/mode": "hypergrad"}


def test_records_x_prime_once_and_consumes_the_instruction():
    sched = OHGW(FIFOScheduler(), SPACE)
    t = stub_trial(0, {"lr": 0.1, "wd": 1e-4})
    sched.on_trial_add(None, t)
    assert sched.on_trial_result(None, t, {"training_iteration": 1, "acc": 0.1}) == TrialScheduler.CONTINUE
    assert ORIGINAL_KEY not in t.config  # no x' keys, nothing recorded
    sched.on_trial_result(None, t, _first_result())
    assert (t.config["lr"], t.config["wd"]) == (0.2, 2e-4)
    assert t.config[ORIGINAL_KEY] == {"lr": 0.1, "wd": 1e-4}
    assert t.config[GRADIENT_KEY] == {"lr": -1.5, "wd": 3.0}
    assert t.config[CONFIG_KEY]["mode"] == "none" and t.config[CONFIG_KEY]["applied"] == "hypergrad"
    assert instruction(t.config) is None  # used up: a restart from scratch cannot warm-start again
    # a later report (e.g. the restarted trainable's own record at x') does not overwrite x
    sched.on_trial_result(None, t, _first_result(x_lr=0.2, xp_lr=0.2, g_lr=0.0))
    assert t.config[ORIGINAL_KEY]["lr"] == 0.1 and t.config["lr"] == 0.2


def test_records_x_prime_in_on_trial_complete_and_ignores_non_finite_values():
    sched = OHGW(FIFOScheduler(), SPACE)
    a, b = stub_trial(0, {"lr": 0.1, "wd": 1e-4}), stub_trial(1, {"lr": 0.1, "wd": 1e-4})
    sched.on_trial_add(None, a)
    sched.on_trial_add(None, b)
    sched.on_trial_complete(None, a, _first_result(xp_lr=0.3))
    assert a.config["lr"] == 0.3
    sched.on_trial_result(None, b, _first_result(xp_lr=float("nan")))
    assert b.config["lr"] == 0.1 and ORIGINAL_KEY not in b.config


# ---- pickling ------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["asha", "hyperband", "median", "fifo"])
def test_cloudpickle_round_trip_keeps_settings_and_behaviour(kind):
    sched = OHGW(make(kind), SPACE, mode="random", step_rule="normalized", seed=5)
    clone = cloudpickle.loads(cloudpickle.dumps(sched))
    assert clone.settings == sched.settings and clone.space.to_dict() == SPACE.to_dict()
    np.random.seed(1)
    a = replay(sched, 12).run()
    np.random.seed(1)
    assert replay(clone, 12).run() == a


# ---- state restore ------------------------------------------------------------------------------------
def _restore_into_fresh(run: Replay, kind: str, via_pickle: bytes) -> Replay:
    """A second Replay whose scheduler is the unpickled construction-time wrapper plus the saved state,
    and whose trials are new Trial objects with the same ids, statuses and progress (as Tune restores them)."""
    state = pickle.loads(pickle.dumps(run.scheduler.get_state()))
    fresh = cloudpickle.loads(via_pickle)
    fresh.set_state(state)
    new = Replay(fresh, len(run.trials), MAX_T, metric_fn, configs=configs)
    new.iterations = list(run.iterations)
    for i, old in enumerate(run.trials):
        t = stub_trial(i, old.config, trial_id=old.trial_id)
        t.set_status(old.status)
        new.trials[i] = t
    new.add_all()  # Tune re-adds every trial on restore
    return new


@pytest.mark.parametrize("kind", ["asha", "asha3", "hyperband", "median", "fifo", "pasha"])
def test_restored_wrapper_decides_like_the_uninterrupted_one(kind):
    np.random.seed(3)
    sched = OHGW(make(kind), SPACE, mode="none")
    at_construction = cloudpickle.dumps(sched)
    run = replay(sched)
    run.run(max_steps=10)  # interrupted part-way
    restored = _restore_into_fresh(run, kind, at_construction)
    assert snapshot(restored.scheduler.scheduler) == snapshot(run.scheduler.scheduler)
    assert restored.scheduler.get_state() == run.scheduler.get_state()
    assert [t.config for t in restored.trials] == [t.config for t in run.trials]  # no re-injection
    np.random.seed(4)
    tail = len(run.log)
    while run.step():
        pass
    np.random.seed(4)
    while restored.step():
        pass
    assert restored.log == run.log[tail:]
    assert len(run.log) > tail
    assert restored.iterations == run.iterations


def test_without_the_state_a_restored_asha_forgets_its_rungs():
    """The problem the state fixes (ray-project/ray#30838): same stream, empty rungs, other decisions."""
    sched = OHGW(make("asha"), SPACE, mode="none")
    at_construction = cloudpickle.dumps(sched)
    run = replay(sched)
    run.run(max_steps=10)
    fresh = cloudpickle.loads(at_construction)
    new = Replay(fresh, len(run.trials), MAX_T, metric_fn, configs=configs)
    new.iterations = list(run.iterations)
    for i, old in enumerate(run.trials):
        t = stub_trial(i, old.config, trial_id=old.trial_id)
        t.set_status(old.status)
        new.trials[i] = t
    new.add_all()
    tail = len(run.log)
    while run.step():
        pass
    while new.step():
        pass
    assert new.log != run.log[tail:]
    assert sum(new.iterations) > sum(run.iterations)  # empty rungs stop less: more epochs spent


def test_state_of_a_scheduler_type_cannot_load_into_another():
    snap = snapshot(make("asha"))
    with pytest.raises(ValueError, match="state: snapshot of a AsyncHyperBandScheduler"):
        reload(make("hyperband"), snap)
    with pytest.raises(ValueError, match="state: missing key 'inner'"):
        OHGW(make("asha"), SPACE).set_state({"n_added": 0, "seen": [], "records": {}})


def test_restored_counter_gives_new_trials_fresh_seeds():
    sched = OHGW(FIFOScheduler(), SPACE, seed=2)
    at_construction = cloudpickle.dumps(sched)
    for i in range(3):
        sched.on_trial_add(None, stub_trial(i, configs(i)))
    fresh = cloudpickle.loads(at_construction)
    fresh.set_state(sched.get_state())
    t = stub_trial(3, configs(3))
    fresh.on_trial_add(None, t)
    assert t.config[CONFIG_KEY]["trial_index"] == 3
    assert t.config[CONFIG_KEY]["seed"] == warm_start_seed(2, 3)


def test_replay_tracks_statuses_like_tune():
    run = replay(make("hyperband"), 12)
    run.run()
    assert all(t.status == Trial.TERMINATED for t in run.trials)
