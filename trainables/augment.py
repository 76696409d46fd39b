"""Differentiable magnitude augmentation shared by training and the warm-start.

Crop and cutout are not differentiable in their magnitude, so the magnitude
hyper-parameter m ∈ [0, 1] scales three smooth photometric/geometric ops, each
applied with *fixed* random draws (so the warm-start differentiates exactly
what training does, and finite differences see a deterministic function):

- translation by up to ``MAX_SHIFT`` of the image width (bilinear, zeros outside: ``grid_sample``'s
  values, computed as two small matrix products, whose CUDA backward is deterministic; the
  warm-start differentiates it, and ``grid_sample`` has no deterministic CUDA backward),
- brightness offset of up to ``MAX_BRIGHTNESS`` (in units of the input scale),
- contrast scaling by up to ± ``MAX_CONTRAST`` around each image's mean.

At m = 0 the output equals the input.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

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


def shift_matrix(shift: torch.Tensor, size: int) -> torch.Tensor:
    """(n, size, size) matrices A with A[i, k] = max(0, 1 − |k − i − shift|): ``A @ v`` samples ``v`` at
    ``i + shift`` by linear interpolation, zero outside (``grid_sample``'s bilinear, zeros, align_corners=False).

    >>> shift_matrix(torch.tensor([0.5]), 3) @ torch.tensor([1.0, 2.0, 4.0])
    tensor([[1.5000, 3.0000, 2.0000]])
    """
    idx = torch.arange(size, dtype=shift.dtype, device=shift.device)
    return torch.relu(1 - (idx.view(1, 1, size) - idx.view(1, size, 1) - shift.view(-1, 1, 1)).abs())


def magnitude_augment(x: torch.Tensor, magnitude, draws: AugDraws) -> torch.Tensor:
    """Augment a batch ``x`` (n, c, h, w) with magnitude ``magnitude`` (float or 0-dim tensor)."""
    m = torch.as_tensor(magnitude, dtype=x.dtype, device=x.device)
    n = x.shape[0]
    # translation by (t_x, t_y) in normalised coordinates, where the full width spans 2: t·size/2 pixels
    t = draws.shift.to(x.dtype) * (2 * MAX_SHIFT) * m
    h, w = x.shape[-2:]
    rows = shift_matrix(t[:, 1] * (h / 2), h).unsqueeze(1)  # (n, 1, h, h)
    cols = shift_matrix(t[:, 0] * (w / 2), w).unsqueeze(1)  # (n, 1, w, w)
    x = rows @ x @ cols.transpose(-1, -2)
    # contrast around the per-image mean, then brightness
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    scale = 1 + MAX_CONTRAST * m * draws.contrast.to(x.dtype).view(n, 1, 1, 1)
    x = (x - mean) * scale + mean
    return x + MAX_BRIGHTNESS * m * draws.brightness.to(x.dtype).view(n, 1, 1, 1)
