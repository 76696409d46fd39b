"""Analysis of an OHGW study: T@tau on three clocks, paired tests, criteria, report, summary.json.

The runner calls :func:`analyze` at the end of the main job (printing the headline tables only,
``brief``); ``experiments/analyze.py`` is the CLI. The package depends on one ohgw module only,
:mod:`ohgw.results` (the dataset's columns, partition codec and reader): :mod:`.load` reads and
validates an experiment (schema version 2; the search space the run recorded), :mod:`.ttt` computes
T@tau, :mod:`.stats` the paired tests, :mod:`.configs` what happens to configs (in the run's search
coordinates), :mod:`.summary` gathers every number and the criteria, :mod:`.text` and :mod:`.report` show them.

Use (on a results directory the harness wrote)::

    from ohgw.analysis import analyze, format_tables
    summary = analyze("results/", tau=0.9)
    print(format_tables(summary))
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from .load import CLOCKS, AnalysisError, AnalysisWarning, Results, load_results
from .outdir import REPORT_NAME, reanalysis_dir
from .report import figures, write_report
from .summary import THRESHOLDS, Summary, compute, write_json
from .text import format_tables, sections

log = logging.getLogger(__name__)

__all__ = [
    "CLOCKS",
    "THRESHOLDS",
    "AnalysisError",
    "AnalysisWarning",
    "Results",
    "Summary",
    "analyze",
    "compute",
    "figures",
    "format_brief",
    "format_tables",
    "load_results",
    "reanalysis_dir",
]


# the sections a console run prints by default (``brief``); every table is in tables.txt and the report
BRIEF_SECTIONS = ("T@tau per method", "Paired T@tau", "Success criteria", "Verdicts")


def format_brief(summary: Summary) -> str:
    """The headline tables of ``summary`` (:data:`BRIEF_SECTIONS`); warnings as a count."""
    s = summary
    parts = [f"OHGW analysis: experiment {s.experiment!r}, {len(s.per_study)} studies, metric {s.metric} ({s.mode}), "
             f"tau = {s.tau:g} (from {s.tau_source}); the headline tables (every table: tables.txt, report.html)"]
    for title, text in sections(s):
        if title.startswith(BRIEF_SECTIONS):
            parts.append(f"\n== {title}\n{text}")
    if s.warnings:
        parts.append(f"{len(s.warnings)} analysis warning(s): see tables.txt or the report")
    return "\n".join(parts) + "\n"


def analyze(
    results_dir: str | os.PathLike,
    tau: float | None = None,
    out_html: str | os.PathLike | None = None,
    quiet: bool = False,
    experiment: str | None = None,
    clock: str = "compute",
    write: bool = True,
    static: bool = True,
    brief: bool = False,
) -> Summary:
    """Analyse ``results_dir``: print the tables (unless ``quiet``), write the report, tables and summary.

    ``out_html`` defaults to ``report.html`` in a re-analysis folder of its own (:func:`reanalysis_dir`:
    ``RESULTS_DIR/analysis[-tau<tau>]...``), so the study's own files are never changed; ``summary.json``,
    ``tables.txt`` (every table as text) and ``figures/`` (each figure as PDF and PNG, unless ``static`` is
    false) go beside it. ``brief``
    prints the headline tables only (:func:`format_brief`). ``tau`` overrides the studies' target; ``clock``
    ("wall", "compute", "epochs") is the clock of the verdict. Raises :class:`AnalysisError` (a ValueError)
    with one line for bad input.
    """
    res = load_results(results_dir, experiment=experiment)
    summary = compute(res, tau=tau, primary_clock=clock)
    tables = format_tables(summary)
    if write:
        html_path = (Path(out_html) if out_html is not None
                     else reanalysis_dir(results_dir, tau=tau, clock=clock, experiment=experiment) / REPORT_NAME)
        summary.html_path = str(html_path)
        summary.json_path = str(html_path.parent / "summary.json")
        summary.static_figures = write_report(summary, html_path, static=static)
        write_json(summary, Path(summary.json_path))
        (html_path.parent / "tables.txt").write_text(tables, encoding="utf-8")
    if not quiet:
        print(format_brief(summary) if brief else tables, end="")
        if write:
            beside = "tables.txt" + (f", figures/ ({len(summary.static_figures)} PDF/PNG)"
                                     if summary.static_figures else "")
            print(f"\nreport: {summary.html_path}\nsummary: {summary.json_path} ({beside} beside it)")
    return summary
