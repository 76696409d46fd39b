"""A Tune scheduler that passes every hook to the scheduler it wraps.

Subclasses override only the hooks they observe or change (:class:`ohgw.OHGW`,
:class:`ohgw.studies.ledger.StudyTap`); decisions, properties and ``choose_trial_to_run``
stay the wrapped scheduler's.

**Transparent.** Code written against the wrapped scheduler keeps working on the wrapper:
every attribute *read* the wrapper does not define itself goes to the wrapped scheduler,
public or not (``OHGW(asha)._brackets is asha._brackets``, ``._max_t``, ``._time_attr``), and
``_metric`` / ``_supports_buffered_results``, which ``TrialScheduler`` defines on the class,
are forwarded too. Dunder names and ``scheduler`` itself are never forwarded, so an object
whose ``scheduler`` is not set yet (during unpickling, ``copy``, ``__new__``) raises
``AttributeError`` instead of recursing. Attribute *writes* stay on the wrapper.

One repair is added, for Ray's ``HyperBandScheduler`` only: a trial left PAUSED in a
finished bracket because it was still saving its checkpoint when the bracket finished.

**The race (Ray 2.60, ``ray/tune/schedulers/hyperband.py``).** When a bracket's last live
trial reports its final milestone, ``HyperBandScheduler._process_bracket`` calls
``_Bracket.cleanup_full``, which stops the bracket's other trials only
``if trial.status == Trial.PAUSED``. But Tune pauses in two steps
(``TuneController._schedule_trial_pause``): it first saves the trial's checkpoint, with the
trial still RUNNING (``trial.is_saving``), and only marks it PAUSED when the save has been
processed (``_process_trial_save``). A trial told to PAUSE a moment earlier is therefore
still RUNNING when ``cleanup_full`` runs, is not stopped, and becomes PAUSED afterwards in a
bracket that is finished: ``choose_trial_to_run`` returns only PENDING trials or PAUSED ones in
``trials_to_unpause``, nothing ever reports to that bracket again, and the trial is never
resumed nor stopped. With every trial created (or ``max_concurrent_trials`` reached, since a
PAUSED trial holds its slot) the experiment waits forever. HyperBand's own successive-halving
branch does check ``t.status == Trial.PAUSED or t.is_saving``; ``cleanup_full`` does not.
It never happens with one trial at a time.

**The repair.** After the wrapped HyperBand returns STOP for a trial of a finished bracket
(the ``cleanup_full`` branch), the bracket's other live trials that are still saving are
remembered; once Tune has marked one PAUSED, the next ``choose_trial_to_run`` stops it with
``tune_controller.stop_trial``, exactly what ``cleanup_full`` does to a trial whose save
ended in time (``on_trial_remove``, then TERMINATED). A run without the race sees no extra
call at all, so a wrapped HyperBand decides and stops exactly like the bare one.
``HyperBandForBOHB`` is left alone: its own ``choose_trial_to_run`` reprocesses brackets with
PAUSED trials once nothing runs.
"""

from __future__ import annotations

from ray.tune.experiment import Trial
from ray.tune.schedulers import HyperBandScheduler, TrialScheduler
from ray.tune.schedulers.hb_bohb import HyperBandForBOHB


def _finished_bracket_of(scheduler: TrialScheduler, trial: Trial):
    """The HyperBand bracket of ``trial`` if it is finished (and stops its last trials), else None."""
    info = getattr(scheduler, "_trial_info", {}).get(trial)
    bracket = info[0] if info else None
    if bracket is None or not getattr(bracket, "stop_last_trials", False) or not bracket.finished():
        return None
    return bracket


class DelegatingScheduler(TrialScheduler):
    def __init__(self, scheduler: TrialScheduler) -> None:
        super().__init__()
        self.scheduler = scheduler
        # HyperBand trials left saving in a finished bracket: stop them once PAUSED (module doc)
        self._stop_when_paused: list[Trial] = []

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.__dict__.setdefault("_stop_when_paused", [])

    # ---- transparency (module doc) -----------------------------------------------------------
    def __getattr__(self, name: str):
        # only called when normal lookup fails; never for names set on the instance or the class
        inner = self.__dict__.get("scheduler") if name != "__dict__" else None
        if inner is None or name == "scheduler" or (name.startswith("__") and name.endswith("__")):
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        try:
            return getattr(inner, name)
        except AttributeError:
            raise AttributeError(
                f"{type(self).__name__!r} object has no attribute {name!r}, nor has the wrapped "
                f"{type(inner).__name__}"
            ) from None

    def __dir__(self):
        inner = self.__dict__.get("scheduler")
        return sorted(set(super().__dir__()) | (set(dir(inner)) if inner is not None else set()))

    @property
    def _metric(self):
        return self.scheduler._metric

    @_metric.setter
    def _metric(self, value) -> None:
        self.scheduler._metric = value

    @property
    def _supports_buffered_results(self):
        return self.scheduler._supports_buffered_results

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
        decision = self.scheduler.on_trial_result(tune_controller, trial, result)
        if decision == TrialScheduler.STOP:
            self._watch_finished_bracket(trial)
        return decision

    def on_trial_complete(self, tune_controller, trial: Trial, result: dict) -> None:
        self.scheduler.on_trial_complete(tune_controller, trial, result)

    def on_trial_error(self, tune_controller, trial: Trial) -> None:
        self.scheduler.on_trial_error(tune_controller, trial)

    def on_trial_remove(self, tune_controller, trial: Trial) -> None:
        self.scheduler.on_trial_remove(tune_controller, trial)

    def choose_trial_to_run(self, tune_controller) -> Trial | None:
        if self._stop_when_paused:
            self._stop_orphans(tune_controller)
        return self.scheduler.choose_trial_to_run(tune_controller)

    def debug_string(self) -> str:
        return self.scheduler.debug_string()

    def save(self, checkpoint_path: str):
        return self.scheduler.save(checkpoint_path)

    def restore(self, checkpoint_path: str):
        return self.scheduler.restore(checkpoint_path)

    # ---- the HyperBand save-window repair (module doc) ---------------------------------------
    def _watch_finished_bracket(self, trial: Trial) -> None:
        inner = self.scheduler
        if not isinstance(inner, HyperBandScheduler) or isinstance(inner, HyperBandForBOHB):
            return
        bracket = _finished_bracket_of(inner, trial)
        if bracket is None:
            return
        for other in bracket.current_trials():
            if other is not trial and other.is_saving and other not in self._stop_when_paused:
                self._stop_when_paused.append(other)

    def _stop_orphans(self, tune_controller) -> None:
        waiting = []
        for trial in self._stop_when_paused:
            if trial.status in (Trial.TERMINATED, Trial.ERROR):
                continue  # stopped meanwhile by someone else
            if trial.status != Trial.PAUSED:
                waiting.append(trial)  # still saving
                continue
            bracket = _finished_bracket_of(self.scheduler, trial)
            if bracket is not None and trial in bracket.current_trials() and trial not in bracket.trials_to_unpause:
                tune_controller.stop_trial(trial)
        self._stop_when_paused = waiting
