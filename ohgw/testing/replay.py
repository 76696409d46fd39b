"""Drive a Tune scheduler through its hooks without a Ray runtime, as Ray's own scheduler tests do.

:class:`Replay` plays a one-worker Tune loop over stub trials: it adds trials
(``on_trial_add``), asks the scheduler which to run (``choose_trial_to_run``),
feeds each iteration's result (``on_trial_result``) from a deterministic
``metric_fn(trial_index, iteration)``, and honours CONTINUE / PAUSE / STOP the way
``TuneController`` does (STOP → ``on_trial_complete``; a stopped PAUSED/PENDING trial →
``on_trial_remove``; a trial that reaches ``max_t`` completes whatever the decision,
as a trainable whose loop ends does). Every decision is
logged as ``(trial_index, iteration, decision)``, so two schedulers fed the same
stream can be compared decision by decision, and the decision rate measured.

It is the ``tune_controller`` argument the scheduler receives (``get_trials``,
``get_live_trials``, ``stop_trial``, ``pause_trial``, ``_set_trial_status``,
``search_alg.is_finished()``), nothing more.

>>> from ray.tune.schedulers import ASHAScheduler
>>> r = Replay(ASHAScheduler(metric="acc", mode="max", max_t=9, reduction_factor=3),
...            n_trials=4, max_t=9, metric_fn=lambda i, t: i + t / 10)
>>> log = r.run()
>>> log[:3]
[(0, 1, 'CONTINUE'), (0, 2, 'CONTINUE'), (0, 3, 'CONTINUE')]
>>> r.iterations[0], r.iterations[3]
(9, 9)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ray.tune.experiment import Trial
from ray.tune.schedulers import TrialScheduler

Decision = tuple[int, int, str]


class ReplayTrial(Trial):
    """A stub Trial (no registered trainable) with no directory to create: there is no Ray session."""

    def init_local_path(self) -> None:
        return None


def stub_trial(index: int, config: Mapping[str, Any] | None = None, trial_id: str | None = None) -> Trial:
    """A :class:`ReplayTrial` with a stable id (``t00000``, ``t00001``, ...)."""
    return ReplayTrial("__replay", config=dict(config or {}), trial_id=trial_id or f"t{index:05d}", stub=True)


class _AllTrialsUpFront:
    """The search algorithm view: finished once every trial has been added."""

    def __init__(self, replay: Replay) -> None:
        self._replay = replay

    def is_finished(self) -> bool:
        return self._replay._added >= len(self._replay.trials)


class Replay:
    """One-worker Tune loop over ``n_trials`` stub trials; see the module doc."""

    def __init__(
        self,
        scheduler: TrialScheduler,
        n_trials: int,
        max_t: int,
        metric_fn: Callable[[int, int], float],
        metric: str = "acc",
        time_attr: str = "training_iteration",
        configs: Callable[[int], Mapping[str, Any]] | None = None,
        extra_result: Callable[[int, int], Mapping[str, Any]] | None = None,
    ) -> None:
        if not isinstance(scheduler, TrialScheduler):
            raise ValueError(f"scheduler must be a TrialScheduler, got {type(scheduler).__name__}")
        if n_trials < 1 or max_t < 1:
            raise ValueError(f"n_trials and max_t must be >= 1, got {n_trials}, {max_t}")
        self.scheduler = scheduler
        self.max_t = max_t
        self.metric_fn = metric_fn
        self.metric = metric
        self.time_attr = time_attr
        self.extra_result = extra_result
        self.trials = [stub_trial(i, configs(i) if configs else {}) for i in range(n_trials)]
        self.index = {t.trial_id: i for i, t in enumerate(self.trials)}
        self.iterations = [0] * n_trials
        self.log: list[Decision] = []
        self.n_results = 0
        self._added = 0

    # ---- the tune_controller surface -------------------------------------------------
    def get_trials(self) -> list[Trial]:
        return self.trials[: self._added]

    def get_live_trials(self) -> set[Trial]:
        return {t for t in self.get_trials() if not t.is_finished()}

    def stop_trial(self, trial: Trial) -> None:
        if trial.status in (Trial.PENDING, Trial.PAUSED):
            self.scheduler.on_trial_remove(self, trial)
        elif trial.status == Trial.RUNNING:
            self.scheduler.on_trial_complete(self, trial, self._result(trial))
        trial.set_status(Trial.TERMINATED)

    def pause_trial(self, trial: Trial, should_checkpoint: bool = True) -> None:
        trial.set_status(Trial.PAUSED)

    def _set_trial_status(self, trial: Trial, status: str) -> None:
        trial.set_status(status)

    @property
    def search_alg(self) -> _AllTrialsUpFront:
        return _AllTrialsUpFront(self)

    # ---- the loop ----------------------------------------------------------------------
    def _result(self, trial: Trial) -> dict:
        i = self.index[trial.trial_id]
        t = self.iterations[i]
        out = {self.time_attr: t, "training_iteration": t, self.metric: float(self.metric_fn(i, t))}
        if self.extra_result is not None:
            out.update(self.extra_result(i, t))
        return out

    def add_all(self) -> None:
        """Add every trial not added yet (``on_trial_add``, in creation order)."""
        while self._added < len(self.trials):
            trial = self.trials[self._added]
            self._added += 1
            self.scheduler.on_trial_add(self, trial)

    def step(self) -> bool:
        """Run the chosen trial until it is paused or finishes; False when nothing is left to run."""
        trial = self.scheduler.choose_trial_to_run(self)
        if trial is None:
            return False
        i = self.index[trial.trial_id]
        trial.set_status(Trial.RUNNING)
        while True:
            self.iterations[i] += 1
            result = self._result(trial)
            self.n_results += 1
            decision = self.scheduler.on_trial_result(self, trial, result)
            self.log.append((i, self.iterations[i], decision))
            if decision == TrialScheduler.STOP or self.iterations[i] >= self.max_t:  # the trainable ends at max_t
                self.scheduler.on_trial_complete(self, trial, result)
                trial.set_status(Trial.TERMINATED)
                return True
            if decision == TrialScheduler.PAUSE:
                trial.set_status(Trial.PAUSED)
                return True
            if trial.status != Trial.RUNNING:  # stopped by the scheduler through stop_trial
                return True

    def run(self, max_steps: int | None = None) -> list[Decision]:
        """Add all trials, then step until done (or ``max_steps`` steps); returns the decision log."""
        self.add_all()
        steps = 0
        while (max_steps is None or steps < max_steps) and self.step():
            steps += 1
        return self.log
