"""PASHA (progressive ASHA) and promotion-type ASHA as a Ray Tune ``TrialScheduler``.

PASHA (Bohdal et al., ICLR 2023) is promotion-type asynchronous successive halving whose max
resource starts low and grows only when the ranking of the two highest rungs is inconsistent.
The decisions are those of syne-tune 0.13.0's ``PASHARungSystem`` (``progressive=True``) or
``PromotionRungSystem`` (``progressive=False``) for the same stream of results; the bookkeeping
and the documented differences to the paper's wording are in :mod:`ohgw.pasha.rungs`.

How it maps onto Tune:

- Trials PAUSE at rung milestones and are RESUMED from their checkpoint when promoted, so the
  trainable must checkpoint every epoch (``tune.report(..., checkpoint=...)``) and restore from
  ``tune.get_checkpoint()``. A report at ``time_attr >= max_t`` STOPs the trial.
- "A worker is free" happens at two places. (1) A report that pauses or stops a trial frees
  its worker at once, as in syne-tune: ``on_trial_result`` decides right there whom the worker
  goes to (a promotion, else the oldest held new trial). If that is the reporting trial itself
  (it is promoted from the rung it just entered), Tune is told CONTINUE, which saves an actor
  restart and changes no decision. (2) ``choose_trial_to_run`` (Tune calls it every controller
  step) hands out the workers nobody holds: while fewer than ``max_concurrent`` trials hold a
  worker, it promotes or starts a held new trial. Tune starts every PENDING trial it can, so
  PASHA holds each new trial back: it marks it PAUSED in ``on_trial_add`` (it has no checkpoint,
  so it starts from scratch when released). ``choose_trial_to_run`` is idempotent: it first
  returns any trial that holds a worker but is still PAUSED (released by (1), or held a worker
  before a ``Tuner.restore`` or a retried failure) and otherwise decides only for a free worker.
- After a PAUSE, Tune saves the trial's checkpoint and only then marks it PAUSED; other trials'
  reports are handled during the save, while the trial still shows as RUNNING. Such a trial can
  be promoted then: it holds a worker at once and ``choose_trial_to_run`` hands it out once it
  is PAUSED (exactly once: Tune then marks it PENDING). Only an ended trial (TERMINATED, ERROR)
  is passed over for promotion.
- ``max_concurrent=None`` takes the number of trials whose resource request fits into the Ray
  cluster at once. Because new trials are held, Tune asks the searcher for trials early (a
  ``BasicVariantGenerator`` hands out all of them at once; a model-based searcher suggests
  before it has seen results). Do not cap concurrency with
  ``TuneConfig(max_concurrent_trials=...)`` or a ``ConcurrencyLimiter`` below the number of
  trials: paused trials count as live there, so the run can stall (PASHA logs a warning after
  30 s). Cap it with ``max_concurrent`` here.
- When nothing runs, nothing can be promoted and the searcher is finished, the trials still
  paused in rungs are stopped (logged as ``("end", trial_id)``), so ``Tuner.fit`` ends; their
  last report, at the rung they paused in, is their final result.
- ``get_state`` / ``set_state`` carry everything (the configuration, rungs, eps, current max
  resource, per-trial curves, which trials hold a worker, the queue of held trials, the decision
  log) as plain data, so a default-built ``PASHA()`` loads a snapshot and decides the same; :class:`ohgw.tune.callbacks.SchedulerStateCallback` saves it with the experiment so that
  ``Tuner.restore`` continues with the same decisions. Tune registers a reported checkpoint
  one controller step after the result; if the run is interrupted in between, the restored
  trial redoes that epoch: one extra CONTINUE report in the log and, for a deterministic
  trainable, the same values and decisions as without the interruption.

Example (mode must be given, here or via ``TuneConfig``; syne-tune's default would be "min")::

    from ray import tune
    from ohgw.pasha import PASHA
    from ohgw.tune.callbacks import SchedulerStateCallback

    pasha = PASHA(metric="val_acc", mode="max", max_t=27, grace_period=1, reduction_factor=3)
    tuner = tune.Tuner(
        trainable,
        param_space=space,
        tune_config=tune.TuneConfig(scheduler=pasha, num_samples=64),
        run_config=tune.RunConfig(callbacks=[SchedulerStateCallback(pasha)]),
    )
    tuner.fit()
    pasha.current_max_t, pasha.eps, pasha.rungs
"""

from __future__ import annotations

import logging
import time
import warnings
from typing import Any

from ray.tune.experiment import Trial
from ray.tune.schedulers.trial_scheduler import TrialScheduler

from ohgw.pasha.rungs import PashaRungs, validate
from ohgw.tune.capacity import Workers

STATE_VERSION = 1
_DECISION = {"continue": TrialScheduler.CONTINUE, "pause": TrialScheduler.PAUSE, "stop": TrialScheduler.STOP}
_STUCK_WARN_S = 30.0
logger = logging.getLogger(__name__)


class PASHA(TrialScheduler):
    """Progressive ASHA, promotion type; ``progressive=False`` gives promotion-type ASHA.

    Args:
        time_attr: Result key counting the resource (epochs); must step by 1 from 1.
        metric: Result key to optimise (or set through ``TuneConfig``).
        mode: "min" or "max" (or set through ``TuneConfig``).
        max_t: Largest resource; not a rung level. Reports at ``>= max_t`` stop the trial.
        grace_period: Lowest rung level r_min.
        reduction_factor: eta > 1; rung levels are ``round(r_min * eta**k) < max_t``.
        progressive: PASHA's growing max resource (True) or plain promotion-type ASHA (False).
        max_concurrent: Workers, i.e. trials running at once; None derives it from the cluster.

    >>> p = PASHA(metric="val_acc", mode="max", max_t=27)
    >>> p.rung_levels, p.current_max_t
    ([1, 3, 9], 3)
    """

    def __init__(
        self,
        time_attr: str = "training_iteration",
        metric: str | None = None,
        mode: str | None = None,
        max_t: int = 100,
        grace_period: int = 1,
        reduction_factor: float = 3,
        progressive: bool = True,
        max_concurrent: int | None = None,
    ):
        super().__init__()
        if mode not in (None, "min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        validate(max_t, grace_period, reduction_factor)
        if not isinstance(time_attr, str) or not time_attr:
            raise ValueError(f"time_attr must be a non-empty string, got {time_attr!r}")
        if max_concurrent is not None and (
            isinstance(max_concurrent, bool) or not isinstance(max_concurrent, int) or max_concurrent < 1
        ):
            raise ValueError(f"max_concurrent must be a positive integer or None, got {max_concurrent!r}")
        self._time_attr = time_attr
        self._metric = metric
        self._mode = mode
        self._max_t = int(max_t)
        self._grace_period = int(grace_period)
        self._reduction_factor = reduction_factor
        self._progressive = bool(progressive)
        self._max_concurrent = max_concurrent
        self._supports_buffered_results = False
        # Fails early for a PASHA with a single rung level (the reference crashes there).
        probe = PashaRungs(max_t, grace_period, reduction_factor, "max", self._progressive)
        self._levels = probe.levels
        if self._progressive and len(self._levels) == 2:
            warnings.warn(
                f"PASHA with two rung levels {self._levels} below max_t={max_t}: like syne-tune 0.13.0 it starts "
                f"its max resource at {self._levels[0]} and never promotes; use max_t > grace_period * "
                "reduction_factor**2 or progressive=False",
                stacklevel=2,
            )
        self._core: PashaRungs | None = None
        self._trials: dict[str, Trial] = {}
        self._queue: list[str] = []  # held new trials, oldest first
        self._stopped: set[str] = set()
        self._errored: dict[str, dict[str, int | None]] = {}
        self._to_stop: set[str] = set()
        self._log: list[tuple] = []
        self._capacity = Workers()
        self._stuck_since: float | None = None
        self._warned_stuck = False
        if mode is not None:
            self._make_core()

    # ------------------------------------------------------------------ properties
    @property
    def rung_levels(self) -> list[int]:
        return list(self._levels)

    @property
    def current_max_t(self) -> int:
        """Current max resource (``max_t`` for promotion-type ASHA)."""
        if self._core is None:
            return PashaRungs(
                self._max_t, self._grace_period, self._reduction_factor, "max", self._progressive
            ).current_max_t
        return self._core.current_max_t

    @property
    def eps(self) -> float:
        """PASHA's noise estimate (0.0 until a criss-crossing pair is seen)."""
        return 0.0 if self._core is None else self._core.eps

    @property
    def rungs(self) -> dict[int, list[tuple[str, float, bool]]]:
        """``{level: [(trial_id, value, promoted), ...]}``, best first."""
        return {x: [] for x in self._levels} if self._core is None else self._core.rungs

    @property
    def decisions(self) -> list[tuple]:
        """Every decision so far: ``("new", tid)``, ``("promote", tid, resume_from, milestone)``,
        ``("report", tid, resource, "CONTINUE"|"PAUSE"|"STOP", current_max_t)``, ``("end", tid)``."""
        return list(self._log)

    # ------------------------------------------------------------------ Tune API
    def set_search_properties(self, metric: str | None, mode: str | None, **spec) -> bool:
        if self._metric and metric:
            return False
        if self._mode and mode:
            return False
        if mode not in (None, "min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        if metric:
            self._metric = metric
        if mode:
            self._mode = mode
            self._make_core()
        return True

    def _make_core(self) -> None:
        if self._core is None:
            self._core = PashaRungs(
                self._max_t, self._grace_period, self._reduction_factor, self._mode, self._progressive
            )

    def _need_core(self) -> PashaRungs:
        if self._core is None or not self._metric:
            raise ValueError("PASHA needs metric and mode: pass them to PASHA(...) or to tune.TuneConfig")
        return self._core

    def on_trial_add(self, tune_controller, trial: Trial) -> None:
        core = self._need_core()
        tid = trial.trial_id
        self._trials[tid] = trial
        if trial.status != Trial.PENDING:
            return
        retried = tid in self._errored
        if retried:  # Tune retries a failed trial: it gets its worker back first
            core.readmit(tid, self._errored.pop(tid))
            self._stopped.discard(tid)
        if core.is_started(tid):
            if not core.is_running(tid) and tid not in core.paused():
                self._to_stop.add(tid)  # finished before a Tuner.restore: choose_trial_to_run stops it
        elif tid not in self._queue:
            self._queue.append(tid)
        # Held until choose_trial_to_run gives it a worker. A trial that never starts still needs
        # its directory (Tune creates it when it stages a trial), or ResultGrid fails on it.
        init_local_path = getattr(trial, "init_local_path", None)
        if callable(init_local_path):
            init_local_path()
        # A retried trial is already in Tune's status sets; a trial being added is not yet.
        if retried:
            tune_controller._set_trial_status(trial, Trial.PAUSED)
        else:
            trial.set_status(Trial.PAUSED)

    def on_trial_result(self, tune_controller, trial: Trial, result: dict) -> str:
        core = self._need_core()
        tid = trial.trial_id
        for key in (self._time_attr, self._metric):
            if key not in result:
                raise ValueError(f"result lacks {key!r}: PASHA needs time_attr and metric in every report")
        if not core.is_running(tid):
            # A late report after this scheduler paused or stopped the trial: not counted.
            return TrialScheduler.STOP if tid in self._stopped else TrialScheduler.PAUSE
        resource = result[self._time_attr]
        if isinstance(resource, float) and resource.is_integer():
            resource = int(resource)
        decision = _DECISION[core.report(tid, resource, result[self._metric])]
        self._log.append(("report", tid, int(resource), decision, core.current_max_t))
        if decision == TrialScheduler.CONTINUE:
            return decision
        if decision == TrialScheduler.STOP:
            self._stopped.add(tid)
        nxt = self._assign_free_worker(core)  # this trial's worker is free now
        if nxt is not None and nxt.trial_id == tid:
            return TrialScheduler.CONTINUE  # promoted straight away: no need to pause and resume
        return decision

    def on_trial_complete(self, tune_controller, trial: Trial, result: dict) -> None:
        self._forget(trial.trial_id)

    def on_trial_remove(self, tune_controller, trial: Trial) -> None:
        self._forget(trial.trial_id)

    def on_trial_error(self, tune_controller, trial: Trial) -> None:
        if self._core is not None:
            entry = self._core.remove(trial.trial_id)
            if entry is not None:
                self._errored[trial.trial_id] = entry
        self._stopped.add(trial.trial_id)

    def _forget(self, tid: str) -> None:
        if self._core is not None:
            self._core.remove(tid)
        if tid in self._queue:
            self._queue.remove(tid)
        self._stopped.add(tid)

    def choose_trial_to_run(self, tune_controller) -> Trial | None:
        core = self._need_core()
        trials = tune_controller.get_trials()
        if self._to_stop:
            for t in trials:
                if t.trial_id in self._to_stop and t.status in (Trial.PAUSED, Trial.PENDING):
                    self._to_stop.discard(t.trial_id)
                    tune_controller.stop_trial(t)
        holding = core.running_ids()
        for tid in holding:  # holds a worker but Tune has not started it (yet, or again)
            trial = self._trials.get(tid)
            if trial is not None and trial.status == Trial.PAUSED:
                return trial
        if len(holding) < self._workers(trials):
            foreign = sum(
                t.status in (Trial.RUNNING, Trial.PENDING) and not core.is_started(t.trial_id) for t in trials
            )
            if len(holding) + foreign < self._workers(trials):
                chosen = self._assign_free_worker(core)
                if chosen is not None and chosen.status == Trial.PAUSED:
                    return chosen
                # A trial promoted while Tune still saves its pause checkpoint (RUNNING): it holds
                # the worker now, and the loop above hands it out once Tune marks it PAUSED.
        if holding or self._queue:
            return None
        if any(t.status in (Trial.RUNNING, Trial.PENDING) for t in trials):
            self._stuck_since = None
            return None
        if not tune_controller.search_alg.is_finished():
            self._warn_if_stuck()
            return None
        order = {tid: i for i, tid in enumerate(core.started())}
        for t in sorted(trials, key=lambda t: order.get(t.trial_id, len(order))):
            if t.status == Trial.PAUSED:  # nothing can run any more: end the trials left in rungs
                self._log.append(("end", t.trial_id))
                tune_controller.stop_trial(t)
        return None

    def _warn_if_stuck(self) -> None:
        """Nothing runs, nothing can be promoted, and the searcher gives no trial: say why, once."""
        now = time.monotonic()
        if self._stuck_since is None:
            self._stuck_since = now
        elif now - self._stuck_since > _STUCK_WARN_S and not self._warned_stuck:
            self._warned_stuck = True
            logger.warning(
                "PASHA: no trial runs, none can be promoted and the searcher gives no new trial for %.0f s. "
                "Paused trials count as live for TuneConfig(max_concurrent_trials=...) and ConcurrencyLimiter; "
                "limit concurrency with PASHA(max_concurrent=...) instead.",
                now - self._stuck_since,
            )

    def _assign_free_worker(self, core: PashaRungs) -> Trial | None:
        """A worker is free: promote a paused trial, else start the oldest held new trial.

        The promoted trial may be the one whose report just freed the worker (still RUNNING in
        Tune). A promoted trial need not be PAUSED yet: after a PAUSE decision Tune saves the trial's
        checkpoint first and only then marks it PAUSED, so during the save it still shows as
        RUNNING while other trials' reports are handled. It holds the worker from now on and
        :meth:`choose_trial_to_run` hands it out once it is PAUSED. Only a trial that has ended
        (TERMINATED, ERROR) or that Tune no longer knows cannot be resumed.
        """
        while True:
            promoted = core.schedule()
            if promoted is None:
                break
            trial = self._trials.get(promoted[0])
            if trial is not None and trial.status not in (Trial.TERMINATED, Trial.ERROR):
                self._log.append(("promote", *promoted))
                return trial
            core.remove(promoted[0])  # gone from Tune (stopped or errored): not resumable
        while self._queue:
            tid = self._queue.pop(0)
            trial = self._trials.get(tid)
            if trial is not None and trial.status == Trial.PAUSED:
                core.start(tid)
                self._log.append(("new", tid))
                return trial
        return None

    def _workers(self, trials: list[Trial]) -> int:
        return self._capacity.count(trials, self._max_concurrent)

    def debug_string(self) -> str:
        name = "PASHA" if self._progressive else "PromotionASHA"
        if self._core is None:
            return f"{name}: rung levels {self._levels}, max_t {self._max_t}"
        sizes = ", ".join(f"{level}: {len(entries)}" for level, entries in self._core.rungs.items())
        return f"{name}: max resource {self._core.current_max_t}/{self._max_t}, eps {self._core.eps:.4g}, rungs {{{sizes}}}"

    # ------------------------------------------------------------------ state
    def get_state(self) -> dict[str, Any]:
        """Picklable plain data; :meth:`set_state` on a fresh PASHA with the same arguments restores it."""
        return {
            "version": STATE_VERSION,
            "settings": self._settings(),
            "core": None if self._core is None else self._core.get_state(),
            "queue": list(self._queue),
            "stopped": sorted(self._stopped),
            "errored": {k: dict(v) for k, v in self._errored.items()},
            "log": [list(x) for x in self._log],
        }

    def set_state(self, state: dict[str, Any]) -> None:
        """Load :meth:`get_state`, configuration included, as Ray's own ``restore`` does: a PASHA built
        with defaults (``PASHA()``) takes the saved metric, mode, time_attr, max_t, grace_period,
        reduction_factor, progressive and max_concurrent, and then decides like the one that saved.
        A metric or mode saved as None keeps this one's. A :class:`PromotionASHA` refuses a PASHA's
        state (and the other way round through :func:`ohgw.tune.state.reload`, which checks the type)."""
        if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
            raise ValueError(f"state: not a PASHA state of version {STATE_VERSION}")
        saved = dict(state["settings"])
        if isinstance(self, PromotionASHA) and saved.get("progressive"):
            raise ValueError("state: saved by a progressive PASHA; a PromotionASHA cannot load it")
        self._configure({k: v for k, v in saved.items() if not (k in ("metric", "mode") and v is None)})
        if state["core"] is not None:
            self._make_core()
            self._core.set_state(state["core"])
        self._queue = list(state["queue"])
        self._stopped = set(state["stopped"])
        self._errored = {k: dict(v) for k, v in state["errored"].items()}
        self._log = [tuple(x) for x in state["log"]]

    def _settings(self) -> dict[str, Any]:
        return {
            "time_attr": self._time_attr,
            "metric": self._metric,
            "mode": self._mode,
            "max_t": self._max_t,
            "grace_period": self._grace_period,
            "reduction_factor": self._reduction_factor,
            "progressive": self._progressive,
            "max_concurrent": self._max_concurrent,
        }

    def _configure(self, settings: dict[str, Any]) -> None:
        """Take saved settings (validated like the constructor's); the rungs are rebuilt when they change."""
        now = self._settings()
        new = {**now, **settings}
        if new["mode"] not in (None, "min", "max"):
            raise ValueError(f"state: mode must be 'min' or 'max', got {new['mode']!r}")
        validate(new["max_t"], new["grace_period"], new["reduction_factor"])
        rungs = ("max_t", "grace_period", "reduction_factor", "mode", "progressive")
        if any(new[k] != now[k] for k in rungs):
            self._core = None
        self._time_attr, self._metric, self._mode = new["time_attr"], new["metric"], new["mode"]
        self._max_t, self._grace_period = int(new["max_t"]), int(new["grace_period"])
        self._reduction_factor, self._progressive = new["reduction_factor"], bool(new["progressive"])
        self._max_concurrent = new["max_concurrent"]
        self._levels = PashaRungs(self._max_t, self._grace_period, self._reduction_factor, "max",
                                  self._progressive).levels
        if self._mode is not None:
            self._make_core()


class PromotionASHA(PASHA):
    """Promotion-type ASHA (pause at rungs, resume on promotion): PASHA with ``progressive=False``.

    The fair baseline for PASHA; Ray's ``ASHAScheduler`` is stopping-type.

    >>> PromotionASHA(metric="loss", mode="min", max_t=27).current_max_t
    27
    """

    def __init__(
        self,
        time_attr: str = "training_iteration",
        metric: str | None = None,
        mode: str | None = None,
        max_t: int = 100,
        grace_period: int = 1,
        reduction_factor: float = 3,
        max_concurrent: int | None = None,
    ):
        super().__init__(time_attr, metric, mode, max_t, grace_period, reduction_factor, False, max_concurrent)
