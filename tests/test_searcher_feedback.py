"""OHGWSearcher: OptunaSearch (TPE) learns from x′, driven through the Searcher hooks (no Ray runtime)."""

from __future__ import annotations

import math

import numpy as np
import optuna
import pytest
from ray import tune
from ray.tune.search import ConcurrencyLimiter
from ray.tune.search.basic_variant import BasicVariantGenerator
from ray.tune.search.optuna import OptunaSearch

from ohgw.tune.searcher import RAY_TRIAL_ID_ATTR, REPLACES_ATTR, SUPERSEDED_ATTR, X_ATTR_PREFIX, OHGWSearcher

optuna.logging.set_verbosity(optuna.logging.WARNING)
SPACE = {"lr": tune.loguniform(1e-3, 1.0), "wd": tune.loguniform(1e-6, 1e-2), "batch_size": 128}


def make(seed: int = 0, startup: int = 5) -> tuple[OHGWSearcher, OptunaSearch]:
    inner = OptunaSearch(sampler=optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup))
    outer = OHGWSearcher(inner)
    assert outer.set_search_properties("val_acc", "max", SPACE) is True
    return outer, inner


def first_result(x: dict, x_prime: dict, acc: float = 0.3) -> dict:
    out = {"training_iteration": 1, "val_acc": acc}
    for k in x:
        out.update({f"ohgw/x/{k}": x[k], f"ohgw/x_prime/{k}": x_prime[k], f"ohgw/g/{k}": -1.0})
    return out


def test_completed_trial_is_recorded_at_x_prime_and_the_suggestion_is_superseded():
    outer, inner = make()
    x = outer.suggest("a")
    x_prime = {"lr": x["lr"] * 1.5, "wd": x["wd"]}
    outer.on_trial_result("a", first_result(x, x_prime, 0.3))
    outer.on_trial_result("a", {"training_iteration": 2, "val_acc": 0.6})
    outer.on_trial_complete("a", {"training_iteration": 2, "val_acc": 0.6})
    trials = inner._ot_study.trials
    assert [t.state for t in trials] == [optuna.trial.TrialState.FAIL, optuna.trial.TrialState.COMPLETE]
    old, new = trials
    assert old.params == pytest.approx(x) and old.user_attrs == {SUPERSEDED_ATTR: True}
    assert new.params == pytest.approx(x_prime) and new.value == 0.6
    assert new.intermediate_values == {1: 0.3, 2: 0.6}
    assert new.user_attrs[RAY_TRIAL_ID_ATTR] == "a" and new.user_attrs[REPLACES_ATTR] == 0
    assert new.user_attrs[X_ATTR_PREFIX + "lr"] == pytest.approx(x["lr"])
    assert outer.replaced == {"a": pytest.approx(x_prime)}
    assert inner._ot_study.best_trial.params == pytest.approx(x_prime)


def test_trials_without_a_move_errors_and_missing_scores_pass_through():
    outer, inner = make()
    plain, same, err, noscore = (outer.suggest(t) for t in ("plain", "same", "err", "noscore"))
    outer.on_trial_complete("plain", {"training_iteration": 3, "val_acc": 0.5})  # mode none: no x' keys
    outer.on_trial_result("same", first_result(same, same))  # x' == x
    outer.on_trial_complete("same", {"training_iteration": 3, "val_acc": 0.4})
    outer.on_trial_result("err", first_result(err, {"lr": err["lr"] * 2, "wd": err["wd"]}))
    outer.on_trial_complete("err", None, error=True)
    outer.on_trial_result("noscore", first_result(noscore, {"lr": noscore["lr"] * 2, "wd": noscore["wd"]}))
    outer.on_trial_complete("noscore", {"training_iteration": 1, "val_acc": float("nan")})
    states = [t.state.name for t in inner._ot_study.trials]
    assert states[:3] == ["COMPLETE", "COMPLETE", "FAIL"]
    assert len(states) == 4  # nothing added for a non-finite score
    assert [t.params for t in inner._ot_study.trials[:2]] == [pytest.approx(plain), pytest.approx(same)]
    assert outer.replaced == {}


def test_trial_stopped_at_its_first_result_and_out_of_bounds_x_prime_is_clipped():
    outer, inner = make()
    x = outer.suggest("a")
    # the scheduler stopped the trial at its first report: Tune skips on_trial_result, the completion carries x'
    outer.on_trial_complete("a", first_result(x, {"lr": 3.0, "wd": x["wd"]}, acc=0.2))
    new = inner._ot_study.trials[-1]
    assert new.state == optuna.trial.TrialState.COMPLETE and new.params["lr"] == 1.0 and new.value == 0.2


@pytest.mark.parametrize("layout", ["limiter_inside", "limiter_outside"])
def test_works_with_a_concurrency_limiter(layout):
    inner = OptunaSearch(sampler=optuna.samplers.TPESampler(seed=1))
    if layout == "limiter_inside":
        searcher = OHGWSearcher(ConcurrencyLimiter(inner, max_concurrent=2))
    else:
        searcher = ConcurrencyLimiter(OHGWSearcher(inner), max_concurrent=2)
    searcher.set_search_properties("val_acc", "max", SPACE)
    a, b = searcher.suggest("a"), searcher.suggest("b")
    assert searcher.suggest("c") is None  # the limiter still limits
    searcher.on_trial_result("a", first_result(a, {"lr": a["lr"] / 2, "wd": a["wd"]}))
    searcher.on_trial_complete("a", {"training_iteration": 1, "val_acc": 0.7})
    assert searcher.suggest("c") is not None  # a's slot was released
    assert inner._ot_study.best_trial.params["lr"] == pytest.approx(a["lr"] / 2)
    assert b is not None


def test_bad_input():
    with pytest.raises(ValueError, match="searcher must be a ray.tune Searcher"):
        OHGWSearcher(OptunaSearch)
    with pytest.raises(ValueError, match="searcher must be a ray.tune Searcher"):
        OHGWSearcher(BasicVariantGenerator())  # a SearchAlgorithm, not a Searcher
    with pytest.raises(ValueError, match="already wrapped"):
        OHGWSearcher(OHGWSearcher(OptunaSearch()))


def _tpe_run(feedback: bool, n: int = 30, seed: int = 4) -> list[float]:
    """n trials whose warm-start moves lr up one decade; the score depends on the lr actually trained (x')."""
    inner = OptunaSearch(sampler=optuna.samplers.TPESampler(seed=seed, n_startup_trials=10))
    searcher = OHGWSearcher(inner) if feedback else inner
    searcher.set_search_properties("val_acc", "max", SPACE)
    for i in range(n):
        tid = f"t{i}"
        x = searcher.suggest(tid)
        x_prime = {"lr": min(x["lr"] * 10, 1.0), "wd": x["wd"]}
        score = -abs(math.log10(x_prime["lr"]) + 1)  # best trained lr: 0.1, i.e. best sampled lr 0.01
        searcher.on_trial_result(tid, {**first_result(x, x_prime, score)})
        searcher.on_trial_complete(tid, {"training_iteration": 1, "val_acc": score})
    return [searcher.suggest(f"next{i}")["lr"] for i in range(15)]


def test_tpe_models_the_adjusted_points():
    with_feedback = np.log10(_tpe_run(True))
    without = np.log10(_tpe_run(False))
    # TPE fitted on x' proposes around the best x' (1e-1); fitted on x, around the best x (1e-2)
    assert np.median(np.abs(with_feedback + 1)) < np.median(np.abs(with_feedback + 2))
    assert np.median(np.abs(without + 2)) < np.median(np.abs(without + 1))
