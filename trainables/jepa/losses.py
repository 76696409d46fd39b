"""The JEPA-specific compositions of the shared SSL terms (:mod:`trainables.representation`), and the RSSM ELBO.

Coefficients may be Python floats or 0-dim tensors (the hyper-gradient passes tensors).

- :func:`vicreg_jepa_loss`: prediction MSE between ẑ_{t+1} and z_{t+1}, plus ``var_coeff`` × the
  variance hinge and ``cov_coeff`` × the covariance term, each computed per step over the batch on
  both branches (encoder z_{t+1} and prediction ẑ_{t+1}); the hinge is *averaged* over the two
  branches and the covariance *summed*, as the original VICReg (Bardes et al. 2022, its
  ``main_vicreg.py``); both are then averaged over the 16 steps.
- :func:`simclr_jepa_loss`: per step, InfoNCE between predicted and actual embeddings: the rows
  [ẑ_{t+1}; z_{t+1}] with groups = sequence index, so each prediction's one positive is its own
  sequence's embedding at that step and the negatives are every other row of that step (other
  sequences' predictions and embeddings): SimCLR's NT-Xent (both forms of the shared
  :func:`~trainables.representation.info_nce` agree with one positive). Averaged over steps.
- :func:`rssm_loss`: the negative ELBO with a KL scale and free nats, Dreamer's form:
  recon + β · max(mean KL, free_nats), recon = ½ Σ_pixels (x̂ − x)² per frame (a unit-variance
  Gaussian log-likelihood up to its constant), KL = KL(q ‖ p) per frame summed over stochastic
  dimensions, both averaged over frames and sequences.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from trainables.representation import info_nce, vicreg_covariance, vicreg_variance


def vicreg_jepa_terms(z: torch.Tensor, pred: torch.Tensor) -> dict[str, torch.Tensor]:
    """The three unweighted terms for z [B, T, D] and predictions ẑ [B, T−1, D] of z_1 … z_{T−1}."""
    target = z[:, 1:]
    steps = target.shape[1]
    var = sum(0.5 * (vicreg_variance(target[:, t]) + vicreg_variance(pred[:, t])) for t in range(steps)) / steps
    cov = sum(vicreg_covariance(target[:, t]) + vicreg_covariance(pred[:, t]) for t in range(steps)) / steps
    return {"pred": F.mse_loss(pred, target), "var": var, "cov": cov}


def vicreg_jepa_loss(z, pred, var_coeff, cov_coeff) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """pred + var_coeff·var + cov_coeff·cov, and the terms."""
    terms = vicreg_jepa_terms(z, pred)
    return terms["pred"] + var_coeff * terms["var"] + cov_coeff * terms["cov"], terms


def simclr_jepa_loss(z: torch.Tensor, pred: torch.Tensor, temperature) -> torch.Tensor:
    """Mean over steps of NT-Xent between ẑ_{t+1} [B, D] and z_{t+1} [B, D] at ``temperature``.

    ``temperature`` may be a 0-dim tensor (a tuned ψ): the shared InfoNCE divides by it, so it is
    differentiable in it.
    """
    b, steps = pred.shape[0], pred.shape[1]
    groups = torch.arange(b, device=z.device).repeat(2)
    total = 0.0
    for t in range(steps):
        total = total + info_nce(torch.cat([pred[:, t], z[:, t + 1]]), groups, temperature)
    return total / steps


def rssm_loss(recon: torch.Tensor, frames: torch.Tensor, kl: torch.Tensor, kl_scale=1.0,
              free_nats: float = 0.0) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:  # fmt: skip
    """recon + kl_scale · max(mean KL, free_nats), and the terms (``recon``, ``kl`` before free nats)."""
    rec = 0.5 * (recon - frames).pow(2).flatten(2).sum(-1).mean()
    kl_mean = kl.mean()
    clipped = torch.clamp(kl_mean, min=free_nats) if free_nats > 0 else kl_mean
    return rec + kl_scale * clipped, {"recon": rec, "kl": kl_mean}
