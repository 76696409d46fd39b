"""Supervised classification: ResNet-20 on CIFAR-10 / digits / synthetic data, with the OHGW warm-start.

- :mod:`~trainables.classification.config`: the defaults and their validation;
- :mod:`~trainables.classification.data`: data sets as device-resident tensors, batched augmentation;
- :mod:`~trainables.classification.losses`: the label-smoothed loss, differentiable in ε;
- ResNet-20 (:mod:`trainables.nets`) and the differentiable magnitude augmentation (:mod:`trainables.augment`),
  shared with the SSL family beside the scaffold (families do not import each other);
- :mod:`~trainables.classification.problem`: the hyper-gradient problem the warm-start differentiates;
- :mod:`~trainables.classification.run`: the run object :class:`ClassificationRun` (a
  :class:`trainables.scaffold.Run`), its Tune trainable :func:`train_classifier` and its
  plain-Python driver :func:`train_epochs`, both from :mod:`trainables.scaffold`.

:func:`workload` is what ``experiments/*_vs_ohgw.py`` hand to the study harness. Importing this package, building
the workload and shipping its trainable (:func:`train_classifier_in_trial`) import no torch: the names that
live in the run module are loaded on first use (PEP 562), and the trial's own process imports it.
"""

from __future__ import annotations

import importlib
from typing import Any

from trainables.checks import resolve_device
from trainables.classification.config import DEFAULT_CONFIG, METRIC, resolve_config

# what this package takes from its run module (which imports torch) only when asked: a driver that builds
# the workload, a study task that ships its trainable, `--help` import no torch (module doc)
_FROM_RUN = ("ClassificationRun", "cosine_lr", "make_problem", "train_classifier", "train_epochs")


def __getattr__(name: str):
    if name in _FROM_RUN:
        return getattr(importlib.import_module("trainables.classification.run"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

# Study presets. digits: the embedded default, CPU, 1 trial per study (2 studies at once on 2 cores),
# max_t 10 epochs (rungs 1, 3, 9 at η = 3). cifar10: an 8-GPU node, 4 trials per study at 0.25 GPU
# and 2 CPUs each (one GPU per study, 8 studies at once), τ = 0.88 validation accuracy.
PRESETS: dict[str, dict[str, Any]] = {
    "digits": {
        "base_config": {"dataset": "digits", "batch_size": 128, "width": 1},
        "max_t": 10, "seeds": 16, "budget": 40.0, "tau": 0.95,
        "cpus_per_trial": 1.0, "gpus_per_trial": 0.0, "trials_per_study": 1,
    },
    "cifar10": {
        "base_config": {"dataset": "cifar10", "batch_size": 128, "width": 1, "data_dir": "data/cifar10"},
        "max_t": 27, "seeds": 50, "budget": 300.0, "tau": 0.88,
        "cpus_per_trial": 2.0, "gpus_per_trial": 0.25, "trials_per_study": 4,
    },
}


def _check_base_config(base: dict) -> None:
    from trainables.classification.sources import check_source

    check_source(base.get("dataset", DEFAULT_CONFIG["dataset"]), base.get("data_dir"), base.get("download", False))


def train_classifier_in_trial(config: dict) -> None:
    """:func:`~trainables.classification.run.train_classifier`, imported in the trial's own process.

    The trainable :func:`workload` hands the harness: pickling and shipping it (to a study task, a trial
    actor) imports nothing heavy, so the driver and the study tasks never import torch; the trial does.
    """
    from trainables.classification.run import train_classifier

    train_classifier(config)


def workload():
    """The :class:`ohgw.studies.workload.Workload` of ResNet-20 classification (metric :data:`METRIC`, max)."""
    from ohgw.space import SearchSpace
    from ohgw.studies.workload import Workload

    return Workload("resnet20", trainable=train_classifier_in_trial, space=SearchSpace.default(), presets=PRESETS,
                    metric=METRIC, mode="max", metric_range=(0.0, 1.0), check_base_config=_check_base_config)


__all__ = [
    "DEFAULT_CONFIG",
    "METRIC",
    "PRESETS",
    "ClassificationRun",
    "cosine_lr",
    "make_problem",
    "resolve_config",
    "resolve_device",
    "train_classifier",
    "train_classifier_in_trial",
    "train_epochs",
    "workload",
]
