"""LCBench learning curves (YAHPO Gym's ONNX surrogate) with a configurable busy epoch.

A synthetic trainable for harness tests and overhead benchmarks whose curves are real:

- :mod:`~trainables.lcbench.surrogate`: the surrogate (``data/``: model, encoding, licences, FACTS.md);
- :mod:`~trainables.lcbench.run`: the run object :class:`LCBenchRun` (a
  :class:`trainables.scaffold.Run`: busy CPU epochs of ``epoch_s`` seconds, the finite-difference
  OHGW warm-start), its Tune trainable :func:`train_lcbench` and plain driver :func:`train_epochs`.

:func:`workload` is what ``experiments/lcbench_vs_ohgw.py`` hands to the study harness.
Data: yahpo_data and yahpo_gym (Pfisterer, Schneider et al.), on LCBench (Zimmer, Lindauer &
Hutter 2021), Apache-2.0: ``data/LICENSE-2.0.txt``, ``data/LICENSE.yahpo_*``, ``data/FACTS.md``.
"""

from __future__ import annotations

from typing import Any

from trainables.lcbench.run import (
    CONTINUOUS,
    DEFAULT_CONFIG,
    METRIC,
    LCBenchRun,
    busy,
    resolve_config,
    train_epochs,
    train_lcbench,
)

# Study presets, both on task 167149 with max_t 27 (ASHA rungs 1, 3, 9, 27 at η = 3). Of 300 random
# configs, 16 % reach val_acc 0.95 by epoch 27 (5 % by epoch 9): τ = 0.95.
# cpu: 20 ms busy epochs, 1 trial per study (2 studies at once on 2 cores): a study takes seconds.
# sim: epochs as fast as possible, for many seeds; what a study then costs is the harness's overhead.
PRESETS: dict[str, dict[str, Any]] = {
    "cpu": {
        "base_config": {"task_id": 167149, "epoch_s": 0.02},
        "max_t": 27, "seeds": 6, "budget": 150.0, "tau": 0.95,
        "cpus_per_trial": 1.0, "gpus_per_trial": 0.0, "trials_per_study": 1,
    },
    "sim": {
        "base_config": {"task_id": 167149, "epoch_s": 0.0},
        "max_t": 27, "seeds": 50, "budget": 300.0, "tau": 0.95,
        "cpus_per_trial": 1.0, "gpus_per_trial": 0.0, "trials_per_study": 1,
    },
}  # fmt: skip


def search_space():
    """The tuned hyper-parameters over config_space.json's ranges: lr on log10 (as LCBench sampled it),
    momentum and weight_decay uniform (LCBench sampled weight_decay uniformly too)."""
    from ohgw.space import SearchSpace

    return SearchSpace.from_bounds({
        "lr": (1e-4, 1e-1, "log10"),
        "momentum": (0.1, 0.99, "identity"),
        "weight_decay": (1e-5, 1e-1, "identity"),
    })  # fmt: skip


def _check_base_config(base: dict) -> None:
    resolve_config(base)


def workload():
    """The :class:`ohgw.studies.workload.Workload` of LCBench (metric :data:`METRIC`, max)."""
    from ohgw.studies.workload import Workload

    return Workload(
        "lcbench",
        trainable=train_lcbench,
        space=search_space(),
        presets=PRESETS,
        metric=METRIC,
        mode="max",
        metric_range=(0.0, 1.0),
        check_base_config=_check_base_config,
    )


__all__ = [
    "CONTINUOUS",
    "DEFAULT_CONFIG",
    "METRIC",
    "PRESETS",
    "LCBenchRun",
    "busy",
    "resolve_config",
    "search_space",
    "train_epochs",
    "train_lcbench",
    "workload",
]
