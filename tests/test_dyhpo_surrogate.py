"""DyHPO's surrogate and acquisition: exact-GP closed form, marginal-likelihood training, EI ranking."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import multivariate_normal, norm

from ohgw.dyhpo import acquisition, gp
from ohgw.dyhpo.surrogate import DeepKernelSurrogate, Observations


@pytest.fixture(autouse=True)
def one_torch_thread():
    """One thread, as DyHPO fits inside the Tune driver (and no spinning OpenMP threads on a shared CPU)."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


HP = {"lengthscale": 0.3, "outputscale": 1.5, "noise": 0.05, "mean": 0.2}


def np_kernel(a: np.ndarray, b: np.ndarray, name: str) -> np.ndarray:
    """Independent numpy kernels on 1-D inputs."""
    r = np.abs(a[:, None] - b[None, :]) / HP["lengthscale"]
    if name == "rbf":
        k = np.exp(-0.5 * r**2)
    elif name == "matern32":
        k = (1 + math.sqrt(3) * r) * np.exp(-math.sqrt(3) * r)
    else:
        k = (1 + math.sqrt(5) * r + 5 * r**2 / 3) * np.exp(-math.sqrt(5) * r)
    return HP["outputscale"] * k


def toy():
    rng = np.random.default_rng(0)
    x = np.sort(rng.uniform(0, 1, 9))
    y = np.sin(6 * x) + 0.1 * rng.standard_normal(9)
    xs = np.linspace(-0.2, 1.2, 15)
    return x, y, xs


def closed_form(x, y, xs, name):
    k = np_kernel(x, x, name) + HP["noise"] * np.eye(len(x))
    ks = np_kernel(x, xs, name)
    mean = HP["mean"] + ks.T @ np.linalg.solve(k, y - HP["mean"])
    var = HP["outputscale"] - np.einsum("ij,ij->j", ks, np.linalg.solve(k, ks))
    return mean, var


@pytest.mark.parametrize("name", gp.KERNELS)
def test_feature_free_surrogate_equals_closed_form_exact_gp(name):
    x, y, xs = toy()
    s = DeepKernelSurrogate(n_config=1, curve_len=4, kernel=name, features=False, normalize=False)
    s.hp = gp.GPParams.initial(**HP)
    assert s.hp.values() == pytest.approx(HP, rel=1e-12)
    train = Observations(x[:, None], np.ones(len(x)), np.full((len(x), 4), np.nan), y)
    query = Observations(xs[:, None], np.ones(len(xs)), np.full((len(xs), 4), np.nan))
    mean, std = s.predict(train, query)
    ref_mean, ref_var = closed_form(x, y, xs, name)
    # JITTER (1e-8) is added to the diagonal of K in the torch path only
    np.testing.assert_allclose(mean, ref_mean, atol=1e-6)
    np.testing.assert_allclose(std**2, ref_var + HP["noise"], atol=1e-6)
    # latent variance straight from the GP module
    t = lambda a: torch.as_tensor(a, dtype=torch.float64)[:, None]  # noqa: E731
    m2, v2 = gp.posterior(t(x), t(y)[:, 0], t(xs), s.hp, name)
    np.testing.assert_allclose(m2.numpy(), ref_mean, atol=1e-6)
    np.testing.assert_allclose(v2.numpy(), ref_var, atol=1e-6)


def test_nll_is_the_closed_form_gaussian_log_likelihood():
    x, y, _ = toy()
    hp = gp.GPParams.initial(**HP)
    t = torch.as_tensor(x, dtype=torch.float64)[:, None]
    nll = float(gp.neg_log_marginal_likelihood(t, torch.as_tensor(y), hp, "matern52"))
    cov = np_kernel(x, x, "matern52") + (HP["noise"] + gp.JITTER) * np.eye(len(x))
    ref = -multivariate_normal(mean=np.full(len(x), HP["mean"]), cov=cov).logpdf(y) / len(x)
    assert nll == pytest.approx(ref, abs=1e-9)


def curves_data(n_configs=8, epochs=6, seed=0):
    """Hand-made learning curves: config x in [0,1]^2; asymptote peaks at x = (0.7, 0.3)."""
    rng = np.random.default_rng(seed)
    xs = rng.uniform(0, 1, (n_configs, 2))
    top = 0.9 - 0.8 * ((xs[:, 0] - 0.7) ** 2 + (xs[:, 1] - 0.3) ** 2)
    rows = []
    for i in range(n_configs):
        c = [top[i] * (1 - math.exp(-e / 2)) for e in range(1, epochs + 1)]
        for e in range(1, epochs + 1):
            rows.append((xs[i], e, c[: e - 1], c[e - 1]))
    return rows, xs, top


def as_obs(rows, max_t):
    curves = np.full((len(rows), max_t - 1), np.nan)
    for j, (_, _, p, _) in enumerate(rows):
        curves[j, : len(p)] = p
    return Observations(np.stack([r[0] for r in rows]), np.array([r[1] for r in rows], float) / max_t, curves,
                        np.array([r[3] for r in rows]))


@pytest.mark.parametrize("features", [True, False])
def test_marginal_likelihood_training_lowers_the_nll(features):
    rows, _, _ = curves_data()
    obs = as_obs(rows, max_t=10)
    s = DeepKernelSurrogate(n_config=2, curve_len=9, features=features, seed=1)
    first = s.fit(obs, steps=60)
    assert not first.failed and first.n == len(rows)
    assert first.nll_after < first.nll_before - 0.3
    assert s.nll(obs) == pytest.approx(first.nll_after)
    again = s.fit(obs, steps=20)  # warm-started: continues from where the first fit ended
    assert again.nll_before == pytest.approx(first.nll_after, abs=1e-9)
    assert again.nll_after <= again.nll_before


def test_state_round_trip_predicts_identically():
    rows, _, _ = curves_data()
    obs = as_obs(rows, max_t=10)
    s = DeepKernelSurrogate(n_config=2, curve_len=9, kernel="matern52", seed=2)
    s.fit(obs, steps=10)
    t = DeepKernelSurrogate(n_config=2, curve_len=9, kernel="matern52", seed=99)
    t.set_state(s.get_state())
    np.testing.assert_array_equal(s.predict(obs, obs)[0], t.predict(obs, obs)[0])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_acquisition_ranks_the_clearly_best_config_first_after_a_few_observations(seed):
    """Five configs observed for 3 epochs; the one whose curve is highest from epoch 2 on must have the
    best EI at epoch 4, although at epoch 1 another one is ahead (a fast starter with a low plateau)."""
    max_t = 10
    xs = np.array([[0.1, 0.9], [0.3, 0.5], [0.5, 0.5], [0.7, 0.3], [0.9, 0.1]])
    tops = np.array([0.45, 0.55, 0.6, 0.92, 0.5])
    rates = np.array([1.0, 1.0, 0.3, 1.5, 1.0])  # the best one rises more slowly than config 2
    curves = [[tops[i] * (1 - math.exp(-e / rates[i])) for e in range(1, 4)] for i in range(5)]
    assert int(np.argmax([c[0] for c in curves])) == 2 and int(np.argmax([c[1] for c in curves])) == 3
    rows = [(xs[i], e, curves[i][: e - 1], curves[i][e - 1]) for i in range(5) for e in range(1, 4)]
    s = DeepKernelSurrogate(n_config=2, curve_len=max_t - 1, seed=seed)
    s.fit(as_obs(rows, max_t), steps=200)
    query_rows = [(xs[i], 4, curves[i], 0.0) for i in range(5)]
    q = as_obs(query_rows, max_t)
    mean, std = s.predict(as_obs(rows, max_t), Observations(q.x, q.budget, q.curves))
    order = acquisition.rank(mean, std, [4] * 5, curves)
    assert order[0] == 3


def test_expected_improvement_matches_its_formula_and_best_at_budget():
    mean, std, best = np.array([0.2, 0.5, 0.9]), np.array([0.1, 0.0, 0.3]), 0.5
    z = (mean - best) / np.where(std > 0, std, 1)
    ref = np.where(std > 0, (mean - best) * norm.cdf(z) + std * norm.pdf(z), 0.0)
    np.testing.assert_allclose(acquisition.expected_improvement(mean, std, best), ref, rtol=1e-12)
    curves = [[0.1, 0.4, 0.7], [0.3, 0.2], [0.5, float("nan")], []]
    assert acquisition.best_at_budget(curves, 1) == 0.5
    assert acquisition.best_at_budget(curves, 2) == 0.4  # NaN ignored
    assert acquisition.best_at_budget(curves, 4) == 0.7  # nobody there: best anywhere
    assert acquisition.best_at_budget([[], []], 1) is None
    # no score anywhere: every candidate gets EI = inf, order by index
    assert acquisition.rank(np.zeros(3), np.ones(3), [1, 1, 1], [[]]).tolist() == [0, 1, 2]


def test_bad_surrogate_inputs_name_the_argument():
    with pytest.raises(ValueError, match="kernel"):
        DeepKernelSurrogate(n_config=1, curve_len=3, kernel="cosine")
    with pytest.raises(ValueError, match="n_config"):
        DeepKernelSurrogate(n_config=0, curve_len=3)
    s = DeepKernelSurrogate(n_config=1, curve_len=3)
    with pytest.raises(ValueError, match="obs"):
        s.fit(Observations(np.zeros((1, 1)), np.ones(1), np.zeros((1, 3)), np.zeros(1)), steps=3)
