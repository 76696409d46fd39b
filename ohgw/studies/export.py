"""A study's exported artefact: what the workload makes of the checkpoint of the study's best report.

A workload that names ``export_best`` (:class:`ohgw.studies.workload.Workload`) gets, per study, one
folder beside the study's Parquet tables, ``<results>/exports/experiment=…/method=…/seed=…/``
(:func:`export_dir`), holding what ``export_best(checkpoint_dir, dest_dir)`` writes there (e.g. a
trained encoder) plus :data:`BEST_FILE`, which names the trial, its iteration and the metric value.
"Best" is the study's best report by the tuned metric (mode-aware): the best trial at its best epoch.

The export is taken while the study runs (:class:`ExportBest`, a Tune callback): a study keeps only
each live trial's latest checkpoint and none of an ended trial's (:mod:`ohgw.studies.checkpoints`),
so the best one may be gone once ``fit`` returns. Each report that beats the best so far calls the
hook on the checkpoint that came with it (reports without a checkpoint are passed over); the callback's state (the best value) is part of the
experiment snapshot, so a resumed study keeps improving on the same best. The hook writes into a
fresh hidden folder, which then takes ``dest_dir``'s place: a failing hook or a kill while it writes
leaves the previous export whole. No other checkpoint is kept.

>>> export_dir("results/x/_tune", "ssl-cpu", "asha", 2).as_posix()
'results/x/exports/experiment=ssl-cpu/method=asha/seed=2'
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ray.train.constants import CHECKPOINT_DIR_NAME
from ray.tune import Callback

from ohgw import protocol
from ohgw.results import study_dir

EXPORTS = "exports"  # the results directory's folder of per-study exports, beside iterations/trials/studies
BEST_FILE = "best.json"  # in an export folder: trial id, iteration, metric and its value
logger = logging.getLogger(__name__)


def export_dir(storage_dir: str | os.PathLike, experiment: str, method: str, seed: int) -> Path:
    """Where a study's export goes: the results directory is ``storage_dir``'s parent (the runner keeps
    Tune's runs in ``<results>/_tune``)."""
    return study_dir(Path(storage_dir).parent, EXPORTS, experiment, method, seed)


def _better(value: float, best: float | None, mode: str) -> bool:
    return best is None or (value > best if mode == "max" else value < best)


class ExportBest(Callback):
    """Calls ``export(checkpoint_dir, dest_dir)`` on each checkpoint whose report is the study's best so far.

    A non-finite or missing metric value never counts as best. A failing hook is logged (with its
    traceback, in the Ray/Tune log) and leaves the previous export in place; the study goes on.
    """

    def __init__(self, export: Callable[[str, str], Any], dest: str | os.PathLike, metric: str, mode: str) -> None:
        if not callable(export):
            raise ValueError(f"export must be callable, got {type(export).__name__}")
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        self.export, self.dest, self.metric, self.mode = export, Path(dest), metric, mode
        self.best: float | None = None

    def get_state(self) -> dict[str, Any]:
        return {"best": self.best}

    def set_state(self, state: dict[str, Any]) -> None:
        self.best = state.get("best")

    def on_trial_result(self, iteration, trials, trial, result, **info):
        # a function trainable's checkpoint is on disk before its report arrives, which names its folder; the
        # report that exhausts a study's budget never reaches on_checkpoint (the study stops first)
        value, name = result.get(self.metric), result.get(CHECKPOINT_DIR_NAME)
        if not name or not isinstance(value, int | float) or not math.isfinite(value):
            return
        if not _better(value, self.best, self.mode):
            return
        path = os.path.join(trial.storage.trial_fs_path, name)
        if not os.path.isdir(path):  # not a local (or shared) storage folder: nothing to read here
            logger.warning("export: checkpoint %s of trial %s is not a local folder; not exported", path,
                           trial.trial_id)
            return
        self.dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.dest.parent / f".{self.dest.name}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        try:
            self.export(path, str(tmp))
            info_ = {"trial_id": trial.trial_id, "iteration": result.get(protocol.ITERATION),
                     "metric": self.metric, "mode": self.mode, "value": float(value)}
            (tmp / BEST_FILE).write_text(json.dumps(info_, indent=1, sort_keys=True) + "\n")
        except Exception:  # noqa: BLE001 - a failed export must not end the study
            logger.exception("export of trial %s (%s = %s) failed; the previous export stays", trial.trial_id,
                             self.metric, value)
            shutil.rmtree(tmp, ignore_errors=True)
            return
        old = self.dest.parent / f".{self.dest.name}.old"
        shutil.rmtree(old, ignore_errors=True)
        if self.dest.exists():
            self.dest.rename(old)
        tmp.rename(self.dest)
        shutil.rmtree(old, ignore_errors=True)
        self.best = float(value)
