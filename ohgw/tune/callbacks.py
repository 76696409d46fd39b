"""Tune callbacks for OHGW: show x′ in every result, and keep scheduler state across restore.

``RunConfig(callbacks=sched.callbacks())`` with ``sched = OHGW(...)`` gives both.

- :class:`AdjustedConfigCallback`: once a trial's config holds x′ (recorded by
  :class:`ohgw.tune.wrapper.OHGW`, or by this callback itself when a trainable
  reports x′ under a scheduler that is not OHGW; both through
  :func:`ohgw.protocol.adjusted_from_result` and :func:`ohgw.protocol.apply_adjusted`),
  every result's ``"config"`` is replaced by the trial's config, so ``result.config``, the
  ``result.json`` logs and ``ResultGrid`` all show x′ (with x under
  :data:`ohgw.protocol.ORIGINAL_KEY`).
- :class:`SchedulerStateCallback`: Tune saves callback state with every
  experiment checkpoint and hands it back on ``Tuner.restore`` before any trial is
  re-added (``TuneController.resume``). This callback's state is a snapshot of a
  scheduler with ``get_state()`` / ``set_state()`` (our PASHA, OHGW with whatever
  it wraps), so the restored scheduler continues with its rungs instead of empty
  ones. The callback reaches the scheduler by reference: ``Tuner`` pickles the
  ``TuneConfig`` (scheduler) and ``RunConfig`` (callbacks) in one ``tuner.pkl``,
  so after ``Tuner.restore`` both point at the same restored object. Tune
  matches callback states by position in the callback list: pass the same list.

>>> from ray.tune.schedulers import FIFOScheduler
>>> from ohgw.tune.wrapper import OHGW
>>> from ohgw.space import SearchSpace
>>> cbs = OHGW(FIFOScheduler(), SearchSpace.default()).callbacks()
>>> [type(c).__name__ for c in cbs]
['AdjustedConfigCallback', 'SchedulerStateCallback']
"""

from __future__ import annotations

from typing import Any

from ray.tune.callback import Callback

from ohgw.protocol import adjusted_from_result, apply_adjusted, is_recorded
from ohgw.tune.state import check_supported, has_state_protocol


class AdjustedConfigCallback(Callback):
    """Makes every result's ``"config"`` the trial's recorded config (x′, with x and g kept)."""

    def on_trial_result(self, iteration: int, trials: list, trial, result: dict, **info) -> None:
        if not is_recorded(trial.config):
            adjusted = adjusted_from_result(result)
            if adjusted is None:
                return
            trial.set_config(apply_adjusted(trial.config, adjusted))
        if isinstance(result.get("config"), dict):
            result["config"] = dict(trial.config)

    def on_trial_complete(self, iteration: int, trials: list, trial, **info) -> None:
        last = trial.last_result
        if is_recorded(trial.config) and isinstance(last, dict) and isinstance(last.get("config"), dict):
            last["config"] = dict(trial.config)


class SchedulerStateCallback(Callback):
    """Checkpoints ``scheduler.get_state()`` with the experiment; ``Tuner.restore`` reloads it."""

    def __init__(self, scheduler: Any) -> None:
        if not has_state_protocol(scheduler):
            raise ValueError(
                f"scheduler must have get_state() and set_state(state) methods, got {type(scheduler).__name__}; "
                "wrap a Ray scheduler in ohgw.OHGW (mode='none' keeps it vanilla) to restore its state"
            )
        # fail now, not at the first experiment checkpoint, if the wrapped Ray scheduler's
        # private state cannot be saved exactly with this Ray (ohgw.tune.state.SUPPORTED_RAY)
        inner = scheduler
        for _ in range(8):
            inner = getattr(inner, "scheduler", None)
            if inner is None:
                break
            check_supported(inner)
        self.scheduler = scheduler
        self.restored = False  # True once set_state ran (i.e. after a Tuner.restore)

    def get_state(self) -> dict | None:
        return {"scheduler_type": type(self.scheduler).__name__, "state": self.scheduler.get_state()}

    def set_state(self, state: dict) -> None:
        name = type(self.scheduler).__name__
        if state.get("scheduler_type") != name:
            raise ValueError(f"state: saved for a {state.get('scheduler_type')}, this callback holds a {name}")
        self.scheduler.set_state(state["state"])
        self.restored = True
