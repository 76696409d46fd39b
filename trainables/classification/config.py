"""The classification family's configuration: its defaults, their validation, and the device.

:func:`resolve_config` checks everything that can be checked without loading data (the
batch size against the training split is checked by
:class:`~trainables.classification.run.ClassificationRun` right after loading); a
ValueError names the first bad key and its rule.

>>> cfg = resolve_config({"lr": 1})
>>> cfg["lr"], cfg["dataset"], cfg[protocol.SEED_KEY]
(1.0, 'digits', 0)
>>> resolve_config({"momentum": 1.0})
Traceback (most recent call last):
ValueError: momentum must be in [0, 1), got 1.0
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ohgw import protocol
from trainables import checks

from .sources import DATASETS, check_source

METRIC = "val_acc"  # the tuned metric (mode max); its held-out twin is protocol.test_metric(METRIC)

# The one place for defaults (units in the comments). The digits default reaches
# >= 95 % validation accuracy within 10 epochs on a CPU (tests/test_classification.py).
DEFAULT_CONFIG: dict[str, Any] = {
    "dataset": "digits",  # "digits" | "cifar10" | "synthetic"
    "data_dir": None,  # cifar10: the folder that holds cifar-10-batches-py
    "download": False,  # cifar10: fetch into data_dir only when asked
    "split_seed": 0,  # seeds the train/val split (fixed across trials and methods)
    "lr": 0.1,  # peak SGD learning rate, per step, at the schedule's start
    "wd": 5e-4,  # coupled L2 weight decay, on every parameter
    "momentum": 0.9,  # SGD momentum in [0, 1)
    "nesterov": True,  # Nesterov momentum (plain SGD when momentum is 0)
    "aug_magnitude": 0.1,  # trainables.augment magnitude in [0, 1+]: shift, brightness, contrast
    "label_smoothing": 0.05,  # epsilon in [0, 1)
    "batch_size": 128,  # images per SGD step
    "max_t": 10,  # epochs the cosine LR schedule spans (= the trial's maximum length)
    "width": 1,  # ResNet-20 channel multiplier (16/32/64 at 1)
    protocol.SEED_KEY: 0,  # model init, data order and augmentation
    "device": "auto",  # "auto" (CUDA if visible) | "cpu" | "cuda" | "cuda:N"
    "precision": "auto",  # "auto" (bf16 autocast on CUDA, fp32 on CPU) | "fp32" | "bf16"
    "channels_last": True,  # NHWC memory format for the convolutions
    "compile": False,  # torch.compile the training forward (CUDA only)
}
PRECISIONS = ("auto", "fp32", "bf16")
# the continuous hyper-parameters the run trains with (a warm-start may move them)
CONTINUOUS = ("lr", "wd", "momentum", "aug_magnitude", "label_smoothing")


def resolve_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """DEFAULT_CONFIG updated with ``config``, validated; a ValueError names the first bad key and its rule."""
    cfg = {**DEFAULT_CONFIG, **dict(config)}
    if cfg["dataset"] not in DATASETS:
        raise ValueError(f"dataset must be one of {DATASETS}, got {cfg['dataset']!r}")
    lr, wd, mu = checks.number(cfg, "lr"), checks.number(cfg, "wd"), checks.number(cfg, "momentum")
    m, ls = checks.number(cfg, "aug_magnitude"), checks.number(cfg, "label_smoothing")
    if lr <= 0:
        raise ValueError(f"lr must be > 0, got {lr}")
    if wd < 0:
        raise ValueError(f"wd must be >= 0, got {wd}")
    if not 0 <= mu < 1:
        raise ValueError(f"momentum must be in [0, 1), got {mu}")
    if not 0 <= ls < 1:
        raise ValueError(f"label_smoothing must be in [0, 1), got {ls}")
    if m < 0:
        raise ValueError(f"aug_magnitude must be >= 0, got {m}")
    cfg.update(lr=lr, wd=wd, momentum=mu, aug_magnitude=m, label_smoothing=ls)
    for name, low in (("batch_size", 1), ("max_t", 1), ("width", 1), (protocol.SEED_KEY, 0), ("split_seed", 0)):
        cfg[name] = checks.integer(cfg, name, low)
    if cfg["precision"] not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {cfg['precision']!r}")
    for name in ("nesterov", "download", "compile", "channels_last"):
        if not isinstance(cfg[name], (bool, np.bool_)):
            raise ValueError(f"{name} must be True or False, got {cfg[name]!r}")
        cfg[name] = bool(cfg[name])
    dev = cfg["device"]
    if not isinstance(dev, str) or not (dev in ("auto", "cpu") or dev.startswith("cuda")):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda[:N]', got {dev!r}")
    check_source(cfg["dataset"], cfg["data_dir"], cfg["download"])
    return cfg

