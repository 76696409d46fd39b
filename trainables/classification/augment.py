"""Differentiable magnitude augmentation shared by training and the warm-start.

Crop and cutout are not differentiable in their magnitude, so the magnitude
hyper-parameter m ∈ [0, 1] scales three smooth photometric/geometric ops, each
applied with *fixed* random draws (so the warm-start differentiates exactly
what training does, and finite differences see a deterministic function):

- translation by up to ``MAX_SHIFT`` of the image width (bilinear ``grid_sample``),
- brightness offset of up to ``MAX_BRIGHTNESS`` (in units of the input scale),
- contrast scaling by up to ± ``MAX_CONTRAST`` around each image's mean.

At m = 0 the output equals the input.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

MAX_SHIFT = 0.125  # fraction of image width/height at magnitude 1 (4 px at 32×32)
MAX_BRIGHTNESS = 0.4  # additive, input units (inputs are standardised to ~unit variance)
MAX_CONTRAST = 0.4  # multiplicative, 1 ± 0.4 at magnitude 1


@dataclass(frozen=True)
class AugDraws:
    """Per-image random draws in [-1, 1]: shift (n, 2), brightness (n,), contrast (n,)."""

    shift: torch.Tensor
    brightness: torch.Tensor
    contrast: torch.Tensor


def sample_draws(n: int, generator: torch.Generator | None = None, device=None, dtype=torch.float32) -> AugDraws:
    def u(*shape):
        return (torch.rand(*shape, generator=generator, dtype=dtype) * 2 - 1).to(device)

    return AugDraws(shift=u(n, 2), brightness=u(n), contrast=u(n))


def magnitude_augment(x: torch.Tensor, magnitude, draws: AugDraws) -> torch.Tensor:
    """Augment a batch ``x`` (n, c, h, w) with magnitude ``magnitude`` (float or 0-dim tensor)."""
    m = torch.as_tensor(magnitude, dtype=x.dtype, device=x.device)
    n = x.shape[0]
    # translation: affine grid in normalised coordinates, where the full width spans 2
    t = draws.shift.to(x.dtype) * (2 * MAX_SHIFT) * m
    eye = torch.eye(2, dtype=x.dtype, device=x.device).expand(n, 2, 2)
    theta = torch.cat([eye, t.unsqueeze(-1)], dim=2)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    # contrast around the per-image mean, then brightness
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    scale = 1 + MAX_CONTRAST * m * draws.contrast.to(x.dtype).view(n, 1, 1, 1)
    x = (x - mean) * scale + mean
    return x + MAX_BRIGHTNESS * m * draws.brightness.to(x.dtype).view(n, 1, 1, 1)
