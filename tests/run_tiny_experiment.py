"""A driver for the interruption test: a small multi-study experiment with the tiny curve trainable."""

import sys

from ohgw.space import SearchSpace
from ohgw.studies.runner import run_experiment
from ohgw.studies.study import ExperimentConfig

from harness_trainables import curve_trainable


def experiment(out) -> tuple:
    """run_experiment's positional arguments: 2 methods x 2 seeds of the curve trainable, into ``out``."""
    cfg = ExperimentConfig(
        experiment="interrupt-test",
        space=SearchSpace.from_bounds({"lr": (1e-3, 1.0, "log10")}),
        base_config={"epoch_s": 0.05},
        max_t=3,
        budget=8.0,
        tau=0.5,
    )
    return cfg, curve_trainable, ["asha", "hyperband"], [0, 1], out


if __name__ == "__main__":
    run_experiment(*experiment(sys.argv[1]), quiet=True, num_cpus=2)
