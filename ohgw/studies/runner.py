"""Run an experiment: every (method, seed) study of a workload across the cluster, exported to Parquet.

:func:`run_experiment` is what ``experiments/*_vs_ohgw.py`` reach through
:func:`ohgw.studies.cli.main`; each study is :func:`ohgw.studies.study.run_study`
in its own Ray task, and its tables go to :func:`ohgw.results.write_study`.

- **Admission.** A study starts only when a whole slice (trials_per_study ×
  per-trial resources) is free in some group (:mod:`ohgw.studies.cluster`), so
  no study is slowed by oversubscription; studies are spread round-robin over groups.
- **Resume.** A study whose ``studies`` file exists is done and skipped; any other
  study is redone from scratch. Re-running the same command is always safe.
- **One experiment per directory.** ``experiment.json`` holds the experiment's
  fingerprint (:meth:`~ohgw.studies.study.ExperimentConfig.fingerprint`: the run
  settings only, so another τ is no other experiment); a directory holding another
  experiment is refused before anything is written, naming the settings that differ.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ohgw.results import partition_value, study_dir, write_study
from ohgw.studies.cluster import Group, discover_groups
from ohgw.studies.methods import parse_method
from ohgw.studies.study import ANALYSIS_FIELDS, ExperimentConfig, run_study

MANIFEST = "experiment.json"


def _fmt_s(s: float) -> str:
    s = int(max(0, s))
    return f"{s // 3600}h{s % 3600 // 60:02d}m{s % 60:02d}s" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


class Progress:
    """A study-level progress line: done/total, elapsed and ETA, on stderr."""

    def __init__(self, total: int, already: int, stream=sys.stderr) -> None:
        self.total, self.done, self.stream = total, already, stream
        self.t0 = time.time()
        self.finished_here = 0

    def update(self, note: str = "") -> None:
        elapsed = time.time() - self.t0
        rate = elapsed / self.finished_here if self.finished_here else None
        eta = _fmt_s(rate * (self.total - self.done)) if rate else "?"
        pct = 100.0 * self.done / self.total if self.total else 100.0
        bar = "#" * int(pct / 5) + "." * (20 - int(pct / 5))
        print(f"[studies {bar}] {self.done}/{self.total} ({pct:.0f}%) elapsed {_fmt_s(elapsed)} ETA {eta} {note}",
              file=self.stream, flush=True)

    def step(self, note: str = "") -> None:
        self.done += 1
        self.finished_here += 1
        self.update(note)


def check_manifest(out_dir: Path, cfg: ExperimentConfig) -> None:
    """Refuse a directory that holds another experiment; writes nothing.

    The analysis settings (τ, the metric's range) are not compared: re-analysing at any τ,
    or re-running the same studies with another ``--tau``, is always allowed.
    """
    path = Path(out_dir) / MANIFEST
    mine = cfg.fingerprint()  # JSON-normal, as the manifest was written
    if path.exists():
        # manifests written before τ moved to the analysis still hold it: ignore it there too
        theirs = {k: v for k, v in json.loads(path.read_text()).items() if k not in ANALYSIS_FIELDS}
        if theirs != mine:
            name = theirs.get("experiment", "?")
            diff = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))
            raise ValueError(f"output directory {out_dir} holds experiment {name!r} with other settings "
                             f"(differs in {', '.join(diff)}); use another --out")
    studies = Path(out_dir) / "studies"
    if studies.is_dir():
        names = {partition_value(p.name, "experiment") for p in studies.glob("experiment=*")}
        others = sorted(names - {cfg.experiment})
        if others:
            raise ValueError(f"output directory {out_dir} holds studies of other experiments {others}; use another --out")


def write_manifest(out_dir: Path, cfg: ExperimentConfig) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(cfg.fingerprint(), indent=2, sort_keys=True))
    os.replace(tmp, out_dir / MANIFEST)


def is_done(out_dir: Path, experiment: str, method: str, seed: int) -> bool:
    return (study_dir(out_dir, "studies", experiment, method, seed) / "part-0.parquet").exists()


@dataclass(frozen=True)
class RunSummary:
    ran: int
    skipped: int
    failed: list[str]
    wall_s: float


_DASHBOARD_URL = ""


def dashboard_note() -> str:
    url = _DASHBOARD_URL
    if not url:
        return "Ray dashboard: not running"
    url = url if url.startswith("http") else f"http://{url}"
    auth = os.environ.get("RAY_AUTH_MODE", "token")
    if auth == "disabled":
        return f"Ray dashboard: {url} (token auth disabled)"
    return (f"Ray dashboard: {url} (token auth: paste the token printed by `ray get-auth-token`, "
            f"stored in ~/.ray/auth_token; API calls need 'Authorization: Bearer <token>')")


def init_ray(address: str | None, num_cpus: int | None, quiet: bool, dashboard: bool = True,
             dashboard_host: str = "127.0.0.1") -> None:
    """Connect to ``address`` or start a local Ray with the dashboard on loopback (token auth kept on)."""
    global _DASHBOARD_URL
    import ray

    if ray.is_initialized():
        return
    if address:
        ctx = ray.init(address=address, log_to_driver=not quiet)
    else:
        ctx = ray.init(address="local", num_cpus=num_cpus, include_dashboard=dashboard, dashboard_host=dashboard_host,
                       log_to_driver=not quiet, configure_logging=True, logging_level="ERROR" if quiet else "WARNING")
    _DASHBOARD_URL = getattr(ctx, "dashboard_url", "") or ""


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
) -> RunSummary:
    """Run every (method, seed) study not yet in ``out_dir``; returns what ran."""
    import ray

    for m in methods:
        parse_method(m)
    if not seeds:
        raise ValueError("need at least one seed")
    out = Path(out_dir)
    check_manifest(out, cfg)
    todo = [(m, s) for s in seeds for m in methods if not is_done(out, cfg.experiment, m, s)]
    skipped = len(seeds) * len(methods) - len(todo)
    write_manifest(out, cfg)
    progress = Progress(len(seeds) * len(methods), skipped, stream)
    if skipped:
        print(f"resuming: {skipped} completed studies kept, {len(todo)} to run", file=stream, flush=True)
    if not todo:
        progress.update("(nothing to do)")
        return RunSummary(0, skipped, [], 0.0)
    t0 = time.time()
    init_ray(address, num_cpus, quiet, dashboard_host=dashboard_host)
    print(dashboard_note(), file=stream, flush=True)
    groups = discover_groups()
    slots: list[Group | None] = []
    for g in groups:
        n = g.study_slots(cfg.cpus_per_trial, cfg.gpus_per_trial, cfg.trials_per_study)
        slots.extend([g] * n)
    # interleave groups so that consecutive studies land on different groups
    slots.sort(key=lambda g: [x.name for x in groups].index(g.name) if g else 0)
    slots = [s for i in range(len(slots)) for s in slots[i::len(slots)]][: len(slots)]
    if not slots:
        raise ValueError(f"no group of the cluster holds one study ({cfg.trials_per_study} trials × "
                         f"{cfg.cpus_per_trial} CPU, {cfg.gpus_per_trial} GPU); lower --trials-per-study or resources")
    storage = str((out / "_tune").resolve())
    task = ray.remote(num_cpus=0, max_retries=0)(run_study)
    free = list(slots)
    running: dict = {}
    queue = list(todo)
    failed: list[str] = []
    progress.update(f"({len(free)} study slots on {len(groups)} group(s))")
    while queue or running:
        while queue and free:
            slot = free.pop(0)
            method, seed = queue.pop(0)
            label = slot.name if slot is not None else None
            ref = task.remote(cfg, trainable, method, seed, storage, label, 0 if quiet else 1)
            running[ref] = (method, seed, slot)
        ready, _ = ray.wait(list(running), num_returns=1)
        for ref in ready:
            method, seed, slot = running.pop(ref)
            free.append(slot)
            try:
                tables = ray.get(ref)
            except Exception as e:  # noqa: BLE001 - one failed study must not end the others
                failed.append(f"{method}/seed={seed}")
                cause = getattr(e, "cause", None) or e
                print(f"study {method}/seed={seed} failed: {type(cause).__name__}: {cause}", file=stream, flush=True)
                continue
            write_study(out, cfg.experiment, method, seed, tables["iterations"], tables["trials"], tables["studies"])
            progress.step(f"done {method}/seed={seed}")
    return RunSummary(len(todo) - len(failed), skipped, failed, time.time() - t0)
