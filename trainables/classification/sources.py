"""The classification family's data sources: their names and the cheap check that one can be read.

Torch-free, so that a driver validating a study's base config (``workload().check_base_config``) or a
config (:func:`trainables.classification.config.resolve_config`) imports no torch; the loaders are in
:mod:`trainables.classification.data`.

>>> check_source("digits")
>>> check_source("mnist")
Traceback (most recent call last):
ValueError: dataset must be one of ('cifar10', 'digits', 'synthetic'), got 'mnist'
"""

from __future__ import annotations

import os

DATASETS = ("cifar10", "digits", "synthetic")
CIFAR_FOLDER = "cifar-10-batches-py"  # what torchvision's CIFAR10 reads inside its root folder


def check_source(name: str, data_dir: str | os.PathLike | None = None, download: bool = False) -> None:
    """Raise ValueError for an unknown dataset or a CIFAR-10 folder that is missing (cheap, loads nothing)."""
    if name not in DATASETS:
        raise ValueError(f"dataset must be one of {DATASETS}, got {name!r}")
    if name != "cifar10" or download:
        return
    if data_dir is None:
        raise ValueError(
            "dataset 'cifar10' needs data_dir: the folder that holds cifar-10-batches-py "
            "(or set download=True to fetch it there)"
        )
    folder = os.path.join(os.fspath(data_dir), CIFAR_FOLDER)
    if not os.path.isdir(folder):
        raise ValueError(
            f"dataset 'cifar10': data_dir {os.fspath(data_dir)!r} has no {CIFAR_FOLDER} folder; "
            "point data_dir at the folder that holds it, or set download=True to fetch it there"
        )
