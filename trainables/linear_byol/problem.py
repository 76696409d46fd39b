"""The toy's hyper-gradient problem: ψ = (log α, log β, log τ) through one unrolled BYOL step.

The engine (:mod:`ohgw.hypergrad`) differentiates L_val(θ₁(ψ)) where θ = (encoder B, predictor P,
target B_t) and θ₁ is one step of :class:`BYOLStep` from θ₀ on a training pair of views:

    P₁ = P₀ − α ∇_P L,   B₁ = B₀ − β ∇_B L,   B_t1 = B_t0 + τ (B₁ − B_t0)

(momentum: a first update has b = ∇, so one step does not depend on μ). The validation loss is the
*same* MSE, ½·mean‖P₁ f_B₁(x₁′) − f_{B_t1}(x₂′)‖², on a fresh pair of views (x₁′, x₂′) — the EMA
update is inside the unrolled step, so τ gets a signal. What each ψ (log10 coordinates) receives:

- **log α**: −α ln10 ⟨∇_P L_val(θ₁), ∇_P L(θ₀)⟩ — the predictor's first-order path only;
- **log β**: −β ln10 ⟨∇_B L_val(θ₁) + τ ∇_{B_t} L_val(θ₁), ∇_B L(θ₀)⟩ — the encoder path, plus the
  target's share of it (the EMA copies τ of the encoder's move into the target);
- **log τ**: τ ln10 ⟨∇_{B_t} L_val(θ₁), B₁ − B_t0⟩ — the target path only. From a fresh start the
  target equals the encoder, so B₁ − B_t0 = −β∇_B L(θ₀): τ's signal is as large as the encoder's move,
  and 0 with a frozen encoder.

With the auto schedule (``auto_alpha_c`` > 0) α = c_α·τ/H is not a free parameter: H (the top
eigenvalue of the training batch's C_oo at θ₀) is held constant, log α then receives 0 and log τ
also gets α's path (likewise β with ``auto_beta_c``). Update-every-k is honoured at the step the
unroll starts from (a fresh trial: step 0, both groups update).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch.func import functional_call

from ohgw.hypergrad import HyperGradProblem

from .models import BYOLToy, byol_mse

TUNED = ("lr_pred", "lr_enc", "tau")  # the config keys of α, β, τ (search coordinates: log10)


@dataclass(frozen=True)
class BYOLStep:
    """A differentiable BYOL step for :mod:`ohgw.hypergrad` (see the module docstring).

    Hyper-parameters ``lr_pred``, ``lr_enc``, ``tau``, ``mom_pred``, ``mom_enc`` arrive as 0-dim
    tensors; absent ones take the fields' values. ``h`` is the curvature the auto schedule divides by.
    """

    lr_pred: float = 0.05
    lr_enc: float = 0.05
    tau: float = 0.01
    mom_pred: float = 0.0
    mom_enc: float = 0.0
    auto_alpha_c: float = 0.0
    auto_beta_c: float = 0.0
    h: float = 1.0
    update_pred: bool = True
    update_enc: bool = True

    hyperparameters = ("lr_pred", "lr_enc", "tau", "mom_pred", "mom_enc")

    def init_state(self, params: dict) -> dict:
        return {"step": 0, "buf": {}}

    def step(self, params: dict, grads: dict, state: dict, hp: dict) -> tuple[dict, dict]:
        like = next(iter(params.values()))
        get = lambda n: torch.as_tensor(hp.get(n, getattr(self, n)), dtype=like.dtype, device=like.device)  # noqa: E731
        tau = get("tau")
        alpha = self.auto_alpha_c * tau / self.h if self.auto_alpha_c > 0 else get("lr_pred")
        beta = self.auto_beta_c * tau / self.h if self.auto_beta_c > 0 else get("lr_enc")
        groups = {"predictor.": (alpha, get("mom_pred"), self.update_pred),
                  "encoder.": (beta, get("mom_enc"), self.update_enc)}
        new, buf = dict(params), dict(state["buf"])
        for name, p in params.items():
            for prefix, (lr, mu, active) in groups.items():
                if name.startswith(prefix) and active:
                    b = grads[name] if name not in buf else mu * buf[name] + grads[name]
                    buf[name], new[name] = b, p - lr * b
        for name, p in params.items():
            if name.startswith("target."):
                new[name] = p + tau * (new["encoder." + name[len("target."):]] - p)
        return new, {"step": state["step"] + 1, "buf": buf}


def make_problem(model: BYOLToy, cfg: Mapping[str, Any], h: float = 1.0, step: int = 0) -> HyperGradProblem:
    """The problem for ``model`` at the config's fixed values; batches are pairs of views (x₁, x₂)."""

    def forward(params, buffers, batch):
        x1, x2 = batch
        o = functional_call(model.encoder, _sub(params, "encoder."), (x1,))
        p = functional_call(model.predictor, _sub(params, "predictor."), (o,))
        t = functional_call(model.target, _sub(params, "target."), (x2,))
        return p, t

    def train_loss(params, buffers, batch, hp):
        p, t = forward(params, buffers, batch)
        return byol_mse(p, t.detach())

    def val_loss(params, buffers, batch):
        p, t = forward(params, buffers, batch)
        return byol_mse(p, t)

    rule = BYOLStep(
        lr_pred=cfg["lr_pred"], lr_enc=cfg["lr_enc"], tau=cfg["tau"], mom_pred=cfg["mom_pred"],
        mom_enc=cfg["mom_enc"], auto_alpha_c=cfg["auto_alpha_c"], auto_beta_c=cfg["auto_beta_c"], h=float(h),
        update_pred=step % cfg["pred_update_every"] == 0,
        update_enc=step % cfg["enc_update_every"] == 0 and not cfg["freeze_enc"],
    )  # fmt: skip
    return HyperGradProblem(model=model, train_loss=train_loss, val_loss=val_loss, update_rule=rule)


def _sub(params: dict, prefix: str) -> dict:
    return {k[len(prefix):]: v for k, v in params.items() if k.startswith(prefix)}


def curvature(model: BYOLToy, x1: torch.Tensor) -> float:
    """The top eigenvalue of the online feature covariance oᵀo/n on a batch (exact, for the auto schedule)."""
    with torch.no_grad():
        o = model.encoder(x1).double()
        return float(torch.linalg.eigvalsh(o.T @ o / o.shape[0])[-1])
