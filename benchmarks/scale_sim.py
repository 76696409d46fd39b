"""Scale simulation: the cifar10 preset's study layout on a local Ray that pretends to be an 8-GPU node.

What it does: starts a local Ray with fake GPUs (``--gpus``, default 8) carrying the group label of
:mod:`ohgw.studies.cluster` (one node labelled ``g0`` by default; ``--groups N`` builds a
``ray.cluster_utils.Cluster`` of N labelled nodes with gpus/N fake GPUs each, as
``tests/test_runner_placement.py`` does), and runs :func:`ohgw.studies.runner.run_experiment` with the
cifar10 preset's layout (4 trials per study at 0.25 GPU each: one GPU per study, 8 studies at once) on
the LCBench surrogate trainable (:mod:`trainables.lcbench`, task 167149, max_t 27, τ 0.95) instead
of CIFAR-10. Each trial asks for ``--cpus-per-trial`` (default 0.25: this is meant for small
machines) instead of the preset's 2 CPUs. Methods: asha, asha+ohgw, pasha, pasha+ohgw, hyperband,
hyperband+ohgw; ``--seeds 50`` is the full 300 studies.

It prints (goals next to the numbers):

- studies/hour sustained (studies / run wall, Ray already up);
- per-study fixed overhead: a study's Tuner set-up to its first trial start, plus its tail (last report
  to ``Tuner.fit`` returning), plus its export (study end to its Parquet file written), mean per study
  (goal ≤ 5 s); and the slot view: (study wall × trials_per_study − Σ in-trainable) / trials_per_study;
- per-trial scheduling overhead from Parquet: the gap from a trial slot freeing to the next trial's
  start (``trials.start_wall_s``, which already counts the first-report latency: the actor's start,
  reset and set-up), and the per-report overhead within a trial (report-to-report wall − epoch),
  both per trial (goal ≤ 0.2 s);
- memory: the driver's RSS and the Ray controller processes' RSS (``gcs_server``, ``raylet``, found by
  process name in /proc; psutil is used if installed), sampled every ``--sample-s`` seconds:
  start, peak, end, and the growth extrapolated linearly to 300 studies (goal: ≤ 1 GiB each);
- Parquet bytes per study, and the peak disk use of the results directory (a sampling thread);
- analysis time (:func:`ohgw.analysis.analyze`, static=False, quiet=True) on the run's results and on
  a 300-study synthetic dataset (:func:`ohgw.testing.synthetic_results.generate`) (goal ≤ 30 s);
- an extrapolation of the harness overhead to the real cifar10 preset, with its assumptions.

    python benchmarks/scale_sim.py                  # default: 1 seed (6 studies), a few minutes on 2 cores
    python benchmarks/scale_sim.py --seeds 50 --budget 300 --epoch-s 0   # the full 300 studies
"""

from __future__ import annotations

import argparse
import contextlib
import heapq
import math
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
from _machine import cpu_model, load_line, run_header

METHODS = ("asha", "asha+ohgw", "pasha", "pasha+ohgw", "hyperband", "hyperband+ohgw")
TRIALS_PER_STUDY, GPUS_PER_TRIAL = 4, 0.25  # the cifar10 preset's layout
STUDIES_AT_ONCE = 8  # 8 GPUs / (4 × 0.25)
REAL = {"seeds": 50, "budget": 300.0, "epoch_s": 20.0, "max_t": 27}  # the real cifar10 preset (~20 s GPU epochs)
GOAL_STUDY_S, GOAL_TRIAL_S, GOAL_ANALYSIS_S, GOAL_MEM_MIB = 5.0, 0.2, 30.0, 1024.0
CONTROLLERS = ("gcs_server", "raylet")
MIB = 1024.0 * 1024.0


# ---------------------------------------------------------------- sampling: memory and disk
def _rss_of(pid: int) -> float:
    """Resident set size in bytes (0 if the process is gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return float(line.split()[1]) * 1024.0
    except OSError:
        pass
    return 0.0


def _controller_pids() -> dict[int, str]:
    """PIDs of this user's Ray controller processes (by process name)."""
    try:
        import psutil

        return {p.pid: p.info["name"] for p in psutil.process_iter(["name"]) if p.info["name"] in CONTROLLERS}
    except ImportError:
        pass
    found = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                name = Path(f"/proc/{d}/comm").read_text().strip()
            except OSError:
                continue
            if name in CONTROLLERS:
                found[int(d)] = name
    return found


def _tree_bytes(root: Path) -> int:
    total = 0
    stack = [str(root)]
    while stack:
        try:
            with os.scandir(stack.pop()) as it:
                for e in it:
                    with contextlib.suppress(OSError):
                        if e.is_dir(follow_symlinks=False):
                            stack.append(e.path)
                        else:
                            total += e.stat(follow_symlinks=False).st_blocks * 512
        except OSError:
            pass
    return total


class Sampler(threading.Thread):
    """Every ``every`` seconds: the driver's RSS, each controller's RSS (by name) and the results dir's size."""

    def __init__(self, out: Path, every: float) -> None:
        super().__init__(daemon=True)
        self.out, self.every = out, every
        self.stop_evt = threading.Event()
        self.rows: list[dict] = []
        self.disk_peak = 0

    def sample(self) -> None:
        row = {"t": time.time(), "driver": _rss_of(os.getpid())}
        for name in CONTROLLERS:
            row[name] = 0.0
        for pid, name in _controller_pids().items():
            row[name] += _rss_of(pid)
        self.rows.append(row)
        self.disk_peak = max(self.disk_peak, _tree_bytes(self.out))

    def run(self) -> None:
        while not self.stop_evt.is_set():
            self.sample()
            self.stop_evt.wait(self.every)

    def finish(self) -> pd.DataFrame:
        self.stop_evt.set()
        self.join()
        self.sample()
        return pd.DataFrame(self.rows)


# ---------------------------------------------------------------- Ray that pretends to be an 8-GPU node
def start_ray(gpus: int, groups: int, cpus: float):
    """A local Ray with ``gpus`` fake GPUs in ``groups`` labelled nodes; returns the Cluster (or None)."""
    import ray

    from ohgw.studies.cluster import GROUP_LABEL

    if groups == 1:
        ray.init(
            num_cpus=cpus,
            num_gpus=gpus,
            labels={GROUP_LABEL: "g0"},
            include_dashboard=False,
            log_to_driver=False,
            logging_level=40,
        )
        return None
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    for k in range(groups):
        cluster.add_node(num_cpus=cpus / groups, num_gpus=gpus // groups, labels={GROUP_LABEL: f"g{k}"})
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, log_to_driver=False, logging_level=40)
    return cluster


# ---------------------------------------------------------------- the run and its Parquet tables
def per_study(out: Path) -> pd.DataFrame:
    """One row per study: wall, in-trainable, fixed overhead parts, trial gaps and per-report overhead (s)."""
    from ohgw.results import read_table, study_key, table_files

    st, tr, it = (read_table(out, t) for t in ("studies", "trials", "iterations"))
    written = {}
    for f in table_files(out, "studies"):
        e, m, s = study_key(f)
        written[f"{e}/{m}/seed={s}"] = f.stat().st_mtime
    rows = []
    for _, s in st.iterrows():
        sid = s["study_id"]
        its = it[it["study_id"] == sid]
        trs = tr[tr["study_id"] == sid].sort_values("start_wall_s")
        per_report = 0.0
        for _, g in its.groupby("trial_id"):
            g = g.sort_values("epoch")
            per_report += float((g["wall_s"].diff() - g["epoch_s"]).iloc[1:].clip(lower=0).sum())
        # slot gaps: TRIALS_PER_STUDY slots free at the study's start; each trial takes the earliest free slot
        free = [0.0] * TRIALS_PER_STUDY
        gaps = []
        for i, t in enumerate(trs.itertuples()):
            at = heapq.heappop(free)
            if i >= TRIALS_PER_STUDY:  # the first ones' start is the study's start-up, counted as fixed
                gaps.append(max(0.0, t.start_wall_s - at))
            heapq.heappush(free, max(at, t.end_wall_s))
        wall = float(s["wall_s"])
        inside = float(its["epoch_s"].sum() + trs["ws_wall_s"].fillna(0.0).sum())
        end_ts = float(s["start_ts"]) + wall
        rows.append({
            "study_id": sid, "method": s["method"], "trials": len(trs), "epochs": len(its), "wall": wall,
            "inside": inside, "startup": float(trs["start_wall_s"].min()), "tail": wall - float(its["wall_s"].max()),
            "export": written.get(sid, end_ts) - end_ts, "gaps": float(np.sum(gaps)), "n_gaps": len(gaps),
            "per_report": per_report, "start_ts": float(s["start_ts"]), "end_ts": end_ts,
            "epoch_wall": float(its["epoch_s"].sum()),
            "epoch_cpu": float(trs["trial_compute_s"].sum() - trs["ws_compute_s"].fillna(0.0).sum()),
        })  # fmt: skip
    return pd.DataFrame(rows)


def parquet_bytes(out: Path) -> int:
    return sum(f.stat().st_size for f in out.rglob("*.parquet"))


def synthetic_analysis_s() -> float:
    from ohgw.analysis import analyze
    from ohgw.testing.synthetic_results import generate

    methods = {}
    for s in ("asha", "pasha", "hyperband"):
        methods[s] = {"vanilla": ""}
        methods[s + "+ohgw"] = {"vanilla": s, "speedup": 1.4, "shift": 0.05, "ws_s": 0.02}
    with tempfile.TemporaryDirectory() as d:
        generate(d, n_seeds=50, methods=methods, workers=2)
        t0 = time.perf_counter()
        analyze(d, static=False, quiet=True)
        return time.perf_counter() - t0


def _ok(v: float, goal: float, unit: str = "s") -> str:
    return f"goal <= {goal:g} {unit}: {'met' if v <= goal else 'NOT met'}"


def _mem_line(name: str, col: pd.Series, n_studies: int) -> tuple[str, float]:
    start, peak, end = col.iloc[0] / MIB, col.max() / MIB, col.iloc[-1] / MIB
    at300 = (end - start) / max(n_studies, 1) * 300
    return (
        f"  {name:>10} RSS: start {start:7.1f} MiB, peak {peak:7.1f}, end {end:7.1f}; growth {end - start:+.1f} MiB "
        f"→ {at300:+.0f} MiB at 300 studies (linear) [{_ok(at300, GOAL_MEM_MIB, 'MiB')}]"
    ), at300


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, default=1, help="seeds; each runs all 6 methods (50: the full 300 studies)")
    p.add_argument("--budget", type=float, default=40.0, help="epoch-equivalents per study (the preset: 300)")
    p.add_argument("--epoch-s", type=float, default=0.01, help="busy CPU seconds per epoch (0: as fast as possible)")
    p.add_argument("--max-t", type=int, default=27)
    p.add_argument("--gpus", type=int, default=8, help="fake GPUs (the layout uses at most 8)")
    p.add_argument("--groups", type=int, default=1, help="labelled Ray nodes the fake GPUs are split over")
    p.add_argument("--cpus-per-trial", type=float, default=0.25)
    p.add_argument("--sample-s", type=float, default=2.0, help="memory/disk sampling interval")
    p.add_argument("--no-synthetic", action="store_true", help="skip the 300-study synthetic analysis timing")
    p.add_argument("--out", default=None, help="results directory (default: a temporary one, removed)")
    a = p.parse_args()
    layout = (
        f"cifar10 layout: {STUDIES_AT_ONCE} studies at once × {TRIALS_PER_STUDY} trials × {GPUS_PER_TRIAL:g} GPU "
        f"= {STUDIES_AT_ONCE * TRIALS_PER_STUDY * GPUS_PER_TRIAL:g} GPUs"
    )
    gpu_per_study = TRIALS_PER_STUDY * GPUS_PER_TRIAL
    if a.gpus > STUDIES_AT_ONCE * gpu_per_study:
        print(
            f"error: --gpus {a.gpus} is more than the {layout} can use (at most {STUDIES_AT_ONCE * gpu_per_study:g})",
            file=sys.stderr,
        )
        return 2
    if a.gpus < 1 or a.groups < 1 or a.gpus % a.groups or (a.gpus // a.groups) % gpu_per_study:
        print(
            f"error: --gpus {a.gpus} over --groups {a.groups}: each group needs a whole number of studies' GPUs "
            f"({gpu_per_study:g} per study) in the {layout}",
            file=sys.stderr,
        )
        return 2
    if a.seeds < 1 or a.budget <= 0 or a.epoch_s < 0 or not 1 <= a.max_t <= 52 or a.cpus_per_trial <= 0:
        p.error("need --seeds >= 1, --budget > 0, --epoch-s >= 0, 1 <= --max-t <= 52, --cpus-per-trial > 0")
    studies_at_once = int(a.gpus // gpu_per_study)
    cpus = studies_at_once * TRIALS_PER_STUDY * a.cpus_per_trial  # exactly the layout's CPU slice
    try:
        import psutil  # noqa: F401

        how = "psutil"
    except ImportError:
        how = "/proc (psutil not installed)"
    print(run_header(__file__, None))
    print(f"CPU {cpu_model()} ({os.cpu_count()} CPUs)\n{load_line('at start')}")
    print(
        f"fake node: {a.gpus} GPUs, {cpus:g} logical CPUs, {a.groups} labelled group(s); {layout}; "
        f"{a.cpus_per_trial:g} CPU per trial (preset: 2)"
    )
    print(
        f"LCBench surrogate task 167149, epoch_s {a.epoch_s:g}, max_t {a.max_t}, budget {a.budget:g} epoch-eq/study; "
        f"{len(METHODS)} methods × {a.seeds} seed(s) = {len(METHODS) * a.seeds} studies; memory sampled via {how}"
    )

    import ray

    from ohgw.studies.runner import run_experiment
    from ohgw.studies.study import ExperimentConfig
    from trainables.lcbench import search_space, train_lcbench

    cfg = ExperimentConfig(
        experiment="scale-sim", space=search_space(), base_config={"task_id": 167149, "epoch_s": a.epoch_s},
        max_t=a.max_t, budget=a.budget, tau=0.95, cpus_per_trial=a.cpus_per_trial, gpus_per_trial=GPUS_PER_TRIAL,
        trials_per_study=TRIALS_PER_STUDY, reuse_actors=True,
    )  # fmt: skip
    tmp = None if a.out else tempfile.TemporaryDirectory(prefix="scale-sim-")
    out = Path(a.out or tmp.name)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    cluster = start_ray(a.gpus, a.groups, cpus)
    t_ray = time.perf_counter() - t0
    sampler = Sampler(out, a.sample_s)
    sampler.sample()
    try:
        from ohgw.studies.cluster import discover_groups

        print(
            f"ray up in {t_ray:.1f} s; groups: "
            + ", ".join(f"{g.name} ({g.cpus:g} CPU, {g.gpus:g} GPU)" for g in discover_groups())
        )
        sampler.start()
        t_call = time.time()
        summary = run_experiment(
            cfg, train_lcbench, list(METHODS), list(range(a.seeds)), out, quiet=True, stream=sys.stdout
        )
        run_wall = time.time() - t_call
        mem = sampler.finish()
        if summary.failed:
            print(f"error: studies failed: {summary.failed} (see {summary.log_path})", file=sys.stderr)
            return 1
    finally:
        if sampler.is_alive():
            sampler.finish()
        ray.shutdown()
        if cluster is not None:
            cluster.shutdown()
    try:
        return report(a, out, run_wall, mem, sampler.disk_peak, studies_at_once)
    finally:
        if tmp is not None:
            tmp.cleanup()


def report(a, out: Path, run_wall: float, mem: pd.DataFrame, disk_peak: int, at_once: int) -> int:
    df = per_study(out)
    n, trials, epochs = len(df), int(df["trials"].sum()), int(df["epochs"].sum())
    print(
        f"\n== run: {n} studies, {trials} trials, {epochs} epochs in {run_wall:.1f} s "
        f"(Ray already up; up to {at_once} studies at once)"
    )
    print(
        f"studies/hour sustained: {n / run_wall * 3600:.0f}  "
        f"(per method: "
        + ", ".join(
            f"{m} {g['trials'].mean():.1f} trials/{g['wall'].mean():.1f} s" for m, g in df.groupby("method", sort=False)
        )
        + ")"
    )
    stretch = df["epoch_wall"].sum() / max(df["epoch_cpu"].sum(), 1e-9)
    print(
        f"CPU contention: epoch wall/CPU {stretch:.2f} (1.0 on an idle machine; above 1 every number below is "
        "stretched by the oversubscribed cores, the overheads included)"
    )
    fixed = (df["startup"] + df["tail"] + df["export"]).mean()
    print(
        f"per-study fixed overhead: {fixed:.2f} s  (start-up {df['startup'].mean():.2f} + tail {df['tail'].mean():.2f}"
        f" + export {df['export'].mean():.2f})  [{_ok(fixed, GOAL_STUDY_S)}]"
    )
    slot = ((df["wall"] * TRIALS_PER_STUDY - df["inside"]) / TRIALS_PER_STUDY).mean()
    print(
        f"  slot view: (study wall × {TRIALS_PER_STUDY} − in-trainable) / {TRIALS_PER_STUDY} = {slot:.2f} s per study "
        f"(mean wall {df['wall'].mean():.1f} s, in-trainable {df['inside'].mean():.1f} s over {TRIALS_PER_STUDY} slots)"
    )
    n_gaps = max(int(df["n_gaps"].sum()), 1)
    gap = df["gaps"].sum() / n_gaps
    rep = df["per_report"].sum() / max(trials, 1)
    per_trial = gap + rep
    print(
        f"per-trial scheduling overhead: {per_trial:.3f} s  (slot-free → next trial's first report less its epoch: "
        f"{gap:.3f} s, n={n_gaps}; report overhead {rep:.3f} s/trial, "
        f"{df['per_report'].sum() / max(epochs - trials, 1) * 1000:.1f} ms/report)  [{_ok(per_trial, GOAL_TRIAL_S)}]"
    )
    print(f"memory over the run ({len(mem)} samples every {a.sample_s:g} s):")
    bad_mem = False
    for name, col in (("driver", "driver"), *((c, c) for c in CONTROLLERS)):
        line, at300 = _mem_line(name, mem[col], n)
        bad_mem |= at300 > GOAL_MEM_MIB
        print(line)
    pq = parquet_bytes(out)
    print(
        f"Parquet: {pq / 1024:.0f} KiB for {n} studies = {pq / n / 1024:.1f} KiB/study "
        f"(→ {pq / n * 300 / MIB:.1f} MiB at 300); results-dir disk peak {disk_peak / MIB:.1f} MiB "
        f"(incl. Tune's dirs while studies ran)"
    )
    from ohgw.analysis import analyze

    t0 = time.perf_counter()
    analyze(out, static=False, quiet=True)
    t_an = time.perf_counter() - t0
    print(f"analysis of this run ({n} studies): {t_an:.1f} s")
    t_syn = None
    if not a.no_synthetic:
        t_syn = synthetic_analysis_s()
        print(
            f"analysis of a 300-study synthetic dataset (6 methods × 50 seeds, 27 trials each): {t_syn:.1f} s  "
            f"[{_ok(t_syn, GOAL_ANALYSIS_S)}]"
        )
    extrapolate(df, fixed, per_trial, a)
    print(f"{load_line('at end')}")
    goals_met = fixed <= GOAL_STUDY_S and per_trial <= GOAL_TRIAL_S and not bad_mem and (t_syn or 0) <= GOAL_ANALYSIS_S
    print(f"goals: {'all met' if goals_met else 'NOT all met'}")
    return 0


def extrapolate(df: pd.DataFrame, fixed: float, per_trial: float, a) -> None:
    trials_per_eq = df["trials"].sum() / (len(df) * a.budget)
    real_trials = trials_per_eq * REAL["budget"]
    compute = REAL["budget"] * REAL["epoch_s"] / TRIALS_PER_STUDY  # a study's wall if its 4 slots are always busy
    overhead = fixed + real_trials * per_trial
    studies = REAL["seeds"] * len(METHODS)
    total_h = math.ceil(studies / STUDIES_AT_ONCE) * (compute + overhead) / 3600
    print(
        f"\n== extrapolation to the real cifar10 preset ({studies} studies, budget {REAL['budget']:g} epoch-eq, "
        f"~{REAL['epoch_s']:g} s GPU epochs, {TRIALS_PER_STUDY} trials × {GPUS_PER_TRIAL:g} GPU, "
        f"{STUDIES_AT_ONCE} studies at once):"
    )
    print(
        f"  per study: ~{real_trials:.0f} trials ({trials_per_eq:.3f} trials per epoch-eq measured here), compute "
        f"{compute:.0f} s of slot-wall, harness overhead {fixed:.1f} + {real_trials:.0f} × {per_trial:.3f} = "
        f"{overhead:.1f} s → {100 * overhead / (compute + overhead):.2f} % of a study's wall"
    )
    print(
        f"  whole experiment: ~{total_h:.1f} h on one 8-GPU node, of which harness ~"
        f"{math.ceil(studies / STUDIES_AT_ONCE) * overhead / 3600:.2f} h"
    )
    print(
        "  assumptions: overheads per study and per trial do not depend on epoch length, max_t or the trainable "
        "(CIFAR's own actor start-up — torch/CUDA init, data loading — is not in them); trials per epoch-eq scale "
        "linearly from this budget to 300 (the same max_t and η); 4 slots always busy (a lower bound on compute "
        "wall); measured with 8 studies' drivers and actors sharing 2 cores, so on a real node's CPUs the "
        "overheads should be lower (see CPU contention above); per-report overhead scales with reports, not epoch "
        "length; memory growth is extrapolated linearly from this run, its warm-up included (pessimistic)."
    )


if __name__ == "__main__":
    sys.exit(main())
