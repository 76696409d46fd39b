"""OHGW-Tune: one-shot hyper-gradient warm-starts for Ray Tune schedulers.

Names are imported lazily, so ``import ohgw.analysis`` does not pay for torch.
"""

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "magnitude_augment": ".augment",
    "sample_draws": ".augment",
    "HyperGradient": ".hypergrad",
    "HyperGradProblem": ".hypergrad",
    "hypergradient": ".hypergrad",
    "smoothed_cross_entropy": ".losses",
    "Continuous": ".space",
    "SearchSpace": ".space",
    "SGD": ".update_rules",
    "AdamW": ".update_rules",
    "WarmStartRecord": ".warmstart",
    "WarmStartSettings": ".warmstart",
    "maybe_warm_start": ".warmstart",
    "warm_start": ".warmstart",
    "OHGW": ".scheduler",
    "OHGWSearcher": ".searcher",
    "AdjustedConfigCallback": ".callbacks",
    "SchedulerStateCallback": ".callbacks",
    "PASHA": ".pasha",
    "PromotionASHA": ".pasha",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    raise AttributeError(f"module 'ohgw' has no attribute {name!r}")
