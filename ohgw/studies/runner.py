"""Run an experiment: every (method, seed) study of a workload across the cluster, exported to Parquet.

:func:`run_experiment` is what ``experiments/*_vs_ohgw.py`` reach through
:func:`ohgw.studies.cli.main`; each study is :func:`ohgw.studies.study.run_study`
in its own Ray task, and its tables go to :func:`ohgw.results.write_study`.

- **Admission.** A study starts only when a whole slice (trials_per_study ×
  per-trial resources) is free in some group (:mod:`ohgw.studies.cluster`), so
  no study is slowed by oversubscription; studies are spread round-robin over groups.
- **Resume.** A study whose ``studies`` file exists is done and skipped; an interrupted one
  resumes from its Tune state (``_tune/<run name>``: trials from their checkpoints, scheduler,
  searcher, budget and records; see :mod:`ohgw.studies.study`), or is redone from scratch, with
  one log line, when that state cannot be restored. Re-running the same command is always safe;
  a Tune state of another experiment is refused before anything starts.
- **One experiment per directory** (:mod:`ohgw.studies.manifest`): a directory holding another
  experiment is refused before anything is written, naming the settings that differ.
- **Console.** One study-level progress bar (tqdm, ETA) and one line per finished study
  (:mod:`ohgw.studies.progress`); the whole Ray/Tune output (every worker's stdout/stderr,
  Tune's trial tables, Ray's driver logging, warnings) goes to ``<out>/logs/ray-tune-<time>.log``, named when the run starts.
  ``verbose`` also shows Ray's output on the console, ``quiet`` leaves out the per-study lines
  (:mod:`ohgw.studies.ray_session`). A local Ray's dashboard binds to loopback unless the user
  allows otherwise (:mod:`ohgw.studies.dashboard`).
- **Sequential seeds** (``sequential``, :mod:`ohgw.studies.looks`): pairs start in seed order; after
  each recorded study the looks now due are made, and once a boundary is crossed no new pair starts
  (studies already running finish and are recorded, without changing the decision).
- **Disk.** A study's Tune directory (``_tune/<run name>``) is removed as soon as its Parquet
  export is written, unless ``keep_tune_dirs``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ohgw import metrics
from ohgw.results import write_study
from ohgw.studies.cluster import Group, discover_groups
from ohgw.studies.dashboard import AUTH_WARNING, auth_disabled, check_dashboard_host, dashboard_note, is_loopback
from ohgw.studies.manifest import (
    MANIFEST,
    check_keep_tune_dirs,
    check_manifest,
    is_done,
    is_results_dir,
    write_manifest,
)
from ohgw.studies.preflight import check_run
from ohgw.studies.progress import StudyProgress, study_line
from ohgw.studies.ray_session import RayLog, dashboard_url, default_log_path, init_ray
from ohgw.studies.study import ExperimentConfig, check_methods, check_tune_state, run_study, tune_run_name

if TYPE_CHECKING:  # a sequential study's modules (scipy, the analysis) are imported only when one runs
    from ohgw.analysis.sequential import SequentialDesign
    from ohgw.studies.looks import SequentialLooks

STUDY_RETRIES = 3  # a study task whose node died is run again (it resumes from its Tune state in the storage)


def tune_run_dir(storage_dir: str | os.PathLike, cfg: ExperimentConfig, method: str, seed: int) -> Path:
    """Where :func:`~ohgw.studies.study.run_study` keeps a study's Tune run (the same name it gives the run)."""
    return Path(storage_dir) / tune_run_name(cfg.experiment, method, seed)


@dataclass(frozen=True)
class RunSummary:
    ran: int
    skipped: int
    failed: list[str]
    wall_s: float
    log_path: str = ""
    decision: str = ""  # a sequential study's decision, in one sentence


def run_experiment(
    cfg: ExperimentConfig,
    trainable: Callable,
    methods: Sequence[str],
    seeds: Sequence[int],
    out_dir: str | os.PathLike,
    quiet: bool = False,
    address: str | None = None,
    num_cpus: int | None = None,
    stream=sys.stderr,
    dashboard_host: str = "127.0.0.1",
    verbose: bool = False,
    keep_tune_dirs: bool = False,
    log_path: str | os.PathLike | None = None,
    allow_public_dashboard: bool = False,
    sequential: SequentialDesign | None = None,
    storage: str | os.PathLike | None = None,
) -> RunSummary:
    """Run every (method, seed) study not yet in ``out_dir``; returns what ran.

    On ``stream``: the progress bar, one line per finished study (not when ``quiet``) and the
    path of the Ray/Tune log (``log_path``, default ``out_dir/logs/ray-tune-<time>.log``);
    ``verbose`` adds Ray's own output (Tune's trial tables). Each study's Tune directory is
    removed once its tables are written, unless ``keep_tune_dirs``. A local Ray's dashboard binds to a
    non-loopback ``dashboard_host`` only with ``allow_public_dashboard`` (:func:`check_dashboard_host`).
    Tune's runs go to ``storage`` (default ``out_dir/_tune``); on a cluster it must be shared by every node
    that takes trials, which is checked before anything is written (:mod:`ohgw.studies.preflight`).
    With a ``sequential`` design, ``seeds`` are 0..max_pairs-1 and the looks decide how many of them run.
    """
    import ray

    check_methods(cfg, methods)  # names, and each scheduler accepts the config: before anything starts
    if not seeds:
        raise ValueError("need at least one seed")
    if not address:  # a local Ray: its dashboard binds to dashboard_host
        check_dashboard_host(dashboard_host, allow_public_dashboard)
    for m in methods:  # every study's metric labels are bounded (no id-like experiment name, small seeds)
        for s in seeds:
            metrics.study_tags(cfg.experiment, m, s)
    out = Path(out_dir)
    check_manifest(out, cfg)
    if keep_tune_dirs:
        check_keep_tune_dirs(out)
    looks = None
    if sequential is not None:
        from ohgw.analysis.sequential import decision_sentence
        from ohgw.studies.looks import SequentialLooks

        if list(seeds) != list(range(sequential.max_pairs)):
            raise ValueError(f"seeds: a sequential study runs seeds 0..{sequential.max_pairs - 1} in order")
        looks = SequentialLooks(sequential, cfg, out, list(methods))  # refuses another design; writes nothing
    todo = [(m, s) for s in seeds for m in methods if not is_done(out, cfg.experiment, m, s)]
    storage = Path(storage).resolve() if storage else (out / "_tune").resolve()
    if todo:  # writable; on a cluster: --address answers, group labels, storage shared by the trials' nodes
        check_run(storage, address, lambda: init_ray(address, num_cpus))
    for m, s in todo:  # an interrupted study resumes: its Tune state must be this experiment's
        check_tune_state(storage, cfg, m, s)
    write_manifest(out, cfg)
    if looks is not None:  # a look due when the run was killed is made now, from the same pairs
        for lk in looks.update():
            print(looks.line(lk), file=stream, flush=True)
        todo = [(m, s) for m, s in todo if s < looks.pairs_needed]
    skipped = sum(is_done(out, cfg.experiment, m, s) for s in seeds for m in methods)
    if skipped:
        print(f"resuming: {skipped} completed studies kept, {len(todo)} to run", file=stream, flush=True)
    if not todo:
        print(f"studies: all {skipped} done (nothing to run)", file=stream, flush=True)
        return RunSummary(0, skipped, [], 0.0, decision=decision_sentence(looks.record) if looks else "")
    log_file = Path(log_path) if log_path is not None else default_log_path(out)
    print(f"Ray/Tune log: {log_file}", file=stream, flush=True)
    t0 = time.time()
    with RayLog(log_file, verbose=verbose) as ray_log:
        # workers' output and Ray's INFO records: to the log
        init_ray(address, num_cpus, quiet=False, dashboard_host=dashboard_host, logging_level=logging.INFO)
        ray_log.take_worker_output()
        print(dashboard_note(dashboard_url()), file=stream, flush=True)
        if auth_disabled():
            print(AUTH_WARNING, file=stream, flush=True)
        ran, failed = _run_studies(ray, cfg, trainable, todo, skipped, out, storage, quiet, stream, keep_tune_dirs, looks)
    return RunSummary(ran, skipped, failed, time.time() - t0, str(log_file),
                      decision=decision_sentence(looks.record) if looks else "")



def study_slots(cfg: ExperimentConfig, groups: Sequence[Group]) -> list[Group]:
    """One entry per study that fits at once (a whole slice each), round-robin over the groups.

    >>> from types import SimpleNamespace  # the three resource fields of an ExperimentConfig
    >>> cfg = SimpleNamespace(cpus_per_trial=1.0, gpus_per_trial=0.0, trials_per_study=1)
    >>> [g.name for g in study_slots(cfg, [Group("a", 2, 0), Group("b", 3, 0)])]
    ['a', 'b', 'a', 'b', 'b']
    """
    per_group = [g.study_slots(cfg.cpus_per_trial, cfg.gpus_per_trial, cfg.trials_per_study) for g in groups]
    slots = [g for i in range(max(per_group, default=0)) for g, n in zip(groups, per_group, strict=True) if i < n]
    if not slots:
        raise ValueError(f"no group of the cluster holds one study ({cfg.trials_per_study} trials × "
                         f"{cfg.cpus_per_trial} CPU, {cfg.gpus_per_trial} GPU); lower --trials-per-study or resources")
    return slots


def _run_studies(ray, cfg: ExperimentConfig, trainable: Callable, todo: list, skipped: int, out: Path,
                 storage_dir: Path, quiet: bool,
                 stream, keep_tune_dirs: bool, looks: SequentialLooks | None = None) -> tuple[int, list[str]]:
    """Start the studies of ``todo`` in order, each as soon as a slice is free; record each as it ends.

    With ``looks``, the looks due after each recorded study are made; once one stops the study, the
    studies not yet started are dropped. Returns (studies recorded, studies failed).
    """
    groups = discover_groups()
    free = study_slots(cfg, groups)
    storage = str(storage_dir)
    task = ray.remote(num_cpus=0, max_retries=STUDY_RETRIES)(run_study)  # a lost node's study resumes elsewhere
    queue, running, failed, ran = deque(todo), {}, [], 0
    progress = StudyProgress(skipped + len(todo), skipped, stream,
                             note=f"up to {len(free)} at a time on {len(groups)} group(s)")
    try:
        while queue or running:
            while queue and free:  # 1. start the next studies while a slice is free
                method, seed = queue.popleft()
                slot = free.pop(0)
                # Tune always reports (verbose=1): its tables go to the log, to the console only with --verbose
                running[task.remote(cfg, trainable, method, seed, storage, slot.name, 1, str(out.resolve()))] = (
                    method, seed, slot)
                metrics.safely("ohgw_studies_started_total", 1, metrics.study_tags(cfg.experiment, method, seed))
            ready, _ = ray.wait(list(running), num_returns=1, timeout=1.0)  # 2. wait for one to end
            progress.tick()
            for ref in ready:  # 3. free its slice; record its tables, or say why it failed
                method, seed, slot = running.pop(ref)
                free.append(slot)
                if not _record_study(ray, ref, cfg, method, seed, out, storage, keep_tune_dirs, progress, quiet):
                    failed.append(f"{method}/seed={seed}")
                    continue
                ran += 1
                if looks is not None and not looks.stopped:  # 4. make the looks now due; stop starting pairs
                    for lk in looks.update():
                        progress.note(looks.line(lk))
                    if looks.stopped:
                        queue.clear()
                        progress.stop_at(progress.done + len(running))
    finally:
        progress.close()
    if not keep_tune_dirs:
        with contextlib.suppress(OSError):
            Path(storage).rmdir()  # only if nothing else is left in it
    return ran, failed


def _record_study(ray, ref, cfg: ExperimentConfig, method: str, seed: int, out: Path, storage: str,
                  keep_tune_dirs: bool, progress: StudyProgress, quiet: bool) -> bool:
    """Write an ended study's tables (and drop its Tune tree); False, after one line, if it failed."""
    tags = metrics.study_tags(cfg.experiment, method, seed)
    try:
        tables = ray.get(ref)
    except Exception as e:  # noqa: BLE001 - one failed study must not end the others
        metrics.safely("ohgw_studies_failed_total", 1, tags)
        cause = getattr(e, "cause", None) or e
        first = str(cause).strip().splitlines()[0] if str(cause).strip() else ""
        progress.note(f"study {method}/seed={seed} failed: {type(cause).__name__}: {first} "
                      "(traceback in the Ray/Tune log)")
        logging.getLogger("ray").error("study %s/seed=%s failed: %r", method, seed, e)
        return False
    write_study(out, cfg.experiment, method, seed, tables["iterations"], tables["trials"], tables["studies"])
    metrics.safely("ohgw_studies_done_total", 1, tags)
    if not keep_tune_dirs:  # the study's Parquet export is complete: Tune's tree is not needed
        shutil.rmtree(tune_run_dir(storage, cfg, method, seed), ignore_errors=True)
    progress.step(None if quiet else study_line(cfg, method, seed, tables))
    return True


__all__ = [  # the split-out modules' names stay importable from here
    "AUTH_WARNING", "MANIFEST", "RayLog", "RunSummary", "StudyProgress", "auth_disabled", "check_dashboard_host",
    "check_keep_tune_dirs", "check_manifest", "dashboard_note", "default_log_path", "init_ray", "is_done",
    "is_loopback", "is_results_dir", "run_experiment", "study_line", "study_slots", "tune_run_dir", "write_manifest",
]
