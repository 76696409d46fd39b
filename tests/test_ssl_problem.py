"""The SSL hyper-gradient problem: every ψ that claims a one-step signal matches central differences (float64, SiLU)."""

import math

import pytest
import torch

from ohgw.hypergrad import hypergradient, lookahead_val_loss
from ohgw.update_rules import Adam
from trainables.augment import sample_draws
from trainables.ssl import search_space
from trainables.ssl.config import resolve_config
from trainables.ssl.models import SSLNet
from trainables.ssl.problem import EMAAdam, make_problem


def _tiny(method, **over):
    torch.manual_seed(0)
    cfg = resolve_config({"method": method, "lr": 0.2, "wd": 1e-3, "ema_momentum": 0.9, "aug_strength": 0.6,
                          "tau": 4.0, "temperature": 0.3, **over})
    net = SSLNet(1, 8, method, "conv", 1, proj_hidden=16, proj_dim=8, activation="silu", conv_base=4).double()
    g = torch.Generator().manual_seed(1)

    def x(n):
        return torch.randn(n, 1, 8, 8, generator=g, dtype=torch.float64)

    if method == "simclr-temporal":
        train = (x(12), sample_draws(12, generator=g, dtype=torch.float64), 4)  # 4 windows × 3 frames
        val = (x(12), 4)
    else:
        dt = torch.tensor([0.0, 1.0, 2.0, 5.0, 8.0, 3.0], dtype=torch.float64)
        train = (x(6), x(6), dt, sample_draws(6, generator=g, dtype=torch.float64),
                 sample_draws(6, generator=g, dtype=torch.float64))
        val = (x(6), x(6))
    return cfg, net, train, val


@pytest.mark.parametrize("method, optimizer", [("byol", "sgd"), ("tw-byol", "sgd"), ("simclr-temporal", "sgd"),
                                               ("tw-byol", "adam"), ("simclr-temporal", "adam")])
def test_every_hypergradient_matches_central_differences(method, optimizer):
    cfg, net, train, val = _tiny(method, optimizer=optimizer, **({"lr": 3e-3} if optimizer == "adam" else {}))
    problem = make_problem(net, cfg)
    if optimizer == "adam":  # the lookahead unrolls the run's own optimizer: Adam, EMA target included for BYOL
        rule = problem.update_rule
        assert isinstance(rule.inner if method != "simclr-temporal" else rule, Adam)
        assert isinstance(rule, EMAAdam) == (method != "simclr-temporal")
    space = search_space(method)
    hg = hypergradient(problem, space, cfg, [train], val)
    u0 = torch.tensor(space.to_u(cfg), dtype=torch.float64)
    h = 1e-6 if optimizer == "adam" else 1e-5  # Adam's g/(|g| + eps) curves faster: a smaller step
    for i, name in enumerate(space.names):
        vals = []
        for s in (h, -h):
            u = u0.clone()
            u[i] += s
            vals.append(float(lookahead_val_loss(problem, space, u, cfg, [train], val)[0].detach()))
        fd = (vals[0] - vals[1]) / (2 * h)
        assert math.isfinite(hg.g[i]) and hg.g[i] != 0.0, name  # every ψ of the space claims a signal
        assert hg.g[i] == pytest.approx(fd, rel=1e-4, abs=1e-9), name


def test_the_model_is_left_untouched_and_the_validation_loss_ignores_tuned_loss_hps():
    cfg, net, train, val = _tiny("tw-byol")
    problem = make_problem(net, cfg)
    params = dict(net.named_parameters())

    def buffers():  # private copies: BatchNorm in training mode updates its running statistics in place
        return {k: b.clone() for k, b in net.named_buffers()}

    v = problem.val_loss(params, buffers(), val)
    # the validation objective is the same for any τ / strength / temperature: they are not its arguments
    cfg2 = {**cfg, "tau": 40.0, "aug_strength": 0.0, "weighting": "binary"}
    assert float(make_problem(net, cfg2).val_loss(params, buffers(), val).detach()) == float(v.detach())
    before = {k: t.clone() for k, t in net.state_dict().items()}
    hypergradient(problem, search_space("tw-byol"), cfg, [train], val)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


def test_binary_weighting_gives_tau_no_signal_and_zero_gap_still_steps():
    cfg, net, train, val = _tiny("tw-byol", weighting="binary")
    space = search_space("tw-byol")
    g = dict(zip(space.names, hypergradient(make_problem(net, cfg), space, cfg, [train], val).g))
    assert g["tau"] == 0.0 and g["lr"] != 0.0 and g["ema_gap"] != 0.0
