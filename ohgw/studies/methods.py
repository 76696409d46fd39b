"""Study methods by name: a scheduler factory plus a warm-start setting.

A name is ``<scheduler>`` or ``<scheduler>+<variant>``:

=============  ============================================================
scheduler      ``asha`` (Ray's, stopping-type), ``asha-promo`` (our promotion-type
               ASHA: the fair baseline for PASHA), ``hyperband`` (Ray's), ``pasha``,
               ``dyhpo`` (our DyHPO: one epoch per decision, deep-kernel GP + EI)
variant        ``ohgw`` (one hyper-gradient step), ``random`` (a random step of the
               same length: the perturbation control), ``ohgw-k2`` (two hyper-gradient
               steps: the multi-step ablation)
=============  ============================================================

An optional ``@eta=<float>`` suffix sets η_h for that method alone, for η_h sweeps
(``asha+ohgw@eta=0.01``). Every method's vanilla partner is its scheduler alone.
Adding a method is one entry in :data:`SCHEDULERS` or :data:`VARIANTS`.

``dyhpo+ohgw``: the surrogate learns from x′, the config that trained (the trainable reports it
with its first result; :mod:`ohgw.dyhpo.scheduler` reads it through
:func:`ohgw.protocol.adjusted_from_result`). DyHPO encodes configs with ``SchedulerArgs.space``
when the harness passes it, else with the OHGW instruction's space (``+ohgw``/``+random``), else
it infers the encoding from the configs (:mod:`ohgw.dyhpo.encoding`).

>>> sorted(m for m in known_methods() if m.startswith("dyhpo"))
['dyhpo', 'dyhpo+ohgw', 'dyhpo+ohgw-k2', 'dyhpo+random']
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from ray.tune.schedulers import ASHAScheduler, HyperBandScheduler, TrialScheduler

from ohgw import protocol
from ohgw.warmstart_settings import WarmStartSettings


@dataclass(frozen=True)
class SchedulerArgs:
    """What every scheduler factory receives; resources are in training iterations (epochs)."""

    metric: str
    mode: str
    max_t: int
    grace_period: int = 1
    reduction_factor: int = 3
    max_concurrent: int = 1  # trials of one study running at once
    space: Any = None  # the study's SearchSpace (DyHPO encodes configs with it); optional


def _asha(a: SchedulerArgs) -> TrialScheduler:
    return ASHAScheduler(
        time_attr=protocol.ITERATION,
        metric=a.metric,
        mode=a.mode,
        max_t=a.max_t,
        grace_period=a.grace_period,
        reduction_factor=a.reduction_factor,
    )


def _hyperband(a: SchedulerArgs) -> TrialScheduler:
    return HyperBandScheduler(
        time_attr=protocol.ITERATION, metric=a.metric, mode=a.mode, max_t=a.max_t, reduction_factor=a.reduction_factor
    )


def _pasha(a: SchedulerArgs, progressive: bool = True) -> TrialScheduler:
    from ohgw.pasha import PASHA

    return PASHA(
        time_attr=protocol.ITERATION,
        metric=a.metric,
        mode=a.mode,
        max_t=a.max_t,
        grace_period=a.grace_period,
        reduction_factor=a.reduction_factor,
        progressive=progressive,
        max_concurrent=a.max_concurrent,  # PASHA holds new trials itself: it must know the study's slice
    )


def _dyhpo(a: SchedulerArgs) -> TrialScheduler:
    from ohgw.dyhpo import DyHPO

    return DyHPO(
        time_attr=protocol.ITERATION,
        metric=a.metric,
        mode=a.mode,
        max_t=a.max_t,
        increment=a.grace_period,  # one budget step = the lowest rung of the other schedulers
        space=a.space,
        max_concurrent=a.max_concurrent,  # DyHPO holds new trials itself: it must know the study's slice
    )


# schedulers that hold new trials PAUSED and pick what runs themselves: Tune's and the searcher's
# concurrency limits would count their paused trials as live and stall the study
SELF_LIMITING = {"pasha", "asha-promo", "dyhpo"}

SCHEDULERS: dict[str, Callable[[SchedulerArgs], TrialScheduler]] = {
    "asha": _asha,
    "asha-promo": lambda a: _pasha(a, progressive=False),
    "hyperband": _hyperband,
    "pasha": _pasha,
    "dyhpo": _dyhpo,
}

# variant → warm-start settings that override the experiment's defaults (mode, hyper_steps)
VARIANTS: dict[str, dict] = {
    "ohgw": {"mode": "hypergrad"},
    "random": {"mode": "random"},
    "ohgw-k2": {"mode": "hypergrad", "hyper_steps": 2},
}


@dataclass(frozen=True)
class Method:
    name: str
    scheduler: str
    variant: str  # "" for vanilla
    eta_h: float | None = None

    @property
    def self_limiting(self) -> bool:
        return self.scheduler in SELF_LIMITING

    @property
    def vanilla(self) -> str:
        """The paired baseline's name ('' for a baseline itself)."""
        return self.scheduler if self.variant else ""

    def make_scheduler(self, args: SchedulerArgs) -> TrialScheduler:
        return SCHEDULERS[self.scheduler](args)

    def warm_start(self, defaults: WarmStartSettings) -> WarmStartSettings:
        """The warm-start settings of this method (mode 'none' for a vanilla method)."""
        if not self.variant:
            return replace(defaults, mode="none")
        s = replace(defaults, **VARIANTS[self.variant])
        return replace(s, eta_h=self.eta_h) if self.eta_h is not None else s


def parse_method(name: str) -> Method:
    """``"pasha+ohgw@eta=0.01"`` → Method; a ValueError names what is unknown."""
    base, _, eta_part = name.partition("@")
    eta = None
    if eta_part:
        key, _, value = eta_part.partition("=")
        try:
            eta = float(value)
        except ValueError:
            eta = float("nan")
        if key != "eta" or not (math.isfinite(eta) and eta > 0):
            raise ValueError(f"method {name!r}: the suffix must be '@eta=<float > 0>'")
    scheduler, _, variant = base.partition("+")
    if scheduler not in SCHEDULERS:
        raise ValueError(f"unknown method {name!r}: scheduler must be one of {sorted(SCHEDULERS)}")
    if variant and variant not in VARIANTS:
        raise ValueError(f"unknown method {name!r}: variant must be one of {sorted(VARIANTS)}")
    if eta is not None and not variant:
        raise ValueError(f"method {name!r}: '@eta=' needs a warm-start variant")
    return Method(name=name, scheduler=scheduler, variant=variant, eta_h=eta)


def known_methods() -> list[str]:
    return sorted(SCHEDULERS) + sorted(f"{s}+{v}" for s in SCHEDULERS for v in VARIANTS)
