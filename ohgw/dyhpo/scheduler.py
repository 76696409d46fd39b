"""DyHPO (Wistuba, Schwarz & Grabocka, NeurIPS 2022) as a Ray Tune ``TrialScheduler``.

**The decision.** Whenever a worker is free, DyHPO picks one configuration and advances it by one
budget increment (``increment`` epochs): a paused trial from its current epochs to the next
budget, or a new one from the candidate pool to the first. The pick maximises the
multi-fidelity expected improvement (:mod:`ohgw.dyhpo.acquisition`) of the deep-kernel GP
(:mod:`ohgw.dyhpo.surrogate`) trained on every (config, epoch, curve prefix) → score report
seen so far. Trials pause after each increment and stop at ``max_t``. There is no rung and no
early stop: what bounds the run is the number of trials and, in a study, the harness's budget.
The reference code (``machinelearningnuremberg/DyHPO``) decides on one worker; with several, each
free worker gets one decision, against the observations seen so far.

**How it maps onto Tune** (as :mod:`ohgw.pasha.scheduler`, which this mirrors):

- New trials are held: ``on_trial_add`` marks each PAUSED and queues it (oldest first); Tune keeps
  asking the searcher for trials while none is PENDING, so the queue is what the searcher has
  suggested. The *candidate pool* is the oldest ``pool_size`` queued trials; starting one refills
  the pool from the queue, and the queue from the searcher (a model-based searcher suggests
  before it sees results, as under PASHA).
- A report at the trial's milestone frees its worker: ``on_trial_result`` decides at once whom it
  goes to. If that is the reporting trial itself, Tune is told CONTINUE (no pause, same decision).
- ``choose_trial_to_run`` is idempotent: it first returns a trial that holds a worker but is still
  PAUSED (released by a report, or holding one before a ``Tuner.restore``), and decides only while
  fewer than ``max_concurrent`` trials hold a worker.
- **The checkpoint-save window.** After a PAUSE, Tune saves the checkpoint with the trial still
  RUNNING, handling other reports meanwhile. Such a trial is a candidate like any paused one; if
  it is picked, it holds the worker and is handed out once Tune marks it PAUSED (once: Tune then
  marks it PENDING). Only ended trials (TERMINATED, ERROR) are passed over.
- When nothing runs or can be started and the searcher is finished, trials still PAUSED are
  stopped (logged ``("end", trial_id)``). Every trial must checkpoint each epoch and restore from
  ``tune.get_checkpoint()``: a trial is paused and resumed after every increment.

**x′ with OHGW.** ``OHGW(DyHPO(...), space)`` warm-starts each trial; the trial trains with x′, not
the sampled x. The surrogate must learn x′ → curve, so DyHPO re-reads a trial's configuration at
every report that carries x′, through the project's one x′ parser,
:func:`ohgw.protocol.adjusted_from_result` (the trainable reports x′ with its first result; the
wrapper also writes x′ into ``trial.config`` before this scheduler sees that result). Candidates
that have not run are scored at their sampled x: their x′ does not exist yet. A plain searcher
learns x′ through :class:`ohgw.tune.searcher.OHGWSearcher`, the same parser.

**Surrogate fitting and cost.** The surrogate is first fitted (``fit_steps`` Adam steps) once
``min_observations`` scores exist, then refitted from its current weights (``refit_steps``) every
``refit_every`` decisions; before that, decisions start pool candidates oldest first. Every fit
and decision is timed (:attr:`DyHPO.overhead`, :attr:`DyHPO.fits`). **Training-set cap:** an exact
GP costs O(n³) per step; with more than ``max_observations`` (default 256) scores, a fit and the
following predictions use each trial's latest score (the most recent trials first, if there are
more trials than the cap) plus a uniform random sample of the others (DyHPO's own RNG). Measured
(``benchmarks/dyhpo_overhead.py``, one thread): one uncapped step at 1,000 scores costs about as
much as a whole 50-step refit at the cap, and the cost grows with n³.

**State.** :meth:`DyHPO.get_state` / :meth:`DyHPO.set_state` carry the queue, curves, configs,
who holds a worker, the surrogate's weights, the RNG and the decision log as plain data;
:class:`ohgw.tune.callbacks.SchedulerStateCallback` saves them with the experiment, so that a
restored run decides as the uninterrupted one.

Example::

    sched = DyHPO(metric="val_acc", mode="max", max_t=27, space=param_space, max_concurrent=2)
    tune.Tuner(trainable, param_space=param_space,
               tune_config=tune.TuneConfig(scheduler=sched, num_samples=64),
               run_config=tune.RunConfig(callbacks=[SchedulerStateCallback(sched)]))

>>> DyHPO(metric="val_acc", mode="max", max_t=9, pool_size=4).debug_string()
'DyHPO: 0 started, 0 queued, 0 observations, 0 fits'
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from ray.tune.experiment import Trial
from ray.tune.schedulers.trial_scheduler import TrialScheduler

from ohgw import protocol
from ohgw.dyhpo import acquisition, gp
from ohgw.dyhpo.encoding import ConfigEncoder, space_from
from ohgw.dyhpo.surrogate import DeepKernelSurrogate, FitReport, Observations
from ohgw.tune.capacity import Workers

STATE_VERSION = 1
logger = logging.getLogger(__name__)


def _positive_int(name: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


@contextlib.contextmanager
def _torch_threads(n: int):
    old = torch.get_num_threads()
    if n != old:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if n != old:
            torch.set_num_threads(old)


class DyHPO(TrialScheduler):
    """DyHPO: advance the configuration with the best multi-fidelity EI by one increment (module doc).

    Args:
        time_attr: Result key counting epochs; must step by 1 from 1.
        metric, mode: The tuned metric and "min"/"max" (here or through ``TuneConfig``).
        max_t: Epochs at which a trial stops; ``>= increment``.
        increment: Epochs per decision (the budget step), ``>= 1``.
        pool_size: New trials considered per decision (the oldest held ones), ``>= 1``.
        refit_every: Decisions between two surrogate refits.
        kernel: "rbf" (the reference's), "matern32" or "matern52".
        space: How configs are encoded (:mod:`ohgw.dyhpo.encoding`): a SearchSpace, the Tuner's
            param_space, or None (the OHGW instruction's space, else inferred from the configs).
        max_concurrent: Workers (trials running at once); None derives it from the cluster.
        seed: Seeds the surrogate's initial weights and the training-set subsample.
        fit_steps, refit_steps: Adam steps of the first fit and of each warm-started refit.
        max_observations: The training-set cap (module doc).
        min_observations: Scores needed before the surrogate decides (>= 2).
        threads: torch threads for fitting and prediction (restored afterwards).
    """

    def __init__(
        self,
        time_attr: str = "training_iteration",
        metric: str | None = None,
        mode: str | None = None,
        max_t: int = 100,
        increment: int = 1,
        pool_size: int = 16,
        refit_every: int = 1,
        kernel: str = "rbf",
        space: Any = None,
        max_concurrent: int | None = None,
        seed: int = 0,
        fit_steps: int = 200,
        refit_steps: int = 50,
        max_observations: int = 256,
        min_observations: int = 2,
        threads: int = 1,
    ) -> None:
        super().__init__()
        if mode not in (None, "min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        if not isinstance(time_attr, str) or not time_attr:
            raise ValueError(f"time_attr must be a non-empty string, got {time_attr!r}")
        self._increment = _positive_int("increment", increment)
        self._max_t = _positive_int("max_t", max_t)
        if self._max_t < self._increment:
            raise ValueError(f"max_t must be >= increment, got max_t={max_t}, increment={increment}")
        self._pool_size = _positive_int("pool_size", pool_size)
        self._refit_every = _positive_int("refit_every", refit_every)
        self._kernel = gp.check_kernel(kernel)
        if max_concurrent is not None:
            max_concurrent = _positive_int("max_concurrent", max_concurrent)
        self._seed = _positive_int("seed", seed, 0)
        self._fit_steps = _positive_int("fit_steps", fit_steps, 0)
        self._refit_steps = _positive_int("refit_steps", refit_steps, 0)
        self._max_obs = _positive_int("max_observations", max_observations, 2)
        self._min_obs = _positive_int("min_observations", min_observations, 2)
        self._threads = _positive_int("threads", threads)
        self._time_attr = time_attr
        self._metric = metric
        self._mode = mode
        self._max_concurrent = max_concurrent
        self._supports_buffered_results = False
        self._encoder = ConfigEncoder(space_from(space))
        self._surrogate: DeepKernelSurrogate | None = None
        self._rng = np.random.Generator(np.random.PCG64(self._seed))
        self._trials: dict[str, Trial] = {}
        self._raw: dict[str, dict[str, float]] = {}  # trial -> encoded keys' values (x, then x')
        self._queue: list[str] = []  # held new trials, oldest first; the pool is its head
        self._started: list[str] = []  # in start order
        self._curves: dict[str, list[float]] = {}  # trial -> scores (higher is better), index e-1 = epoch e
        self._running: dict[str, int] = {}  # trial holding a worker -> its milestone (epoch it pauses at)
        self._done: set[str] = set()  # started trials that ended (max_t, stopped, removed)
        self._stopped: set[str] = set()
        self._errored: dict[str, int] = {}
        self._to_stop: set[str] = set()
        self._log: list[tuple] = []
        self._since_fit = 0
        self._fits: list[FitReport] = []
        self._decide_s: list[float] = []
        self._capacity = Workers()

    # ------------------------------------------------------------------ read-only views
    @property
    def decisions(self) -> list[tuple]:
        """``("new", tid, milestone)``, ``("advance", tid, epochs_done, milestone)``,
        ``("report", tid, epoch, decision)``, ``("end", tid)``, in order."""
        return list(self._log)

    @property
    def fits(self) -> list[FitReport]:
        return list(self._fits)

    @property
    def overhead(self) -> dict[str, float]:
        """Decisions and fits so far with their total and largest wall seconds (fit time included in
        the decision that triggered it)."""
        d, f = self._decide_s, [r.seconds for r in self._fits]
        return {"decisions": len(d), "decide_s": float(sum(d)), "decide_max_s": float(max(d, default=0.0)),
                "fits": len(f), "fit_s": float(sum(f)), "fit_max_s": float(max(f, default=0.0))}

    @property
    def curves(self) -> dict[str, list[float]]:
        """Each started trial's reported metric values, index e-1 = epoch e (in the metric's own sign)."""
        sign = self._sign()
        return {t: [sign * v for v in c] for t, c in self._curves.items()}

    def pool(self) -> list[str]:
        return self._queue[: self._pool_size]

    def configs(self) -> dict[str, dict[str, float]]:
        """What the surrogate sees of each trial's config (x′ once reported)."""
        return {k: dict(v) for k, v in self._raw.items()}

    def n_observations(self) -> int:
        return sum(len(c) for c in self._curves.values())

    def _sign(self) -> float:
        return -1.0 if self._mode == "min" else 1.0

    # ------------------------------------------------------------------ Tune API
    def set_search_properties(self, metric: str | None, mode: str | None, **spec) -> bool:
        if (self._metric and metric) or (self._mode and mode):
            return False
        if mode not in (None, "min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        self._metric = metric or self._metric
        self._mode = mode or self._mode
        return True

    def _check_ready(self) -> None:
        if not self._metric or not self._mode:
            raise ValueError("DyHPO needs metric and mode: pass them to DyHPO(...) or to tune.TuneConfig")

    def on_trial_add(self, tune_controller, trial: Trial) -> None:
        self._check_ready()
        tid = trial.trial_id
        self._trials[tid] = trial
        if trial.status != Trial.PENDING:
            return
        if tid not in self._raw:
            self._raw[tid] = self._encoder.raw(trial.config)
        retried = tid in self._errored
        if retried:  # Tune retries a failed trial from its checkpoint: it gets its worker back
            self._running[tid] = self._errored.pop(tid)
            self._stopped.discard(tid)
            self._done.discard(tid)
        if tid in self._curves:
            if tid in self._done:
                self._to_stop.add(tid)  # ended before a Tuner.restore: choose_trial_to_run stops it
        elif tid not in self._queue:
            self._queue.append(tid)
        init_local_path = getattr(trial, "init_local_path", None)
        if callable(init_local_path):  # a trial that never starts still needs its directory
            init_local_path()
        if retried:
            tune_controller._set_trial_status(trial, Trial.PAUSED)
        else:
            trial.set_status(Trial.PAUSED)

    def on_trial_result(self, tune_controller, trial: Trial, result: dict) -> str:
        self._check_ready()
        tid = trial.trial_id
        for key in (self._time_attr, self._metric):
            if key not in result:
                raise ValueError(f"result lacks {key!r}: DyHPO needs time_attr and metric in every report")
        if tid not in self._running:  # a late report after a pause or stop: not counted
            return TrialScheduler.STOP if tid in self._stopped else TrialScheduler.PAUSE
        epoch = result[self._time_attr]
        if isinstance(epoch, float) and epoch.is_integer():
            epoch = int(epoch)
        value = float(result[self._metric])
        if not math.isfinite(value):
            value = -math.inf if self._sign() > 0 else math.inf  # a diverged trial: the worst score
        self._record(tid, int(epoch), self._sign() * value)
        adjusted = protocol.adjusted_from_result(result, self._encoder.keys)
        if adjusted is not None:  # x′: the config that actually trained
            self._raw[tid] = {**self._raw.get(tid, {}), **adjusted["x_prime"]}
        milestone = self._running[tid]
        if epoch >= self._max_t or not math.isfinite(self._curves[tid][-1]):
            decision = TrialScheduler.STOP
        elif epoch >= milestone:
            decision = TrialScheduler.PAUSE
        else:
            self._log.append(("report", tid, int(epoch), TrialScheduler.CONTINUE))
            return TrialScheduler.CONTINUE
        del self._running[tid]
        if decision == TrialScheduler.STOP:
            self._done.add(tid)
            self._stopped.add(tid)
        at = len(self._log)
        nxt = self._assign_free_worker()
        if nxt is not None and nxt.trial_id == tid:
            decision = TrialScheduler.CONTINUE  # advanced straight away: no need to pause and resume
        self._log.insert(at, ("report", tid, int(epoch), decision))  # the report, then whom the worker went to
        return decision

    def _record(self, tid: str, epoch: int, score: float) -> None:
        curve = self._curves.setdefault(tid, [])
        if epoch < 1 or epoch > len(curve) + 1:
            raise ValueError(
                f"trial {tid!r} reported {self._time_attr}={epoch} after {len(curve)} epochs; DyHPO needs a report "
                "at every epoch, counted from 1"
            )
        if epoch == len(curve) + 1:
            curve.append(score)
        else:  # an epoch redone after a restore
            curve[epoch - 1] = score

    def on_trial_complete(self, tune_controller, trial: Trial, result: dict) -> None:
        self._forget(trial.trial_id)

    def on_trial_remove(self, tune_controller, trial: Trial) -> None:
        self._forget(trial.trial_id)

    def on_trial_error(self, tune_controller, trial: Trial) -> None:
        tid = trial.trial_id
        if tid in self._running:
            self._errored[tid] = self._running.pop(tid)
        self._stopped.add(tid)

    def _forget(self, tid: str) -> None:
        self._running.pop(tid, None)
        if tid in self._queue:
            self._queue.remove(tid)
        if tid in self._curves:
            self._done.add(tid)
        self._stopped.add(tid)

    def choose_trial_to_run(self, tune_controller) -> Trial | None:
        self._check_ready()
        trials = tune_controller.get_trials()
        if self._to_stop:
            for t in trials:
                if t.trial_id in self._to_stop and t.status in (Trial.PAUSED, Trial.PENDING):
                    self._to_stop.discard(t.trial_id)
                    tune_controller.stop_trial(t)
        for tid in self._running:  # holds a worker but Tune has not started it (yet, or again)
            trial = self._trials.get(tid)
            if trial is not None and trial.status == Trial.PAUSED:
                return trial
        workers = self._workers(trials)
        if len(self._running) < workers:
            foreign = sum(t.status in (Trial.RUNNING, Trial.PENDING) and t.trial_id not in self._trials
                          for t in trials)
            if len(self._running) + foreign < workers:
                chosen = self._assign_free_worker()
                if chosen is not None and chosen.status == Trial.PAUSED:
                    return chosen
                # picked while Tune still saves its pause checkpoint: handed out above once PAUSED
        if self._running or self._queue or self._candidates():
            return None
        if any(t.status in (Trial.RUNNING, Trial.PENDING) for t in trials):
            return None
        if not tune_controller.search_alg.is_finished():
            return None
        for t in trials:
            if t.status == Trial.PAUSED:  # nothing can run any more
                self._log.append(("end", t.trial_id))
                tune_controller.stop_trial(t)
        return None

    # ------------------------------------------------------------------ the decision
    def _usable(self, tid: str) -> bool:
        trial = self._trials.get(tid)
        return trial is not None and trial.status not in (Trial.TERMINATED, Trial.ERROR)

    def _candidates(self) -> list[str]:
        """Paused trials (start order) that can advance, then the pool (queue order)."""
        paused = [t for t in self._started if t not in self._running and t not in self._done
                  and len(self._curves.get(t, [])) < self._max_t and self._usable(t)]
        pool = [t for t in self._queue[: self._pool_size] if self._usable(t)]
        return paused + pool

    def _assign_free_worker(self) -> Trial | None:
        """A worker is free: give it to the candidate with the best EI (module doc)."""
        t0 = time.perf_counter()
        self._queue = [t for t in self._queue if self._usable(t)]
        candidates = self._candidates()
        if not candidates:
            return None
        if self.n_observations() < self._min_obs:
            pool = [t for t in candidates if t in self._queue]
            tid = pool[0] if pool else candidates[0]
        else:
            with _torch_threads(self._threads):
                tid = self._best(candidates)
        self._since_fit += 1
        done = len(self._curves.get(tid, []))
        milestone = min(done + self._increment, self._max_t)
        if tid in self._queue:
            self._queue.remove(tid)
            self._started.append(tid)
            self._curves[tid] = []
            self._log.append(("new", tid, milestone))
        else:
            self._log.append(("advance", tid, done, milestone))
        self._running[tid] = milestone
        self._decide_s.append(time.perf_counter() - t0)
        return self._trials[tid]

    def _best(self, candidates: list[str]) -> str:
        order = list(dict.fromkeys(self._started + candidates))
        encoded = dict(zip(order, self._encoder.encode([self._raw.get(t, {}) for t in order])))
        if self._surrogate is None:
            self._surrogate = DeepKernelSurrogate(
                n_config=self._encoder.dim or 1, curve_len=self._max_t - 1, kernel=self._kernel, seed=self._seed)
        train = self._training_set(encoded)
        if self._surrogate.n_fits == 0 or self._since_fit >= self._refit_every:
            steps = self._fit_steps if self._surrogate.n_fits == 0 else self._refit_steps
            self._fits.append(self._surrogate.fit(train, steps))
            self._since_fit = 0
        budgets = [min(len(self._curves.get(t, [])) + self._increment, self._max_t) for t in candidates]
        query = Observations(
            x=np.stack([encoded[t] for t in candidates]),
            budget=np.array(budgets, dtype=float) / self._max_t,
            curves=self._prefix_matrix([self._curves.get(t, []) for t in candidates]),
        )
        mean, std = self._surrogate.predict(train, query)
        ranked = acquisition.rank(mean, std, budgets, list(self._curves.values()))
        return candidates[int(ranked[0])]

    def _prefix_matrix(self, prefixes: list[list[float]]) -> np.ndarray:
        width = max(self._max_t - 1, 1)
        out = np.full((len(prefixes), width), np.nan)
        for i, p in enumerate(prefixes):
            p = p[:width]
            out[i, : len(p)] = p
        return out

    def _training_set(self, encoded: Mapping[str, np.ndarray]) -> Observations:
        """Every finite score as (config, epoch, prefix) → score; capped at ``max_observations`` (module doc)."""
        rows = [(t, e) for t in self._started for e, v in enumerate(self._curves.get(t, []), start=1)
                if math.isfinite(v)]
        if len(rows) > self._max_obs:
            latest = {}
            for i, (t, _) in enumerate(rows):
                latest[t] = i
            position = {t: i for i, t in enumerate(self._started)}
            keep = sorted(latest.values(), key=lambda i: -position[rows[i][0]])[: self._max_obs]
            rest = np.setdiff1d(np.arange(len(rows)), keep)
            extra = self._rng.choice(rest, size=self._max_obs - len(keep), replace=False) if len(keep) < self._max_obs \
                else np.array([], dtype=int)
            rows = [rows[i] for i in sorted([*keep, *extra.tolist()])]
        prefixes = [[v if math.isfinite(v) else np.nan for v in self._curves[t][: e - 1]] for t, e in rows]
        return Observations(
            x=np.stack([encoded[t] for t, _ in rows]),
            budget=np.array([e for _, e in rows], dtype=float) / self._max_t,
            curves=self._prefix_matrix(prefixes),
            y=np.array([self._curves[t][e - 1] for t, e in rows], dtype=float),
        )

    def _workers(self, trials: list[Trial]) -> int:
        return self._capacity.count(trials, self._max_concurrent)

    def debug_string(self) -> str:
        return (f"DyHPO: {len(self._started)} started, {len(self._queue)} queued, "
                f"{self.n_observations()} observations, {len(self._fits)} fits")

    # ------------------------------------------------------------------ state
    def _settings(self) -> dict[str, Any]:
        return {"time_attr": self._time_attr, "metric": self._metric, "mode": self._mode, "max_t": self._max_t,
                "increment": self._increment, "pool_size": self._pool_size, "refit_every": self._refit_every,
                "kernel": self._kernel, "seed": self._seed, "fit_steps": self._fit_steps,
                "refit_steps": self._refit_steps, "max_observations": self._max_obs,
                "min_observations": self._min_obs}

    def get_state(self) -> dict[str, Any]:
        """Picklable plain data; :meth:`set_state` on a fresh DyHPO with the same arguments restores it."""
        return {
            "version": STATE_VERSION,
            "settings": self._settings(),
            "encoder": self._encoder.get_state(),
            "surrogate": None if self._surrogate is None else self._surrogate.get_state(),
            "rng": self._rng.bit_generator.state,
            "raw": {k: dict(v) for k, v in self._raw.items()},
            "queue": list(self._queue),
            "started": list(self._started),
            "curves": {k: list(v) for k, v in self._curves.items()},
            "running": dict(self._running),
            "done": sorted(self._done),
            "stopped": sorted(self._stopped),
            "errored": dict(self._errored),
            "log": [list(x) for x in self._log],
            "since_fit": self._since_fit,
            "fits": [list(vars(f).values()) for f in self._fits],
            "decide_s": list(self._decide_s),
        }

    def set_state(self, state: dict[str, Any]) -> None:
        if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
            raise ValueError(f"state: not a DyHPO state of version {STATE_VERSION}")
        mine = self._settings()
        for key, value in state["settings"].items():
            if key in ("metric", "mode") and mine[key] is None:
                continue
            if mine.get(key) != value:
                raise ValueError(f"state: saved with {key}={value!r}, this DyHPO has {key}={mine.get(key)!r}")
        self._metric = self._metric or state["settings"]["metric"]
        self._mode = self._mode or state["settings"]["mode"]
        self._encoder.set_state(state["encoder"])
        self._surrogate = None
        if state["surrogate"] is not None:
            self._surrogate = DeepKernelSurrogate(
                n_config=self._encoder.dim or 1, curve_len=self._max_t - 1, kernel=self._kernel, seed=self._seed)
            self._surrogate.set_state(state["surrogate"])
        self._rng = np.random.Generator(np.random.PCG64())
        self._rng.bit_generator.state = state["rng"]
        self._raw = {k: dict(v) for k, v in state["raw"].items()}
        self._queue = list(state["queue"])
        self._started = list(state["started"])
        self._curves = {k: list(v) for k, v in state["curves"].items()}
        self._running = {k: int(v) for k, v in state["running"].items()}
        self._done = set(state["done"])
        self._stopped = set(state["stopped"])
        self._errored = {k: int(v) for k, v in state["errored"].items()}
        self._log = [tuple(x) for x in state["log"]]
        self._since_fit = int(state["since_fit"])
        self._fits = [FitReport(*f) for f in state["fits"]]
        self._decide_s = list(state["decide_s"])
