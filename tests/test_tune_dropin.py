"""The drop-in API: ``OHGW(ASHAScheduler(...), param_space)`` in a plain Tuner, pass-through, transparency, restore.

Hook-level tests drive schedulers with stub trials (ohgw.testing.replay); two small real Tuner runs
check what a user sees.
"""

from __future__ import annotations

import copy
import math
import pickle
import warnings

import numpy as np
import pytest
import ray.cloudpickle as cloudpickle
from ray import tune
from ray.tune.schedulers import ASHAScheduler, HyperBandScheduler, MedianStoppingRule, TrialScheduler

from ohgw import SearchSpace
from ohgw.protocol import INSTRUCTION_KEY
from ohgw.testing.replay import Replay, stub_trial
from ohgw.tune.wrapper import OHGW

SPACE = SearchSpace.from_bounds({"lr": (1e-3, 1.0, "log10"), "wd": (1e-6, 1e-2, "log10")})
PARAM_SPACE = {"lr": tune.loguniform(1e-3, 1.0), "wd": tune.loguniform(1e-6, 1e-2), "momentum": tune.uniform(0.0, 0.9)}
MAX_T = 27


def metric_fn(i: int, t: int) -> float:
    rng = np.random.default_rng(1000 * i + t)
    return ((i * 7919) % 97) / 97 * (1 - math.exp(-t / 5)) + 0.05 * rng.standard_normal()


def configs(i: int) -> dict:
    return {"lr": 10 ** (-3 + 3 * ((i * 37) % 100) / 100), "wd": 1e-4, "width": 1 + i % 3}


def x_prime_report(i: int, t: int) -> dict:
    """What a warm-started trainable adds to its first report."""
    if t != 1:
        return {}
    lr = configs(i)["lr"]
    return {"ohgw/x/lr": lr, "ohgw/x_prime/lr": lr * 1.1, "ohgw/g/lr": -0.3,
            "ohgw/x/wd": 1e-4, "ohgw/x_prime/wd": 1e-4, "ohgw/g/wd": 0.0}


def make(kind: str) -> TrialScheduler:
    if kind == "asha":
        return ASHAScheduler(metric="acc", mode="max", max_t=MAX_T, grace_period=1, reduction_factor=3)
    if kind == "asha3":
        return ASHAScheduler(metric="acc", mode="max", max_t=MAX_T, grace_period=1, reduction_factor=3, brackets=3)
    if kind == "hyperband":
        return HyperBandScheduler(metric="acc", mode="max", max_t=MAX_T, reduction_factor=3)
    if kind == "median":
        return MedianStoppingRule(time_attr="training_iteration", metric="acc", mode="max", grace_period=2,
                                  min_samples_required=2)
    raise AssertionError(kind)


def ohgw_warnings(records) -> list[str]:
    return [str(w.message) for w in records if "OHGW" in str(w.message)]


# ---- the space from a Tune param_space ---------------------------------------------------------------
def test_space_from_param_space_takes_loguniform_as_log10_and_uniform_as_identity():
    space = SearchSpace.from_param_space({**PARAM_SPACE, "max_t": 3})
    assert space.names == ("lr", "wd", "momentum")
    assert (space["lr"].low, space["lr"].high, space["lr"].transform) == (1e-3, 1.0, "log10")
    assert (space["momentum"].low, space["momentum"].high, space["momentum"].transform) == (0.0, 0.9, "identity")
    assert SearchSpace.from_param_space(space.param_space()).to_dict() == space.to_dict()
    with pytest.raises(ValueError, match=r"no continuous hyper-parameter.*'width'"):
        SearchSpace.from_param_space({"width": tune.choice([1, 2]), "max_t": 3})


def test_the_warning_names_every_parameter_it_cannot_warm_start():
    param_space = {
        **PARAM_SPACE,
        "batch": tune.choice([16, 32]),
        "layers": tune.randint(1, 4),
        "q": tune.quniform(0.0, 1.0, 0.1),
        "ql": tune.qloguniform(1e-3, 1.0, 1e-3),
        "f": tune.sample_from(lambda spec: 1),
        "g": tune.grid_search([1, 2]),
        "n": tune.randn(),
        "model": {"dropout": tune.uniform(0.0, 0.5), "width": 16},
        "max_t": 3,
        "name": "plain constant",
    }
    with pytest.warns(UserWarning) as rec:
        sched = OHGW(make("asha"), param_space)
    msgs = ohgw_warnings(rec)
    assert len(msgs) == 1, msgs
    for name in ("batch", "layers", "q", "ql", "f", "g", "n", "model/dropout"):
        assert repr(name) in msgs[0], (name, msgs[0])
    for name in ("max_t", "name", "model/width"):  # constants are not hyper-parameters
        assert repr(name) not in msgs[0], (name, msgs[0])
    assert sched.space.names == ("lr", "wd", "momentum")
    # trials are warm-started over the inferred space, top-level keys only
    t = stub_trial(0, {"lr": 0.1, "wd": 1e-4, "momentum": 0.5, "batch": 16, "model": {"dropout": 0.1, "width": 16}})
    sched.on_trial_add(None, t)
    assert [p["name"] for p in t.config[INSTRUCTION_KEY]["space"]["params"]] == ["lr", "wd", "momentum"]


def test_an_explicit_space_is_used_as_given():
    explicit = SearchSpace.from_bounds({"lr": (1e-4, 1e-1, "log10")})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sched = OHGW(make("asha"), explicit)
    assert sched.space is explicit
    t = stub_trial(0, {"lr": 0.01, "wd": 1e-4, "batch": 32})
    sched.on_trial_add(None, t)
    assert t.config[INSTRUCTION_KEY]["space"] == explicit.to_dict()


# ---- nothing to warm-start: an exact pass-through, one warning --------------------------------------
def _bare_log():
    return Replay(make("asha"), 30, MAX_T, metric_fn, configs=configs).run()


@pytest.mark.parametrize("how", ["choice-only param_space", "no space", "mode none, config lacks wd"])
def test_nothing_to_warm_start_passes_every_decision_through_with_one_warning(how):
    bare = _bare_log()
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        if how == "choice-only param_space":
            sched = OHGW(make("asha"), {"width": tune.choice([1, 2, 3]), "max_t": MAX_T})
        elif how == "no space":
            sched = OHGW(make("asha"))
        else:
            sched = OHGW(make("asha"), SPACE, mode="none")
        config_of = (lambda i: {"lr": configs(i)["lr"]}) if how.startswith("mode") else configs
        run = Replay(sched, 30, MAX_T, metric_fn, configs=config_of)
        assert run.run() == bare
    msgs = ohgw_warnings(rec)
    assert len(msgs) == 1, msgs
    assert [t.config for t in run.trials] == [config_of(i) for i in range(30)]  # nothing injected
    if how == "choice-only param_space":
        assert "'width'" in msgs[0]
    if how.startswith("mode"):
        assert "'wd'" in msgs[0]


# ---- transparency ----------------------------------------------------------------------------------------
def test_attribute_reads_pass_through_to_the_wrapped_scheduler_and_survive_pickling():
    asha = make("asha")
    sched = OHGW(asha, SPACE)
    assert sched._brackets is asha._brackets
    assert (sched._max_t, sched._time_attr, sched._metric, sched._mode) == (MAX_T, "training_iteration", "acc", "max")
    assert sched.scheduler is asha
    with pytest.raises(AttributeError, match="no_such_attribute"):
        _ = sched.no_such_attribute
    late = OHGW(ASHAScheduler(), SPACE)
    late.set_search_properties("val_acc", "min")
    assert (late._metric, late._mode, late._metric_op) == ("val_acc", "min", -1.0)
    for clone in (pickle.loads(pickle.dumps(sched)), cloudpickle.loads(cloudpickle.dumps(sched)), copy.deepcopy(sched)):
        assert clone._brackets is clone.scheduler._brackets and clone._max_t == MAX_T
        assert clone.space.to_dict() == SPACE.to_dict() and clone.settings == sched.settings
    # looked up before `scheduler` is set (unpickling, __new__): AttributeError, never a RecursionError
    empty = OHGW.__new__(OHGW)
    for name in ("_brackets", "scheduler", "__deepcopy__"):
        with pytest.raises(AttributeError):
            getattr(empty, name)


# ---- save / restore keeps Ray's contract ------------------------------------------------------------------
DEFAULTS = {"asha": ASHAScheduler, "asha3": ASHAScheduler, "hyperband": HyperBandScheduler,
            "median": MedianStoppingRule}


@pytest.mark.parametrize("kind", sorted(DEFAULTS))
def test_restore_into_a_default_built_scheduler_decides_like_the_original(kind, tmp_path):
    np.random.seed(3)
    original = OHGW(make(kind), SPACE, seed=4, eta_h=0.1)
    run = Replay(original, 30, MAX_T, metric_fn, configs=configs, extra_result=x_prime_report)
    run.run(max_steps=8)  # interrupted part-way
    path = str(tmp_path / "scheduler.pkl")
    original.save(path)
    fresh = OHGW(DEFAULTS[kind]())  # Ray's pattern: a default-built scheduler, then restore(path)
    fresh.restore(path)
    inner = original.scheduler
    assert (fresh._metric, fresh._time_attr) == (inner._metric, inner._time_attr)
    assert fresh.settings == original.settings and fresh.space.to_dict() == SPACE.to_dict()
    new = Replay(fresh, 30, MAX_T, metric_fn, configs=configs, extra_result=x_prime_report)
    new.iterations = list(run.iterations)
    for i, old in enumerate(run.trials):
        t = stub_trial(i, old.config, trial_id=old.trial_id)
        t.set_status(old.status)
        new.trials[i] = t
    new.add_all()
    np.random.seed(4)
    tail = len(run.log)
    while run.step():
        pass
    np.random.seed(4)
    while new.step():
        pass
    assert new.log == run.log[tail:] and len(run.log) > tail
    assert new.iterations == run.iterations
    assert fresh.records == original.records


def test_restore_refuses_another_scheduler_type(tmp_path):
    path = str(tmp_path / "scheduler.pkl")
    OHGW(make("asha"), SPACE).save(path)
    with pytest.raises(ValueError, match="state: snapshot of a AsyncHyperBandScheduler"):
        OHGW(HyperBandScheduler()).restore(path)


# ---- real Tuner runs --------------------------------------------------------------------------------------
def tiny_trainable(config):
    """A user's trainable without torch (what is checked is the wrapper built from a param space): the OHGW
    warm-start through :func:`ohgw.warmstart.warm_start_with` with the exact gradient of ``|u - u*|^2`` (u: the
    search coordinates; u* is u with lr at 0.1), then one report per epoch of a curve in lr."""
    from ohgw.testing.quadratic import warm_start_toward

    config, record = warm_start_toward(config, {"lr": 0.1})
    first = record.flat() if record is not None else {}
    for t in range(1, config["max_t"] + 1):
        tune.report({"val_acc": (1 - abs(math.log10(config["lr"]) + 1) / 3) * (1 - math.exp(-t)), **first})
        first = {}


@pytest.mark.ray
@pytest.mark.timeout(120)
def test_a_plain_tuner_with_the_param_space_warm_starts(ray_local, tmp_path):
    param_space = {**PARAM_SPACE, "batch": tune.choice([16, 32]), "max_t": 2}
    with pytest.warns(UserWarning, match="'batch'"):
        sched = OHGW(ASHAScheduler(max_t=2, grace_period=1, reduction_factor=2), param_space)
    grid = tune.Tuner(
        tiny_trainable,
        param_space=param_space,
        tune_config=tune.TuneConfig(metric="val_acc", mode="max", scheduler=sched, num_samples=2, reuse_actors=True,
                                    max_concurrent_trials=1),  # one reused worker
        run_config=tune.RunConfig(name="dropin", storage_path=str(tmp_path), verbose=0),
    ).fit()
    assert grid.num_errors == 0 and len(grid) == 2
    assert len(sched.records) == 2
    for result in grid:
        first = result.metrics_dataframe.iloc[0]
        assert first["ohgw/mode"] == "hypergrad" and "ohgw/x/batch" not in first
        x = {n: first[f"ohgw/x/{n}"] for n in ("lr", "wd", "momentum")}
        x_prime = {n: first[f"ohgw/x_prime/{n}"] for n in ("lr", "wd", "momentum")}
        assert x != x_prime
        assert sched.records[result.metrics["trial_id"]]["x_prime"] == pytest.approx(x_prime)


def choice_trainable(config):
    for t in range(1, config["max_t"] + 1):
        tune.report({"val_acc": config["width"] * t / 10.0 - 0.02 * t * t, "instructed": "ohgw" in config})


def _choice_fit(scheduler, name, tmp_path):
    from ray.tune.search import BasicVariantGenerator

    grid = tune.Tuner(
        choice_trainable,
        param_space={"width": tune.choice([1, 2, 3, 4]), "max_t": 4},
        tune_config=tune.TuneConfig(metric="val_acc", mode="max", scheduler=scheduler, num_samples=6,
                                    search_alg=BasicVariantGenerator(random_state=7, max_concurrent=1),
                                    reuse_actors=True),
        run_config=tune.RunConfig(name=name, storage_path=str(tmp_path), verbose=0),
    ).fit()
    assert grid.num_errors == 0 and len(grid) == 6
    ordered = sorted(grid, key=lambda r: r.metrics["trial_id"][-5:])  # creation order
    return [(r.config, r.metrics["training_iteration"], r.metrics["val_acc"], r.metrics["instructed"]) for r in ordered]


@pytest.mark.ray
@pytest.mark.timeout(120)
def test_a_plain_tuner_without_continuous_parameters_runs_wrapped_as_unwrapped(ray_local, tmp_path):
    bare = _choice_fit(ASHAScheduler(max_t=4, grace_period=1, reduction_factor=2), "bare", tmp_path)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        sched = OHGW(ASHAScheduler(max_t=4, grace_period=1, reduction_factor=2),
                     {"width": tune.choice([1, 2, 3, 4]), "max_t": 4})
        wrapped = _choice_fit(sched, "wrapped", tmp_path)
    msgs = ohgw_warnings(rec)
    assert len(msgs) == 1 and "'width'" in msgs[0], msgs
    assert wrapped == bare
    assert {it for _, it, _, _ in bare} != {4}  # ASHA stopped some trials early
    assert not any(instructed for *_, instructed in wrapped)
