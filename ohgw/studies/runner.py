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
- **One experiment per directory.** ``experiment.json`` holds the experiment's
  fingerprint (:meth:`~ohgw.studies.study.ExperimentConfig.fingerprint`: the run
  settings only, so another τ is no other experiment); a directory holding another
  experiment is refused before anything is written, naming the settings that differ.
- **Console.** One study-level progress bar (tqdm, ETA) and one line per finished study; the
  whole Ray/Tune output (every worker's stdout/stderr, Tune's trial tables, Ray's driver
  logging, warnings) goes to ``<out>/logs/ray-tune-<time>.log``, named when the run starts.
  ``verbose`` also shows Ray's output on the console, ``quiet`` leaves out the per-study lines.
- **Disk.** A study's Tune directory (``_tune/<run name>``) is removed as soon as its Parquet
  export is written, unless ``keep_tune_dirs``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from ohgw import metrics
from ohgw.results import atomic_path, partition_value, study_dir, write_study
from ohgw.studies.cluster import Group, discover_groups
from ohgw.studies.methods import parse_method
from ohgw.studies.study import ANALYSIS_FIELDS, ExperimentConfig, check_tune_state, run_study, tune_run_name

MANIFEST = "experiment.json"
def _isatty(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


class _LineWriter:
    """What a non-terminal gets from tqdm: a bar as one whole line, no carriage returns."""

    def __init__(self, stream) -> None:
        self.stream = stream

    def write(self, s: str) -> None:
        s = s.replace("\r", "").strip()
        if s:
            self.stream.write(s + "\n")

    def flush(self) -> None:
        self.stream.flush()


class StudyProgress:
    """The study-level progress bar (tqdm: done/total, elapsed, ETA) and one line per finished study.

    On a terminal the bar redraws in place below the study lines. Elsewhere (CI logs, ``| tee``) the
    bar is printed twice, at the start and at the end, as whole lines; each study line then carries
    the progress itself (``[done/total, elapsed, ETA]``), so a log holds one line per study.
    """

    def __init__(self, total: int, already: int, stream=sys.stderr, note: str = "") -> None:
        from tqdm import tqdm

        self.stream, self.tty = stream, _isatty(stream)
        self.total = total
        common = dict(total=total, initial=already, desc="studies", unit="study", smoothing=0.0, leave=True,
                      postfix=note or None)
        if self.tty:
            self.bar = tqdm(file=stream, mininterval=0.5, dynamic_ncols=True, **common)
        else:  # never redrawn on an update: the study lines say it
            self.bar = tqdm(file=_LineWriter(stream), ascii=True, ncols=100, miniters=1, mininterval=float("inf"),
                            maxinterval=float("inf"), **common)
        if not self.tty:
            self.bar.set_postfix_str("", refresh=False)  # the note is for the first line

    @property
    def done(self) -> int:
        return self.bar.n

    def note(self, line: str) -> None:
        """A line above the bar."""
        if self.tty:
            self.bar.write(line, file=self.stream)
        else:
            print(line, file=self.stream, flush=True)

    def step(self, line: str | None = None) -> None:
        """One more study done; ``line`` (if any) says how it went."""
        self.bar.update(1)
        if line:
            self.note(f"[{self._where()}] {line}")

    def _where(self) -> str:
        if self.tty:
            return f"{self.done}/{self.total}"
        d = self.bar.format_dict
        elapsed, ran = d["elapsed"], d["n"] - d["initial"]
        left = self.total - self.done
        eta = "00:00" if not left else self.bar.format_interval(elapsed / ran * left) if ran and elapsed else "?"
        return f"{self.done}/{self.total}, {self.bar.format_interval(elapsed)} elapsed, ETA {eta}"

    def tick(self) -> None:
        """Redraw the elapsed time on a terminal (nothing elsewhere)."""
        if self.tty:
            self.bar.refresh()

    def close(self) -> None:
        self.bar.close()


def study_line(cfg: ExperimentConfig, method: str, seed: int, tables: dict) -> str:
    """One line on a finished study: best validation score, trials, epoch-equivalents, wall time."""
    st, tr = tables["studies"].iloc[0], tables["trials"]
    scores = tr["best_val_score"] if "best_val_score" in tr and len(tr) else None
    best = "n/a" if scores is None else f"{(scores.max() if cfg.mode == 'max' else scores.min()):.4g}"
    return (f"{method}/seed={seed}: best {cfg.metric} {best}, {int(st.get('n_trials', len(tr)))} trials, "
            f"{float(st.get('epoch_equiv', float('nan'))):.1f} epoch-eq, {float(st.get('wall_s', 0.0)):.0f} s")


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
    with atomic_path(out_dir / MANIFEST) as tmp:
        tmp.write_text(json.dumps(cfg.fingerprint(), indent=2, sort_keys=True))


def is_done(out_dir: Path, experiment: str, method: str, seed: int) -> bool:
    return (study_dir(out_dir, "studies", experiment, method, seed) / "part-0.parquet").exists()


def is_results_dir(out_dir: Path) -> bool:
    """A directory the runner may write into: absent, empty, or holding an experiment's manifest."""
    out = Path(out_dir)
    if not out.exists():
        return True
    return out.is_dir() and ((out / MANIFEST).is_file() or not any(out.iterdir()))


def check_keep_tune_dirs(out_dir: Path) -> None:
    """``--keep-tune-dirs`` keeps Tune's trees (large) in ``out_dir``: only in a results directory."""
    if not is_results_dir(out_dir):
        raise ValueError(f"--keep-tune-dirs: {out_dir} is not a results directory (not empty and no {MANIFEST}); "
                         "use another --out")


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


_DASHBOARD_URL = ""
AUTH_WARNING = ("warning: Ray token auth is disabled (RAY_AUTH_MODE=disabled): anyone who can reach the dashboard "
                "or the cluster's ports can run code as you; unset RAY_AUTH_MODE to keep token auth on")


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or a name) is on the loopback interface only."""
    import ipaddress

    h = host.strip().strip("[]")
    if h == "localhost":
        return True
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        return False  # another name, or 0.0.0.0's spellings: not provably loopback


def check_dashboard_host(host: str, allow_public: bool = False) -> None:
    """Refuse a non-loopback dashboard bind unless ``allow_public`` (``--allow-public-dashboard``).

    The dashboard runs jobs and shows logs; bound to 0.0.0.0 or an external address it is reachable
    from the network, protected by the token only (or by nothing with token auth disabled).
    """
    if not isinstance(host, str) or not host.strip():
        raise ValueError(f"--dashboard-host must be an address, got {host!r}")
    if not allow_public and not is_loopback(host):
        raise ValueError(f"--dashboard-host {host} is not a loopback address: the dashboard would be reachable from "
                         "the network; pass --allow-public-dashboard to bind it there anyway (keep token auth on)")


def auth_disabled() -> bool:
    """Whether Ray's token auth is switched off for this process (``RAY_AUTH_MODE=disabled``)."""
    return os.environ.get("RAY_AUTH_MODE", "token").strip().lower() == "disabled"


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


def init_ray(address: str | None, num_cpus: int | None, quiet: bool = False, dashboard: bool = True,
             dashboard_host: str = "127.0.0.1", logging_level: int | None = None) -> None:
    """Connect to ``address`` or start a local Ray with the dashboard on loopback (token auth kept on).

    Workers' output is forwarded to the driver (where :class:`RayLog` routes it during a run)
    unless ``quiet``: then it stays in Ray's session logs. ``logging_level`` is the ``ray`` logger's
    (default: ERROR when ``quiet``, else WARNING).
    """
    global _DASHBOARD_URL
    import ray

    if ray.is_initialized():
        return
    if logging_level is None:
        logging_level = logging.ERROR if quiet else logging.WARNING
    if address:
        ctx = ray.init(address=address, log_to_driver=not quiet, logging_level=logging_level)
    else:
        ctx = ray.init(address="local", num_cpus=num_cpus, include_dashboard=dashboard, dashboard_host=dashboard_host,
                       log_to_driver=not quiet, logging_level=logging_level)
    _DASHBOARD_URL = getattr(ctx, "dashboard_url", "") or ""


def _worker_log_handler(fp, lock: threading.Lock) -> Callable[[dict], None]:
    """Ray's forwarded worker output (a batch of lines of one process) into ``fp``, every line, prefixed."""

    def handle(data: dict) -> None:
        who = data.get("actor_name") or data.get("task_name") or ""
        prefix = f"({who + ' ' if who else ''}pid={data.get('pid')}{', ip=' + data['ip'] if data.get('ip') else ''})"
        stream = "err" if data.get("is_err") else "out"
        with lock:
            for line in data.get("lines", []):
                fp.write(f"{prefix} [{stream}] {line}\n")
            fp.flush()

    return handle


_DRAIN_QUIET_S, _DRAIN_MAX_S = 1.0, 5.0  # on exit: wait for 1 s without worker output, 5 s at most
_RAY_PRINTER = None  # Ray's console printer of worker output, as first seen: a verbose run after a quiet one


class RayLog:
    """Everything Ray and Tune say, into one file; on the console too only when ``verbose``.

    While open (a context manager): the driver's ``ray`` loggers, other loggers' records and Python
    warnings are appended to ``path``; after :meth:`take_worker_output` (call it once Ray is up) the
    workers' forwarded stdout/stderr too: the study tasks' Tune output, the trainables' prints. Without
    ``verbose``, Ray's ``ray`` console handler and its printing of worker output are off. On exit the
    loggers are restored, and Ray's printing of worker output if Ray was up before (a Ray started
    inside prints none on the console after the run: it would be workers' shutdown chatter).
    """

    def __init__(self, path: Path, verbose: bool = False) -> None:
        self.path, self.verbose = Path(path), verbose
        self.lock = threading.Lock()
        self.fp = None
        self.dispatcher = None
        self.saved_workers: list = []
        self.last_line_t = 0.0

    def __enter__(self) -> RayLog:
        import ray  # Ray configures its loggers on import: take them over after that

        self.ray_was_up = ray.is_initialized()  # Ray started here prints no worker output after the run
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fp = open(self.path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115 - closed in __exit__
        self.fp.write(f"=== {datetime.now().isoformat(timespec='seconds')} pid {os.getpid()}: {' '.join(sys.argv)}\n")
        self.handler = logging.StreamHandler(self.fp)
        self.handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        self.handler.setLevel(logging.INFO)
        ray_logger = logging.getLogger("ray")
        self.saved_ray = (list(ray_logger.handlers), ray_logger.propagate, ray_logger.level)
        ray_logger.handlers = [self.handler, *(self.saved_ray[0] if self.verbose else [])]
        ray_logger.propagate = False
        ray_logger.setLevel(logging.INFO)
        logging.getLogger().addHandler(self.handler)  # other libraries: no console fallback while a handler exists
        logging.captureWarnings(True)
        return self

    def take_worker_output(self) -> None:
        """Route Ray's forwarded worker output into the file (and off the console unless ``verbose``)."""
        try:
            from ray._private.ray_logging import global_worker_stdstream_dispatcher as dispatcher
        except ImportError:  # another Ray: its workers' output stays where Ray puts it
            self.fp.write("(this Ray has no worker-output dispatcher: worker output is not in this file)\n")
            return
        global _RAY_PRINTER
        self.dispatcher = dispatcher
        self.last_line_t = time.time()
        self.saved_workers = list(dispatcher.handlers)
        printer = next((h for h in self.saved_workers if h[0] == "ray_print_logs"), None)
        _RAY_PRINTER = printer or _RAY_PRINTER
        if not self.verbose:
            dispatcher.remove_handler("ray_print_logs")
        elif printer is None and _RAY_PRINTER is not None:  # an earlier quiet run in this process took it off
            dispatcher.add_handler(*_RAY_PRINTER)
        dispatcher.add_handler("ohgw_log_file", self._write_worker_lines)

    def _write_worker_lines(self, data: dict) -> None:
        who = data.get("actor_name") or data.get("task_name") or ""
        prefix = f"({who + ' ' if who else ''}pid={data.get('pid')}{', ip=' + data['ip'] if data.get('ip') else ''})"
        kind = "err" if data.get("is_err") else "out"
        self.last_line_t = time.time()
        with self.lock:
            if self.fp is None:
                return
            for line in data.get("lines", []):
                self.fp.write(f"{prefix} [{kind}] {line}\n")
            self.fp.flush()

    def __exit__(self, *exc) -> None:
        if self.dispatcher is not None:
            # workers' last lines (Tune's final table) reach the driver a moment after the study's result
            deadline = time.time() + (_DRAIN_MAX_S if exc[0] is None else 0.0)  # not after Ctrl-C or an error
            while time.time() < deadline and time.time() - self.last_line_t < _DRAIN_QUIET_S:
                time.sleep(0.1)
            self.dispatcher.remove_handler("ohgw_log_file")
            if not self.verbose and self.ray_was_up and any(n == "ray_print_logs" for n, _ in self.saved_workers):
                self.dispatcher.add_handler(*next(h for h in self.saved_workers if h[0] == "ray_print_logs"))
        logging.captureWarnings(False)
        logging.getLogger().removeHandler(self.handler)
        ray_logger = logging.getLogger("ray")
        ray_logger.handlers, ray_logger.propagate = self.saved_ray[0], self.saved_ray[1]
        ray_logger.setLevel(self.saved_ray[2])
        with self.lock:
            self.fp.close()
            self.fp = None


def default_log_path(out_dir: Path) -> Path:
    return Path(out_dir) / "logs" / f"ray-tune-{datetime.now().strftime('%Y%m%d-%H%M%S')}.log"


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
) -> RunSummary:
    """Run every (method, seed) study not yet in ``out_dir``; returns what ran.

    On ``stream``: the progress bar, one line per finished study (not when ``quiet``) and the
    path of the Ray/Tune log (``log_path``, default ``out_dir/logs/ray-tune-<time>.log``);
    ``verbose`` adds Ray's own output (Tune's trial tables). Each study's Tune directory is
    removed once its tables are written, unless ``keep_tune_dirs``. A local Ray's dashboard binds to a
    non-loopback ``dashboard_host`` only with ``allow_public_dashboard`` (:func:`check_dashboard_host`).
    """
    import ray

    for m in methods:
        parse_method(m)
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
    todo = [(m, s) for s in seeds for m in methods if not is_done(out, cfg.experiment, m, s)]
    for m, s in todo:  # an interrupted study resumes: its Tune state must be this experiment's
        check_tune_state(out / "_tune", cfg, m, s)
    skipped = len(seeds) * len(methods) - len(todo)
    write_manifest(out, cfg)
    if skipped:
        print(f"resuming: {skipped} completed studies kept, {len(todo)} to run", file=stream, flush=True)
    if not todo:
        print(f"studies: all {skipped} done (nothing to run)", file=stream, flush=True)
        return RunSummary(0, skipped, [], 0.0)
    log_file = Path(log_path) if log_path is not None else default_log_path(out)
    print(f"Ray/Tune log: {log_file}", file=stream, flush=True)
    t0 = time.time()
    with RayLog(log_file, verbose=verbose) as ray_log:
        # workers' output and Ray's INFO records: to the log
        init_ray(address, num_cpus, quiet=False, dashboard_host=dashboard_host, logging_level=logging.INFO)
        ray_log.take_worker_output()
        print(dashboard_note(), file=stream, flush=True)
        if auth_disabled():
            print(AUTH_WARNING, file=stream, flush=True)
        failed = _run_studies(ray, cfg, trainable, todo, skipped, out, quiet, stream, keep_tune_dirs)
    return RunSummary(len(todo) - len(failed), skipped, failed, time.time() - t0, str(log_file))


def _run_studies(ray, cfg: ExperimentConfig, trainable: Callable, todo: list, skipped: int, out: Path, quiet: bool,
                 stream, keep_tune_dirs: bool) -> list[str]:
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
    progress = StudyProgress(skipped + len(todo), skipped, stream,
                             note=f"up to {len(free)} at a time on {len(groups)} group(s)")
    try:
        while queue or running:
            while queue and free:
                slot = free.pop(0)
                method, seed = queue.pop(0)
                label = slot.name if slot is not None else None
                # Tune always reports (verbose=1): its tables go to the log, to the console only with --verbose
                ref = task.remote(cfg, trainable, method, seed, storage, label, 1)
                running[ref] = (method, seed, slot)
                metrics.safely("ohgw_studies_started_total", 1, metrics.study_tags(cfg.experiment, method, seed))
            ready, _ = ray.wait(list(running), num_returns=1, timeout=1.0)
            progress.tick()
            for ref in ready:
                method, seed, slot = running.pop(ref)
                free.append(slot)
                try:
                    tables = ray.get(ref)
                except Exception as e:  # noqa: BLE001 - one failed study must not end the others
                    failed.append(f"{method}/seed={seed}")
                    metrics.safely("ohgw_studies_failed_total", 1, metrics.study_tags(cfg.experiment, method, seed))
                    cause = getattr(e, "cause", None) or e
                    first = str(cause).strip().splitlines()[0] if str(cause).strip() else ""
                    progress.note(f"study {method}/seed={seed} failed: {type(cause).__name__}: {first} "
                                  "(traceback in the Ray/Tune log)")
                    logging.getLogger("ray").error("study %s/seed=%s failed: %r", method, seed, e)
                    continue
                write_study(out, cfg.experiment, method, seed, tables["iterations"], tables["trials"],
                            tables["studies"])
                metrics.safely("ohgw_studies_done_total", 1, metrics.study_tags(cfg.experiment, method, seed))
                if not keep_tune_dirs:  # the study's Parquet export is complete: Tune's tree is not needed
                    shutil.rmtree(tune_run_dir(storage, cfg, method, seed), ignore_errors=True)
                progress.step(None if quiet else study_line(cfg, method, seed, tables))
    finally:
        progress.close()
    if not keep_tune_dirs:
        with contextlib.suppress(OSError):
            Path(storage).rmdir()  # only if nothing else is left in it
    return failed
