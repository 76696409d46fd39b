"""SSL losses against small references written here (loops, closed forms, hand-set numbers)."""

import math

import pytest
import torch
import torch.nn.functional as F

from trainables.ssl.losses import (
    WEIGHTINGS,
    byol_pair_loss,
    ema_momentum,
    ema_update,
    temporal_simclr_loss,
    tw_byol_loss,
    tw_weights,
    weighted_mean,
)


def nt_xent_reference(a: torch.Tensor, b: torch.Tensor, temperature: float) -> torch.Tensor:
    """SimCLR's NT-Xent (Chen et al. 2020, eq. 1) as a loop over the 2N anchors."""
    z = F.normalize(torch.cat([a, b]), dim=1)
    n = a.shape[0]
    total = 0.0
    for i in range(2 * n):
        j = (i + n) % (2 * n)
        sims = [math.exp(float(z[i] @ z[k]) / temperature) for k in range(2 * n) if k != i]
        total += -math.log(math.exp(float(z[i] @ z[j]) / temperature) / sum(sims))
    return torch.tensor(total / (2 * n), dtype=torch.float64)


def test_temporal_simclr_with_two_frames_is_nt_xent():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(5, 7, generator=g, dtype=torch.float64), torch.randn(5, 7, generator=g, dtype=torch.float64)
    z = torch.stack([a, b], dim=1)  # [B=5 windows, T=2, D]
    ref = nt_xent_reference(a, b, 0.3)
    for form in ("out", "in"):
        assert float(temporal_simclr_loss(z, 0.3, form)) == pytest.approx(float(ref), rel=1e-12)


def test_l_out_and_l_in_differ_for_three_frames_on_a_hand_made_example():
    # one window of 3 frames at angles 0°, 90°, 0° plus a second window; temperature 1
    e = torch.eye(2, dtype=torch.float64)
    z = torch.stack([torch.stack([e[0], e[1], e[0]]), torch.stack([-e[0], -e[1], -e[0]])])  # [2, 3, 2]
    out, inn = float(temporal_simclr_loss(z, 1.0, "out")), float(temporal_simclr_loss(z, 1.0, "in"))
    # anchor frame 0 of window 0: others have cos 0 (frame 1), 1 (frame 2), −1, 0, −1 (window 1)
    den = math.exp(0) + math.exp(1) + math.exp(-1) + math.exp(0) + math.exp(-1)
    p1, p2 = math.exp(0) / den, math.exp(1) / den
    l_out_a0 = -(math.log(p1) + math.log(p2)) / 2
    l_in_a0 = -math.log(p1 + p2)
    # anchor frame 1 (cos 0 to both positives; 0, −1, 0 to the negatives)
    den1 = 2 * math.exp(0) + math.exp(0) + math.exp(-1) + math.exp(0)
    q = math.exp(0) / den1
    l_out_a1, l_in_a1 = -math.log(q), -math.log(2 * q)
    # by symmetry: frames 0 and 2 alike, window 1 mirrors window 0
    assert out == pytest.approx((2 * l_out_a0 + l_out_a1) / 3, rel=1e-12)
    assert inn == pytest.approx((2 * l_in_a0 + l_in_a1) / 3, rel=1e-12)
    assert out > inn + 0.1


def test_byol_pair_loss_is_two_minus_two_cos_both_ways_with_stop_gradient():
    g = torch.Generator().manual_seed(1)
    p1, z2, p2, z1 = (torch.randn(4, 6, generator=g, dtype=torch.float64, requires_grad=True) for _ in range(4))
    got = byol_pair_loss(p1, z2, p2, z1)
    p1d, z2d, p2d, z1d = (t.detach() for t in (p1, z2, p2, z1))
    for i in range(4):
        cos_a = float(p1d[i] @ z2d[i]) / (float(p1d[i].norm()) * float(z2d[i].norm()))
        cos_b = float(p2d[i] @ z1d[i]) / (float(p2d[i].norm()) * float(z1d[i].norm()))
        assert float(got[i].detach()) == pytest.approx(4 - 2 * cos_a - 2 * cos_b, rel=1e-12)
    got.sum().backward()
    assert z1.grad is None and z2.grad is None and p1.grad is not None
    # without stop-gradient (the warm-start's validation loss) the target side gets a gradient
    q = torch.randn(4, 6, dtype=torch.float64, requires_grad=True)
    byol_pair_loss(p1, q, p2, z1, stop_gradient=False).sum().backward()
    assert q.grad is not None and float(q.grad.abs().sum()) > 0


def test_per_pair_weights_for_hand_set_distances():
    dt = torch.tensor([0.0, 5.0, 10.0, 20.0], dtype=torch.float64)
    tau = 10.0
    expected = {
        "exp": [1.0, math.exp(-0.5), math.exp(-1.0), math.exp(-2.0)],
        "uniform": [1.0, 1.0, 1.0, 1.0],
        "binary": [1.0, 1.0, 1.0, 0.0],
        "linear": [1.0, 0.5, 0.0, 0.0],
        "inverse_square": [1.0, 1 / 1.25, 0.5, 0.2],
    }
    assert set(expected) == set(WEIGHTINGS)
    for w, ref in expected.items():
        assert tw_weights(dt, tau, w).tolist() == pytest.approx(ref, rel=1e-12), w


def test_tw_byol_with_infinite_tau_is_temporal_byol():
    g = torch.Generator().manual_seed(2)
    p1, z2, p2, z1 = (torch.randn(8, 5, generator=g, dtype=torch.float64) for _ in range(4))
    dt = torch.tensor([0, 1, 2, 4, 8, 16, 3, 5], dtype=torch.float64)
    plain = float(tw_byol_loss(p1, z2, p2, z1, dt, weighting="uniform"))
    assert plain == pytest.approx(float(byol_pair_loss(p1, z2, p2, z1).mean()), rel=1e-15)
    for w in ("exp", "linear", "inverse_square", "binary"):
        for norm in ("none", "mean"):
            got = float(tw_byol_loss(p1, z2, p2, z1, dt, 1e12, w, norm))
            assert got == pytest.approx(plain, rel=1e-9), (w, norm)


def test_mean_normalisation_makes_the_loss_scale_independent_of_tau():
    loss = torch.tensor([0.5, 1.5, 2.0, 1.0], dtype=torch.float64)
    same_dt = torch.full((4,), 6.0, dtype=torch.float64)
    for tau in (1.0, 3.0, 30.0):
        w = tw_weights(same_dt, tau, "exp")
        assert float(weighted_mean(loss, w, "mean")) == pytest.approx(float(loss.mean()), rel=1e-12)
        # the published form shrinks with τ: exactly by the weight exp(−6/τ)
        assert float(weighted_mean(loss, w, "none")) == pytest.approx(float(loss.mean()) * math.exp(-6 / tau))
    # with mixed distances, "mean" is a convex combination of the per-pair losses at every τ
    dt = torch.tensor([0.0, 3.0, 9.0, 27.0], dtype=torch.float64)
    for tau in (0.5, 5.0, 50.0):
        v = float(weighted_mean(loss, tw_weights(dt, tau, "exp"), "mean"))
        assert float(loss.min()) <= v <= float(loss.max())
    # every weight 0: "mean" gives 0 (and no gradient), never NaN
    assert float(weighted_mean(loss, torch.zeros(4, dtype=torch.float64), "mean")) == 0.0


def test_ema_schedule_and_update():
    assert ema_momentum(0.99, 0, 100) == pytest.approx(0.99)
    assert ema_momentum(0.99, 100, 100) == pytest.approx(1.0)
    assert ema_momentum(0.99, 30, 100, "constant") == 0.99
    t, o = [torch.tensor([1.0, 2.0])], [torch.tensor([3.0, 6.0])]
    ema_update(t, o, 0.75)
    assert t[0].tolist() == [1.5, 3.0]


@pytest.mark.parametrize("call, match", [
    (lambda: tw_weights(torch.ones(2), 0.0), "tau must be a number > 0"),
    (lambda: tw_weights(torch.ones(2), -1.0, "linear"), "tau must be a number > 0"),
    (lambda: tw_weights(torch.ones(2), 1.0, "gaussian"), "weighting must be one of"),
    (lambda: temporal_simclr_loss(torch.randn(2, 3, 4), 0.0), "temperature must be a number > 0"),
    (lambda: temporal_simclr_loss(torch.randn(1, 3, 4), 0.1), r"z must be \[B >= 2"),
    (lambda: weighted_mean(torch.ones(2), torch.ones(2), "sum"), "weight_norm must be one of"),
    (lambda: ema_momentum(0.9, 1, 10, "linear"), "ema_schedule must be one of"),
])  # fmt: skip
def test_bad_loss_inputs_name_the_value(call, match):
    with pytest.raises(ValueError, match=match):
        call()
