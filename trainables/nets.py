"""ResNet-20, the CIFAR variant of He et al. (2016), with a width multiplier and any input channel count.

Three stages of three basic blocks (3×3 conv → BN → ReLU → 3×3 conv → BN, plus
shortcut), 16·w / 32·w / 64·w channels, stride 2 at the start of stages 2 and 3,
global average pooling and one linear layer: 6·3 + 2 = 20 weighted layers.
Shortcuts that change shape use the paper's parameter-free "option A"
(subsample by 2, zero-pad the new channels), so at width 1 with 10 classes the
net has 269,722 parameters (the paper's "0.27M").

Any image size ≥ 4 works (the pooling is global): 32×32 CIFAR images and the
8×8 grayscale digits (``in_channels=1``) share the same code.

>>> net = resnet20(num_classes=10)
>>> count_parameters(net)
269722
>>> import torch
>>> tuple(resnet20(num_classes=10, in_channels=1)(torch.zeros(2, 1, 8, 8)).shape)
(2, 10)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

STAGE_CHANNELS = (16, 32, 64)
BLOCKS_PER_STAGE = 3


class ShortcutA(nn.Module):
    """Option-A shortcut: take every second pixel, zero-pad the channel dimension."""

    def __init__(self, in_planes: int, planes: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        self.extra = planes - in_planes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        lo = self.extra // 2
        return F.pad(x, (0, 0, 0, 0, lo, self.extra - lo))


class BasicBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut: nn.Module = (
            ShortcutA(in_planes, planes, stride) if stride != 1 or in_planes != planes else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet20(nn.Module):
    """ResNet-20 for small images; ``width`` multiplies every stage's channel count."""

    def __init__(self, num_classes: int = 10, in_channels: int = 3, width: int = 1) -> None:
        super().__init__()
        for name, v in (("num_classes", num_classes), ("in_channels", in_channels), ("width", width)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
        if num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {num_classes}")
        chans = [c * width for c in STAGE_CHANNELS]
        self.conv1 = nn.Conv2d(in_channels, chans[0], 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(chans[0])
        layers: list[nn.Module] = []
        in_planes = chans[0]
        for i, planes in enumerate(chans):
            for b in range(BLOCKS_PER_STAGE):
                stride = 2 if (i > 0 and b == 0) else 1
                layers.append(BasicBlock(in_planes, planes, stride))
                in_planes = planes
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(in_planes, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        # He et al.: Kaiming-normal convolutions; BN starts as the identity.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.kaiming_normal_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layers(out)
        out = out.mean(dim=(2, 3))  # global average pool (adaptive_avg_pool2d has no deterministic CUDA backward)
        return self.fc(out)


def resnet20(num_classes: int = 10, in_channels: int = 3, width: int = 1) -> ResNet20:
    return ResNet20(num_classes=num_classes, in_channels=in_channels, width=width)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
