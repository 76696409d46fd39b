"""What a user writes: their own PyTorch trainable (a tiny MLP defined here) plus OHGW in a plain Tuner.

The trainable's OHGW integration is the block between the two ``# --- OHGW`` markers
(12 lines); the driver side is ``scheduler=OHGW(scheduler, space, WarmStartSettings(...))`` and
``callbacks=sched.callbacks()``. The Optuna and HyperBand runs check what the searcher is told and how trials
are scheduled, so their workers run the harness tests' torch-free trainable
(``harness_trainables.resume_trainable``: a real warm-start through ``ohgw.warmstart.warm_start_with``) and
import no torch (about 3 CPU-s per worker).
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from ray import tune
from ray.tune.schedulers import ASHAScheduler
from torch import nn

from ohgw import SGD, HyperGradProblem, SearchSpace, maybe_warm_start
from ohgw.tune.wrapper import OHGW
from ohgw.warmstart import WarmStartSettings

SPACE = SearchSpace.from_bounds({"lr": (1e-3, 1.0, "log10"), "wd": (1e-6, 1e-2, "log10")})


def _data(seed: int = 0, n: int = 256):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 8, generator=g)
    w = torch.randn(8, 3, generator=g)
    return x, (x @ w).argmax(dim=1)


def user_trainable(config):
    """A user's own trainable: a 2-layer MLP on random 3-class data, SGD, one report per epoch."""
    import tempfile

    from ray.tune import Checkpoint

    torch.manual_seed(0)
    x, y = _data()
    train, val = (x[:192], y[:192]), (x[192:], y[192:])
    model = nn.Sequential(nn.Linear(8, 16), nn.SiLU(), nn.Linear(16, 3))

    # --- OHGW: the integration a user adds (12 lines) ---
    def loss(params, buffers, batch, hp=None):
        return F.cross_entropy(torch.func.functional_call(model, (params, buffers), (batch[0],)), batch[1])

    problem = HyperGradProblem(model, train_loss=loss, val_loss=loss, update_rule=SGD())
    record = None
    checkpoint = tune.get_checkpoint()
    if checkpoint is None:  # warm-start only at the start of training, never on resume
        config, record = maybe_warm_start(config, problem, ((x[:64], y[:64]), (x[192:256], y[192:256])))
    first_report = record.flat() if record is not None else {}
    # --- OHGW: end ---

    opt = torch.optim.SGD(model.parameters(), lr=config["lr"], weight_decay=config["wd"])
    start = 0
    if checkpoint is not None:
        with checkpoint.as_directory() as d:
            state = torch.load(f"{d}/state.pt")
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        start = state["epoch"]
    for epoch in range(start, config["max_t"]):
        for i in range(0, 192, 32):
            opt.zero_grad()
            F.cross_entropy(model(train[0][i : i + 32]), train[1][i : i + 32]).backward()
            opt.step()
        with torch.no_grad():
            acc = float((model(val[0]).argmax(1) == val[1]).float().mean())
        with tempfile.TemporaryDirectory() as d:
            torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "epoch": epoch + 1}, f"{d}/state.pt")
            tune.report({"val_acc": acc, **first_report}, checkpoint=Checkpoint.from_directory(d))
        first_report = {}


@pytest.mark.ray
def test_warm_start_reaches_the_trainable_and_the_results_show_x_prime(ray_local, tmp_path):
    settings = WarmStartSettings(mode="hypergrad", step_rule="normalized", seed=11)
    sched = OHGW(ASHAScheduler(max_t=3, grace_period=1, reduction_factor=2), SPACE, settings)
    tuner = tune.Tuner(
        user_trainable,
        param_space={**SPACE.param_space(), "max_t": 3},
        # one trial at a time in one reused worker (one process imports torch): what is checked is the record
        tune_config=tune.TuneConfig(metric="val_acc", mode="max", scheduler=sched, num_samples=4, reuse_actors=True,
                                    max_concurrent_trials=1),
        run_config=tune.RunConfig(name="user", storage_path=str(tmp_path), callbacks=sched.callbacks(), verbose=0),
    )
    grid = tuner.fit()
    assert grid.num_errors == 0 and len(grid) == 4
    df = grid.get_dataframe()
    x_primes = {}
    for result in grid:
        first = result.metrics_dataframe.iloc[0]
        x = {n: first[f"ohgw/x/{n}"] for n in SPACE.names}
        x_prime = {n: first[f"ohgw/x_prime/{n}"] for n in SPACE.names}
        assert first["ohgw/mode"] == "hypergrad"
        x_primes[result.metrics["trial_id"]] = x_prime
        assert any(not math.isclose(x[n], x_prime[n], rel_tol=1e-9) for n in SPACE.names)
        # the largest normalized move is exactly eta_h = 0.05 of the range in u
        du = [abs(SPACE[n].to_u(x_prime[n]) - SPACE[n].to_u(x[n])) / SPACE[n].u_range for n in SPACE.names]
        assert max(du) == pytest.approx(0.05, rel=1e-6) or any(
            SPACE[n].to_u(x_prime[n]) in (SPACE[n].u_low, SPACE[n].u_high) for n in SPACE.names
        )
        # result.config (callback), get_dataframe() (trial.config) all show x'; x and g are kept
        assert result.config["lr"] == pytest.approx(x_prime["lr"]) and result.config["wd"] == pytest.approx(x_prime["wd"])
        assert result.config["ohgw_x"] == pytest.approx(x)
        row = df[df["trial_id"] == result.metrics["trial_id"]].iloc[0]
        assert row["config/lr"] == pytest.approx(x_prime["lr"])
        assert row["config/ohgw_x/lr"] == pytest.approx(x["lr"])
        assert row["config/ohgw_g/lr"] == pytest.approx(first["ohgw/g/lr"])
        assert row["config/ohgw/applied"] == "hypergrad" and row["config/ohgw/mode"] == "none"
    # trial.config (what the progress table reads) holds x'
    for trial in grid._experiment_analysis.trials:
        assert {n: trial.config[n] for n in SPACE.names} == pytest.approx(x_primes[trial.trial_id])
    assert sorted(t.config["ohgw"]["trial_index"] for t in grid._experiment_analysis.trials) == [0, 1, 2, 3]


@pytest.mark.ray
def test_optuna_tpe_learns_from_x_prime_in_a_real_run(ray_local, tmp_path):
    import optuna
    from ray.tune.search import ConcurrencyLimiter
    from ray.tune.search.optuna import OptunaSearch

    from ohgw.tune.searcher import RAY_TRIAL_ID_ATTR, SUPERSEDED_ATTR, X_ATTR_PREFIX, OHGWSearcher

    import harness_trainables

    sched = OHGW(ASHAScheduler(max_t=2, grace_period=1, reduction_factor=2), SPACE, step_rule="normalized", seed=2)
    optuna_search = OptunaSearch(sampler=optuna.samplers.TPESampler(seed=0, n_startup_trials=2))
    ray_local.cloudpickle.register_pickle_by_value(harness_trainables)  # the workers cannot import tests/
    tuner = tune.Tuner(
        harness_trainables.resume_trainable,  # torch-free: what is checked is what TPE is told
        param_space={**SPACE.param_space(), "max_t": 2},
        tune_config=tune.TuneConfig(metric="val_acc", mode="max", scheduler=sched, num_samples=4, reuse_actors=True,
                                    # one trial at a time: one worker, and TPE sees each x' before it suggests
                                    search_alg=ConcurrencyLimiter(OHGWSearcher(optuna_search), max_concurrent=1)),
        run_config=tune.RunConfig(name="optuna", storage_path=str(tmp_path), callbacks=sched.callbacks(), verbose=0),
    )
    try:
        grid = tuner.fit()
    finally:
        ray_local.cloudpickle.unregister_pickle_by_value(harness_trainables)
    assert grid.num_errors == 0 and len(grid) == 4
    # the driver's searcher object is the one Tune used (Tuner.fit runs in this process)
    study = optuna_search._ot_study
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    failed = [t for t in study.trials if t.state == optuna.trial.TrialState.FAIL]
    assert len(complete) == 4 and len(failed) == 4 and all(t.user_attrs[SUPERSEDED_ATTR] for t in failed)
    by_id = {t.user_attrs[RAY_TRIAL_ID_ATTR]: t for t in complete}
    for result in grid:
        t = by_id[result.metrics["trial_id"]]
        assert t.params == pytest.approx({n: result.config[n] for n in SPACE.names})  # x', as trained
        assert t.user_attrs[X_ATTR_PREFIX + "lr"] == pytest.approx(result.config["ohgw_x"]["lr"])
        assert t.value == pytest.approx(result.metrics["val_acc"])


def _run_wrapped(inner, kind: str, tmp_path, concurrency: dict, max_t: int, cpus: float | None = None,
                 trainable=user_trainable):
    sched = OHGW(inner, SPACE, WarmStartSettings(step_rule="normalized", seed=1))
    trainable = trainable if cpus is None else tune.with_resources(trainable, {"cpu": cpus})
    grid = tune.Tuner(
        trainable,
        param_space={**SPACE.param_space(), "max_t": max_t},
        tune_config=tune.TuneConfig(metric="val_acc", mode="max", scheduler=sched, num_samples=4,
                                    reuse_actors=True, **concurrency),
        run_config=tune.RunConfig(name=kind, storage_path=str(tmp_path), callbacks=sched.callbacks(), verbose=0),
    ).fit()
    assert grid.num_errors == 0 and len(grid) == 4
    assert len(sched.records) == 4
    for result in grid:
        assert result.config["ohgw"]["applied"] == "hypergrad"
        assert result.config["lr"] == pytest.approx(sched.records[result.metrics["trial_id"]]["x_prime"]["lr"])
    return grid


@pytest.mark.ray
@pytest.mark.timeout(150)
# 4 at once is the harder case (every trial of the first bracket live, 4 workers; torch-free: module doc);
# 2 at once (a live-trial limit below the bracket size) is slow-marked: the default suite decides it at hook
# level (test_tune_hyperband_save_window.py: workers 4 / max_live 2; test_scheduler_wrapper.py: 2 / 2)
@pytest.mark.parametrize("concurrent", [pytest.param(2, marks=pytest.mark.slow), 4])
def test_hyperband_runs_wrapped_with_several_trials_at_once(ray_local, tmp_path, concurrent):
    """HyperBand pauses trials; with several at once a trial may still be saving when its bracket
    finishes, which Ray's HyperBand leaves PAUSED forever (the wrapper stops it: ohgw.tune.delegating)."""
    from ray.tune.schedulers import HyperBandScheduler

    import harness_trainables

    ray_local.cloudpickle.register_pickle_by_value(harness_trainables)  # the workers cannot import tests/
    try:
        grid = _run_wrapped(HyperBandScheduler(max_t=3, reduction_factor=2), f"hyperband{concurrent}", tmp_path,
                            {"max_concurrent_trials": concurrent}, max_t=3, cpus=0.5,
                            trainable=harness_trainables.resume_trainable)
    finally:
        ray_local.cloudpickle.unregister_pickle_by_value(harness_trainables)
    assert all(r.metrics["training_iteration"] <= 3 for r in grid)


@pytest.mark.slow
@pytest.mark.ray
@pytest.mark.parametrize("kind", ["pasha", "median", "fifo"])
def test_every_supported_scheduler_runs_wrapped_in_a_real_tuner(ray_local, tmp_path, kind):
    from ray.tune.schedulers import FIFOScheduler, MedianStoppingRule

    from ohgw.pasha import PASHA

    inner = {
        "pasha": lambda: PASHA(max_t=8, grace_period=1, reduction_factor=2, max_concurrent=2),
        "median": lambda: MedianStoppingRule(time_attr="training_iteration", grace_period=1, min_samples_required=1),
        "fifo": FIFOScheduler,
    }[kind]()
    # PASHA pauses trials, which count as live for max_concurrent_trials: it limits concurrency itself
    concurrency = {} if kind == "pasha" else {"max_concurrent_trials": 2}
    _run_wrapped(inner, kind, tmp_path, concurrency, max_t=8 if kind == "pasha" else 3)
