"""Config value checks every family's ``resolve_config`` uses: one ValueError naming the key and the value.

>>> number({"lr": 0.1}, "lr", low=0, strict=True)
0.1
>>> integer({"epochs": 4.0}, "epochs", low=1)   # an integer-valued float (YAML, a Tune sample) is accepted
4
>>> choice({"enc": "mlp"}, "enc", ("linear", "mlp"))
'mlp'
>>> integer({"batch_size": 0}, "batch_size", low=1)
Traceback (most recent call last):
ValueError: batch_size must be an integer >= 1, got 0
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import torch


def number(cfg: Mapping, name: str, low: float | None = None, strict: bool = False) -> float:
    """``cfg[name]`` as a finite float, ≥ ``low`` (> ``low`` when ``strict``) when given."""
    v = cfg[name]
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or not math.isfinite(float(v)):
        raise ValueError(f"{name} must be a finite number, got {v!r}")
    v = float(v)
    if low is not None and (v <= low if strict else v < low):
        raise ValueError(f"{name} must be {'>' if strict else '>='} {low}, got {v}")
    return v


def integer(cfg: Mapping, name: str, low: int, high: int | None = None) -> int:
    """``cfg[name]`` as an int in [low, high] (no upper bound when ``high`` is None)."""
    v = cfg[name]
    if isinstance(v, (float, np.floating)) and float(v).is_integer():
        v = int(v)
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < low or (high is not None and v > high):
        rule = f"in [{low}, {high}]" if high is not None else f">= {low}"
        raise ValueError(f"{name} must be an integer {rule}, got {v!r}")
    return int(v)


def choice(cfg: Mapping, name: str, choices: Sequence[str]) -> str:
    """``cfg[name]``, which must be one of ``choices``."""
    if cfg[name] not in choices:
        raise ValueError(f"{name} must be one of {tuple(choices)}, got {cfg[name]!r}")
    return cfg[name]


def resolve_device(name: str) -> torch.device:
    """The torch device of a config's ``device`` ("auto": CUDA if visible, else the CPU); asking for CUDA
    where there is none is a ValueError."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} asked for, but CUDA is not available here")
    return torch.device(name)
