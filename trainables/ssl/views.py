"""Batched, on-device view sampling and augmentation for the SSL family.

- :func:`sample_pairs`: BYOL / TW-BYOL view pairs: an anchor frame and a partner of the same clip
  at frame distance Δt, drawn uniformly from {0, frame_step, 2·frame_step, …} ≤ ``max_dt`` in a
  random direction (the other direction, or the clip's end, when it would leave the clip); the
  actual |Δt| is returned with the pair.
- :func:`crop_flip`: random resized crop (area in [1 − ``CROP_RANGE``·s, 1], aspect ratio
  log-uniform in [3/4, 4/3], bilinear ``grid_sample``) and an optional horizontal flip, at
  augmentation strength s. The crop is not differentiable in s (the scale is drawn, then
  fixed); it is drawn *before* the warm-start's lookahead, which differentiates the rest.
- :func:`trainables.augment.magnitude_augment` (translation, brightness,
  contrast with fixed per-image draws) at strength s: the differentiable part, the same
  function in training and in the warm-start.

Frames come from the store as uint8 and are standardised with the training split's per-channel
mean and std (:func:`to_float`). Random draws come from the trial's CPU generator, whatever
the strength (at s = 0 nothing changes an image but the draws are still made), so paired twins
see the same stream.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from trainables.augment import AugDraws, magnitude_augment, sample_draws

CROP_RANGE = 0.6  # at strength 1 the crop keeps 40 %–100 % of the area
MIN_AREA = 0.2


def to_float(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """uint8 [N, C, H, W] → float32, standardised per channel."""
    x = x.float().div_(255.0)
    return (x - mean.view(1, -1, 1, 1).to(x.device)) / std.view(1, -1, 1, 1).to(x.device)


def crop_flip(x: torch.Tensor, strength: float, flip: bool, generator: torch.Generator) -> torch.Tensor:
    """Random resized crop (back to the input size) and optional horizontal flip of a float batch."""
    n = x.shape[0]
    area = 1 - (1 - max(MIN_AREA, 1 - CROP_RANGE * max(0.0, float(strength)))) * torch.rand(n, generator=generator)
    log_r = (torch.rand(n, generator=generator) * 2 - 1) * math.log(4 / 3)
    ratio = torch.exp(log_r)
    sw = torch.sqrt(area * ratio).clamp(max=1.0)  # crop width / image width
    sh = torch.sqrt(area / ratio).clamp(max=1.0)
    cx = (torch.rand(n, generator=generator) * 2 - 1) * (1 - sw)  # centre, normalised coordinates
    cy = (torch.rand(n, generator=generator) * 2 - 1) * (1 - sh)
    fl = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0) if flip else torch.ones(n)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 2] = sw * fl, cx
    theta[:, 1, 1], theta[:, 1, 2] = sh, cy
    theta = theta.to(device=x.device, dtype=x.dtype)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def augment(x: torch.Tensor, strength: float, flip: bool, generator: torch.Generator
            ) -> tuple[torch.Tensor, AugDraws]:
    """Crop/flip now; return the cropped batch and the magnitude draws for :func:`apply_magnitude`."""
    x = crop_flip(x, strength, flip, generator)
    return x, sample_draws(x.shape[0], generator=generator, device=x.device, dtype=torch.float32)


def apply_magnitude(x: torch.Tensor, strength, draws: AugDraws) -> torch.Tensor:
    """The differentiable part at ``strength`` (skipped at a float 0: the identity)."""
    if not isinstance(strength, torch.Tensor) and strength == 0:
        return x
    return magnitude_augment(x, strength, draws)


def sample_pairs(anchors: np.ndarray, clip_start: np.ndarray, clip_end: np.ndarray, max_dt: int,
                 frame_step: int, generator: torch.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Partners of global frame ids ``anchors`` within their clips [start, end); returns (partners, |Δt|)."""
    n = len(anchors)
    k = max_dt // frame_step
    dt = torch.randint(0, k + 1, (n,), generator=generator).numpy() * frame_step
    sign = np.where(torch.rand(n, generator=generator).numpy() < 0.5, -1, 1)
    partner = anchors + sign * dt
    out = (partner < clip_start) | (partner >= clip_end)
    partner = np.where(out, anchors - sign * dt, partner)
    partner = np.clip(partner, clip_start, clip_end - 1)
    return partner, np.abs(partner - anchors)
