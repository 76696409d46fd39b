"""One-shot hyper-gradients through an unrolled, differentiable optimizer step.

For search coordinates u of the continuous hyper-parameters ψ (see
:mod:`ohgw.space`), with θ₀ the model's current weights:

1. θₜ₊₁ = update(θₜ, ∇θ L_train(θₜ; B₁, ψ), ψ) for t = 0 … k−1 (``lookahead`` = k);
2. g = ∂ L_val(θ_k; B₂) / ∂u, with B₂ a different, clean, held-out batch.

The model is called functionally (:func:`torch.func.functional_call`) with
detached copies of its parameters and buffers, so its real weights and its
BatchNorm running statistics are never written: BatchNorm runs in training mode
(batch statistics) on private buffer copies. Second derivatives, needed for
loss hyper-parameters (label smoothing, augment magnitude) and for k ≥ 2, come
from ``create_graph=True``; for k = 1 with only optimizer hyper-parameters the
inner gradient is a constant and the cost is first-order.

The problem is model-agnostic: a trainable supplies its model, a train loss of
(params, buffers, batch, hp), a validation loss of (params, buffers, batch), an
update rule (:mod:`ohgw.update_rules`) and the names of the hyper-parameters its
train loss consumes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.func import functional_call

from .space import SearchSpace

Params = dict[str, torch.Tensor]


@dataclass
class HyperGradProblem:
    """What a trainable hands to the hyper-gradient engine.

    ``train_loss(params, buffers, batch, hp)`` and ``val_loss(params, buffers, batch)``
    must evaluate the model through :meth:`forward` (or ``functional_call`` on
    ``model``) with the given params and buffers. ``hp`` maps every hyper-parameter
    name to a 0-dim tensor (differentiable for the ones being tuned).
    """

    model: nn.Module
    train_loss: Callable[[Params, Params, Any, dict], torch.Tensor]
    val_loss: Callable[[Params, Params, Any], torch.Tensor]
    update_rule: Any
    loss_hyperparameters: tuple[str, ...] = field(default_factory=tuple)

    def forward(self, params: Params, buffers: Params, *args, **kwargs):
        return functional_call(self.model, (params, buffers), args, kwargs)

    @property
    def known_hyperparameters(self) -> tuple[str, ...]:
        return tuple(self.update_rule.hyperparameters) + tuple(self.loss_hyperparameters)

    def check_space(self, space: SearchSpace) -> None:
        known = set(self.known_hyperparameters)
        for name in space.names:
            if name not in known:
                raise ValueError(
                    f"unknown hyper-parameter {name!r}: neither the update rule "
                    f"{tuple(self.update_rule.hyperparameters)} nor the train loss "
                    f"{tuple(self.loss_hyperparameters)} uses it"
                )


@dataclass(frozen=True)
class HyperGradient:
    """g = ∂L_val/∂u per continuous hyper-parameter, plus the losses seen on the way."""

    g: np.ndarray
    val_loss: float
    train_losses: tuple[float, ...]

    @property
    def finite(self) -> bool:
        return bool(np.all(np.isfinite(self.g)) and np.isfinite(self.val_loss) and np.all(np.isfinite(self.train_losses)))


def _hyperparameters(
    problem: HyperGradProblem, space: SearchSpace, u: torch.Tensor, config: Mapping[str, float], like: torch.Tensor
) -> dict[str, torch.Tensor]:
    hp: dict[str, torch.Tensor] = {}
    for i, p in enumerate(space.params):
        hp[p.name] = torch.pow(10.0, u[i]) if p.is_log else u[i]
    for name in problem.known_hyperparameters:
        if name not in hp and name in config:
            hp[name] = torch.tensor(float(config[name]), dtype=like.dtype, device=like.device)
    return hp


def lookahead_val_loss(
    problem: HyperGradProblem,
    space: SearchSpace,
    u: torch.Tensor,
    config: Mapping[str, float],
    train_batches: Sequence,
    val_batch: Any,
    lookahead: int = 1,
) -> tuple[torch.Tensor, list[float]]:
    """L_val(θ_k(u)) as a differentiable function of u; the model itself is not modified."""
    if lookahead < 1:
        raise ValueError(f"lookahead must be ≥ 1, got {lookahead}")
    if not train_batches:
        raise ValueError("train_batches must hold at least one batch")
    model = problem.model
    params = {k: v.detach().requires_grad_(True) for k, v in model.named_parameters()}
    buffers = {k: v.detach().clone() for k, v in model.named_buffers()}
    like = next(iter(params.values()))
    hp = _hyperparameters(problem, space, u, config, like)
    loss_hps_tuned = any(n in problem.loss_hyperparameters for n in space.names)
    create_graph = lookahead > 1 or loss_hps_tuned
    rule = problem.update_rule
    state = rule.init_state(params)
    train_losses: list[float] = []
    was_training = model.training
    model.train()
    try:
        for t in range(lookahead):
            batch = train_batches[t % len(train_batches)]
            loss = problem.train_loss(params, buffers, batch, hp)
            train_losses.append(float(loss.detach()))
            names = list(params)
            grads = torch.autograd.grad(
                loss, [params[n] for n in names], create_graph=create_graph, allow_unused=True, materialize_grads=True
            )
            params, state = rule.step(params, dict(zip(names, grads)), state, hp)
        val = problem.val_loss(params, buffers, val_batch)
    finally:
        model.train(was_training)
    return val, train_losses


def hypergradient(
    problem: HyperGradProblem,
    space: SearchSpace,
    config: Mapping[str, float],
    train_batches: Sequence,
    val_batch: Any,
    lookahead: int = 1,
) -> HyperGradient:
    """∂L_val(θ_k)/∂u for every continuous hyper-parameter of ``space`` at ``config``."""
    problem.check_space(space)
    like = next(problem.model.parameters())
    u = torch.tensor(space.to_u(config), dtype=like.dtype, device=like.device, requires_grad=True)
    val, train_losses = lookahead_val_loss(problem, space, u, config, train_batches, val_batch, lookahead)
    if not torch.isfinite(val):
        g = np.full(len(space), np.nan)
    else:
        (gu,) = torch.autograd.grad(val, [u], allow_unused=True, materialize_grads=True)
        g = gu.detach().double().cpu().numpy()
    return HyperGradient(g=g, val_loss=float(val.detach()), train_losses=tuple(train_losses))
