"""Encoders and heads for the SSL family.

- :class:`ConvEncoder`: a small conv net for 28–32 px frames (three 3×3 conv → BN → act blocks,
  32/64/128·width channels, each with stride 2, global average pooling): 128·width features, about
  2.4 M multiply-adds per 32×32 frame (CPU-sized);
- the ResNet-20 trunk of :mod:`trainables.nets` (its last linear layer removed)
  for larger frames: 64·width features;
- :func:`mlp_head`: Linear → BN → ReLU → Linear, BYOL's projector / predictor shape (Grill et al. 2020).

:class:`SSLNet` holds the online branch (encoder, projector, predictor) and, for BYOL, the target
branch (EMA copies of encoder and projector, ``requires_grad=False``) in one module, so the
warm-start's functional step sees both (the EMA update is unrolled in
:class:`trainables.ssl.problem.EMASGD`). ``activation="silu"`` gives the smooth net used for the
finite-difference checks.

>>> net = SSLNet(in_channels=1, image_size=32, method="byol")
>>> sorted({k.split(".")[0] for k in net.state_dict()})
['encoder', 'predictor', 'projector', 'target_encoder', 'target_projector']
>>> tuple(net.embed(torch.zeros(2, 1, 32, 32)).shape)
(2, 128)
"""

from __future__ import annotations

import copy

import torch
from torch import nn

ENCODERS = ("auto", "conv", "resnet20")
ACTIVATIONS = {"relu": nn.ReLU, "silu": nn.SiLU}


class ConvEncoder(nn.Module):
    def __init__(self, in_channels: int = 1, width: int = 1, activation: str = "relu", base: int = 32) -> None:
        super().__init__()
        act = ACTIVATIONS[activation]
        chans = [base * width, 2 * base * width, 4 * base * width]
        layers, c_in = [], in_channels
        for c in chans:
            layers += [nn.Conv2d(c_in, c, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(c), act()]
            c_in = c
        self.net = nn.Sequential(*layers)
        self.out_dim = c_in

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).mean(dim=(2, 3))


def resnet20_trunk(in_channels: int, width: int = 1) -> nn.Module:
    from trainables.nets import resnet20

    trunk = resnet20(num_classes=2, in_channels=in_channels, width=width)
    trunk.fc = nn.Identity()
    trunk.out_dim = 64 * width
    return trunk


def encoder_kind(encoder: str, image_size: int) -> str:
    """``encoder`` with ``auto`` resolved: the conv net up to 32 px, the ResNet-20 trunk above."""
    if encoder not in ENCODERS:
        raise ValueError(f"encoder must be one of {ENCODERS}, got {encoder!r}")
    return ("conv" if image_size <= 32 else "resnet20") if encoder == "auto" else encoder


def build_encoder(kind: str, in_channels: int, width: int = 1, activation: str = "relu", conv_base: int = 32) -> nn.Module:
    """A freshly initialised encoder of ``kind`` (``conv`` or ``resnet20``), with ``out_dim`` features."""
    if kind == "conv":
        return ConvEncoder(in_channels, width, activation, conv_base)
    if kind == "resnet20":
        return resnet20_trunk(in_channels, width)
    raise ValueError(f"kind must be 'conv' or 'resnet20', got {kind!r}")


def mlp_head(in_dim: int, hidden: int, out_dim: int, activation: str = "relu") -> nn.Sequential:
    """Linear → BN → ReLU (or SiLU) → Linear."""
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.BatchNorm1d(hidden), ACTIVATIONS[activation](),
                         nn.Linear(hidden, out_dim))


class SSLNet(nn.Module):
    """Online encoder + projector (+ predictor) and, for BYOL-type methods, their EMA target."""

    def __init__(self, in_channels: int, image_size: int, method: str = "byol", encoder: str = "auto",
                 width: int = 1, proj_hidden: int = 256, proj_dim: int = 64, predictor: bool = True,
                 activation: str = "relu", conv_base: int = 32) -> None:
        super().__init__()
        if encoder not in ENCODERS:
            raise ValueError(f"encoder must be one of {ENCODERS}, got {encoder!r}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {tuple(ACTIVATIONS)}, got {activation!r}")
        self.encoder = build_encoder(encoder_kind(encoder, image_size), in_channels, width, activation, conv_base)
        self.projector = mlp_head(self.encoder.out_dim, proj_hidden, proj_dim, activation)
        self.byol = method != "simclr-temporal"
        self.has_predictor = self.byol and predictor
        self.predictor = mlp_head(proj_dim, proj_hidden, proj_dim, activation) if self.has_predictor else None
        if self.byol:
            self.target_encoder = copy.deepcopy(self.encoder)
            self.target_projector = copy.deepcopy(self.projector)
            for p in self.target_parameters():
                p.requires_grad_(False)

    def online_parameters(self) -> list[nn.Parameter]:
        mods = [self.encoder, self.projector] + ([self.predictor] if self.predictor is not None else [])
        return [p for m in mods for p in m.parameters()]

    def target_parameters(self) -> list[nn.Parameter]:
        return list(self.target_encoder.parameters()) + list(self.target_projector.parameters())

    def target_pairs(self) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """(target params, the online params they track), in matching order."""
        online = list(self.encoder.parameters()) + list(self.projector.parameters())
        return self.target_parameters(), online

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The representation (encoder features) that the metrics evaluate."""
        return self.encoder(x)

    def forward(self, x: torch.Tensor, branch: str = "online") -> tuple[torch.Tensor, torch.Tensor]:
        """``online``: (projection z, prediction p; p = z without a predictor); ``target``: (z, z).

        The target branch is differentiable in the target's weights (the warm-start's validation loss
        needs that for the EMA momentum); training calls it under ``torch.no_grad()``.
        """
        if branch == "target":
            z = self.target_projector(self.target_encoder(x))
            return z, z
        z = self.projector(self.encoder(x))
        return z, (self.predictor(z) if self.predictor is not None else z)
