#!/usr/bin/env python
"""Speed of the T@tau analysis on a study-sized dataset (target: <= 20 s on 2 CPU cores).

Generates 50 seeds x 6 methods x 100 trials with max_t = 27 (ASHA rungs 1, 3, 9, 27; ``--full``:
every trial runs all 27 epochs, 2,700 reports per study) with ``ohgw.testing.synthetic_results``
(the ``ohgw.results`` layout, schema version 2) and times ``ohgw.analysis.analyze``
(load + statistics + report.html + summary.json) in this process, printing each phase and the
ratio to the 20 s budget.

    python benchmarks/analysis_speed.py [--seeds 50] [--trials 100] [--full] [--keep DIR]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
import warnings
from pathlib import Path

from _machine import run_header

BUDGET_S = 20.0
METHODS = {
    "asha": {"vanilla": ""},
    "asha+ohgw": {"vanilla": "asha", "speedup": 1.3, "shift": 0.05, "ws_s": 0.02, "peak": 1040.0},
    "asha+random": {"vanilla": "asha", "speedup": 1.0, "shift": 0.05},
    "asha+ohgw-k2": {"vanilla": "asha", "speedup": 1.35, "shift": 0.08, "ws_s": 0.04, "peak": 1080.0},
    "hyperband": {"vanilla": ""},
    "hyperband+ohgw": {"vanilla": "hyperband", "speedup": 1.3, "shift": 0.05, "ws_s": 0.02, "peak": 1040.0},
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=50)
    p.add_argument("--trials", type=int, default=100)
    p.add_argument("--full", action="store_true", help="no early stopping: every trial runs max_t epochs")
    p.add_argument("--keep", default=None, help="write the dataset and report here and keep them")
    args = p.parse_args()

    print(run_header(__file__, None))
    from ohgw.analysis import AnalysisWarning, analyze, compute, load_results
    from ohgw.analysis.report import figures, render_html
    from ohgw.analysis.summary import write_json
    from ohgw.testing.synthetic_results import generate

    base = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="ohgw-bench-"))
    results = base / "results"
    if results.exists():
        shutil.rmtree(results)
    t0 = time.perf_counter()
    generate(results, n_seeds=args.seeds, n_trials=args.trials, max_t=27, methods=METHODS, tau=0.88, full=args.full)
    gen_s = time.perf_counter() - t0
    warnings.simplefilter("ignore", AnalysisWarning)

    t0 = time.perf_counter()
    s = analyze(results, out_html=base / "report.html", quiet=True, static=False)  # PDF/PNG export: not timed
    total = time.perf_counter() - t0

    # the same work again, phase by phase (warm caches: an estimate of where the time goes)
    t = time.perf_counter()
    res = load_results(results)
    t_load = time.perf_counter() - t
    t = time.perf_counter()
    s2 = compute(res)
    t_compute = time.perf_counter() - t
    t = time.perf_counter()
    html = render_html(s2, figures(s2))
    t_report = time.perf_counter() - t
    t = time.perf_counter()
    write_json(s2, base / "summary2.json")
    t_json = time.perf_counter() - t

    n_rows = len(res.iterations)
    print(f"dataset: {args.seeds} seeds x {len(METHODS)} methods x {args.trials} trials, max_t 27"
          f"{' (full: no early stopping)' if args.full else ' (ASHA rungs)'}; {len(res.studies)} studies, "
          f"{len(res.trials)} trials, {n_rows} iteration rows; generated in {gen_s:.1f} s")
    print(f"analyze() end to end: {total:.2f} s  (budget {BUDGET_S:.0f} s; ratio {total / BUDGET_S:.2f})")
    print(f"phases (second run): load {t_load:.2f} s, statistics {t_compute:.2f} s, figures+html {t_report:.2f} s "
          f"({len(html) / 2**20:.1f} MiB), summary.json {t_json:.2f} s")
    print(f"verdicts: {', '.join(f'{m}: {s.verdict(m)}' for m in s.partners)}")
    if not args.keep:
        shutil.rmtree(base)


if __name__ == "__main__":
    main()
