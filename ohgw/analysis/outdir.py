"""Where a re-analysis writes: a folder of its own, so it never changes a file the study wrote.

A study's results folder holds the study's own ``report.html``, ``summary.json``, ``tables.txt`` and
``figures/`` (made at the study's τ). A re-analysis (``experiments/analyze.py``, or :func:`ohgw.analysis.analyze`
without ``out_html``) writes its report, summary, tables and figures together into
:func:`reanalysis_dir`: by default ``RESULTS/analysis[-tau<τ>][-<clock>][-<experiment>]``; with ``out``, that
folder (a path ending in ``.html`` names the folder ``<parent>/<stem>``).

>>> reanalysis_dir("results/x", tau=0.85).as_posix()
'results/x/analysis-tau0.85'
>>> reanalysis_dir("results/x").as_posix()
'results/x/analysis'
>>> reanalysis_dir("results/x", clock="wall", experiment="digits").as_posix()
'results/x/analysis-wall-digits'
>>> reanalysis_dir("results/x", out="results/x/report_t09.html").as_posix()
'results/x/report_t09'
"""

from __future__ import annotations

import os
from pathlib import Path

from .load import AnalysisError

__all__ = ["REPORT_NAME", "reanalysis_dir"]

REPORT_NAME = "report.html"  # inside a re-analysis folder, beside summary.json, tables.txt and figures/


def _default_name(tau: float | None, clock: str, experiment: str | None) -> str:
    parts = ["analysis"]
    if tau is not None:
        parts.append(f"tau{tau:g}")
    if clock != "compute":
        parts.append(clock)
    if experiment:
        parts.append(experiment)
    return "-".join(parts)


def reanalysis_dir(
    results_dir: str | os.PathLike,
    out: str | os.PathLike | None = None,
    tau: float | None = None,
    clock: str = "compute",
    experiment: str | None = None,
) -> Path:
    """The folder a re-analysis of ``results_dir`` writes into (not created here).

    Raises :class:`AnalysisError` naming ``out`` when the folder would be the results folder itself, or an
    existing folder that holds something other than an earlier analysis (one with a ``summary.json``).
    """
    if out is None:
        folder = Path(results_dir) / _default_name(tau, clock, experiment)
    else:
        out = Path(out)
        folder = out.with_suffix("") if out.suffix.lower() == ".html" else out
    if folder.resolve() == Path(results_dir).resolve():
        raise AnalysisError(f"out: {str(folder)!r} is the results folder itself; a re-analysis writes into a "
                            "folder of its own so that it never changes the study's files")
    if folder.is_dir() and any(folder.iterdir()) and not (folder / "summary.json").is_file():
        raise AnalysisError(f"out: {str(folder)!r} already holds files that are not an analysis (no summary.json); "
                            "name a new folder")
    if folder.exists() and not folder.is_dir():
        raise AnalysisError(f"out: {str(folder)!r} exists and is not a folder")
    return folder
