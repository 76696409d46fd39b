"""Moving-dot JEPAs: VICReg and SimCLR predictive embeddings with actions, an RSSM baseline, the dot probe.

The "slow features" test bed of Sobal et al. 2022 (arXiv:2211.10831) as Tune trainables:

- :mod:`~trainables.jepa.world`: the seeded moving-dot generator and its fixed sets;
- :mod:`~trainables.jepa.models`: MeNet5, MLP / GRU predictors, the JEPA, the RSSM;
- :mod:`~trainables.jepa.losses`: the VICReg / SimCLR JEPA losses (from the shared
  :mod:`trainables.representation` terms) and the RSSM ELBO;
- :mod:`~trainables.jepa.config`: per-model defaults with units, validation, YAML overrides;
- :mod:`~trainables.jepa.evaluate`: the ridge probe of the dot position, rollout probe, RankMe, references;
- :mod:`~trainables.jepa.problem`: the hyper-gradient problems (which ψ get a one-step signal);
- :mod:`~trainables.jepa.run`: the run object :class:`JepaRun`, its Tune trainable :func:`train_jepa`
  and plain driver :func:`train_epochs`; :mod:`~trainables.jepa.train`: the one-run command line;
- :mod:`~trainables.jepa.export`: a trained encoder on disk (``encoder.pt`` + ``encoder.json``) and
  :func:`load_encoder`, which returns it ready, in eval mode.

:func:`workload` is what a study script hands to the harness; :func:`search_space` is each model's ψ.
"""

from __future__ import annotations

from typing import Any

from trainables.jepa.config import CONTINUOUS, DEFAULTS, MODEL_TYPES, load_overrides, resolve_config
from trainables.jepa.export import load_encoder, save_encoder
from trainables.jepa.run import METRIC, MODE, JepaRun, train_epochs, train_jepa

# ψ ranges per model (all log10): lr, wd and the model's own loss hyper-parameters
BOUNDS: dict[str, dict[str, tuple[float, float, str]]] = {
    "VICReg": {"var_coeff": (0.1, 100.0, "log10"), "cov_coeff": (1e-3, 10.0, "log10")},
    "SimCLR": {"temperature": (0.01, 1.0, "log10")},
    "RSSM": {"kl_scale": (0.1, 10.0, "log10")},
}
COMMON_BOUNDS = {"lr": (1e-4, 1e-2, "log10"), "wd": (1e-7, 1e-2, "log10")}  # AdamW
SGD_LR_BOUNDS = (1e-3, 0.3, "log10")  # SGD's learning rates are larger (tests: 0.05 trains the tiny model)


def bounds(model_type: str = "VICReg", optimizer: str = "adamw") -> dict[str, tuple[float, float, str]]:
    """ψ → (low, high, transform) of ``model_type`` trained with ``optimizer``."""
    if model_type not in MODEL_TYPES:
        raise ValueError(f"model_type must be one of {MODEL_TYPES}, got {model_type!r}")
    if optimizer not in ("adamw", "sgd"):
        raise ValueError(f"optimizer must be 'adamw' or 'sgd', got {optimizer!r}")
    common = {**COMMON_BOUNDS, "lr": SGD_LR_BOUNDS} if optimizer == "sgd" else COMMON_BOUNDS
    return {**common, **BOUNDS[model_type]}


def search_space(model_type: str = "VICReg", optimizer: str = "adamw"):
    """The continuous ψ of ``model_type`` (:data:`CONTINUOUS`) over :func:`bounds`, all on log10 scales."""
    from ohgw.space import SearchSpace

    return SearchSpace.from_bounds(bounds(model_type, optimizer))


def presets(model_type: str = "VICReg") -> dict[str, dict[str, Any]]:
    """Study presets: ``cpu`` (1 CPU per trial, 5-epoch trials, rungs 1 and 3 at η = 3, τ = 1 px)."""
    return {
        "cpu": {"base_config": {"model_type": model_type, "device": "cpu"}, "max_t": 5, "seeds": 4, "budget": 40.0,
                "tau": 1.0, "cpus_per_trial": 1.0, "gpus_per_trial": 0.0, "trials_per_study": 1},
        "gpu": {"base_config": {"model_type": model_type, "dataset_size": 8192, "device": "cuda"}, "max_t": 20,
                "seeds": 20, "budget": 200.0, "tau": 0.5, "cpus_per_trial": 2.0, "gpus_per_trial": 0.25,
                "trials_per_study": 4},
    }


def workload(model_type: str = "VICReg"):
    """The :class:`ohgw.studies.workload.Workload` of one JEPA model (metric :data:`METRIC`, mode min); each
    study exports its best trial's encoder (:func:`trainables.jepa.export.export_best_hook`)."""
    from ohgw.studies.workload import Workload
    from trainables.jepa.export import export_best_hook

    return Workload(f"jepa-{model_type.lower()}", trainable=train_jepa, space=search_space(model_type),
                    presets=presets(model_type), metric=METRIC, mode=MODE, metric_range=(0.0, 40.0),
                    check_base_config=resolve_config, export_best=export_best_hook)


__all__ = ["BOUNDS", "bounds", "CONTINUOUS", "DEFAULTS", "METRIC", "MODE", "MODEL_TYPES", "JepaRun", "load_encoder", "load_overrides",
           "presets", "resolve_config", "save_encoder", "search_space", "train_epochs", "train_jepa", "workload"]
