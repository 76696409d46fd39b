"""Linear BYOL with analytic optima: x = A z + ε, an online encoder and predictor, an EMA target.

A small, fast, exactly analysable self-supervised problem: the predictor's optimum is the Wiener
shrinkage P* = C_to C_oo⁻¹ in closed form, and the encoder's is A⁺ up to a rotation, so a tuner's
result is scored against the truth.

- :mod:`~trainables.linear_byol.config`: defaults, validation, logspace grids;
- :mod:`~trainables.linear_byol.data`: the data model and its closed forms;
- :mod:`~trainables.linear_byol.models`: encoder, predictor, EMA target (linear or SiLU MLP);
- :mod:`~trainables.linear_byol.engine`: the training step (two momentum-SGD optimisers, update-every-k,
  EMA, the auto schedule α_t = c·τ/H_t and why);
- :mod:`~trainables.linear_byol.metrics`: Procrustes alignment and the theory metrics;
- :mod:`~trainables.linear_byol.problem`: the hyper-gradient problem (ψ = log α, log β, log τ);
- :mod:`~trainables.linear_byol.run`: the run object (a :class:`trainables.scaffold.Run`) and the Tune trainable;
- :mod:`~trainables.linear_byol.records`, :mod:`~.driver`, :mod:`~.sweep`, :mod:`~.analyze`, :mod:`~.cli`:
  Parquet per run, single runs, the Ray Tune grid, heatmaps, ``python -m trainables.linear_byol``;
- :mod:`~trainables.linear_byol.report`: how close a study's tuner got to the sweep's best cell and to the
  α·H ≲ c·τ regime (for ``experiments/linear_byol_ohgw.py``).

:func:`workload` is what ``experiments/linear_byol_ohgw.py`` hands to the study harness.
"""

from __future__ import annotations

from typing import Any

from trainables.linear_byol.config import DEFAULT_CONFIG, logspace, resolve_config
from trainables.linear_byol.problem import TUNED, BYOLStep, make_problem
from trainables.linear_byol.run import DIVERGED_SCORE, METRIC, LinearBYOLRun, train_epochs, train_linear_byol

BOUNDS = {"lr_pred": (1e-3, 1.0), "lr_enc": (1e-3, 1.0), "tau": (1e-3, 1.0)}
# One study preset: the default problem (d_obs 100, d_latent 10, σ_n 0.5, batch 128, 8 steps per epoch; one
# mixing matrix A for every trial, data_seed 0, so that every trial and the sweep solve the same problem),
# max_t 27 (ASHA rungs 1, 3, 9, 27 at η = 3), 1 trial per study at 1 CPU; an epoch takes ~20 ms. τ = −0.4: in a
# 4 × 4 grid sweep at epoch 27 only the α = 0.01 row gets there (W_Fro_aligned ≈ −0.45; α = 1e-3: −0.27).
PRESETS: dict[str, dict[str, Any]] = {
    "cpu": {
        "base_config": {"d_obs": 100, "d_latent": 10, "sigma_n": 0.5, "batch_size": 128, "data_seed": 0},
        "max_t": 27, "seeds": 6, "budget": 150.0, "tau": -0.4,
        "cpus_per_trial": 1.0, "gpus_per_trial": 0.0, "trials_per_study": 1,
    },
}  # fmt: skip
METRIC_RANGE = (-DIVERGED_SCORE, DIVERGED_SCORE)


def search_space():
    """α, β and τ on log10 coordinates over [1e-3, 1]."""
    from ohgw.space import SearchSpace

    return SearchSpace.from_bounds({k: (lo, hi, "log10") for k, (lo, hi) in BOUNDS.items()})


def _check_base_config(base: dict) -> None:
    resolve_config(base)


def workload():
    """The :class:`ohgw.studies.workload.Workload` of the toy (metric :data:`METRIC`, mode min)."""
    from ohgw.studies.workload import Workload

    return Workload("linear_byol", trainable=train_linear_byol, space=search_space(), presets=PRESETS,
                    metric=METRIC, mode="min", metric_range=METRIC_RANGE, check_base_config=_check_base_config)


__all__ = [
    "BOUNDS",
    "DEFAULT_CONFIG",
    "DIVERGED_SCORE",
    "METRIC",
    "PRESETS",
    "TUNED",
    "BYOLStep",
    "LinearBYOLRun",
    "logspace",
    "make_problem",
    "resolve_config",
    "search_space",
    "train_epochs",
    "train_linear_byol",
    "workload",
]
