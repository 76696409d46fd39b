"""Share of study wall-clock spent inside the trainable's epochs and warm-starts, actor reuse on vs off.

What it measures: the embedded-default setting (digits, ResNet-20, ``asha`` and
``asha+ohgw``, CPU, one trial at a time per study, the default normalized warm-start)
run through :func:`ohgw.studies.runner.run_experiment` twice in one process, once with
``reuse_actors=True`` and once with ``reuse_actors=False``, ``--seeds`` seeds × 2
methods each. From the written tables it prints, per setting:

- ``study wall s``: the sum over studies of ``studies.wall_s`` (each study's own wall
  clock, from its start to the end of ``Tuner.fit``; studies may run side by side, one
  per free slot, so this is not the run's elapsed time, ``run wall s``, printed separately;
  the first setting's run wall also holds Ray's start-up and its workers' cold start);
- ``in trainable s``: the sum of ``iterations.epoch_s`` (the trainable's wall seconds
  of training + evaluating each epoch) plus ``iterations.ws_wall_s`` (warm-start wall
  seconds, asha+ohgw only);
- ``share``: in trainable s / study wall s, compared with the goal of >= 90 %.
  Everything else is Tune/Ray overhead: actor start-up, model and data set-up,
  checkpoint save and restore, scheduling.

One run per setting (no repeats, no medians): the two settings run one after the
other, so load from other processes on a shared machine can favour either; the load
average is printed at start and end. Studies stop at the epoch-equivalent
``--budget`` (warm-starts included) or at ``--max-t`` epochs per trial.

    python benchmarks/study_overhead.py [--seeds 2] [--budget 30]
    python benchmarks/study_overhead.py --seeds 1 --budget 4      # a tiny run, ~1-2 min on 2 cores
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

from _machine import cpu_model, load_line, run_header

GOAL_SHARE = 0.90


def measure(reuse: bool, seeds: int, budget: float, max_t: int) -> dict:
    from ohgw.results import read_table
    from ohgw.space import SearchSpace
    from ohgw.studies.runner import run_experiment
    from ohgw.studies.study import ExperimentConfig
    from trainables.classification import train_classifier

    cfg = ExperimentConfig(
        experiment=f"overhead-reuse-{reuse}",
        space=SearchSpace.default(),
        base_config={"dataset": "digits", "batch_size": 128, "width": 1},
        max_t=max_t,
        budget=budget,
        tau=0.9,
        reuse_actors=reuse,
    )
    with tempfile.TemporaryDirectory() as out:
        summary = run_experiment(cfg, train_classifier, ["asha", "asha+ohgw"], list(range(seeds)), out, quiet=True)
        if summary.failed:
            raise RuntimeError(f"studies failed: {summary.failed}")
        st, it = read_table(out, "studies"), read_table(out, "iterations")
    it = it.assign(inside_s=it["epoch_s"] + (it["ws_wall_s"].fillna(0.0) if "ws_wall_s" in it.columns else 0.0))
    per_study = [
        (sid, float(row["wall_s"]), float(it.loc[it["study_id"] == sid, "inside_s"].sum()))
        for sid, row in st.set_index("study_id").iterrows()
    ]
    inside = float(it["inside_s"].sum())
    wall = float(st["wall_s"].sum())
    return {
        "reuse_actors": reuse,
        "studies": len(st),
        "epochs": len(it),
        "run_wall_s": summary.wall_s,
        "study_wall_s": wall,
        "trainable_s": inside,
        "share": inside / wall,
        "per_study": per_study,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--budget", type=float, default=30.0, help="epoch-equivalents per study")
    p.add_argument("--max-t", type=int, default=9, help="epochs per trial at most (ASHA rungs 1, 3, 9 at 9)")
    a = p.parse_args()
    if a.seeds < 1 or a.budget <= 0 or a.max_t < 1:
        p.error("--seeds and --max-t must be >= 1, --budget > 0")
    import torch

    print(run_header(__file__, None))
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} torch threads in the driver (each trial sets its "
        f"own from its 1 CPU), CPU {cpu_model()} ({os.cpu_count()} CPUs)\n{load_line('at start')}"
    )
    print(
        f"digits, ResNet-20, methods asha + asha+ohgw, {a.seeds} seed(s), budget {a.budget:g} epoch-equivalents "
        f"per study, max_t {a.max_t}; one run per setting, reuse on first"
    )
    t0 = time.perf_counter()
    rows = [measure(True, a.seeds, a.budget, a.max_t), measure(False, a.seeds, a.budget, a.max_t)]
    print(
        f"{'reuse_actors':>12} {'studies':>7} {'epochs':>6} {'run wall s':>10} {'study wall s':>12} "
        f"{'in trainable s':>14} {'share':>6}"
    )
    for r in rows:
        print(
            f"{r['reuse_actors']!s:>12} {r['studies']:>7} {r['epochs']:>6} {r['run_wall_s']:>10.1f} "
            f"{r['study_wall_s']:>12.1f} {r['trainable_s']:>14.1f} {100 * r['share']:>5.1f}%"
        )
    for r in rows:
        for sid, w, inside in r["per_study"]:
            print(f"  reuse={r['reuse_actors']!s:<5} {sid}: study wall {w:.1f} s, in trainable {inside:.1f} s")
    print(
        f"share ratio reuse/no-reuse: {rows[0]['share'] / rows[1]['share']:.2f}x; goal share >= "
        f"{100 * GOAL_SHARE:.0f} %: "
        + ", ".join(f"reuse={r['reuse_actors']} {'met' if r['share'] >= GOAL_SHARE else 'not met'}" for r in rows)
    )
    print(f"{load_line('at end')}; total {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
