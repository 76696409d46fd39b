"""Harness overhead where it matters: the share of study wall-clock spent in trainable compute.

What it measures: the study harness (:func:`ohgw.studies.runner.run_experiment` with an
:class:`ohgw.studies.study.ExperimentConfig`, as ``experiments/*_vs_ohgw.py`` run it) on the
LCBench surrogate trainable (:mod:`trainables.lcbench`), whose epochs are exactly
``epoch_s`` seconds of busy CPU (real learning curves, so ASHA stops and promotes as it
would). For each epoch length (``--epoch-s``; 0.3, 2 and 10 s in the issue; default the
quick subset 0.3,2) one run of ``--methods`` × ``--seeds`` studies, one trial at a time per
study, 1 CPU per trial, actors reused, a budget of about ``--study-s`` seconds of compute
per study (``--study-s / epoch_s`` epoch-equivalents, at least 6).

From the Parquet tables (:func:`ohgw.results.read_table`) and the file times it prints,
summed over the studies of a run (every term is seconds of one study's own wall clock,
from ``studies.start_ts``, just before the Tuner is built, to the end of ``Tuner.fit``):

- ``in trainable``: Σ ``iterations.epoch_s`` (the wall seconds of each epoch's busy compute
  plus surrogate read-out, timed inside the trainable) + Σ ``trials.ws_wall_s`` (warm-starts);
  ``share`` = in trainable / study wall, printed next to the goals (≥ 80 % at 0.3 s,
  ≥ 90 % at 2 s epochs);
- ``study start-up``: first report's ``wall_s`` − its epoch (and warm-start): Tuner set-up,
  the first actor's start (a fresh Ray worker imports torch and Ray) and the trial's set-up;
- ``trial start-up``: per trial after the first, its start (``trials.start_wall_s``) − the
  previous trial's last report: stopping a trial, resetting the reused actor, a new config;
- ``per report``: within a trial, report-to-report wall − the epoch: ``tune.report`` with its
  checkpoint (save, persist), the result's trip to the driver, callbacks, scheduler decision;
- ``tail``: study end − last report (the Tuner's wind-down);
- outside the studies: ``driver start-up`` (``run_experiment`` called → first study's
  ``start_ts``: manifest, task dispatch, the study task's imports) and ``export`` (study end →
  its ``studies`` Parquet file written: building the tables, the trip to the driver, three
  Parquet writes). Ray's own start (``ray.init``) is timed once, before the first run.

The parts add up to the study wall by construction (trials run one after another). ``epoch
wall/CPU`` is Σ epoch_s / Σ epoch CPU seconds: 1.0 on an idle machine; above 1 the busy
epochs were stretched by other processes, and so, most likely, was everything else. One run
per epoch length, no repeats. On a shared machine the numbers are indicative only.

    python benchmarks/harness_overhead.py                        # quick: 0.3 and 2 s epochs
    python benchmarks/harness_overhead.py --epoch-s 0.3,2,10 --study-s 60 --seeds 2
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np
import pandas as pd
from _machine import cpu_model, load_line, run_header

GOALS = {0.3: 0.80, 2.0: 0.90}  # epoch length (s) → share of study wall-clock inside trainable compute
PARTS = ("study_startup", "trial_startup", "per_report", "tail")


def _goal(epoch_s: float) -> float | None:
    return GOALS.get(round(epoch_s, 6))


def breakdown(out: str | os.PathLike) -> pd.DataFrame:
    """One row per study: wall, in-trainable and the overhead parts (seconds), from the written tables."""
    from ohgw.results import read_table, study_key, table_files

    st, tr, it = (read_table(out, t) for t in ("studies", "trials", "iterations"))
    written = {}
    for f in table_files(out, "studies"):
        e, m, s = study_key(f)
        written[f"{e}/{m}/seed={s}"] = f.stat().st_mtime
    rows = []
    for _, s in st.iterrows():
        sid = s["study_id"]
        its = it[it["study_id"] == sid].sort_values("wall_s")
        trs = tr[tr["study_id"] == sid].set_index("trial_id")
        ws_wall = trs["ws_wall_s"].fillna(0.0)
        per_report = 0.0
        for _, g in its.groupby("trial_id"):
            g = g.sort_values("epoch")
            per_report += float((g["wall_s"].diff() - g["epoch_s"]).iloc[1:].sum())
        first = its.iloc[0]
        startup = float(first["wall_s"] - first["epoch_s"] - ws_wall.get(first["trial_id"], 0.0))
        order = trs.sort_values("start_wall_s")
        gaps = order["start_wall_s"].iloc[1:].to_numpy() - order["end_wall_s"].iloc[:-1].to_numpy()
        inside = float(its["epoch_s"].sum() + ws_wall.sum())
        epoch_cpu = float(trs["trial_compute_s"].sum() - trs["ws_compute_s"].sum())
        rows.append({
            "study_id": sid, "trials": len(trs), "epochs": len(its), "wall": float(s["wall_s"]), "inside": inside,
            "study_startup": startup, "trial_startup": float(gaps.sum()), "per_report": per_report,
            "tail": float(s["wall_s"] - its["wall_s"].max()), "epoch_wall": float(its["epoch_s"].sum()),
            "epoch_cpu": epoch_cpu, "start_ts": float(s["start_ts"]), "end_ts": float(s["start_ts"] + s["wall_s"]),
            "written_ts": written.get(sid, np.nan),
        })  # fmt: skip
    return pd.DataFrame(rows)


def measure(epoch_s: float, methods: list[str], seeds: int, study_s: float, max_t: int) -> dict:
    from ohgw.studies.runner import run_experiment
    from ohgw.studies.study import ExperimentConfig
    from trainables.lcbench import search_space

    budget = max(6.0, round(study_s / epoch_s)) if epoch_s > 0 else 200.0
    cfg = ExperimentConfig(
        experiment=f"harness-overhead-{epoch_s:g}s",
        space=search_space(),
        base_config={"task_id": 167149, "epoch_s": epoch_s},
        max_t=max_t,
        budget=budget,
        tau=0.95,
        reuse_actors=True,
    )
    with tempfile.TemporaryDirectory() as out:
        t_call = time.time()
        summary = run_experiment(cfg, _trainable(), methods, list(range(seeds)), out, quiet=True)
        t_back = time.time()
        if summary.failed:
            raise RuntimeError(f"studies failed: {summary.failed}")
        df = breakdown(out)
    return {
        "epoch_s": epoch_s, "budget": budget, "df": df, "run_wall": t_back - t_call,
        "driver_startup": float(df["start_ts"].min() - t_call),
        "export": float((df["written_ts"] - df["end_ts"]).sum()),
    }  # fmt: skip


def _trainable():
    from trainables.lcbench import train_lcbench

    return train_lcbench


def report(r: dict) -> list[str]:
    df = r["df"]
    wall, inside = df["wall"].sum(), df["inside"].sum()
    share = inside / wall
    goal = _goal(r["epoch_s"])
    verdict = "no goal set" if goal is None else f"goal >= {100 * goal:.0f} %: {'met' if share >= goal else 'NOT met'}"
    lines = [
        f"epoch_s {r['epoch_s']:g} s: {len(df)} studies, {int(df['trials'].sum())} trials, {int(df['epochs'].sum())} "
        f"epochs (budget {r['budget']:g} epoch-equiv/study); run wall {r['run_wall']:.1f} s",
        f"  share of study wall in trainable compute: {100 * share:.1f} %  ({inside:.1f} of {wall:.1f} s)  [{verdict}]",
    ]
    for p in PARTS:
        v = df[p].sum()
        n = {"trial_startup": max(int(df["trials"].sum()) - len(df), 1),
             "per_report": max(int(df["epochs"].sum()) - int(df["trials"].sum()), 1)}.get(p, len(df))  # fmt: skip
        lines.append(
            f"  {p.replace('_', ' '):>14}: {v:7.1f} s  {100 * v / wall:5.1f} % of study wall  ({v / n:.3f} s each, n={n})"
        )
    rest = wall - inside - sum(df[p].sum() for p in PARTS)
    lines.append(f"  {'unaccounted':>14}: {rest:7.2f} s")
    lines.append(
        f"  outside studies: driver start-up {r['driver_startup']:.1f} s, export {r['export']:.1f} s "
        f"({r['export'] / len(df):.2f} s/study); epoch wall/CPU {df['epoch_wall'].sum() / df['epoch_cpu'].sum():.2f}"
    )
    return lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--epoch-s", default="0.3,2", help="comma-separated busy epoch lengths in seconds (issue: 0.3,2,10)")
    p.add_argument("--methods", default="asha,asha+ohgw", help="comma-separated methods (each seed runs all)")
    p.add_argument("--seeds", type=int, default=1)
    p.add_argument("--study-s", type=float, default=24.0, help="compute seconds per study (budget = study-s / epoch_s)")
    p.add_argument("--max-t", type=int, default=9, help="epochs per trial at most (ASHA rungs 1, 3, 9 at 9)")
    a = p.parse_args()
    lengths = [float(x) for x in a.epoch_s.split(",") if x.strip()]
    methods = [m.strip() for m in a.methods.split(",") if m.strip()]
    if not lengths or any(e < 0 for e in lengths) or a.seeds < 1 or a.study_s <= 0 or not 1 <= a.max_t <= 52:
        p.error("--epoch-s must list lengths >= 0; --seeds >= 1, --study-s > 0, 1 <= --max-t <= 52")
    print(run_header(__file__, None))
    print(f"CPU {cpu_model()} ({os.cpu_count()} CPUs)\n{load_line('at start')}")
    print(
        f"LCBench surrogate (task 167149), busy epochs; methods {', '.join(methods)}, {a.seeds} seed(s), "
        f"max_t {a.max_t}, ~{a.study_s:g} s of compute per study, 1 trial at a time per study, actors reused"
    )
    import ray

    from ohgw.studies.runner import init_ray

    t0 = time.perf_counter()
    init_ray(None, None, quiet=True, dashboard=False)
    print(f"ray.init: {time.perf_counter() - t0:.1f} s (once, outside every run below)")
    results = []
    for e in lengths:
        results.append(measure(e, methods, a.seeds, a.study_s, a.max_t))
        print("\n".join(report(results[-1])), flush=True)
    print(
        "summary: "
        + "; ".join(
            f"{r['epoch_s']:g} s → {100 * r['df']['inside'].sum() / r['df']['wall'].sum():.1f} %"
            + (f" (goal {100 * _goal(r['epoch_s']):.0f} %)" if _goal(r["epoch_s"]) else "")
            for r in results
        )
    )
    print(f"{load_line('at end')}; total {time.perf_counter() - t0:.0f} s")
    ray.shutdown()


if __name__ == "__main__":
    main()
