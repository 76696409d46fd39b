"""A study's live metrics (:mod:`ohgw.metrics`), recorded by a Tune callback in the study's process.

:class:`StudyMetrics` sits in the study's ``RunConfig(callbacks=...)`` after the
:class:`~ohgw.studies.ledger.StudyRecorder` (so the ledger has accounted each report and the
scheduler has decided on it: Tune calls the scheduler before the callbacks). Per report it records:

- the warm-start of a trial's first report: |g_ψ| and |Δu_ψ| = |u′_ψ − u_ψ| per ψ, in the
  search coordinates of the study's :class:`~ohgw.space.SearchSpace` (log10 for log-scaled ψ),
  parsed with :func:`ohgw.protocol.adjusted_from_result` only;
- a scheduler STOP or PAUSE of that report, at its rung (the report's epoch);
- a PASHA's (or any scheduler's with ``current_max_t`` and ``eps``) current max resource and ε;
- T@τ, once: the first report whose tuned metric reaches τ (≥ for ``max``, ≤ for ``min``) sets the
  study's time to target on its three clocks: wall seconds since the study started, compute
  seconds and epoch-equivalents spent by then (warm-starts included, as the analysis counts them).

Recording never fails a study: a metric that cannot be recorded is logged once
(:func:`ohgw.metrics.safely`).
"""

from __future__ import annotations

import math
import time

from ray.tune import Callback
from ray.tune.schedulers import TrialScheduler

from ohgw import metrics, protocol
from ohgw.space import SearchSpace
from ohgw.studies.ledger import StudyLedger

STOP, PAUSE = TrialScheduler.STOP, TrialScheduler.PAUSE


def _innermost_with(scheduler, *attrs: str):
    """The scheduler itself or the first one it wraps (``.scheduler`` chain) that has ``attrs``."""
    s = scheduler
    for _ in range(8):
        if s is None:
            return None
        if all(hasattr(type(s), a) for a in attrs):
            return s
        s = getattr(s, "scheduler", None)
    return None


def step_sizes(space: SearchSpace, x: dict[str, float], x_prime: dict[str, float]) -> dict[str, float]:
    """|u′_ψ − u_ψ| per ψ of ``space`` present in both ``x`` and ``x_prime`` (search coordinates).

    >>> sp = SearchSpace.from_bounds({"lr": (1e-3, 1.0, "log10"), "momentum": (0.0, 0.99, "identity")})
    >>> {k: round(v, 12) for k, v in step_sizes(sp, {"lr": 0.01, "momentum": 0.5}, {"lr": 0.1, "momentum": 0.4}).items()}
    {'lr': 1.0, 'momentum': 0.1}
    """
    return {n: abs(space[n].to_u(x_prime[n]) - space[n].to_u(x[n])) for n in space.names if n in x and n in x_prime}


class StudyMetrics(Callback):
    """Live metrics of one study (see the module docstring); ``scheduler`` is the study's own."""

    def __init__(self, experiment: str, method: str, seed: int, space: SearchSpace, ledger: StudyLedger,
                 metric: str, mode: str, tau: float, scheduler=None) -> None:
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        self.tags = metrics.study_tags(experiment, method, seed)
        self.space, self.ledger = space, ledger
        self.metric, self.mode, self.tau = metric, mode, float(tau)
        self.pasha = _innermost_with(scheduler, "current_max_t", "eps")
        self.reached = False

    def _rec(self, name: str, value: float, **extra) -> None:
        metrics.safely(name, value, {**self.tags, **extra})

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        self._warm_start(result)
        epoch = int(result.get(protocol.ITERATION, 0))
        decision = self.ledger.decisions.get((trial.trial_id, epoch), "")
        if decision in (STOP, PAUSE) and epoch >= 1:
            self._rec("ohgw_trials_stopped_total" if decision == STOP else "ohgw_trials_paused_total", 1.0, rung=epoch)
        if self.pasha is not None:
            self._rec("ohgw_pasha_max_resource_epochs", float(self.pasha.current_max_t))
            self._rec("ohgw_pasha_epsilon", float(self.pasha.eps))
        self._target(result)

    def _warm_start(self, result: dict) -> None:
        adjusted = protocol.adjusted_from_result(result, self.space.names)
        if adjusted is None:
            return
        for name, g in adjusted["g"].items():
            self._rec("ohgw_warmstart_abs_hypergradient", abs(float(g)), psi=name)
        for name, du in step_sizes(self.space, adjusted["x"], adjusted["x_prime"]).items():
            self._rec("ohgw_warmstart_abs_step", du, psi=name)

    def _target(self, result: dict) -> None:
        if self.reached:
            return
        try:
            score = float(result.get(self.metric, float("nan")))
        except (TypeError, ValueError):
            return
        if not math.isfinite(score) or (score < self.tau if self.mode == "max" else score > self.tau):
            return
        self.reached = True
        led = self.ledger
        self._rec("ohgw_study_time_to_target_wall_seconds", time.time() - led.t0)
        self._rec("ohgw_study_time_to_target_compute_seconds", led.compute_s)
        self._rec("ohgw_study_time_to_target_epoch_equivalents", led.epoch_equiv)
