"""A driver for the interruption test: a small multi-study experiment with the tiny curve trainable."""

import sys

from ohgw.space import SearchSpace
from ohgw.studies.runner import run_experiment
from ohgw.studies.study import ExperimentConfig

from harness_trainables import curve_trainable

if __name__ == "__main__":
    out = sys.argv[1]
    cfg = ExperimentConfig(
        experiment="interrupt-test",
        space=SearchSpace.from_bounds({"lr": (1e-3, 1.0, "log10")}),
        base_config={"epoch_s": 0.05},
        max_t=3,
        budget=8.0,
        tau=0.5,
    )
    run_experiment(cfg, curve_trainable, ["asha", "hyperband"], [0, 1, 2], out, quiet=True, num_cpus=2)
