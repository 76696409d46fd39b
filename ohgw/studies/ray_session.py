"""Ray start-up and log capture: connect to or start Ray, and route everything Ray and Tune say into one file.

:func:`init_ray` starts a local Ray (dashboard on ``dashboard_host``, token auth kept on) or connects
to ``address``; :func:`dashboard_url` is the dashboard it reported. :class:`RayLog` sends the driver's
``ray`` loggers, other loggers' records, Python warnings and the workers' forwarded stdout/stderr to
``<out>/logs/ray-tune-<time>.log`` (:func:`default_log_path`), and to the console too only when ``verbose``.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

_DASHBOARD_URL = ""
START_TRIES = 3  # a local Ray's start-up, tried again where a busy machine made it time out
_log = logging.getLogger(__name__)


def start_local_ray(tries: int = START_TRIES, **init_kwargs):
    """``ray.init(address="local", **init_kwargs)``, tried up to ``tries`` times; returns its context.

    On a machine kept busy by other work, a new Ray's raylet may give up on its own helper processes
    (Ray 2.60 waits a fixed ~15 s for its dashboard agent: "Timed out waiting for file
    .../metrics_agent_port"), and ``ray.init`` fails although nothing is wrong. Each failed try is
    shut down and logged in one line; the last failure is raised. Bad arguments (``ValueError``,
    ``TypeError``) are raised at once.
    """
    import ray

    if tries < 1:
        raise ValueError(f"tries must be >= 1, got {tries}")
    for attempt in range(1, tries + 1):
        try:
            return ray.init(address="local", **init_kwargs)
        except (ValueError, TypeError):
            raise
        except Exception as e:  # noqa: BLE001 - Ray raises plain Exception/RuntimeError for a failed start
            if ray.is_initialized():
                ray.shutdown()
            if attempt == tries:
                raise
            _log.warning("starting a local Ray failed (try %d of %d: %s); trying again", attempt, tries,
                         str(e).splitlines()[0] if str(e) else type(e).__name__)
    raise AssertionError("unreachable")


def dashboard_url() -> str:
    """The dashboard address the Ray started by :func:`init_ray` reported ("" if none)."""
    return _DASHBOARD_URL


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
        ctx = start_local_ray(num_cpus=num_cpus, include_dashboard=dashboard, dashboard_host=dashboard_host,
                              log_to_driver=not quiet, logging_level=logging_level)
    _DASHBOARD_URL = getattr(ctx, "dashboard_url", "") or ""


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


__all__ = ["START_TRIES", "RayLog", "dashboard_url", "default_log_path", "init_ray", "start_local_ray"]
