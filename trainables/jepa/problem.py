"""The JEPA family's hyper-gradient problems: what :mod:`ohgw.warmstart` differentiates.

ψ per model (:data:`~trainables.jepa.config.CONTINUOUS`): lr and wd (all models), the VICReg
variance and covariance coefficients, the SimCLR temperature, the RSSM KL scale. The update
rule is the run's own optimizer: :class:`ohgw.update_rules.AdamW` (β₁ = ``momentum``) or
:class:`ohgw.update_rules.SGD` (momentum, coupled wd). Batches: a training batch
``(frames, actions, draws)`` (draws: the teacher-forcing mask, or the RSSM's reparameterisation
noise) and a held-out batch ``(frames, actions)`` from the probe set.

**Validation objectives: none depends directly on a tuned coefficient.** A coefficient inside
L_val would get a direct derivative that says nothing about the representation (d/dβ of β·KL is
the KL itself). So:

- VICReg: the prediction MSE (the rolled-out ẑ vs z at the config's horizon, no teacher forcing);
- SimCLR: the InfoNCE at the fixed ``ref_temperature`` (never tuned), whatever τ trains;
- RSSM: the negative ELBO with β = 1 and no free nats, at the posterior means (no noise).

**Which ψ get a real one-step signal** (checked against central finite differences in float64,
``tests/test_jepa_warmstart.py``):

- With ``optimizer="sgd"`` every ψ does: θ₁ = θ₀ − lr·(∇L_T(θ₀; ψ) + wd·θ₀), so ∂θ₁/∂ψ = −lr·∂_ψ∇L_T
  for the loss coefficients (first-order in θ: ∇θ of the var / cov / KL term; for τ a mixed
  derivative), −∇L_T for log-lr and −lr·θ₀ for wd (O(lr·wd), small).
- With ``optimizer="adamw"`` (the default) only **lr and wd** get a usable one. Adam's first step is
  m̂/(√v̂ + ε) = g/(|g| + ε) ≈ sign(g) per weight, which a coefficient that rescales a term of g does not
  move, except at the weights whose gradient is within a few ε (1e-8) of 0, where g/(|g| + ε) is
  steep. The coefficients' derivative is then all from those weights: on the tiny float64 VICReg
  instance of the tests, ∂L_val/∂log10(var_coeff) = 0.0064 (lr: 0.030), which a central difference
  reproduces at h = 1e-5 (0.0064) but not at h = 1e-3 (0.12). It is exact and useless at the scale of
  a real step: tune the coefficients with OHGW under ``optimizer="sgd"``.
- RSSM's KL scale: with free nats, β·max(KL, free_nats) is flat in θ while the mean KL is under the
  free nats, and then ∂_β∇θ = 0: its hyper-gradient is exactly 0. At initialisation the KL is well
  under the default 1 nat (0.29 on the tests' instance; 0.8–1.2 per frame during our 5-epoch runs),
  so set ``free_nats`` 0 to tune β from the start (tested both ways).
- The VICReg prediction MSE favours a smaller variance weight after one step (shrinking the
  embeddings lowers the MSE): ∂L_val/∂log10(var_coeff) > 0 in all 9 cases we measured (SGD, lr 0.05;
  the tiny test model and the default one without and with changing noise 1.0, 3 batch pairs each),
  so a warm-start lowers it. A real but greedy signal: the short-horizon bias of Wu et al. 2018, and
  the direction of collapse if followed far.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch.func import functional_call

from ohgw.hypergrad import HyperGradProblem
from ohgw.update_rules import SGD, AdamW

from .config import LOSS_HYPERPARAMETERS
from .losses import rssm_loss, simclr_jepa_loss, vicreg_jepa_loss
from .world import Sequences


def update_rule(cfg: Mapping[str, Any]):
    """The differentiable twin of the run's optimizer."""
    if cfg["optimizer"] == "sgd":
        return SGD(lr=cfg["lr"], wd=cfg["wd"], momentum=cfg["momentum"])
    return AdamW(lr=cfg["lr"], wd=cfg["wd"], momentum=cfg["momentum"])


def train_objective(model, cfg: Mapping[str, Any], batch, hp: Mapping[str, Any], params=None, buffers=None):
    """(training loss, its terms) of ``model`` on ``(frames, actions, draws)`` with coefficients from ``hp``.

    With ``params``/``buffers`` the model is called functionally (the hyper-gradient's lookahead).
    """
    frames, actions, draws = batch

    def call(*args, **kwargs):
        if params is None:
            return model(*args, **kwargs)
        return functional_call(model, (params, buffers), args, kwargs)

    kind = cfg["model_type"]
    if kind == "RSSM":
        out = call(frames, actions, draws)
        return rssm_loss(out["recon"], frames, out["kl"], hp["kl_scale"], cfg["free_nats"])
    z, pred = call(frames, actions, horizon=cfg["pred_horizon"], teacher=draws)
    if kind == "VICReg":
        return vicreg_jepa_loss(z, pred, hp["var_coeff"], hp["cov_coeff"], cfg["vicreg_branches"])
    loss = simclr_jepa_loss(z, pred, hp["temperature"], cfg["similarity"])
    return loss, {"nce": loss}


def validation_objective(model, cfg: Mapping[str, Any], frames, actions, params=None, buffers=None) -> torch.Tensor:
    """The coefficient-free validation loss (module docstring) on held-out ``frames``, ``actions``."""

    def call(*args, **kwargs):
        if params is None:
            return model(*args, **kwargs)
        return functional_call(model, (params, buffers), args, kwargs)

    kind = cfg["model_type"]
    if kind == "RSSM":
        out = call(frames, actions, frames.new_zeros(*frames.shape[:2], cfg["stoch_dim"]))
        return rssm_loss(out["recon"], frames, out["kl"], 1.0, 0.0)[0]
    z, pred = call(frames, actions, horizon=cfg["pred_horizon"])
    if kind == "VICReg":
        return F.mse_loss(pred, z[:, 1:])
    return simclr_jepa_loss(z, pred, cfg["ref_temperature"], cfg["similarity"])


def make_problem(model: torch.nn.Module, cfg: Mapping[str, Any]) -> HyperGradProblem:
    """The hyper-gradient problem of a resolved config's model (see the module docstring)."""

    def train_loss(params, buffers, batch, hp):
        return train_objective(model, cfg, batch, hp, params, buffers)[0]

    def val_loss(params, buffers, batch):
        frames, actions = batch
        return validation_objective(model, cfg, frames, actions, params, buffers)

    return HyperGradProblem(model=model, train_loss=train_loss, val_loss=val_loss, update_rule=update_rule(cfg),
                            loss_hyperparameters=LOSS_HYPERPARAMETERS[cfg["model_type"]])


def draws(cfg: Mapping[str, Any], batch: int, generator: torch.Generator, device) -> torch.Tensor:
    """One batch's random draws, always taken (so twins' streams do not depend on ψ): a teacher-forcing
    mask [16] for the JEPAs, reparameterisation noise [batch, 17, stoch] for the RSSM."""
    if cfg["model_type"] == "RSSM":
        return torch.randn((batch, 17, cfg["stoch_dim"]), generator=generator).to(device)
    return torch.rand(16, generator=generator) < cfg["teacher_forcing"]


def warm_start_batches(cfg: Mapping[str, Any], train: Sequences, held_out: Sequences, batch_size: int,
                       seed: int, device):  # fmt: skip
    """step → (train batch (frames, actions, draws), held-out batch (frames, actions)), from their own stream."""
    generator = torch.Generator().manual_seed(10_007 + int(seed))
    bt, bv = min(batch_size, len(train)), min(batch_size, len(held_out))

    def source(step: int):
        ti = torch.randperm(len(train), generator=generator)[:bt].to(train.frames.device)
        vi = torch.randperm(len(held_out), generator=generator)[:bv].to(held_out.frames.device)
        t, v = train.index(ti), held_out.index(vi)
        return (t.frames, t.actions, draws(cfg, bt, generator, device)), (v.frames, v.actions)

    return source
