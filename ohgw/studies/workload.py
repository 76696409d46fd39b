"""What a family of trainables hands the study harness: the trainable, its search space, its presets.

The harness never imports ``trainables``; a script in ``experiments/`` passes a
:class:`Workload` in. A preset is a dict with ``base_config`` (the fixed part of every
trial's config) and study sizes (``max_t``, ``seeds``, ``budget``, ``tau``,
``cpus_per_trial``, ``gpus_per_trial``, ``trials_per_study``); every command-line
flag overrides it. A workload may bring flags of its own (``add_flags``, listed by ``--help``
and checked by argparse before anything runs) and a step after the studies and their report
(``after_studies``, e.g. a comparison with a known optimum). A workload whose trials make something
worth keeping (a trained encoder) names ``export_best``: per study, the checkpoint of its best report
is exported beside the study's Parquet tables (:mod:`ohgw.studies.export`).

>>> from ohgw.space import Continuous, SearchSpace
>>> w = Workload("toy", trainable=print, space=SearchSpace([Continuous("lr", 1e-3, 1.0, "log10")]),
...              presets={"cpu": {"base_config": {}, "max_t": 3, "seeds": 2, "budget": 9.0, "tau": 0.5,
...                               "cpus_per_trial": 1.0, "gpus_per_trial": 0.0, "trials_per_study": 1}})
>>> w.default_preset, w.metric
('cpu', 'val_acc')
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ohgw.space import SearchSpace

PRESET_KEYS = ("base_config", "max_t", "seeds", "budget", "tau", "cpus_per_trial", "gpus_per_trial",
               "trials_per_study")


@dataclass(frozen=True)
class Workload:
    """A trainable plus what the harness needs to run studies of it.

    Args:
        name: short name, used in experiment names.
        trainable: a Ray Tune function trainable honouring :mod:`ohgw.protocol`'s reporting contract.
        space: the continuous hyper-parameters the searcher samples and OHGW warm-starts.
        presets: name → preset dict (see the module docstring); the first is the default.
        metric, mode: the tuned metric; ``metric_range`` bounds τ.
        check_base_config: optional; raises ValueError for a base config the trainable cannot run
            (e.g. a missing data directory), before anything is written.
        add_flags: optional; adds the workload's own flags to the harness's parser (an argument group);
            give them argparse ``type``/``choices`` checks, so that bad values fail before anything runs.
        after_studies: optional; ``after_studies(args, cfg, out) -> exit status`` runs once the studies
            and their report are done (all studies succeeded), with the parsed flags, the
            :class:`~ohgw.studies.study.ExperimentConfig` and the results directory.
        export_best: optional; ``export_best(checkpoint_dir, dest_dir)`` writes the exportable artefact of
            one of the trainable's checkpoints (e.g. ``encoder.pt`` and its JSON) into the existing, empty
            folder ``dest_dir``. Each study calls it on the checkpoint of its best report (by ``metric``,
            ``mode``) while it runs; the result lands in ``<results>/exports/experiment=…/method=…/seed=…/``
            (:func:`ohgw.studies.export.export_dir`) and is the only checkpoint-derived file kept.
            It runs in the study's driver process: it must not import what the trainable's own
            process needs a GPU for (load onto the CPU).
    """

    name: str
    trainable: Callable[[dict], Any]
    space: SearchSpace
    presets: Mapping[str, Mapping[str, Any]]
    metric: str = "val_acc"
    mode: str = "max"
    metric_range: tuple[float, float] = (0.0, 1.0)
    check_base_config: Callable[[Mapping[str, Any]], None] | None = field(default=None, compare=False)
    add_flags: Callable[[Any], None] | None = field(default=None, compare=False)
    after_studies: Callable[[argparse.Namespace, Any, Path], int] | None = field(default=None, compare=False)
    export_best: Callable[[str, str], Any] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if not callable(self.trainable):
            raise ValueError(f"trainable must be callable, got {type(self.trainable).__name__}")
        if not isinstance(self.space, SearchSpace):
            raise ValueError(f"space must be an ohgw.SearchSpace, got {type(self.space).__name__}")
        if not self.presets:
            raise ValueError("presets must name at least one preset")
        for name, preset in self.presets.items():
            missing = [k for k in PRESET_KEYS if k not in preset]
            if missing:
                raise ValueError(f"presets[{name!r}] lacks {missing}")
        if self.mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {self.mode!r}")
        for name in ("check_base_config", "add_flags", "after_studies", "export_best"):
            hook = getattr(self, name)
            if hook is not None and not callable(hook):
                raise ValueError(f"{name} must be callable or None, got {type(hook).__name__}")

    @property
    def default_preset(self) -> str:
        return next(iter(self.presets))
