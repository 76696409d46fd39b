"""Small, smooth problems shared by the hyper-gradient tests."""

from __future__ import annotations

import torch
from torch import nn

from ohgw.hypergrad import HyperGradProblem
from trainables.augment import magnitude_augment, sample_draws
from trainables.classification.losses import smoothed_cross_entropy

CONFIG = {"lr": 0.1, "wd": 1e-3, "momentum": 0.9, "aug_magnitude": 0.3, "label_smoothing": 0.1}


class SmoothNet(nn.Module):
    """Conv → BatchNorm → SiLU → linear: smooth, so finite differences are meaningful."""

    def __init__(self, channels: int = 4, size: int = 8, classes: int = 10) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, channels, 3, padding=1)
        self.bn = nn.BatchNorm2d(channels)
        self.fc = nn.Linear(channels * size * size, classes)

    def forward(self, x):
        return self.fc(nn.functional.silu(self.bn(self.conv(x))).flatten(1))


def classification_problem(rule, dtype=torch.float64, n: int = 16, seed: int = 0):
    """(problem, train_batch, val_batch) for a SmoothNet on random 8×8 images."""
    torch.manual_seed(seed)
    model = SmoothNet().to(dtype)
    g = torch.Generator().manual_seed(seed + 1)
    xb = torch.randn(n, 1, 8, 8, generator=g, dtype=dtype)
    yb = torch.randint(0, 10, (n,), generator=g)
    xv = torch.randn(n, 1, 8, 8, generator=g, dtype=dtype)
    yv = torch.randint(0, 10, (n,), generator=g)
    draws = sample_draws(n, g, dtype=dtype)

    def train_loss(params, buffers, batch, hp):
        x, y = batch
        x = magnitude_augment(x, hp["aug_magnitude"], draws)
        logits = torch.func.functional_call(model, (params, buffers), (x,))
        return smoothed_cross_entropy(logits, y, hp["label_smoothing"])

    def val_loss(params, buffers, batch):
        x, y = batch
        return nn.functional.cross_entropy(torch.func.functional_call(model, (params, buffers), (x,)), y)

    problem = HyperGradProblem(model, train_loss, val_loss, rule, ("aug_magnitude", "label_smoothing"))
    return problem, (xb, yb), (xv, yv)
