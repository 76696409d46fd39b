"""The differentiable update rules reproduce torch.optim exactly."""

import pytest
import torch

from ohgw.update_rules import SGD, Adam, AdamW, from_name


def _run_reference(opt_cls, kwargs, params0, grads_seq):
    ps = [p.clone().requires_grad_(True) for p in params0]
    opt = opt_cls(ps, **kwargs)
    for grads in grads_seq:
        for p, g in zip(ps, grads):
            p.grad = g.clone()
        opt.step()
    return [p.detach() for p in ps]


def _run_ours(rule, hp, params0, grads_seq):
    params = {str(i): p.clone() for i, p in enumerate(params0)}
    state = rule.init_state(params)
    for grads in grads_seq:
        params, state = rule.step(params, {str(i): g for i, g in enumerate(grads)}, state, hp)
    return [params[str(i)] for i in range(len(params0))]


@pytest.mark.parametrize("nesterov", [False, True])
def test_sgd_matches_torch(nesterov):
    torch.manual_seed(0)
    p0 = [torch.randn(3, 4, dtype=torch.float64), torch.randn(5, dtype=torch.float64)]
    grads = [[torch.randn_like(p) for p in p0] for _ in range(3)]
    ref = _run_reference(torch.optim.SGD, dict(lr=0.1, momentum=0.9, weight_decay=1e-2, nesterov=nesterov), p0, grads)
    hp = {k: torch.tensor(v, dtype=torch.float64) for k, v in dict(lr=0.1, momentum=0.9, wd=1e-2).items()}
    ours = _run_ours(SGD(nesterov=nesterov), hp, p0, grads)
    for a, b in zip(ours, ref):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_adamw_matches_torch():
    torch.manual_seed(1)
    p0 = [torch.randn(3, 4, dtype=torch.float64), torch.randn(5, dtype=torch.float64)]
    grads = [[torch.randn_like(p) for p in p0] for _ in range(3)]
    ref = _run_reference(torch.optim.AdamW, dict(lr=1e-2, betas=(0.8, 0.999), weight_decay=0.05, eps=1e-8), p0, grads)
    hp = {k: torch.tensor(v, dtype=torch.float64) for k, v in dict(lr=1e-2, momentum=0.8, wd=0.05).items()}
    ours = _run_ours(AdamW(), hp, p0, grads)
    for a, b in zip(ours, ref):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_adam_with_coupled_weight_decay_matches_torch():
    torch.manual_seed(2)
    p0 = [torch.randn(3, 4, dtype=torch.float64), torch.randn(5, dtype=torch.float64)]
    grads = [[torch.randn_like(p) for p in p0] for _ in range(3)]
    ref = _run_reference(torch.optim.Adam, dict(lr=3e-4, betas=(0.9, 0.999), weight_decay=0.3, eps=1e-8), p0, grads)
    hp = {k: torch.tensor(v, dtype=torch.float64) for k, v in dict(lr=3e-4, momentum=0.9, wd=0.3).items()}
    ours = _run_ours(Adam(), hp, p0, grads)
    for a, b in zip(ours, ref):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    # and it is not AdamW: the decay goes through the moments
    other = _run_ours(AdamW(), hp, p0, grads)
    assert not torch.allclose(other[0], ref[0], rtol=1e-6, atol=0)


def test_from_name():
    assert isinstance(from_name("adam"), Adam) and from_name("adam").wd == 0.0
    assert from_name("nesterov") == SGD(nesterov=True)
    assert isinstance(from_name("AdamW"), AdamW)
    with pytest.raises(ValueError, match="update rule must be"):
        from_name("rmsprop")
