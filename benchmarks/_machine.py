"""The header lines every benchmark prints: the command line and versions, CPU model, how busy the machine was."""

from __future__ import annotations

import os
from pathlib import Path

from ohgw.studies.tables import cpu_model

__all__ = ["cpu_model", "load_line", "run_header", "versions"]


def load_line(when: str) -> str:
    """The 1- and 5-minute load averages, and whether other processes competed for the CPUs."""
    try:
        one, five, _ = os.getloadavg()
    except OSError:
        return f"load average {when}: unavailable"
    n = os.cpu_count() or 1
    shared = "other processes were competing for the CPUs" if one > n * 0.75 else "machine mostly idle"
    return f"load average {when}: {one:.2f} (1 min), {five:.2f} (5 min) on {n} CPUs: {shared}"


VERSIONED = ("ray", "torch", "numpy", "pandas", "pyarrow", "scipy", "onnxruntime")


def versions() -> str:
    """Python, this checkout's commit (``+dirty`` with uncommitted changes) and the installed versions of
    :data:`VERSIONED` (``-`` for one not installed)."""
    import platform
    import subprocess
    from importlib import metadata

    root = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, timeout=10).stdout.strip() or "unknown"
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit, dirty = "unknown", ""
    parts = [f"python {platform.python_version()}", f"ohgw-tune {commit}{'+dirty' if dirty else ''}"]
    for name in VERSIONED:
        try:
            parts.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            parts.append(f"{name} -")
    return ", ".join(parts)


def run_header(script: str, argv: list[str] | None = None) -> str:
    """The first lines of every benchmark's output: the exact command line and the versions it ran with.

    ``script`` is the benchmark's ``__file__``; ``argv`` its arguments (default ``sys.argv[1:]``).

    >>> run_header("benchmarks/x.py", ["--seeds", "2", "--out", "a b"]).splitlines()[0]
    "# command: python benchmarks/x.py --seeds 2 --out 'a b'"
    """
    import shlex
    import sys

    path = Path(script).resolve()
    try:
        shown = path.relative_to(Path.cwd())
    except ValueError:
        shown = path
    args = sys.argv[1:] if argv is None else list(argv)
    return f"# command: {shlex.join(['python', str(shown), *args])}\n# versions: {versions()}"
