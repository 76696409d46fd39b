"""One study: a (method, seed) Tune run with an equal budget, recorded for export.

:class:`ExperimentConfig` is what every study of an experiment shares. Its
:meth:`~ExperimentConfig.fingerprint` covers the *run* settings only, those that change
what a study does; :data:`ANALYSIS_FIELDS` (τ and the metric's range) only steer the
analysis, so the same studies can be re-run and re-analysed at any τ.

:func:`run_study` is what :mod:`ohgw.studies.runner` executes (inside a Ray task with
``num_cpus=0``); it drives one ``tune.Tuner`` over the workload's trainable (under a
unique name) and returns the study's three tables as DataFrames (:mod:`ohgw.studies.tables`).

**Disk.** A trial reports a checkpoint every epoch, yet a study keeps only what it can still
need (:mod:`ohgw.studies.checkpoints`): a live trial's latest checkpoint (:data:`CHECKPOINTS_KEPT`,
Tune's ``num_to_keep``; a paused trial resumes from it, a failed one is retried from it) and, for
the milliseconds until the next experiment snapshot is stored, the one that snapshot still names.
An ended trial (TERMINATED) never runs again: its checkpoints go once the stored snapshot shows it
ended. After ``fit`` the study's tables are saved beside its Tune state
(:data:`ohgw.studies.resume.TABLES`) and only then are the remaining checkpoints swept: until the
Parquet export is complete, a restore has what it needs (the checkpoints of the trials it would
resume while the study runs, the tables once it has ended). A study's Tune folder then holds logs
only, and the runner removes it after the export.
A workload's ``export_best`` hook (:mod:`ohgw.studies.export`) is called while the study runs on the
checkpoint of its best report so far; its files are the only checkpoint-derived ones kept, in
``<results>/exports/experiment=…/method=…/seed=…/`` beside the study's Parquet tables.

**Resume.** A study interrupted mid-way (the driver killed, the machine lost) resumes where it
stopped when the same command runs again: :func:`run_study` checks its Tune folder
(:func:`ohgw.studies.resume.inspect`) and calls ``tune.Tuner.restore``. Tune brings back the
trials (each from its latest checkpoint), the searcher (its random state: the same configs
follow) and the callback states of its last experiment snapshot, taken after every registered
checkpoint: the scheduler's bookkeeping and configuration (:class:`~ohgw.studies.ledger.StudyTap`
through :class:`~ohgw.tune.callbacks.SchedulerStateCallback`, which also holds the OHGW
wrapper's records) and the study's ledger with the budget spent and every row recorded
(:class:`~ohgw.studies.ledger.StudyRecorder`). A report that the snapshot holds but whose
checkpoint it does not is trained again and *replayed* (:mod:`ohgw.studies.ledger`): for a
deterministic trainable on the epochs clock, the resumed study's decisions and rows equal an
uninterrupted run's; what differs is wall time (the study clock goes on without the downtime),
the compute of that one re-done epoch per trial, and the studies columns ``resumes`` and
``redone_reports``. A folder that cannot be restored (missing or corrupt files, parts of two
snapshots) is redone from scratch with one log line saying why; a folder
of another experiment is refused (:class:`~ohgw.studies.resume.StudyStateMismatch`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import re
import shutil
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from typing import Any

import pandas as pd

from ohgw import metrics, protocol
from ohgw.space import SearchSpace
from ohgw.studies import resume
from ohgw.studies.checkpoints import CHECKPOINTS_KEPT, KeepRestorable, sweep_checkpoints, unretire
from ohgw.studies.export import ExportBest, export_dir
from ohgw.studies.ledger import BudgetStopper, StudyLedger, StudyRecorder, StudyTap
from ohgw.studies.ledger import live as live_ledger
from ohgw.studies.methods import SchedulerArgs, parse_method
from ohgw.studies.telemetry import StudyMetrics
from ohgw.warmstart_settings import WarmStartSettings

BUDGET_KINDS = ("epochs", "seconds")
AUTO_LOGGERS_ENV = "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"  # "1": Tune adds no CSV/JSON/TensorBoard logger itself
SEARCHERS = ("random", "optuna")
# settings of the analysis, not of the studies: outside the fingerprint (τ is validated against the range)
ANALYSIS_FIELDS = ("tau", "metric_range")
# run-time details that change no result: outside the fingerprint too
RUNTIME_FIELDS = ("reuse_actors", "max_failures", "export_best")
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExperimentConfig:
    """Everything the studies of one experiment share. Budgets: epoch-equivalents or wall seconds.

    ``tau`` and ``metric_range`` (:data:`ANALYSIS_FIELDS`) belong to the analysis: ``tau`` is
    recorded in the studies table as the run's default τ, and changing it re-runs nothing.
    """

    experiment: str
    space: SearchSpace
    base_config: dict  # fixed trainable config (dataset, batch_size, max_t, ...)
    metric: str = "val_acc"
    mode: str = "max"
    metric_range: tuple[float, float] = (0.0, 1.0)
    max_t: int = 9
    grace_period: int = 1
    reduction_factor: int = 3
    budget_kind: str = "epochs"
    budget: float = 60.0
    tau: float = 0.9
    searcher: str = "random"
    warm_start: WarmStartSettings = field(default_factory=WarmStartSettings)
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    trials_per_study: int = 1  # concurrent trials inside one study
    reuse_actors: bool = True
    max_failures: int = 1
    # the workload's export hook (ohgw.studies.export): the best report's checkpoint → files beside the Parquet
    export_best: Callable[[str, str], Any] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.budget_kind not in BUDGET_KINDS:
            raise ValueError(f"budget_kind must be one of {BUDGET_KINDS}, got {self.budget_kind!r}")
        if not (isinstance(self.budget, int | float) and math.isfinite(self.budget) and self.budget > 0):
            raise ValueError(f"budget must be > 0, got {self.budget}")
        lo, hi = self.metric_range
        if not (lo <= self.tau <= hi):
            raise ValueError(f"tau {self.tau} is outside the range [{lo}, {hi}] of metric {self.metric!r}")
        if self.mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {self.mode!r}")
        if self.searcher not in SEARCHERS:
            raise ValueError(f"searcher must be one of {SEARCHERS}, got {self.searcher!r}")
        if self.max_t < self.grace_period or self.grace_period < 1:
            raise ValueError(f"need 1 <= grace_period <= max_t, got grace_period={self.grace_period}, max_t={self.max_t}")
        if self.trials_per_study < 1:
            raise ValueError(f"trials_per_study must be >= 1, got {self.trials_per_study}")
        if self.cpus_per_trial <= 0 or self.gpus_per_trial < 0:
            raise ValueError("cpus_per_trial must be > 0 and gpus_per_trial >= 0")

    def fingerprint(self) -> dict:
        """The run settings that identify the experiment's studies, JSON-normal (sorted keys, lists).

        A results directory holds one fingerprint only. The analysis settings
        (:data:`ANALYSIS_FIELDS`) and run-time details (:data:`RUNTIME_FIELDS`) are left out.
        """
        skip = ("space", "warm_start", *ANALYSIS_FIELDS, *RUNTIME_FIELDS)
        d = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in skip}
        d["space"] = self.space.to_dict()
        d["warm_start"] = self.warm_start.to_dict()
        return json.loads(json.dumps(d, sort_keys=True))


def tune_run_name(experiment: str, method: str, seed: int) -> str:
    """The Tune run (and trainable) name of a study: unique per study, safe as a folder name."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", f"study-{experiment}-{method}-s{seed}")


def study_id(experiment: str, method: str, seed: int) -> str:
    return f"{experiment}/{method}/seed={seed}"


def check_tune_state(storage_dir: str | os.PathLike, cfg: ExperimentConfig, method_name: str, seed: int) -> None:
    """Refuse (:class:`ohgw.studies.resume.StudyStateMismatch`) a study whose Tune folder in ``storage_dir``
    holds another experiment's state; reads one small file, writes nothing."""
    mark = resume.marker(study_id(cfg.experiment, method_name, seed), method_name, seed, cfg.fingerprint())
    resume.check_owner(os.path.join(storage_dir, tune_run_name(cfg.experiment, method_name, seed)), mark)


def _searcher(cfg: ExperimentConfig, seed: int, limit: int | None):
    """The seeded searcher; ``limit`` caps live trials (None for schedulers that hold trials themselves)."""
    if cfg.searcher == "random":
        from ray.tune.search.basic_variant import BasicVariantGenerator

        return BasicVariantGenerator(random_state=seed, max_concurrent=limit or 0)
    import optuna
    from ray.tune.search import ConcurrencyLimiter
    from ray.tune.search.optuna import OptunaSearch

    searcher = OptunaSearch(metric=cfg.metric, mode=cfg.mode, sampler=optuna.samplers.TPESampler(seed=seed))
    return ConcurrencyLimiter(searcher, max_concurrent=limit) if limit else searcher


def max_trials(cfg: ExperimentConfig) -> int:
    """An upper bound on the trials a study can start: each new trial costs at least one grace period.

    Wall-clock budgets have no such bound; they get a generous cap.
    """
    if cfg.budget_kind == "epochs":
        return int(math.ceil(cfg.budget / cfg.grace_period)) + cfg.trials_per_study
    return 10_000


def _resources(cfg: ExperimentConfig, group_label: str | None):
    from ray import tune

    bundle = {"CPU": cfg.cpus_per_trial}
    if cfg.gpus_per_trial:
        bundle["GPU"] = cfg.gpus_per_trial
    if group_label is None:
        return tune.PlacementGroupFactory([bundle])
    from ohgw.studies.cluster import GROUP_LABEL

    return tune.PlacementGroupFactory([bundle], bundle_label_selector=[{GROUP_LABEL: group_label}])


def _named(fn: Callable, name: str) -> Callable:
    """The trainable under a unique name: concurrent Tuners must not share registrations."""

    def trainable(config):
        return fn(config)

    trainable.__name__ = trainable.__qualname__ = name
    return trainable


def scheduler_args(cfg: ExperimentConfig) -> SchedulerArgs:
    """What every study's scheduler is built from: the experiment's metric, rungs and study slice."""
    return SchedulerArgs(cfg.metric, cfg.mode, cfg.max_t, cfg.grace_period, cfg.reduction_factor,
                         cfg.trials_per_study, space=cfg.space)


def check_methods(cfg: ExperimentConfig, methods) -> None:
    """Every method's name parses and its scheduler accepts ``cfg`` (e.g. PASHA needs ``max_t`` above the
    grace period): a ValueError before anything starts, not a failure inside every study. A scheduler's
    warnings about the config are left to the studies, which say them in their log."""
    for name in methods:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            parse_method(name).make_scheduler(scheduler_args(cfg))


def _tap(cfg: ExperimentConfig, method_name: str, seed: int, ledger: StudyLedger | None = None):
    """The study's scheduler chain: (StudyTap, the scheduler it wraps, the OHGW wrapper's callbacks).

    The OHGW wrapper's state is saved inside the tap's (one ``SchedulerStateCallback`` per study).
    """
    method = parse_method(method_name)
    inner = method.make_scheduler(scheduler_args(cfg))
    settings = method.warm_start(cfg.warm_start)
    callbacks = []
    if settings.mode != "none":
        from ohgw.tune.wrapper import OHGW

        inner = OHGW(inner, cfg.space, settings, seed=seed)
        callbacks.extend(inner.callbacks(restore_state=False))
    ledger = ledger or StudyLedger(study_seed=seed, budget_kind=cfg.budget_kind, budget=float(cfg.budget))
    return StudyTap(inner, ledger), inner, callbacks


@contextlib.contextmanager
def _no_tensorboard_logger():
    """Tune adds no logger of its own while a study runs (the study passes its CSV and JSON loggers).

    Its TensorBoard logger would import tensorboardX, which imports torch: ~3 s of CPU in every study
    task, whose trainable may need no torch, for event files nothing reads (the Tune folder is removed
    after the export). A user's own ``TUNE_DISABLE_AUTO_CALLBACK_LOGGERS`` wins; afterwards the process'
    environment is as it was.
    """
    if AUTO_LOGGERS_ENV in os.environ:
        yield
        return
    os.environ[AUTO_LOGGERS_ENV] = "1"
    try:
        yield
    finally:
        os.environ.pop(AUTO_LOGGERS_ENV, None)


def _restored(fn, run_dir: str, sid: str):
    """``Tuner.restore`` of a study's run (unfinished trials resumed, errored ones stay ended), or None
    (logged) when Tune cannot read its own state."""
    from ray import tune

    try:
        tuner = tune.Tuner.restore(run_dir, trainable=fn, resume_unfinished=True, resume_errored=False)
    except Exception as e:  # noqa: BLE001 - whatever Tune fails on (a garbled tuner.pkl): redo
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        logger.warning("study %s: cannot resume from its Tune state in %s (Tuner.restore failed: %s: %s); "
                       "redoing it from scratch", sid, run_dir, type(e).__name__, first)
        return None
    logger.info("study %s: resuming from its Tune state in %s", sid, run_dir)
    return tuner


def run_study(
    cfg: ExperimentConfig,
    trainable: Callable,
    method_name: str,
    seed: int,
    storage_dir: str,
    group_label: str | None = None,
    verbose: int = 0,
    results_dir: str | None = None,
) -> dict[str, pd.DataFrame]:
    """Run one study to the end of its budget; returns {'iterations', 'trials', 'studies'} DataFrames.

    Its best checkpoint's export goes to ``results_dir``'s exports (default: ``storage_dir``'s parent,
    the results directory when the storage is the default ``<results>/_tune``)."""
    from ray import tune

    from ohgw.studies.tables import git_commit, hardware_info, package_versions, study_tables
    from ohgw.tune.callbacks import SchedulerStateCallback

    method = parse_method(method_name)
    limit = None if method.self_limiting else cfg.trials_per_study
    # Tune's run folder and trainable name: unique per study, safe as a path and a registry name
    name = tune_run_name(cfg.experiment, method_name, seed)
    run_dir = os.path.join(storage_dir, name)
    sid = study_id(cfg.experiment, method_name, seed)
    mark = resume.marker(sid, method_name, seed, cfg.fingerprint())
    found = resume.inspect(run_dir, mark, probe=lambda tap: _tap(cfg, method_name, seed)[0].set_state(tap))
    if found.action == "finished":  # ended before its export: its tables were kept (module doc)
        logger.info("study %s: finished before, its tables are kept in %s", sid, run_dir)
        return found.tables
    if found.action == "redo":
        logger.warning("study %s: cannot resume from its Tune state in %s (%s); redoing it from scratch",
                       sid, run_dir, found.reason)
    ledger = StudyLedger(study_seed=seed, budget_kind=cfg.budget_kind, budget=float(cfg.budget), key=name)
    scheduler, inner, callbacks = _tap(cfg, method_name, seed, ledger)
    callbacks.append(SchedulerStateCallback(scheduler))  # the scheduler's state in every experiment snapshot
    recorder = StudyRecorder(ledger, cfg.space.names, cfg.metric)
    live = StudyMetrics(cfg.experiment, method_name, seed, cfg.space, ledger, cfg.metric, cfg.mode, cfg.tau,
                        scheduler=inner)  # Ray metrics: warm-starts, rung decisions, PASHA state, T@τ
    callbacks.append(KeepRestorable())  # no checkpoint a restore needs is deleted (ohgw.studies.checkpoints)
    export_to = export_dir(storage_dir if results_dir is None else os.path.join(results_dir, "_tune"),
                           cfg.experiment, method_name, seed)
    if cfg.export_best is not None:  # the best report's checkpoint, exported while the study runs
        callbacks.append(ExportBest(cfg.export_best, export_to, cfg.metric, cfg.mode))
    param_space = {**cfg.base_config, **cfg.space.param_space(), protocol.MAX_T_KEY: cfg.max_t}
    # num_to_keep makes Tune snapshot the experiment state after every checkpoint (a resume then
    # loses at most one epoch per trial) and warn each time epochs are under 5 s apart; the
    # snapshot is small and is what a resume needs: keep the console quiet unless the user chose
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    loggers = [tune.logger.CSVLoggerCallback(), tune.logger.JsonLoggerCallback()]  # Tune's, but no TensorBoard's
    fn = tune.with_resources(_named(metrics.tagged(trainable, cfg.experiment, method_name, seed), name),
                             _resources(cfg, group_label))
    with live_ledger(ledger):  # Tuner.restore's unpickled plug-ins share this ledger (ohgw.studies.ledger)
        tuner = None
        if found.action == "resume":
            unretire(run_dir)  # a checkpoint the stored state names that Tune had let go of
            tuner = _restored(fn, run_dir, sid)
        if tuner is None:
            shutil.rmtree(run_dir, ignore_errors=True)  # nothing to resume: from scratch
            shutil.rmtree(export_to, ignore_errors=True)  # and no export of an earlier attempt
            resume.write_marker(run_dir, mark)
            ledger.t0, ledger.started = time.time(), datetime.now(timezone.utc).isoformat()
            tuner = tune.Tuner(
                fn,
                param_space=param_space,
                tune_config=tune.TuneConfig(
                    scheduler=scheduler,  # carries metric and mode
                    search_alg=_searcher(cfg, seed, limit),
                    num_samples=max_trials(cfg),
                    max_concurrent_trials=limit,
                    reuse_actors=cfg.reuse_actors,
                ),
                run_config=tune.RunConfig(
                    name=name,
                    storage_path=storage_dir,
                    stop=BudgetStopper(ledger),
                    callbacks=[recorder, *callbacks, live, *loggers],  # Tune matches callback states by position
                    failure_config=tune.FailureConfig(max_failures=cfg.max_failures),
                    checkpoint_config=tune.CheckpointConfig(num_to_keep=CHECKPOINTS_KEPT),
                    verbose=verbose,
                ),
            )
        with _no_tensorboard_logger():
            tuner.fit()
    meta = {
        "study_id": sid,
        "vanilla_method": method.vanilla,
        "metric": cfg.metric,
        "mode": cfg.mode,
        "budget_kind": cfg.budget_kind,
        "budget": float(cfg.budget),
        "tau": float(cfg.tau),
        "max_t": int(cfg.max_t),
        "space": json.dumps(cfg.space.to_dict(), sort_keys=True),  # the run's own ψ transforms, for the analysis
        "start_time": ledger.started,  # the first attempt's start
        "end_time": datetime.now(timezone.utc).isoformat(),
        "completed": True,
        "wall_s": time.time() - ledger.t0,  # the study's own clock: downtime between attempts left out
        "budget_exhausted": ledger.exhausted_at is not None,
        "group": group_label or "",
        "cpus_per_trial": float(cfg.cpus_per_trial),
        "gpus_per_trial": float(cfg.gpus_per_trial),
        "start_ts": ledger.t0,
        "resumes": int(ledger.resumes),
        "redone_reports": int(ledger.redone),
        **hardware_info(),
        "versions": package_versions(),
        "git_commit": git_commit(),
    }
    tables = study_tables(meta, recorder, ledger, cfg)
    resume.save_tables(run_dir, tables)  # before the sweep: a kill before the export reloads them
    sweep_checkpoints(run_dir)  # nothing resumes a finished study: its last checkpoints are dead weight
    return tables
