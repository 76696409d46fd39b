"""How to warm-start, without the machinery: the settings, the step-rule names and their defaults.

The harness (its CLI, its runner, every study task), the wrapper and the searchers need these
names and their validation, but never a hyper-gradient; :mod:`ohgw.warmstart` needs torch for
those. This module imports neither torch nor anything that does, so a process that only plans or
schedules studies does not pay the ~3 s of CPU that ``import torch`` costs.
:mod:`ohgw.warmstart` re-exports every name here, which is where the step rules are explained.

>>> s = WarmStartSettings(step_rule="raw")
>>> s.eta, WarmStartSettings().eta, DEFAULT_STEP_RULE
(0.001, 0.05, 'normalized')
>>> WarmStartSettings.from_dict({**s.to_dict(), "unknown": 1}) == s
True
>>> WarmStartSettings(hyper_steps=0)
Traceback (most recent call last):
...
ValueError: hyper_steps must be an integer ≥ 1, got 0
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass

MODES = ("hypergrad", "random", "none")
STEP_RULES = ("raw", "normalized")
DEFAULT_ETA_H = {"raw": 1e-3, "normalized": 0.05}
# One default everywhere (settings, wrapper, harness, CLI): ``normalized``. The raw rule moves
# log-lr by ~1e-4 and the other ψ by less (their hyper-gradients are ~10⁴ smaller), a no-op; a
# default that does nothing would make "+OHGW" measure nothing. ``raw`` stays one argument away.
DEFAULT_STEP_RULE = "normalized"


@dataclass(frozen=True)
class WarmStartSettings:
    """How to warm-start: mode, η_h (None → the step rule's default), step rule, steps, seed."""

    mode: str = "hypergrad"
    eta_h: float | None = None
    step_rule: str = DEFAULT_STEP_RULE
    hyper_steps: int = 1
    lookahead: int = 1
    batch_size: int = 128
    seed: int = 0

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.step_rule not in STEP_RULES:
            raise ValueError(f"step_rule must be one of {STEP_RULES}, got {self.step_rule!r}")
        if self.eta_h is not None and not (math.isfinite(self.eta_h) and self.eta_h > 0):
            raise ValueError(f"eta_h must be > 0, got {self.eta_h}")
        for name in ("hyper_steps", "lookahead", "batch_size"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be an integer ≥ 1, got {v!r}")

    @property
    def eta(self) -> float:
        return DEFAULT_ETA_H[self.step_rule] if self.eta_h is None else float(self.eta_h)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping) -> WarmStartSettings:
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        return cls(**known)


__all__ = ["DEFAULT_ETA_H", "DEFAULT_STEP_RULE", "MODES", "STEP_RULES", "WarmStartSettings"]
