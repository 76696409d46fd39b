"""OHGW-Tune: one-shot hyper-gradient warm-starts for Ray Tune schedulers.

The house, one layer per package (imports go downwards only; nothing here imports ``trainables``):

- the method: :mod:`ohgw.space`, :mod:`ohgw.hypergrad`, :mod:`ohgw.update_rules`,
  :mod:`ohgw.warmstart` (its settings in the torch-free :mod:`ohgw.warmstart_settings`, which the
  harness imports), :mod:`ohgw.cost`, and :mod:`ohgw.protocol`, which owns every key exchanged
  between the wrapper, the trainables and the harness;
- :mod:`ohgw.tune`: the Tune plug-ins (the :class:`OHGW` wrapper, callbacks, searcher feedback,
  scheduler state); :mod:`ohgw.pasha`: PASHA and promotion-type ASHA;
- :mod:`ohgw.studies`: the study harness (it takes the trainable as an argument);
- :mod:`ohgw.results`: the Parquet dataset (columns, partitions, one reader, one atomic writer);
  :mod:`ohgw.analysis`: T@τ, statistics and the report, reading only that;
- :mod:`ohgw.testing`: helpers for tests and benchmarks only.

Names are imported lazily, so ``import ohgw.analysis`` does not pay for torch.
"""

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "HyperGradient": ".hypergrad",
    "HyperGradProblem": ".hypergrad",
    "hypergradient": ".hypergrad",
    "Continuous": ".space",
    "SearchSpace": ".space",
    "SGD": ".update_rules",
    "AdamW": ".update_rules",
    "WarmStartRecord": ".warmstart",
    "WarmStartSettings": ".warmstart_settings",
    "maybe_warm_start": ".warmstart",
    "warm_start": ".warmstart",
    "OHGW": ".tune.wrapper",
    "OHGWSearcher": ".tune.searcher",
    "AdjustedConfigCallback": ".tune.callbacks",
    "SchedulerStateCallback": ".tune.callbacks",
    "PASHA": ".pasha.scheduler",
    "PromotionASHA": ".pasha.scheduler",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    raise AttributeError(f"module 'ohgw' has no attribute {name!r}")
