"""The hyper-gradient engine against finite differences and a closed-form optimum."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from ohgw.hypergrad import HyperGradProblem, hypergradient, lookahead_val_loss
from ohgw.space import SearchSpace
from ohgw.update_rules import SGD, AdamW

from hg_problems import CONFIG, classification_problem

SPACE = SearchSpace.default()


def _finite_differences(problem, space, config, train_batch, val_batch, lookahead, h=1e-5):
    u0 = space.to_u(config)
    out = []
    for i in range(len(space)):
        vals = []
        for sign in (1, -1):
            u = u0.copy()
            u[i] += sign * h
            loss, _ = lookahead_val_loss(problem, space, torch.tensor(u), config, [train_batch], val_batch, lookahead)
            vals.append(float(loss.detach()))
        out.append((vals[0] - vals[1]) / (2 * h))
    return np.array(out)


# AdamW's step g/(|g|+eps) bends sharply where |g| ~ eps; a larger eps keeps the function smooth enough
# for central differences to be exact to 1e-5 (the engine itself is exact for any eps).
RULES = {"sgd": SGD(), "nesterov": SGD(nesterov=True), "adamw": AdamW(eps=1e-3)}


@pytest.mark.parametrize("rule_name", list(RULES))
@pytest.mark.parametrize("lookahead", [1, 2])
def test_matches_central_finite_differences(rule_name, lookahead):
    problem, tb, vb = classification_problem(RULES[rule_name])
    hg = hypergradient(problem, SPACE, CONFIG, [tb], vb, lookahead)
    fd = _finite_differences(problem, SPACE, CONFIG, tb, vb, lookahead)
    assert hg.finite
    for name, a, b in zip(SPACE.names, hg.g, fd):
        if abs(b) < 1e-9:  # zero up to finite-difference round-off (momentum after one plain step)
            assert abs(a) < 1e-9, (name, a, b)
        else:
            assert abs(a - b) / abs(b) <= 1e-5, (name, a, b)


def test_momentum_zero_after_one_sgd_step_nonzero_after_two():
    problem, tb, vb = classification_problem(SGD())
    i = SPACE.names.index("momentum")
    assert hypergradient(problem, SPACE, CONFIG, [tb], vb, 1).g[i] == 0.0
    assert abs(hypergradient(problem, SPACE, CONFIG, [tb], vb, 2).g[i]) > 1e-4
    # Nesterov makes the first step depend on momentum.
    problem_n, tb, vb = classification_problem(SGD(nesterov=True))
    assert abs(hypergradient(problem_n, SPACE, CONFIG, [tb], vb, 1).g[i]) > 1e-4


def test_label_smoothing_and_augmentation_are_not_silently_zero():
    """float32, like training; F.cross_entropy(label_smoothing=float) would give exactly 0 here."""
    problem, tb, vb = classification_problem(SGD(nesterov=True), dtype=torch.float32)
    hg = hypergradient(problem, SPACE, CONFIG, [tb], vb, 1)
    for name in ("label_smoothing", "aug_magnitude", "lr", "wd"):
        assert abs(hg.g[SPACE.names.index(name)]) > 1e-6, name

    # the pitfall itself: label smoothing through PyTorch's float argument has no gradient
    model = problem.model

    def naive_loss(params, buffers, batch, hp):
        x, y = batch
        logits = torch.func.functional_call(model, (params, buffers), (x,))
        return nn.functional.cross_entropy(logits, y, label_smoothing=float(hp["label_smoothing"].detach()))

    naive = HyperGradProblem(model, naive_loss, problem.val_loss, problem.update_rule, ("label_smoothing",))
    space = SearchSpace.from_bounds({"label_smoothing": (0.0, 0.3, "identity")})
    assert hypergradient(naive, space, CONFIG, [tb], vb, 1).g[0] == 0.0


def test_model_parameters_and_batchnorm_buffers_bit_identical():
    problem, tb, vb = classification_problem(AdamW(), dtype=torch.float32)
    model = problem.model
    model.eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    hypergradient(problem, SPACE, CONFIG, [tb], vb, 2)
    after = model.state_dict()
    assert set(before) == set(after)
    for k in before:
        assert torch.equal(before[k], after[k]), k
    assert not model.training  # mode restored
    assert all(p.grad is None for p in model.parameters())


def _ridge(n=64, d=4, seed=0):
    """Orthogonal designs with XᵀX/n = I for train and val: the val-optimal wd is known in closed form."""
    rng = np.random.default_rng(seed)
    q_t, _ = np.linalg.qr(rng.standard_normal((n, d)))
    q_v, _ = np.linalg.qr(rng.standard_normal((n, d)))
    X_t, X_v = q_t * math.sqrt(n), q_v * math.sqrt(n)
    w_true = rng.standard_normal(d)
    y_t = X_t @ w_true + 0.5 * rng.standard_normal(n)
    y_v = X_v @ (0.6 * w_true) + 0.1 * rng.standard_normal(n)
    b = X_t.T @ y_t / n
    c = X_v.T @ y_v / n
    wd_star = float(b @ b / (b @ c) - 1.0)  # argmin over wd of L_val(θ*(wd)), θ*(wd) = b/(1+wd)
    return X_t, y_t, X_v, y_v, b, wd_star


def test_weight_decay_hypergradient_points_to_closed_form_optimum():
    X_t, y_t, X_v, y_v, b, wd_star = _ridge()
    assert 1e-3 < wd_star < 10
    T = lambda a: torch.tensor(a, dtype=torch.float64)  # noqa: E731
    model = nn.Linear(X_t.shape[1], 1, bias=False).double()

    def mse(params, buffers, batch, hp=None):
        x, y = batch
        return 0.5 * ((torch.func.functional_call(model, (params, buffers), (x,)).squeeze(-1) - y) ** 2).mean()

    problem = HyperGradProblem(model, mse, mse, SGD())
    space = SearchSpace.from_bounds({"wd": (1e-4, 100.0, "log10")})
    for factor, expected_sign in ((0.1, -1.0), (0.5, -1.0), (2.0, 1.0), (10.0, 1.0)):
        wd = wd_star * factor
        with torch.no_grad():  # warm model: trained to convergence at this wd
            model.weight.copy_(T(b / (1 + wd)).unsqueeze(0))
        g = hypergradient(problem, space, {"wd": wd, "lr": 0.1}, [(T(X_t), T(y_t))], (T(X_v), T(y_v))).g[0]
        # a descent step u ← u − η g moves wd toward wd* from both sides
        assert np.sign(g) == expected_sign, (factor, g)


def test_unknown_hyperparameter_is_rejected():
    problem, tb, vb = classification_problem(SGD())
    space = SearchSpace.from_bounds({"temperature": (0.1, 1.0)}, transforms={"temperature": "identity"})
    with pytest.raises(ValueError, match="unknown hyper-parameter 'temperature'"):
        hypergradient(problem, space, {"temperature": 0.5}, [tb], vb)
