"""Share of study wall-clock spent inside trainable compute, actor reuse on vs off.

Runs the embedded-default setting (digits, ResNet-20, ASHA and ASHA+OHGW, CPU) twice
in one process, once with ``reuse_actors=True`` and once without, and prints per
setting: study wall seconds, seconds inside the trainable's epochs and warm-starts,
and their ratio (goal ≥ 90 %). Everything else is Tune/Ray overhead: actor start-up,
checkpointing, scheduling.

    python benchmarks/study_overhead.py [--seeds 2] [--budget 30]
"""

from __future__ import annotations

import argparse
import tempfile

from ohgw.results import read_table
from ohgw.space import SearchSpace
from ohgw.studies.runner import run_experiment
from ohgw.studies.study import ExperimentConfig
from ohgw.warmstart import WarmStartSettings


def measure(reuse: bool, seeds: int, budget: float) -> dict:
    from trainables.classification import train_classifier

    cfg = ExperimentConfig(
        experiment=f"overhead-reuse-{reuse}",
        space=SearchSpace.default(),
        base_config={"dataset": "digits", "batch_size": 128, "width": 1},
        max_t=9,
        budget=budget,
        tau=0.9,
        warm_start=WarmStartSettings(step_rule="normalized"),
        reuse_actors=reuse,
    )
    with tempfile.TemporaryDirectory() as out:
        run_experiment(cfg, train_classifier, ["asha", "asha+ohgw"], list(range(seeds)), out, quiet=True)
        st, it = read_table(out, "studies"), read_table(out, "iterations")
    inside = float(it["epoch_s"].sum() + it.get("ws_wall_s", 0.0).fillna(0.0).sum())
    wall = float(st["wall_s"].sum())
    return {"reuse_actors": reuse, "studies": len(st), "study_wall_s": wall, "trainable_s": inside,
            "share": inside / wall}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--budget", type=float, default=30.0)
    a = p.parse_args()
    rows = [measure(True, a.seeds, a.budget), measure(False, a.seeds, a.budget)]
    print(f"{'reuse_actors':>12} {'studies':>7} {'study wall s':>12} {'in trainable s':>14} {'share':>6}")
    for r in rows:
        print(f"{r['reuse_actors']!s:>12} {r['studies']:>7} {r['study_wall_s']:>12.1f} {r['trainable_s']:>14.1f} "
              f"{100 * r['share']:>5.1f}%")
    print(f"share ratio reuse/no-reuse: {rows[0]['share'] / rows[1]['share']:.2f}x")


if __name__ == "__main__":
    main()
