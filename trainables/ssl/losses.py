"""The SSL losses, each differentiable in the hyper-parameters it takes (0-dim tensors or floats).

- :func:`byol_pair_loss`: BYOL's symmetric 2 − 2·cos per view pair (Grill et al. 2020, eq. 2–3; the
  sum over both view orders, as solo-learn and lucidrains' byol-pytorch compute it);
- :func:`tw_weights`: the time-weighting w(Δt) of TW-BYOL, ``exp`` = exp(−Δt/τ), and the ablation
  weightings ``uniform``, ``binary`` (Δt ≤ τ), ``linear`` max(0, 1 − Δt/τ), ``inverse_square``
  1/(1 + (Δt/τ)²); τ in frames. ``binary`` is a step in τ: its hyper-gradient is 0;
- :func:`weighted_mean`: the batch reduction. ``weight_norm="none"`` is the published
  ``(w·loss).mean()``; ``"mean"`` divides by the batch-mean weight, i.e. Σ wᵢ lᵢ / Σ wᵢ.
  **Default "mean"**: with "none" a smaller τ shrinks every weight and with it the loss scale, so τ
  silently acts as a learning-rate factor — in an HPO study τ and lr are then confounded (a
  hyper-gradient for τ would mostly be the lr's). With "mean", τ only changes the *relative*
  weighting of pairs, and the loss scale of any weighting equals the uniform one's when all Δt agree;
- :func:`temporal_simclr_loss`: multi-positive InfoNCE over windows z [B, T, D]: the other frames
  of a window are positives, all frames of other windows negatives, the self-pair excluded
  (:func:`trainables.representation.info_nce`, ``L_out`` SupCon form by default, or ``L_in``);
- :func:`ema_momentum`: BYOL's target momentum, optionally cosine-scheduled from m to 1.

>>> import torch
>>> tw_weights(torch.tensor([0., 5., 10.]), 5.0, "linear").tolist()
[1.0, 0.0, 0.0]
>>> round(ema_momentum(0.99, step=50, total_steps=100, schedule="cosine"), 4)
0.995
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from trainables.representation import info_nce

WEIGHTINGS = ("exp", "uniform", "binary", "linear", "inverse_square")
WEIGHT_NORMS = ("none", "mean")
EMA_SCHEDULES = ("constant", "cosine")


def byol_pair_loss(p1: torch.Tensor, z2: torch.Tensor, p2: torch.Tensor, z1: torch.Tensor,
                   stop_gradient: bool = True) -> torch.Tensor:
    """Per-pair symmetric BYOL loss [B]: (2 − 2cos(p₁, sg z₂)) + (2 − 2cos(p₂, sg z₁)).

    ``p`` are the online predictions, ``z`` the target projections, detached (BYOL's stop-gradient)
    unless ``stop_gradient=False`` (the warm-start's validation loss, which differentiates through
    the EMA-updated target).
    """
    def one(p, z):
        z = z.detach() if stop_gradient else z
        return 2 - 2 * (F.normalize(p, dim=-1) * F.normalize(z, dim=-1)).sum(dim=-1)

    return one(p1, z2) + one(p2, z1)


def _positive(name: str, v) -> None:
    if not isinstance(v, torch.Tensor):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
            raise ValueError(f"{name} must be a number > 0, got {v!r}")
    elif bool((v <= 0).any()):
        raise ValueError(f"{name} must be > 0, got {v}")


def tw_weights(dt: torch.Tensor, tau, weighting: str = "exp") -> torch.Tensor:
    """Per-pair weights w(Δt) for frame distances ``dt`` [B] at time constant ``tau`` (frames, > 0)."""
    if weighting not in WEIGHTINGS:
        raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}")
    _positive("tau", tau)
    if isinstance(tau, torch.Tensor):
        dt = dt.to(tau.dtype)
    elif not dt.is_floating_point():
        dt = dt.to(torch.get_default_dtype())
    r = dt / tau
    if weighting == "exp":
        return torch.exp(-r)
    if weighting == "uniform":
        return torch.ones_like(r)
    if weighting == "binary":
        return (r <= 1).to(r.dtype)
    if weighting == "linear":
        return torch.clamp(1 - r, min=0.0)
    return 1 / (1 + r * r)


def weighted_mean(loss: torch.Tensor, weights: torch.Tensor | None, weight_norm: str = "mean") -> torch.Tensor:
    """Reduce per-pair losses: mean(w·l) ("none") or Σ w·l / Σ w ("mean"); None weights: the plain mean.

    With "mean" and every weight 0 (e.g. ``binary`` with all Δt > τ) the result is 0 and so is its gradient.
    """
    if weight_norm not in WEIGHT_NORMS:
        raise ValueError(f"weight_norm must be one of {WEIGHT_NORMS}, got {weight_norm!r}")
    if weights is None:
        return loss.mean()
    weights = weights.to(loss.dtype)
    if weight_norm == "none":
        return (weights * loss).mean()
    return (weights * loss).sum() / weights.sum().clamp_min(torch.finfo(loss.dtype).tiny)


def tw_byol_loss(p1, z2, p2, z1, dt: torch.Tensor, tau=None, weighting: str = "uniform",
                 weight_norm: str = "mean", stop_gradient: bool = True) -> torch.Tensor:
    """(Time-weighted) temporal BYOL: per-pair BYOL losses reduced with w(Δt) (uniform: temporal BYOL)."""
    per_pair = byol_pair_loss(p1, z2, p2, z1, stop_gradient)
    if weighting == "uniform":
        return per_pair.mean()
    return weighted_mean(per_pair, tw_weights(dt, tau, weighting), weight_norm)


def temporal_simclr_loss(z: torch.Tensor, temperature, form: str = "out") -> torch.Tensor:
    """Multi-positive InfoNCE of windows ``z`` [B, T, D] (B ≥ 2 windows, T ≥ 2 frames each)."""
    if z.ndim != 3 or z.shape[0] < 2 or z.shape[1] < 2:
        raise ValueError(f"z must be [B >= 2, T >= 2, D], got {tuple(z.shape)}")
    _positive("temperature", temperature)
    b, t, d = z.shape
    groups = torch.arange(b, device=z.device).repeat_interleave(t)
    return info_nce(z.reshape(b * t, d), groups, temperature, form)


def ema_momentum(base: float, step: int, total_steps: int, schedule: str = "cosine") -> float:
    """Target momentum at ``step``: ``base`` ("constant") or 1 − (1 − base)(cos(π·step/total) + 1)/2 ("cosine")."""
    if schedule not in EMA_SCHEDULES:
        raise ValueError(f"ema_schedule must be one of {EMA_SCHEDULES}, got {schedule!r}")
    if schedule == "constant" or total_steps <= 0:
        return float(base)
    frac = min(step, total_steps) / total_steps
    return 1 - (1 - base) * (math.cos(math.pi * frac) + 1) / 2


@torch.no_grad()
def ema_update(target: list[torch.Tensor], online: list[torch.Tensor], momentum: float) -> None:
    """ξ ← m·ξ + (1 − m)·θ, in place."""
    torch._foreach_mul_(target, momentum)
    torch._foreach_add_(target, online, alpha=1 - momentum)
