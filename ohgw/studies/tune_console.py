"""The main job's console for any script that runs Ray Tune itself: one bar, a line per unit, the log in a file.

The study harness (``experiments/*_vs_ohgw.py``) prints one progress bar, one line per finished study and
the tables at the end, and sends everything Ray and Tune say into ``<out>/logs/ray-tune-<time>.log``, named at
the start. :class:`TuneConsole` gives a script with its own ``Tuner`` (``experiments/tw_byol_ablation.py``,
``experiments/jepa_noise_sweep.py``, ``python -m trainables.linear_byol sweep``) the same, from the harness's
own pieces (:class:`~ohgw.studies.progress.StudyProgress`, :class:`~ohgw.studies.ray_session.RayLog`):

    with TuneConsole(out, total=len(grid), unit="trial", verbose=args.verbose) as console:
        console.start_ray(num_cpus=2)                       # or connect: start_ray(address="auto")
        tuner = tune.Tuner(..., run_config=tune.RunConfig(verbose=console.tune_verbose,
                                                          callbacks=[console.callback(describe)]))
        results = tuner.fit()
    print(tables)                                           # after the bar
    remove_tune_dir(out / "_tune", keep=args.keep_tune_dirs)  # once the results are exported

Inside the ``with`` block, what the driver prints itself (Tune's configuration box and trial tables) goes
to the log file too; ``verbose`` puts all of it on the console as well. :func:`remove_tune_dir` deletes
a Tune directory (the trials' checkpoints) unless asked to keep it.

>>> import io, tempfile
>>> with tempfile.TemporaryDirectory() as d:
...     err = io.StringIO()
...     with TuneConsole(d, total=2, unit="cell", stream=err, name="demo") as c:
...         c.step("cell a: done")
...         c.step("cell b: done")
...     lines = err.getvalue().splitlines()
>>> lines[0].startswith("demo: Ray/Tune log in ") and lines[0].endswith(".log")
True
>>> [ln.split("] ", 1)[1] for ln in lines if "] cell" in ln]
['cell a: done', 'cell b: done']
"""

from __future__ import annotations

import contextlib
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

from ohgw import protocol
from ohgw.studies.progress import StudyProgress
from ohgw.studies.ray_session import RayLog, default_log_path, start_local_ray

__all__ = ["TuneConsole", "remove_tune_dir", "trial_line"]


def trial_line(trial, metric: str | None = None, mode: str = "max") -> str:
    """A finished trial in one line: its name, epochs, and its best ``metric`` (if given and reported)."""
    res = trial.last_result or {}
    text = f"{trial}: {res.get(protocol.ITERATION, 0)} epochs"
    if metric and metric in res:
        text += f", last {metric} {float(res[metric]):.4g}"
        best = trial.metric_analysis.get(metric, {}).get(mode) if hasattr(trial, "metric_analysis") else None
        if best is not None:
            text += f" (best {float(best):.4g})"
    return text


class TuneConsole:
    """One script's console while it runs Tune: the log file named at the start, one bar, a line per unit.

    ``out`` is the script's output folder (the log goes to ``out/logs/``); ``total`` the units (trials,
    cells) the bar counts; ``verbose`` puts Ray's and Tune's output on the console too. A context manager:
    the bar and the log capture end with it.
    """

    def __init__(self, out: str | Path, total: int, unit: str = "trial", verbose: bool = False, stream=None,
                 name: str = "", log_path: str | Path | None = None) -> None:
        if total < 0:
            raise ValueError(f"total: must be >= 0, got {total}")
        self.log_path = Path(log_path) if log_path is not None else default_log_path(Path(out))
        self.total, self.unit, self.verbose = total, unit, verbose
        self.stream = stream if stream is not None else sys.stderr
        self.name = name or Path(sys.argv[0]).stem
        self.progress: StudyProgress | None = None
        self.log: RayLog | None = None
        self.started_ray = False

    @property
    def tune_verbose(self) -> int:
        """``RunConfig(verbose=...)``: Tune's trial tables only with ``verbose`` (they go to the log otherwise)."""
        return 1 if self.verbose else 0

    def __enter__(self) -> TuneConsole:
        print(f"{self.name}: Ray/Tune log in {self.log_path}" + (" (and on the console)" if self.verbose else ""),
              file=self.stream, flush=True)
        self.log = RayLog(self.log_path, verbose=self.verbose).__enter__()
        self.progress = StudyProgress(self.total, 0, stream=self.stream, desc=f"{self.unit}s", unit=self.unit)
        self.redirect = contextlib.ExitStack()
        if not self.verbose:  # what Tune prints itself in the driver (its configuration box, "View detailed
            # results here", ...) goes to the log too; the bar keeps the console's own stream
            self.redirect.enter_context(contextlib.redirect_stdout(self.log.fp))
            self.redirect.enter_context(contextlib.redirect_stderr(self.log.fp))
        return self

    def start_ray(self, num_cpus: int | None = None, address: str | None = None) -> None:
        """Start a local Ray (no dashboard), or connect to ``address``, unless one is up; route its workers' output."""
        import ray

        if not ray.is_initialized():
            if address:
                ray.init(address=address, include_dashboard=False, log_to_driver=True, configure_logging=False)
            else:
                start_local_ray(num_cpus=num_cpus, include_dashboard=False, log_to_driver=True, configure_logging=False)
            self.started_ray = True
        self.log.take_worker_output()

    def step(self, line: str | None = None) -> None:
        """One more unit done; ``line`` says how it went."""
        self.progress.step(line)

    def note(self, line: str) -> None:
        """A line above the bar (not a unit)."""
        self.progress.note(line)

    def callback(self, describe: Callable | None = None, metric: str | None = None, mode: str = "max"):
        """A Tune callback that steps the bar once per finished (or failed) trial, with its line."""
        return _trial_lines_class()(self, describe or (lambda t: trial_line(t, metric, mode)))

    def __exit__(self, *exc) -> None:
        self.redirect.close()
        if self.progress is not None:
            self.progress.close()
        if self.started_ray:
            import ray

            ray.shutdown()
        if self.log is not None:
            self.log.__exit__(*exc)


def _trial_lines_class():
    from ray import tune

    class TrialLines(tune.Callback):
        """Steps the console's bar per finished or failed trial. Tune pickles its callbacks with the experiment
        state: the console (a stream, a bar) stays out of the pickle, and a restored copy prints nothing."""

        def __init__(self, console: TuneConsole, describe: Callable) -> None:
            self.console, self.describe = console, describe

        def __getstate__(self) -> dict:
            return {"console": None, "describe": None}

        def on_trial_complete(self, iteration, trials, trial, **info):
            if self.console is not None:
                self.console.step(self.describe(trial))

        def on_trial_error(self, iteration, trials, trial, **info):
            if self.console is not None:
                self.console.step(f"{trial}: ERROR (details in {self.console.log_path})")

    return TrialLines


def remove_tune_dir(path: str | Path, keep: bool = False) -> int:
    """Delete a Tune directory (its trials' checkpoints) once the results are exported; returns the bytes freed.

    ``keep`` (a script's ``--keep-tune-dirs``) keeps it and frees nothing.
    """
    path = Path(path)
    if keep or not path.exists():
        return 0
    freed = sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())
    shutil.rmtree(path, ignore_errors=True)
    return freed
