"""The linear BYOL toy (trainables/linear_byol): closed forms, Procrustes, the hyper-gradient, restore, the contract.

References are independent of the code under test: the Wiener predictor and the unrolled BYOL step
are written out again here in numpy / plain torch, and the hyper-gradient is checked against
central finite differences in float64.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ohgw import protocol
from ohgw.hypergrad import hypergradient
from ohgw.warmstart import WarmStartSettings, make_instruction
from trainables import scaffold
from trainables.linear_byol import METRIC, LinearBYOLRun, make_problem, search_space, train_epochs, workload
from trainables.linear_byol.data import LatentData
from trainables.linear_byol.metrics import procrustes, projection_distance, theory_metrics
from trainables.linear_byol.models import random_rotation


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread, as a Tune trial with 1 CPU runs (two spinning threads are slow on a shared CPU)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


SMALL = {"d_obs": 12, "d_latent": 3, "batch_size": 64, "samples_per_epoch": 256, "eval_samples": 512}


def _wiener_numpy(a: np.ndarray, b: np.ndarray, sigma: float) -> np.ndarray:
    """C_to C_oo⁻¹ for B = B_t from the population covariances, written out independently."""
    cxx = a @ a.T + sigma**2 * np.eye(a.shape[0])
    return (b @ a @ a.T @ b.T) @ np.linalg.inv(b @ cxx @ b.T)


def test_fixed_encoder_linear_predictor_converges_to_the_closed_form():
    enc_init = "pinv"  # the fixed encoder is R·A⁺ for a random rotation R: P* = R (AᵀA + σ²I)⁻¹AᵀA Rᵀ
    cfg = {"freeze_enc": True, "enc_init": enc_init, "d_obs": 8, "d_latent": 3,
           "batch_size": 8192, "samples_per_epoch": 8192 * 15, "lr_pred": 0.03, "dtype": "float64", "max_t": 10}
    run = LinearBYOLRun(cfg)
    for _ in range(10):
        run.train_epoch()
    m = run.trainer.model
    a, b, p = (t.detach().numpy() for t in (run.trainer.data.a, m.encoder.weight, m.predictor.weight))
    assert np.linalg.norm(p - _wiener_numpy(a, b, 0.5)) < 1e-2
    metrics = run.evaluate_epoch()
    assert metrics["W_Fro_current"] < -2
    if enc_init == "pinv":  # B = R·A⁺: the aligned error against the latent Wiener shrinkage is the same number
        p_star = np.linalg.solve(a.T @ a + 0.25 * np.eye(3), a.T @ a)
        omega = procrustes(m.encoder.weight.detach(), run.trainer.data.a_pinv).numpy()
        assert np.linalg.norm(omega @ p @ omega.T - p_star) < 1e-2
        assert metrics[METRIC] < -2 and metrics["BA_err_aligned"] < 1e-10 and metrics["enc_proj_dist"] < 1e-6


def test_procrustes_recovers_a_known_rotation_exactly():
    g = torch.Generator().manual_seed(7)
    data = LatentData.make(d_obs=30, d_latent=5, sigma_n=0.5, seed=3, dtype=torch.float64)
    r = random_rotation(5, g)
    assert torch.allclose(r @ r.T, torch.eye(5, dtype=torch.float64), atol=1e-12)
    for scale in (1.0, 0.3, 7.0):  # any scale: the polar factor of an SPD matrix times Rᵀ is Rᵀ
        b = scale * r @ data.a_pinv
        assert torch.allclose(procrustes(b, data.a_pinv), r.T, atol=1e-10)
    b = r @ data.a_pinv
    p = r @ data.p_star @ r.T  # the Wiener predictor expressed in the rotated embedding
    x1, _ = data.sample(256, g)
    out = theory_metrics(data, b, b, p, x1 @ b.T, x1 @ b.T @ p.T)
    assert out["W_Fro_aligned"] < -12 and out["BA_err_aligned"] < 1e-12 and out["enc_procrustes_fro"] < 1e-12
    assert out["W_Fro_current"] < -12 and out["W_rel_sv_err"] < 1e-12 and out["enc_proj_dist"] < 1e-6
    # the projection distance of orthogonal 1-d spans is 1, of equal spans 0
    e = torch.eye(4, dtype=torch.float64)
    assert projection_distance(e[:1], e[1:2]) == pytest.approx(1.0) and projection_distance(e[:2], 3 * e[:2]) < 1e-12


def _unrolled_val_loss(b0, p0, bt0, train, val, alpha, beta, tau):
    """One BYOL step written out (½·mean‖p − t‖², SGD, EMA after the step), then the val loss."""
    (x1, x2), (v1, v2) = train, val
    n = x1.shape[0]
    o = x1 @ b0.T
    r = o @ p0.T - x2 @ bt0.T
    g_p, g_b = r.T @ o / n, (r @ p0).T @ x1 / n
    p1, b1 = p0 - alpha * g_p, b0 - beta * g_b
    bt1 = bt0 + tau * (b1 - bt0)
    rv = v1 @ b1.T @ p1.T - v2 @ bt1.T
    return 0.5 * float((rv**2).sum(1).mean())


def test_hypergradient_of_alpha_beta_tau_matches_finite_differences_float64():
    cfg = {**SMALL, "dtype": "float64", "lr_pred": 0.2, "lr_enc": 0.1, "tau": 0.05}
    run = LinearBYOLRun(cfg)
    run.train_epoch()  # the target now differs from the encoder
    m = run.trainer.model
    b0, p0, bt0 = (w.detach().clone() for w in (m.encoder.weight, m.predictor.weight, m.target.weight))
    g = torch.Generator().manual_seed(11)
    train, val = run.trainer.data.sample(64, g), run.trainer.data.sample(64, g)
    space = search_space()
    hg = hypergradient(make_problem(m, run.config), space, run.config, [train], val)
    u0 = space.to_u(run.config)
    h = 1e-5
    fd = []
    for i in range(3):
        vals = []
        for sgn in (1, -1):
            u = u0.copy()
            u[i] += sgn * h
            a, b, t = (10.0 ** u[j] for j in range(3))  # space order: lr_pred, lr_enc, tau
            vals.append(_unrolled_val_loss(b0, p0, bt0, train, val, a, b, t))
        fd.append((vals[0] - vals[1]) / (2 * h))
    assert space.names == ("lr_pred", "lr_enc", "tau")
    assert hg.val_loss == pytest.approx(_unrolled_val_loss(b0, p0, bt0, train, val, 0.2, 0.1, 0.05), rel=1e-12)
    np.testing.assert_allclose(hg.g, fd, rtol=1e-6, atol=1e-10)
    assert all(abs(v) > 1e-6 for v in hg.g)  # every ψ gets a signal (τ through the EMA inside the step)
    # the model is untouched by the hyper-gradient
    assert torch.equal(m.encoder.weight, b0) and torch.equal(m.target.weight, bt0)


def test_scaffold_restore_is_exact(tmp_path):
    cfg = {**SMALL, "max_t": 6, "mom_pred": 0.5, "mom_enc": 0.3, "pred_update_every": 2, "auto_alpha_c": 0.5}
    straight = scaffold.run_epochs(LinearBYOLRun, cfg, 4)
    first = scaffold.run_epochs(LinearBYOLRun, cfg, 2, save_to=tmp_path)
    resumed = scaffold.run_epochs(LinearBYOLRun, cfg, 2, restore_from=tmp_path)
    keys = (METRIC, "W_Fro_current", "BA_err_aligned", protocol.VAL_LOSS, protocol.TRAIN_LOSS, "H_t", "alpha_t")
    assert [[r[k] for k in keys] for r in first + resumed] == [[r[k] for k in keys] for r in straight]
    assert [r[protocol.ITERATION] for r in resumed] == [3, 4]
    with pytest.raises(ValueError, match="has no linear_byol_state.pt"):
        LinearBYOLRun(cfg).load(str(tmp_path / "nowhere"))


def test_contract_divergence_and_the_warm_start():
    assert isinstance(LinearBYOLRun(SMALL), scaffold.Run)
    rows = train_epochs({**SMALL, "max_t": 3}, 3)
    for r in rows:
        assert set(r) >= {*protocol.CONTRACT_KEYS, METRIC, protocol.test_metric(METRIC), "erank_encoded", "H_t"}
        assert r[protocol.DIVERGED] is False and math.isfinite(r[METRIC])
    assert rows[0][protocol.hp_key("tau")] == pytest.approx(0.01)
    # a diverging α ends the trial cleanly, with the finite worst score
    bad = train_epochs({**SMALL, "max_t": 5, "lr_pred": 50.0, "lr_enc": 50.0}, 5)
    assert bad[-1][protocol.DIVERGED] is True and bad[-1][METRIC] == 10.0 and len(bad) < 5
    # warm-start: x′ moves, and its record comes with the first report
    instr = make_instruction(search_space(), WarmStartSettings(batch_size=64))
    ws = train_epochs({**SMALL, "max_t": 1, protocol.INSTRUCTION_KEY: instr}, 1)[0]
    g = {k: ws[protocol.G_PREFIX + k] for k in ("lr_pred", "lr_enc", "tau")}
    assert all(math.isfinite(v) and v != 0 for v in g.values())
    assert ws[protocol.hp_key("lr_pred")] != pytest.approx(0.05) or ws[protocol.hp_key("tau")] != pytest.approx(0.01)


def test_workload_and_bad_config():
    w = workload()
    assert (w.metric, w.mode, w.space.names) == (METRIC, "min", ("lr_pred", "lr_enc", "tau"))
    lo, hi = w.metric_range
    assert lo <= w.presets["cpu"]["tau"] <= hi
    for bad, match in [({"d_latent": 11, "d_obs": 10}, "d_latent"), ({"ema_m": 1.0}, "ema_m"),
                       ({"ema_m": -0.1}, "ema_m"), ({"lr_pred": 0.0}, "lr_pred"), ({"lr_enc": -1e-3}, "lr_enc"),
                       ({"tau": 0.0}, "tau"), ({"enc": "conv"}, "enc"), ({"ema_m": 0.9, "tau": 0.5}, "disagree")]:
        with pytest.raises(ValueError, match=match):
            LinearBYOLRun(bad)
