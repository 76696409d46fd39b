"""The online encoder, the predictor and the EMA target encoder, as one module.

A linear network is a bias-free ``nn.Linear``; an MLP is Linear → SiLU → Linear (SiLU, not ReLU: the
warm-start differentiates through training steps, and a smooth network keeps that meaningful).
Initial weights come from the run's generator, never from torch's global stream:
encoder N(0, init_scale²/d) per entry (or, with ``enc_init="pinv"``, R·A⁺ for a random rotation R);
linear predictor the identity (the encoder gets a gradient from the first step; the closed form
does not depend on the start); MLP layers N(0, 1/fan_in). The target starts as a copy of the encoder.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


def _linear(d_in: int, d_out: int, g: torch.Generator, std: float) -> nn.Linear:
    layer = nn.Linear(d_in, d_out, bias=False, dtype=torch.float64)  # exact float64 init; the run casts after
    with torch.no_grad():
        layer.weight.copy_(torch.randn(d_out, d_in, generator=g, dtype=torch.float64) * std)
    return layer


def make_net(kind: str, d_in: int, d_out: int, hidden: int, g: torch.Generator, std: float | None = None) -> nn.Module:
    """``linear``: Linear(d_in, d_out); ``mlp``: Linear(d_in, hidden) → SiLU → Linear(hidden, d_out)."""
    if kind == "linear":
        return _linear(d_in, d_out, g, d_in**-0.5 if std is None else std)
    if kind == "mlp":
        return nn.Sequential(_linear(d_in, hidden, g, d_in**-0.5 if std is None else std), nn.SiLU(),
                             _linear(hidden, d_out, g, hidden**-0.5))
    raise ValueError(f"network kind must be 'linear' or 'mlp', got {kind!r}")


def random_rotation(k: int, g: torch.Generator) -> torch.Tensor:
    """A Haar-random k × k rotation (QR of a Gaussian matrix with the sign fix of Mezzadri 2007), float64."""
    q, r = torch.linalg.qr(torch.randn(k, k, generator=g, dtype=torch.float64))
    return q * torch.sign(torch.diagonal(r))


class BYOLToy(nn.Module):
    """``encoder`` (online), ``predictor`` and ``target`` (the EMA of the encoder; no gradient)."""

    def __init__(self, enc: str, pred: str, d_obs: int, d_latent: int, hidden: int, init_scale: float,
                 g: torch.Generator, enc_weight: torch.Tensor | None = None) -> None:
        super().__init__()
        self.encoder = make_net(enc, d_obs, d_latent, hidden, g, init_scale * d_obs**-0.5)
        if enc_weight is not None:
            first = self.encoder if enc == "linear" else self.encoder[0]
            if first.weight.shape != enc_weight.shape:
                raise ValueError(f"enc_init 'pinv' needs a linear encoder (got enc={enc!r})")
            with torch.no_grad():
                first.weight.copy_(enc_weight)
        self.predictor = make_net(pred, d_latent, d_latent, hidden, g)
        if pred == "linear":
            with torch.no_grad():
                self.predictor.weight.copy_(torch.eye(d_latent, dtype=torch.float64))
        self.target = copy.deepcopy(self.encoder)
        self.target.requires_grad_(False)

    def online_parameters(self) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
        """(predictor parameters, encoder parameters), in matching order with the target's."""
        return list(self.predictor.parameters()), list(self.encoder.parameters())

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(online encoding of x1, its prediction, target encoding of x2)."""
        o = self.encoder(x1)
        return o, self.predictor(o), self.target(x2)


def byol_mse(p: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """½ · mean over the batch of ‖p − t‖²: the un-normalised BYOL loss (its P-Hessian is C_oo)."""
    return 0.5 * (p - t).pow(2).sum(dim=1).mean()
