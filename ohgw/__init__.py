"""OHGW-Tune: one-shot hyper-gradient warm-starts for Ray Tune schedulers."""

from .augment import magnitude_augment, sample_draws
from .hypergrad import HyperGradient, HyperGradProblem, hypergradient
from .losses import smoothed_cross_entropy
from .space import Continuous, SearchSpace
from .update_rules import SGD, AdamW
from .warmstart import WarmStartRecord, WarmStartSettings, maybe_warm_start, warm_start

__version__ = "0.1.0"

__all__ = [
    "SGD",
    "AdamW",
    "Continuous",
    "HyperGradProblem",
    "HyperGradient",
    "SearchSpace",
    "WarmStartRecord",
    "WarmStartSettings",
    "hypergradient",
    "magnitude_augment",
    "maybe_warm_start",
    "sample_draws",
    "smoothed_cross_entropy",
    "warm_start",
]
