"""The JEPA family's warm-start: hyper-gradients against float64 central differences, which ψ get a one-step
signal, and x′ ≠ x for lr and a loss coefficient in a real Tuner run with the OHGW wrapper around ASHA."""

import math

import numpy as np
import pytest
import torch

from ohgw.hypergrad import hypergradient, lookahead_val_loss
from ohgw.warmstart import WarmStartSettings, make_instruction
from trainables.jepa import METRIC, search_space, train_jepa, workload
from trainables.jepa.problem import make_problem, warm_start_batches
from trainables.jepa.run import JepaRun, train_epochs

TINY = {"dataset_size": 32, "probe_size": 16, "val_size": 8, "test_size": 8, "batch_size": 8, "max_t": 1,
        "embedding_dim": 16, "width": 1}


@pytest.fixture(autouse=True)
def _restore_torch_threads():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _float64_problem(cfg):
    run = JepaRun(cfg)
    (frames, actions, draws), (vf, va) = warm_start_batches(run.config, run.world.train, run.world.probe, 8, 0,
                                                             "cpu")(0)
    draws = draws.double() if draws.is_floating_point() else draws
    problem = make_problem(run.model.double(), run.config)
    return run, problem, (frames.double(), actions.double(), draws), (vf.double(), va.double())


def _fd_check(cfg, names, h=1e-5, rel=2e-3):
    run, problem, train_b, val_b = _float64_problem(cfg)
    space = search_space(run.config["model_type"])
    hg = hypergradient(problem, space, run.config, [train_b], val_b)
    g = dict(zip(space.names, hg.g))
    u0 = torch.tensor(space.to_u(run.config), dtype=torch.float64)
    for name in names:
        i = space.names.index(name)
        vals = []
        for s in (h, -h):
            u = u0.clone()
            u[i] += s
            vals.append(float(lookahead_val_loss(problem, space, u, run.config, [train_b], val_b)[0].detach()))
        fd = (vals[0] - vals[1]) / (2 * h)
        assert g[name] == pytest.approx(fd, rel=rel, abs=1e-10), (name, g[name], fd)
        assert abs(g[name]) > 1e-9, name  # a real signal, not a zero that matches a zero
    return g


@pytest.mark.parametrize("model, names, extra", [
    ("VICReg", ("lr", "wd", "var_coeff", "cov_coeff"), {}),
    ("SimCLR", ("lr", "temperature"), {}),
    ("RSSM", ("lr", "kl_scale"), {"free_nats": 0.0, "det_dim": 8, "stoch_dim": 4, "rssm_hidden": 8}),
])  # fmt: skip
def test_sgd_hypergradients_match_central_differences_for_every_psi(model, names, extra):
    _fd_check({**TINY, "model_type": model, "optimizer": "sgd", "lr": 0.05, **extra}, names)


def test_adamw_lr_and_wd_match_central_differences():
    # (the loss coefficients' AdamW hyper-gradient is a derivative of Adam's steep g/(|g| + ε) at weights
    # whose gradient is near 0: it matches differences only at h ≈ 1e-5; see trainables/jepa/problem.py)
    _fd_check({**TINY, "optimizer": "adamw", "lr": 1e-3, "wd": 1e-2}, ("lr", "wd"), rel=1e-3)


def test_kl_scale_has_no_one_step_signal_under_the_free_nats():
    run, problem, train_b, val_b = _float64_problem({**TINY, "model_type": "RSSM", "optimizer": "sgd", "free_nats": 1.0})
    with torch.no_grad():
        assert float(run.model(*train_b)["kl"].mean()) < 1.0  # the KL at init is under the free nats
    space = search_space("RSSM")
    g = dict(zip(space.names, hypergradient(problem, space, run.config, [train_b], val_b).g))
    assert g["kl_scale"] == 0.0 and g["lr"] != 0.0


def test_validation_objective_does_not_depend_directly_on_a_coefficient():
    # at lr = 0 the lookahead does not move θ, so any ψ-dependence of L_val would be direct: there is none
    for model, extra in (("VICReg", {}), ("SimCLR", {}), ("RSSM", {"free_nats": 0.0})):
        run, problem, train_b, val_b = _float64_problem({**TINY, "model_type": model, "optimizer": "sgd", **extra})
        space = search_space(model)
        cfg = {**run.config, "lr": 1e-30}
        g = dict(zip(space.names, hypergradient(problem, space, cfg, [train_b], val_b).g))
        for name in space.names:
            if name not in ("lr",):
                assert abs(g[name]) < 1e-20, (model, name, g[name])


def test_warm_start_record_is_reported_and_the_optimizer_uses_x_prime():
    instr = make_instruction(search_space("VICReg"), WarmStartSettings(batch_size=8))
    (r,) = train_epochs({**TINY, "optimizer": "sgd", "lr": 0.05, "ohgw": instr}, 1)
    assert r["ohgw/x_prime/lr"] != r["ohgw/x/lr"] and r["ohgw/x_prime/var_coeff"] != r["ohgw/x/var_coeff"]
    assert r["hp/lr"] == r["ohgw/x_prime/lr"] and r["hp/var_coeff"] == r["ohgw/x_prime/var_coeff"]
    assert r["ws_compute_s"] > 0 and r["trial_epoch_equiv"] > 1


def test_workload_describes_each_model():
    for model, extra in (("VICReg", "var_coeff"), ("SimCLR", "temperature"), ("RSSM", "kl_scale")):
        w = workload(model)
        assert w.metric == METRIC == "val_rmse" and w.mode == "min" and w.space.names[:2] == ("lr", "wd")
        assert extra in w.space.names
        assert all(p.is_log for p in w.space.params)
    assert search_space("VICReg", "sgd").params[0].high == 0.3 > search_space("VICReg").params[0].high
    with pytest.raises(ValueError, match="model_type must be one of"):
        search_space("BYOL")


@pytest.mark.ray
def test_a_real_tuner_run_moves_lr_and_a_loss_coefficient(ray_local, tmp_path):
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    from ohgw import OHGW

    space = search_space("VICReg")
    sched = OHGW(ASHAScheduler(max_t=2, grace_period=1, reduction_factor=2), space, batch_size=8)
    tuner = tune.Tuner(
        tune.with_resources(train_jepa, {"cpu": 1}),
        param_space={**TINY, "max_t": 2, "optimizer": "sgd", "lr": tune.loguniform(1e-2, 1e-1),
                     "wd": 1e-5, "var_coeff": tune.loguniform(0.3, 3.0), "cov_coeff": 0.04,
                     "seed": tune.grid_search([0, 1])},
        # one trial at a time in one reused worker: one process imports torch, not two
        tune_config=tune.TuneConfig(metric=METRIC, mode="min", scheduler=sched, max_concurrent_trials=1,
                                    reuse_actors=True),
        run_config=tune.RunConfig(storage_path=str(tmp_path), name="jepa", verbose=0, callbacks=sched.callbacks()),
    )
    results = tuner.fit()
    assert not results.errors and len(results) == 2
    for result in results:
        df = result.metrics_dataframe
        first = df.iloc[0]
        for name in ("lr", "var_coeff"):
            x, xp = first[f"ohgw/x/{name}"], first[f"ohgw/x_prime/{name}"]
            assert math.isfinite(xp) and xp != x, (name, x, xp)
            assert first[f"hp/{name}"] == xp
        assert np.isfinite(df[METRIC]).all() and result.checkpoint is not None
