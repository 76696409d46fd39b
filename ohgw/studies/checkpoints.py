"""A study's checkpoints on disk: those a running trial or a restore can still need, and no others.

Tune keeps one checkpoint per trial (``CheckpointConfig(num_to_keep=1)``, :data:`CHECKPOINTS_KEPT`)
and snapshots the experiment state after every registered checkpoint. But it deletes the previous
checkpoint as it registers the next one, *before* that snapshot is written and copied (in the
background) to the run folder: a driver killed in between leaves a stored state that names a deleted
checkpoint, and the study cannot resume. The same holds for an ended trial whose checkpoints are
deleted while the stored state still shows it running.

:class:`KeepRestorable` closes both windows. Before Tune registers a trial's new checkpoint it
hard-links the previous one into the trial folder's :data:`RETIRED` folder (no bytes copied); an ended
trial's checkpoints are moved there at once. A retired checkpoint is deleted as soon as the stored
state no longer names it: normally at the next snapshot, milliseconds later. So a trial holds its
latest checkpoint, at most one retired one and, while it writes, the next; an ended trial holds
none once the stored state shows it ended. Before ``Tuner.restore``, :func:`unretire` moves back the
retired checkpoints that the stored state names.

Only a local (or shared-disk) storage folder is handled: on other file systems Tune's own deletion
stands and a resume can still meet a deleted checkpoint (it is then redone, with one log line).
"""

from __future__ import annotations

import glob
import json
import logging
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from ray.tune import Callback

CHECKPOINTS_KEPT = 1  # Tune's num_to_keep: the latest, which a paused trial resumes from and a failure is retried from
RETIRED = ".ohgw_retired"  # in a trial's folder: checkpoints Tune has let go of that a restore may still need
EXPERIMENT_STATE = "experiment_state-*.json"  # Tune's TuneController.CKPT_FILE_TMPL
ENDED = ("TERMINATED", "ERROR")
_CHECKPOINT_DIR = re.compile(r"checkpoint_\d+")  # Tune's checkpoint folders inside a trial's folder
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoredTrial:
    """One trial as the stored experiment state has it: its id, whether it ended, its latest checkpoint."""

    trial_id: str
    ended: bool
    checkpoint: str | None  # the folder name (checkpoint_<index>), None if it never checkpointed


def newest(run_dir: str | os.PathLike, pattern: str) -> Path | None:
    """Tune's choice among its session files: the largest name (the session's start time)."""
    found = glob.glob(os.path.join(glob.escape(str(run_dir)), pattern))
    return Path(max(found)) if found else None


def stored_trials(state: dict) -> dict[str, StoredTrial]:
    """The trials of a parsed experiment state, by trial folder name (raises on a state it cannot read)."""
    from ray.tune.experiment import Trial

    out = {}
    for js, meta in state["trial_data"]:
        trial = Trial.from_json_state(js, stub=True)
        ended = trial.status in ENDED
        name = None
        if not ended:
            trial.restore_run_metadata(meta)
            if trial.checkpoint is not None:
                name = os.path.basename(trial.checkpoint.path.rstrip("/"))
        out[trial.storage.trial_dir_name] = StoredTrial(trial.trial_id, ended, name)
    return out


def _index(name: str) -> int:
    return int(name.rsplit("_", 1)[1])


def _is_checkpoint(entry: os.DirEntry) -> bool:
    return entry.is_dir() and _CHECKPOINT_DIR.fullmatch(entry.name) is not None


def _delete(path: str) -> bool:
    try:
        shutil.rmtree(path)
        return True
    except OSError:  # already gone, or being written by a trial stopped mid-epoch: the final sweep gets it
        return False


def drop_checkpoint_dirs(trial_dir: str) -> int:
    """Delete the checkpoint folders of one trial folder, retired ones included; returns how many."""
    if not os.path.isdir(trial_dir):
        return 0
    dropped = sum(_delete(e.path) for e in os.scandir(trial_dir) if _is_checkpoint(e))
    retired = os.path.join(trial_dir, RETIRED)
    if os.path.isdir(retired):
        dropped += sum(_delete(e.path) for e in os.scandir(retired) if _is_checkpoint(e))
        shutil.rmtree(retired, ignore_errors=True)
    return dropped


def sweep_checkpoints(run_dir: str) -> int:
    """Delete every checkpoint folder of a finished study's Tune folder; returns how many."""
    if not os.path.isdir(run_dir):
        return 0
    return sum(drop_checkpoint_dirs(e.path) for e in os.scandir(run_dir) if e.is_dir())


def _link_tree(src: str, dst: str) -> None:
    """``dst`` as a copy of the folder ``src`` made of hard links (a plain copy where links fail)."""
    tmp = f"{dst}.{os.getpid()}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        shutil.copytree(src, tmp, copy_function=os.link)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(src, tmp)
    shutil.rmtree(dst, ignore_errors=True)
    os.replace(tmp, dst)


def unretire(run_dir: str | os.PathLike) -> int:
    """Before a restore: move back every retired checkpoint that the stored state names; returns how many.

    Also drops the checkpoints that are newer than the stored state's (written after its snapshot):
    the restored trial writes them again.
    """
    path = newest(run_dir, EXPERIMENT_STATE)
    if path is None:
        return 0
    moved = 0
    for dir_name, t in stored_trials(json.loads(path.read_text())).items():
        trial_dir = os.path.join(run_dir, dir_name)
        if t.ended or t.checkpoint is None or not os.path.isdir(trial_dir):
            continue
        kept = os.path.join(trial_dir, t.checkpoint)
        retired = os.path.join(trial_dir, RETIRED, t.checkpoint)
        if not os.path.isdir(kept) and os.path.isdir(retired):
            os.replace(retired, kept)
            moved += 1
        for e in os.scandir(trial_dir):
            if _is_checkpoint(e) and _index(e.name) > _index(t.checkpoint):
                _delete(e.path)
        shutil.rmtree(os.path.join(trial_dir, RETIRED), ignore_errors=True)
    return moved


class KeepRestorable(Callback):
    """Keeps the checkpoints a restore from the stored experiment state needs (module doc).

    ``every_s``: how often, at most, a step looks for retired checkpoints to delete (besides each
    checkpoint and each trial end).
    """

    def __init__(self, every_s: float = 1.0):
        if every_s < 0:
            raise ValueError(f"every_s must be >= 0, got {every_s}")
        self.every_s = every_s
        self._run_dir: str | None = None
        self._retired: set[str] = set()  # trial folders holding a retired checkpoint
        self._seen: tuple | None = None  # (path, mtime, size) of the stored state last pruned against
        self._last = 0.0

    def __getstate__(self) -> dict:  # pickled into tuner.pkl: nothing of a run
        return {"every_s": self.every_s}

    def __setstate__(self, state: dict) -> None:
        self.__init__(**state)

    @staticmethod
    def _local(trial) -> bool:
        return trial.storage.storage_filesystem.type_name == "local"

    def _retire(self, trial, src: str, link: bool) -> None:
        dst = os.path.join(trial.storage.trial_fs_path, RETIRED, os.path.basename(src.rstrip("/")))
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        if link:
            _link_tree(src, dst)
        else:
            shutil.rmtree(dst, ignore_errors=True)
            os.replace(src, dst)
        self._retired.add(trial.storage.trial_fs_path)
        self._run_dir = trial.storage.experiment_fs_path

    def on_checkpoint(self, iteration, trials, trial, checkpoint, **info):
        # called before Tune registers ``checkpoint`` and deletes the trial's previous one
        try:
            previous = trial.checkpoint
            if previous is not None and self._local(trial) and os.path.isdir(previous.path) \
                    and previous.path.rstrip("/") != checkpoint.path.rstrip("/"):
                self._retire(trial, previous.path, link=True)
            self.prune()
        except Exception:  # housekeeping: Tune would turn an exception here into a trial failure
            logger.warning("could not keep the previous checkpoint of trial %s", trial, exc_info=True)

    def on_trial_complete(self, iteration, trials, trial, **info):
        # TERMINATED: it never runs again (a failure that is retried never becomes TERMINATED)
        try:
            if self._local(trial) and os.path.isdir(trial.storage.trial_fs_path):
                for e in list(os.scandir(trial.storage.trial_fs_path)):
                    if _is_checkpoint(e):
                        self._retire(trial, e.path, link=False)
            self.prune()
        except Exception:
            logger.warning("could not retire the checkpoints of ended trial %s", trial, exc_info=True)

    def on_step_end(self, iteration, trials, **info):
        now = time.monotonic()
        if self._retired and now - self._last >= self.every_s:
            self._last = now
            try:
                self.prune()
            except Exception:
                logger.warning("could not delete retired checkpoints", exc_info=True)

    def prune(self) -> int:
        """Delete the retired checkpoints that the stored experiment state does not name; returns how many."""
        if not self._retired or self._run_dir is None:
            return 0
        path = newest(self._run_dir, EXPERIMENT_STATE)
        if path is None:
            return 0
        try:
            st = path.stat()
            key = (str(path), st.st_mtime_ns, st.st_size)
            if key == self._seen:
                return 0
            stored = stored_trials(json.loads(path.read_text()))
        except Exception:  # noqa: BLE001 - being copied to the run folder right now: next time
            return 0
        self._seen = key
        deleted = 0
        for trial_dir in sorted(self._retired):
            t = stored.get(os.path.basename(trial_dir))
            if t is None:
                continue  # not in the stored state yet: it may still need what it retired
            retired = os.path.join(trial_dir, RETIRED)
            left = 0
            for e in list(os.scandir(retired)) if os.path.isdir(retired) else []:
                if _is_checkpoint(e) and (t.ended or e.name != t.checkpoint):
                    deleted += _delete(e.path)
                else:
                    left += 1
            if not left:
                self._retired.discard(trial_dir)
        return deleted
