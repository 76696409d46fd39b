"""The SSL hyper-gradient problem: what :mod:`ohgw.warmstart` differentiates.

One-step lookahead θ₁ = a step of the run's optimizer (SGD, or Adam with ``optimizer="adam"``:
:class:`ohgw.update_rules.Adam`) on the *training* SSL loss (tuned temperature / τ / weighting /
augmentation strength), then g = ∂L_val(θ₁)/∂u with a **validation objective that no tuned ψ
enters directly**: the same SSL loss on a held-out batch (validation clips) at a fixed
reference — uniform Δt weighting for BYOL / TW-BYOL, ``ref_temperature`` for temporal SimCLR,
views augmented at ``ref_aug_strength`` with fixed draws. Otherwise dL_val/dψ would be the
meaningless direct term (a lower temperature simply rescales the loss).

Which ψ get a real signal in the one-step lookahead (all verified by finite differences in
float64 on a SiLU net, tests/test_ssl_problem.py):

- ``lr``, ``wd``: through the optimizer step (first derivatives; SGD with Nesterov, so momentum is in step
  1 too; Adam's first step is ≈ lr·sign(g), so its lr signal is real and its wd signal goes through g + wd·θ);
- ``aug_strength``: through ∇θ L_train(θ₀; s) — a mixed second derivative of the differentiable
  part (translation, brightness, contrast); the crop is drawn before the lookahead and held fixed;
- ``temperature`` (SimCLR), ``tau`` (TW-BYOL): through ∇θ L_train (mixed second derivative);
  ``weighting="binary"`` is a step in τ and gives 0; with ``weight_norm="none"`` the τ signal is
  mostly a loss-scale (lr-like) effect, which is why "mean" is the default;
- ``ema_gap`` = 1 − m (BYOL, TW-BYOL): **unrolled** — :class:`EMASGD` applies the target update
  ξ₁ = (1 − gap)·ξ₀ + gap·θ₁ inside the step, and the validation loss compares the online
  prediction with the *updated* target's projection (no stop-gradient there), so ∂L_val/∂gap is
  real (:class:`EMAAdam` for Adam). It is myopic: a larger gap pulls the target towards the online net and lowers the
  one-step BYOL loss, so the signal tends to favour smaller momenta (short-horizon bias).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch.func import functional_call

from ohgw.hypergrad import HyperGradProblem
from ohgw.update_rules import SGD, Adam

from .losses import byol_pair_loss, temporal_simclr_loss, tw_byol_loss
from .models import SSLNet
from .views import apply_magnitude


class _EMAUnrolled:
    """The online step of ``inner``, then BYOL's EMA target update ξ₁ = (1 − gap)·ξ₀ + gap·θ₁, as one
    differentiable step. ``target_of`` maps each target parameter name to the online parameter it
    tracks; the target parameters take no optimizer step and no weight decay."""

    inner: Any
    target_of: dict
    ema_gap: float

    @property
    def hyperparameters(self) -> tuple[str, ...]:
        return (*self.inner.hyperparameters, "ema_gap")

    def init_state(self, params):
        return self.inner.init_state({k: v for k, v in params.items() if k not in self.target_of})

    def step(self, params, grads, state, hp):
        online = {k: v for k, v in params.items() if k not in self.target_of}
        new, state = self.inner.step(online, {k: grads[k] for k in online}, state, hp)
        like = next(iter(online.values()))
        gap = torch.as_tensor(hp.get("ema_gap", self.ema_gap), dtype=like.dtype, device=like.device)
        for t, o in self.target_of.items():
            new[t] = (1 - gap) * params[t] + gap * new[o]
        return new, state


ADAM_BETA2 = 0.999  # torch.optim.Adam's default (seed 000); β₁ is the config's momentum


@dataclass(frozen=True)
class EMASGD(_EMAUnrolled):
    """SGD on the online weights, then the EMA target update. Hyper-parameters: SGD's plus ``ema_gap``."""

    sgd: SGD
    target_of: dict = field(default_factory=dict)
    ema_gap: float = 0.01

    @property
    def inner(self):
        return self.sgd


@dataclass(frozen=True)
class EMAAdam(_EMAUnrolled):
    """Adam (coupled weight decay, as ``torch.optim.Adam``) on the online weights, then the EMA target update.

    The Adam analogue of :class:`EMASGD`, for ``optimizer="adam"`` (seed 000). Hyper-parameters: Adam's
    (``momentum`` = β₁) plus ``ema_gap``.
    """

    adam: Adam
    target_of: dict = field(default_factory=dict)
    ema_gap: float = 0.01

    @property
    def inner(self):
        return self.adam


def target_map(net: SSLNet) -> dict[str, str]:
    names = dict((id(p), n) for n, p in net.named_parameters())
    targets, online = net.target_pairs()
    return {names[id(t)]: names[id(o)] for t, o in zip(targets, online)}


def make_problem(net: SSLNet, cfg: dict) -> HyperGradProblem:
    """The hyper-gradient problem of ``net`` under the resolved config ``cfg``.

    Train batch: BYOL ``(v1, v2, dt, draws1, draws2)`` (cropped views, fixed magnitude draws);
    SimCLR ``(x [B·T, C, H, W], draws, B)``. Validation batch: BYOL ``(x1, x2)``, SimCLR ``(x, B)``,
    fully augmented at the reference strength.
    """
    method = cfg["method"]
    adam = cfg["optimizer"] == "adam"
    inner = Adam(beta2=ADAM_BETA2) if adam else SGD(nesterov=bool(cfg["nesterov"]))

    def f(params, buffers, x, branch="online"):
        return functional_call(net, (params, buffers), (x,), {"branch": branch})

    if method == "simclr-temporal":
        def train_loss(params, buffers, batch, hp):
            x, draws, b = batch
            z, _ = f(params, buffers, apply_magnitude(x, hp.get("aug_strength", 0.0), draws))
            return temporal_simclr_loss(z.reshape(b, -1, z.shape[-1]), hp["temperature"], cfg["infonce_form"])

        def val_loss(params, buffers, batch):
            x, b = batch
            z, _ = f(params, buffers, x)
            return temporal_simclr_loss(z.reshape(b, -1, z.shape[-1]), cfg["ref_temperature"], cfg["infonce_form"])

        return HyperGradProblem(net, train_loss, val_loss, inner, ("temperature", "aug_strength"))

    weighting = cfg["weighting"] if method == "tw-byol" else "uniform"

    def train_loss(params, buffers, batch, hp):
        v1, v2, dt, d1, d2 = batch
        s = hp.get("aug_strength", 0.0)
        x1, x2 = apply_magnitude(v1, s, d1), apply_magnitude(v2, s, d2)
        _, p1 = f(params, buffers, x1)
        _, p2 = f(params, buffers, x2)
        t1, _ = f(params, buffers, x1, "target")
        t2, _ = f(params, buffers, x2, "target")
        # no detach here: the target's weights take no SGD step anyway (EMASGD), so ∇ of the online weights is
        # BYOL's, while d/ds still sees the target's views move with the strength (a detach would cut that)
        return tw_byol_loss(p1, t2, p2, t1, dt, hp.get("tau"), weighting, cfg["weight_norm"], stop_gradient=False)

    def val_loss(params, buffers, batch):
        x1, x2 = batch
        _, p1 = f(params, buffers, x1)
        _, p2 = f(params, buffers, x2)
        t1, _ = f(params, buffers, x1, "target")
        t2, _ = f(params, buffers, x2, "target")
        return byol_pair_loss(p1, t2, p2, t1, stop_gradient=False).mean()

    rule = (EMAAdam(inner, target_map(net), ema_gap=float(cfg["ema_gap"])) if adam
            else EMASGD(inner, target_map(net), ema_gap=float(cfg["ema_gap"])))
    loss_hps = ("tau", "aug_strength") if method == "tw-byol" else ("aug_strength",)
    return HyperGradProblem(net, train_loss, val_loss, rule, loss_hps)
