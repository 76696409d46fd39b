"""The JEPA-specific compositions of the shared SSL terms (:mod:`trainables.representation`), and the RSSM ELBO.

Coefficients may be Python floats or 0-dim tensors (the hyper-gradient passes tensors).

- :func:`vicreg_jepa_loss`: prediction MSE between ẑ_{t+1} and z_{t+1}, plus ``var_coeff`` × the
  variance hinge and ``cov_coeff`` × the covariance term, each computed per step over the batch on
  both branches (encoder z_{t+1} and prediction ẑ_{t+1}); the hinge is *averaged* over the two
  branches and the covariance *summed*, as the original VICReg (Bardes et al. 2022, its
  ``main_vicreg.py``); both are then averaged over the 16 steps. ``branches="encoder"`` (seed 004)
  applies them to the encoder states z_{t+1} only.
- :func:`simclr_jepa_loss`: per step, InfoNCE between predicted and actual embeddings: the rows
  [ẑ_{t+1}; z_{t+1}] with groups = sequence index, so each prediction's one positive is its own
  sequence's embedding at that step and the negatives are every other row of that step (other
  sequences' predictions and embeddings): SimCLR's NT-Xent (both forms of the shared
  :func:`~trainables.representation.info_nce` agree with one positive). Averaged over steps. Its
  logits are cosine similarities; ``similarity="dot"`` (seed 004's configs) uses raw dot products.
- :func:`rssm_loss`: the negative ELBO with a KL scale and free nats, Dreamer's form:
  recon + β · max(mean KL, free_nats), recon = ½ Σ_pixels (x̂ − x)² per frame (a unit-variance
  Gaussian log-likelihood up to its constant), KL = KL(q ‖ p) per frame summed over stochastic
  dimensions, both averaged over frames and sequences.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from trainables.representation import info_nce, vicreg_covariance, vicreg_variance


def vicreg_jepa_terms(z: torch.Tensor, pred: torch.Tensor, branches: str = "both") -> dict[str, torch.Tensor]:
    """The three unweighted terms for z [B, T, D] and predictions ẑ [B, T−1, D] of z_1 … z_{T−1}.

    ``branches``: "both" (variance and covariance of encoder states and predictions) or "encoder" (of the
    encoder states z_1 … z_{T−1} only, seed 004).
    """
    if branches not in ("both", "encoder"):
        raise ValueError(f"branches must be 'both' or 'encoder', got {branches!r}")
    target = z[:, 1:]
    steps = target.shape[1]
    if branches == "encoder":
        var = sum(vicreg_variance(target[:, t]) for t in range(steps)) / steps
        cov = sum(vicreg_covariance(target[:, t]) for t in range(steps)) / steps
    else:
        var = sum(0.5 * (vicreg_variance(target[:, t]) + vicreg_variance(pred[:, t])) for t in range(steps)) / steps
        cov = sum(vicreg_covariance(target[:, t]) + vicreg_covariance(pred[:, t]) for t in range(steps)) / steps
    return {"pred": F.mse_loss(pred, target), "var": var, "cov": cov}


def vicreg_jepa_loss(z, pred, var_coeff, cov_coeff, branches: str = "both") -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """pred + var_coeff·var + cov_coeff·cov, and the terms."""
    terms = vicreg_jepa_terms(z, pred, branches)
    return terms["pred"] + var_coeff * terms["var"] + cov_coeff * terms["cov"], terms


def nt_xent_dot(a: torch.Tensor, b: torch.Tensor, temperature) -> torch.Tensor:
    """SimCLR's NT-Xent of the pairs (a_i, b_i) [B, D] with raw dot products a·b / T as logits (no normalisation)."""
    rows = torch.cat([a, b])
    n = a.shape[0]
    logits = rows @ rows.T / temperature
    logits = logits.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=rows.device), float("-inf"))
    partner = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(rows.device)
    return F.cross_entropy(logits, partner)


def simclr_jepa_loss(z: torch.Tensor, pred: torch.Tensor, temperature, similarity: str = "cosine") -> torch.Tensor:
    """Mean over steps of NT-Xent between ẑ_{t+1} [B, D] and z_{t+1} [B, D] at ``temperature``.

    ``temperature`` may be a 0-dim tensor (a tuned ψ): the shared InfoNCE divides by it, so it is
    differentiable in it. ``similarity``: "cosine" (the shared InfoNCE) or "dot" (:func:`nt_xent_dot`).
    """
    if similarity not in ("cosine", "dot"):
        raise ValueError(f"similarity must be 'cosine' or 'dot', got {similarity!r}")
    b, steps = pred.shape[0], pred.shape[1]
    groups = torch.arange(b, device=z.device).repeat(2)
    total = 0.0
    for t in range(steps):
        if similarity == "dot":
            total = total + nt_xent_dot(pred[:, t], z[:, t + 1], temperature)
        else:
            total = total + info_nce(torch.cat([pred[:, t], z[:, t + 1]]), groups, temperature)
    return total / steps


def rssm_loss(recon: torch.Tensor, frames: torch.Tensor, kl: torch.Tensor, kl_scale=1.0,
              free_nats: float = 0.0) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:  # fmt: skip
    """recon + kl_scale · max(mean KL, free_nats), and the terms (``recon``, ``kl`` before free nats)."""
    rec = 0.5 * (recon - frames).pow(2).flatten(2).sum(-1).mean()
    kl_mean = kl.mean()
    clipped = torch.clamp(kl_mean, min=free_nats) if free_nats > 0 else kl_mean
    return rec + kl_scale * clipped, {"recon": rec, "kl": kl_mean}
