"""A Tune scheduler that passes every hook to the scheduler it wraps.

Subclasses override only the hooks they observe or change (:class:`ohgw.OHGW`,
:class:`ohgw.studies.ledger.StudyTap`); decisions, properties and ``choose_trial_to_run``
stay the wrapped scheduler's.
"""

from __future__ import annotations

from ray.tune.experiment import Trial
from ray.tune.schedulers import TrialScheduler


class DelegatingScheduler(TrialScheduler):
    def __init__(self, scheduler: TrialScheduler) -> None:
        super().__init__()
        self.scheduler = scheduler

    @property
    def metric(self):
        return self.scheduler.metric

    @property
    def supports_buffered_results(self):
        return self.scheduler.supports_buffered_results

    def set_search_properties(self, metric: str | None, mode: str | None, **spec) -> bool:
        return self.scheduler.set_search_properties(metric, mode, **spec)

    def on_trial_add(self, tune_controller, trial: Trial) -> None:
        self.scheduler.on_trial_add(tune_controller, trial)

    def on_trial_result(self, tune_controller, trial: Trial, result: dict) -> str:
        return self.scheduler.on_trial_result(tune_controller, trial, result)

    def on_trial_complete(self, tune_controller, trial: Trial, result: dict) -> None:
        self.scheduler.on_trial_complete(tune_controller, trial, result)

    def on_trial_error(self, tune_controller, trial: Trial) -> None:
        self.scheduler.on_trial_error(tune_controller, trial)

    def on_trial_remove(self, tune_controller, trial: Trial) -> None:
        self.scheduler.on_trial_remove(tune_controller, trial)

    def choose_trial_to_run(self, tune_controller) -> Trial | None:
        return self.scheduler.choose_trial_to_run(tune_controller)

    def debug_string(self) -> str:
        return self.scheduler.debug_string()

    def save(self, checkpoint_path: str):
        return self.scheduler.save(checkpoint_path)

    def restore(self, checkpoint_path: str):
        return self.scheduler.restore(checkpoint_path)
