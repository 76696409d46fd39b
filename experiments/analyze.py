#!/usr/bin/env python
"""Analyse an OHGW results directory: T@tau tables, paired tests, criteria, report.html, summary.json.

    python experiments/analyze.py RESULTS_DIR [--tau 0.9] [--out FOLDER] [--experiment NAME]
                                             [--clock compute] [--quiet | --verbose]

A re-analysis never changes a file the study wrote: its report.html, summary.json, tables.txt and
figures/ go together into a folder of its own, RESULTS_DIR/analysis[-tau<tau>][-<clock>][-<experiment>]
(e.g. results/x/analysis-tau0.85/), or the folder --out names (``--out x/report_t09.html`` means the
folder x/report_t09/).

The console follows the main job's: the headline tables (T@tau per method, paired T@tau, criteria,
verdicts), then the paths of the report, the summary and ``tables.txt``, which holds every table;
``--verbose`` prints every table instead, ``--quiet`` nothing but warnings and errors.

Bad input exits with status 2 and one line on stderr; warnings (unpaired seeds, tau never
reached, ...) go to stderr one line each and do not change the exit status.
"""

from __future__ import annotations

import argparse
import logging
import sys
import warnings


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="analyze", description=__doc__.splitlines()[0])
    p.add_argument("results_dir", help="directory written by the study runner (iterations/, trials/, studies/)")
    p.add_argument("--tau", type=float, default=None, help="target score (default: the studies' tau)")
    p.add_argument("--out", default=None, help="folder of this analysis (default RESULTS_DIR/analysis-tau<tau>...); "
                                               "a path ending in .html names the folder without the suffix")
    p.add_argument("--experiment", default=None, help="experiment to analyse when the directory holds several")
    p.add_argument("--clock", default="compute", choices=["wall", "compute", "epochs"],
                   help="clock of the success-criteria verdict (default compute)")
    say = p.add_mutually_exclusive_group()
    say.add_argument("--quiet", action="store_true", help="print no tables (warnings and errors only)")
    say.add_argument("--verbose", action="store_true",
                     help="print every table (default: the headline tables; every table is in tables.txt)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="analyze: %(message)s")

    from ohgw.analysis import AnalysisError, AnalysisWarning, analyze, reanalysis_dir
    from ohgw.analysis.outdir import REPORT_NAME

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", AnalysisWarning)
        try:
            folder = reanalysis_dir(args.results_dir, out=args.out, tau=args.tau, clock=args.clock,
                                    experiment=args.experiment)
            analyze(args.results_dir, tau=args.tau, out_html=folder / REPORT_NAME, quiet=args.quiet,
                    experiment=args.experiment, clock=args.clock, brief=not args.verbose)
        except AnalysisError as e:
            print(f"analyze: error: {e}", file=sys.stderr)
            return 2
    for w in caught:
        if issubclass(w.category, AnalysisWarning):
            print(f"analyze: warning: {w.message}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
