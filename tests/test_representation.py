"""Shared SSL losses and metrics against references written here (loops, hand-computed numbers)."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from trainables.representation import (
    effective_rank,
    info_nce,
    knn_predict,
    ridge_fit,
    ridge_predict,
    vicreg_covariance,
    vicreg_variance,
)


def _nt_xent_reference(a, b, t):
    """SimCLR's NT-Xent written as in the paper: 2N views, loss over every ordered positive pair."""
    z = F.normalize(torch.cat([a, b]), dim=1)
    n = a.shape[0]
    total = 0.0
    for i in range(2 * n):
        j = (i + n) % (2 * n)
        denom = sum(math.exp(float(z[i] @ z[k]) / t) for k in range(2 * n) if k != i)
        total += -math.log(math.exp(float(z[i] @ z[j]) / t) / denom)
    return total / (2 * n)


def test_info_nce_two_views_is_nt_xent_in_both_forms():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(5, 7, generator=g, dtype=torch.float64), torch.randn(5, 7, generator=g, dtype=torch.float64)
    groups = torch.arange(5).repeat(2)
    ref = _nt_xent_reference(a, b, 0.3)
    for form in ("out", "in"):
        assert float(info_nce(torch.cat([a, b]), groups, 0.3, form)) == pytest.approx(ref, rel=1e-12)


def test_info_nce_hand_computed_two_by_two():
    # two anchors in one group at 90°: s = cos = 0, one positive and no negative → p = 1, loss 0;
    # add a negative pair at 0° to anchor 0: logits 0 (pos) and 1/T (neg)
    z = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]], dtype=torch.float64)
    groups = torch.tensor([0, 0, 1])
    t = 0.5
    # anchor 0: pos 1 (cos 0), neg 2 (cos 1); anchor 1: pos 0 (cos 0), neg 2 (cos 0); anchor 2 has no positive
    l0 = -math.log(1 / (1 + math.exp(2.0)))
    l1 = -math.log(1 / 2)
    assert float(info_nce(z, groups, t)) == pytest.approx((l0 + l1) / 2, rel=1e-12)


def test_info_nce_forms_differ_with_three_positives():
    g = torch.Generator().manual_seed(1)
    z = torch.randn(6, 4, generator=g, dtype=torch.float64)
    groups = torch.tensor([0, 0, 0, 1, 1, 1])
    out, inn = float(info_nce(z, groups, 0.5, "out")), float(info_nce(z, groups, 0.5, "in"))
    assert inn < out  # −log Σp ≤ mean(−log p) by Jensen, strictly unless all p are equal
    # reference for L_in, anchor by anchor
    zn = F.normalize(z, dim=1)
    ref = 0.0
    for i in range(6):
        logits = {k: float(zn[i] @ zn[k]) / 0.5 for k in range(6) if k != i}
        lse = math.log(sum(math.exp(v) for v in logits.values()))
        ref += -math.log(sum(math.exp(logits[k] - lse) for k in range(6) if k != i and groups[k] == groups[i]))
    assert inn == pytest.approx(ref / 6, rel=1e-12)


@pytest.mark.parametrize("bad", [dict(temperature=0.0), dict(form="mean")])
def test_info_nce_bad_input_names_the_argument(bad):
    args = dict(z=torch.randn(4, 2), groups=torch.tensor([0, 0, 1, 1]), temperature=0.1, form="out") | bad
    with pytest.raises(ValueError, match=next(iter(bad))):
        info_nce(**args)


def test_vicreg_terms_on_hand_made_tensors():
    # two dimensions: the first has std 2 (no hinge), the second std 0 (hinge 1 − sqrt(eps))
    z = torch.tensor([[0.0, 3.0], [2.0, 3.0], [4.0, 3.0]], dtype=torch.float64)
    assert float(vicreg_variance(z, eps=0.0)) == pytest.approx((0.0 + 1.0) / 2)
    # perfectly correlated columns: cov = [[1, 1], [1, 1]] → off-diagonal squares 2, / D=2 → 1
    z = torch.tensor([[-1.0, -1.0], [0.0, 0.0], [1.0, 1.0]], dtype=torch.float64)
    assert float(vicreg_covariance(z)) == pytest.approx(1.0)
    ref = np.cov(z.numpy(), rowvar=False)
    assert float(vicreg_covariance(z)) == pytest.approx(((ref**2).sum() - (np.diag(ref) ** 2).sum()) / 2)


def test_effective_rank_tracks_the_spectrum():
    g = torch.Generator().manual_seed(0)
    iso = torch.randn(2000, 8, generator=g)
    assert effective_rank(iso) > 7.5
    assert effective_rank(iso @ torch.diag(torch.tensor([1.0] + [1e-6] * 7))) < 1.01
    assert effective_rank(torch.zeros(5, 3)) == 1.0


def test_ridge_matches_numpy_lstsq_and_recovers_a_linear_map():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 5, generator=g, dtype=torch.float64)
    w_true = torch.randn(5, 2, generator=g, dtype=torch.float64)
    y = x @ w_true + 3.0
    w, b = ridge_fit(x, y, 0.0)
    assert torch.allclose(w, w_true, atol=1e-10) and torch.allclose(b, torch.full((2,), 3.0, dtype=torch.float64))
    lam = 10.0
    w, b = ridge_fit(x, y, lam)
    xc, yc = (x - x.mean(0)).numpy(), (y - y.mean(0)).numpy()
    ref = np.linalg.solve(xc.T @ xc + lam * np.eye(5), xc.T @ yc)
    assert np.allclose(w.numpy(), ref)
    assert ridge_predict(x, (w, b)).shape == (200, 2)


def test_knn_weighted_votes():
    train = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]])
    labels = torch.tensor([0, 0, 1])
    test = torch.tensor([[1.0, 0.05], [0.05, 1.0]])
    assert knn_predict(train, labels, test, num_classes=2, k=20).tolist() == [0, 1]
    # k=1 takes the nearest only
    assert knn_predict(train, labels, torch.tensor([[0.2, 1.0]]), num_classes=2, k=1).tolist() == [1]


def test_knn_at_a_low_temperature_matches_a_float64_reference():
    # T = 0.005: exp(sim / T) reaches e^200, inf in float32; the votes must still pick the float64 reference's labels
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(5, 16, generator=g)
    train_y = torch.arange(300) % 5
    train = centres[train_y] + 0.8 * torch.randn(300, 16, generator=g)
    test = centres[torch.arange(120) % 5] + 0.8 * torch.randn(120, 16, generator=g)
    t, k = 0.005, 20
    bank = torch.nn.functional.normalize(train.double(), dim=1)
    sim, idx = (torch.nn.functional.normalize(test.double(), dim=1) @ bank.T).topk(k, dim=1)
    ref = torch.zeros(120, 5, dtype=torch.float64).scatter_add_(1, train_y[idx], torch.exp(sim / t)).argmax(1)
    assert torch.isfinite(torch.exp(sim / t)).all()  # the reference itself is exact in float64
    got = knn_predict(train, train_y, test, num_classes=5, k=k, temperature=t)
    assert got.tolist() == ref.tolist()
    assert (ref != torch.arange(120) % 5).float().mean() < 0.5  # and the reference is a sensible classifier


def test_logistic_probe_is_plain_sgd_on_cross_entropy_and_separates_blobs():
    from trainables.representation import logistic_fit, logistic_predict

    g = torch.Generator().manual_seed(3)
    y = torch.arange(90) % 3
    x = 3 * torch.eye(3)[y] @ torch.randn(3, 6, generator=g) + 0.3 * torch.randn(90, 6, generator=g)
    w, b = logistic_fit(x, y, 3, epochs=20, lr=0.1, batch_size=32, seed=5)
    # reference: torch.nn.Linear from zero, torch.optim.SGD, the same shuffled batches
    lin = torch.nn.Linear(6, 3)
    torch.nn.init.zeros_(lin.weight)
    torch.nn.init.zeros_(lin.bias)
    opt = torch.optim.SGD(lin.parameters(), lr=0.1)
    gen = torch.Generator().manual_seed(5)
    for _ in range(20):
        order = torch.randperm(90, generator=gen)
        for start in range(0, 90, 32):
            rows = order[start:start + 32]
            opt.zero_grad()
            torch.nn.functional.cross_entropy(lin(x[rows]), y[rows]).backward()
            opt.step()
    torch.testing.assert_close(w, lin.weight.detach().T, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(b, lin.bias.detach(), rtol=1e-5, atol=1e-6)
    assert (logistic_predict(x, (w, b)).argmax(1) == y).float().mean() > 0.95
    with pytest.raises(ValueError, match="epochs must be an integer >= 1"):
        logistic_fit(x, y, 3, epochs=0)
