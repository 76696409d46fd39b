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

**Several trials at once** (``workers > 1``, ``save_ticks > 0`` or ``max_live``): the loop
then runs in ticks, the way ``TuneController`` interleaves trials. Each tick (1) ends the
checkpoint saves that are due, (2) adds trials while fewer than ``max_live`` are live (a
PAUSED trial is live and holds its slot, like ``max_concurrent_trials``), (3) starts the
trials ``choose_trial_to_run`` hands out while fewer than ``workers`` run, and (4) gives
every running trial that is not saving one result, in trial order. As in Tune, a PAUSE
first *saves*: the trial stays RUNNING with ``trial.is_saving`` true for ``save_ticks``
ticks while the other trials report, and only then becomes PAUSED. Here a trainable's end
is seen as Tune sees it: a trial at ``max_t`` completes after a CONTINUE or STOP, but a
PAUSE at ``max_t`` pauses it (resumed, it completes at once). The run ends when nothing runs,
saves or can be started; :attr:`stuck` then lists the trials left unfinished (a scheduler
that never resumes nor stops a PAUSED trial hangs a real Tuner there).

>>> from ray.tune.schedulers import HyperBandScheduler
>>> hb = HyperBandScheduler(metric="acc", mode="max", max_t=3, reduction_factor=2)
>>> r = Replay(hb, n_trials=4, max_t=3, metric_fn=lambda i, t: i + t, workers=2, max_live=2)
>>> _ = r.run()
>>> r.stuck, [t.status for t in r.trials]
([], ['TERMINATED', 'TERMINATED', 'TERMINATED', 'TERMINATED'])

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
        workers: int = 1,
        save_ticks: int = 0,
        max_live: int | None = None,
    ) -> None:
        if not isinstance(scheduler, TrialScheduler):
            raise ValueError(f"scheduler must be a TrialScheduler, got {type(scheduler).__name__}")
        if n_trials < 1 or max_t < 1:
            raise ValueError(f"n_trials and max_t must be >= 1, got {n_trials}, {max_t}")
        if workers < 1 or save_ticks < 0 or (max_live is not None and max_live < 1):
            raise ValueError(f"need workers >= 1, save_ticks >= 0, max_live >= 1; got {workers}, {save_ticks}, {max_live}")
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
        self.workers = workers
        self.save_ticks = save_ticks
        self.max_live = max_live
        self.concurrent = workers > 1 or save_ticks > 0 or max_live is not None
        self.ticks = 0
        self._saving: dict[str, int] = {}  # trial id -> ticks left of its pause save
        self._running: list[Trial] = []  # in start order (concurrent mode)

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
        self._end_save(trial)
        trial.set_status(Trial.TERMINATED)

    def pause_trial(self, trial: Trial, should_checkpoint: bool = True) -> None:
        if self.concurrent and self.save_ticks and should_checkpoint and trial.status == Trial.RUNNING:
            self._start_save(trial)
        else:
            self._end_save(trial)
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
        """Add all trials, then step until done (or ``max_steps`` steps); returns the decision log.

        With several workers (see the module doc) a step is a tick, and trials are added as
        ``max_live`` allows."""
        if self.concurrent:
            steps = 0
            while (max_steps is None or steps < max_steps) and self.tick():
                steps += 1
            return self.log
        self.add_all()
        steps = 0
        while (max_steps is None or steps < max_steps) and self.step():
            steps += 1
        return self.log

    @property
    def stuck(self) -> list[int]:
        """Indices of the trials not finished (after :meth:`run` returned: the ones a real Tuner would wait on)."""
        return [i for i, t in enumerate(self.trials) if not t.is_finished()]

    # ---- several trials at once ------------------------------------------------------------
    def _start_save(self, trial: Trial) -> None:
        self._saving[trial.trial_id] = self.save_ticks
        trial.temporary_state.saving_to = f"replay-save-{trial.trial_id}"  # trial.is_saving, as in Tune

    def _end_save(self, trial: Trial) -> None:
        self._saving.pop(trial.trial_id, None)
        trial.temporary_state.saving_to = None

    def _complete(self, trial: Trial, result: dict) -> None:
        self.scheduler.on_trial_complete(self, trial, result)
        trial.set_status(Trial.TERMINATED)

    def tick(self) -> bool:
        """One round of the concurrent loop (module doc); False when nothing is left that can move."""
        self.ticks += 1
        moved = False
        # 1. saves that are due: the trial becomes PAUSED and gives its worker back
        for trial in list(self._running):
            tid = trial.trial_id
            if tid in self._saving:
                self._saving[tid] -= 1
                if self._saving[tid] <= 0:
                    self._end_save(trial)
                    if trial.status == Trial.RUNNING:
                        trial.set_status(Trial.PAUSED)
                    moved = True
        self._running = [t for t in self._running if t.status == Trial.RUNNING]
        # 2. new trials while the search algorithm's concurrency limit allows
        while self._added < len(self.trials) and (self.max_live is None or len(self.get_live_trials()) < self.max_live):
            trial = self.trials[self._added]
            self._added += 1
            self.scheduler.on_trial_add(self, trial)
            moved = True
        # 3. start what the scheduler hands out while a worker is free
        while len(self._running) < self.workers:
            trial = self.scheduler.choose_trial_to_run(self)
            if trial is None or trial in self._running or trial.status not in (Trial.PENDING, Trial.PAUSED):
                break
            trial.set_status(Trial.RUNNING)
            moved = True
            i = self.index[trial.trial_id]
            if self.iterations[i] >= self.max_t:  # resumed after its last epoch: the trainable returns
                self._complete(trial, self._result(trial))
                continue
            self._running.append(trial)
        # 4. one result from every running trial that is not saving
        for trial in sorted(self._running, key=lambda t: self.index[t.trial_id]):
            if trial.status != Trial.RUNNING or trial.is_saving:
                continue
            i = self.index[trial.trial_id]
            self.iterations[i] += 1
            result = self._result(trial)
            self.n_results += 1
            decision = self.scheduler.on_trial_result(self, trial, result)
            self.log.append((i, self.iterations[i], decision))
            moved = True
            if trial.status != Trial.RUNNING:  # stopped through stop_trial meanwhile
                continue
            if decision == TrialScheduler.PAUSE:
                self.pause_trial(trial)
            elif decision == TrialScheduler.STOP or self.iterations[i] >= self.max_t:
                self._complete(trial, result)
        self._running = [t for t in self._running if t.status == Trial.RUNNING]
        return moved or bool(self._saving)
