"""The checkpoint housekeeping of a study (:mod:`ohgw.studies.checkpoints`) on hand-made trial folders.

The real-Tune side (no stored state ever names a deleted checkpoint, at every registered checkpoint of
real studies; and the control without the housekeeping) is in ``test_studies_disk.py``.
"""

from __future__ import annotations

import pickle

import pytest

from ohgw.studies import checkpoints
from ohgw.studies.checkpoints import RETIRED, KeepRestorable, StoredTrial


def _ckpt(path, epoch: int):
    path.mkdir(parents=True)
    (path / "state.json").write_text(str(epoch))


def _layout(tmp_path, monkeypatch, stored: dict):
    run = tmp_path / "run"
    run.mkdir()
    (run / "experiment_state-2026-11-29_10-00-00.json").write_text('{"trial_data": []}')
    monkeypatch.setattr(checkpoints, "stored_trials", lambda state: stored)
    return run


def test_unretire_moves_back_the_named_checkpoint_and_drops_the_newer_ones(tmp_path, monkeypatch):
    run = _layout(tmp_path, monkeypatch, {
        "t0": StoredTrial("t0", ended=False, checkpoint="checkpoint_000003"),
        "t1": StoredTrial("t1", ended=True, checkpoint=None),
        "t2": StoredTrial("t2", ended=False, checkpoint="checkpoint_000009"),
    })
    _ckpt(run / "t0" / RETIRED / "checkpoint_000003", 3)  # Tune let go of it; the stored state names it
    _ckpt(run / "t0" / RETIRED / "checkpoint_000002", 2)
    _ckpt(run / "t0" / "checkpoint_000004", 4)  # written after the stored snapshot: redone after the restore
    _ckpt(run / "t0" / "checkpoint_000010", 10)  # the index is compared as a number
    _ckpt(run / "t1" / RETIRED / "checkpoint_000005", 5)  # an ended trial: not restored, left to the sweep
    _ckpt(run / "t2" / "checkpoint_000009", 9)  # on disk already: stays
    assert checkpoints.unretire(run) == 1
    assert sorted(p.name for p in (run / "t0").iterdir()) == ["checkpoint_000003"]
    assert (run / "t0" / "checkpoint_000003" / "state.json").read_text() == "3"
    assert (run / "t1" / RETIRED / "checkpoint_000005").is_dir()
    assert sorted(p.name for p in (run / "t2").iterdir()) == ["checkpoint_000009"]
    # the sweep of a finished study takes every checkpoint, retired ones too
    assert checkpoints.sweep_checkpoints(str(run)) == 3
    assert not list(run.rglob("checkpoint_*")) and not (run / "t1" / RETIRED).exists()


def test_unretire_without_a_stored_state_does_nothing(tmp_path):
    _ckpt(tmp_path / "t0" / RETIRED / "checkpoint_000001", 1)
    assert checkpoints.unretire(tmp_path) == 0
    assert (tmp_path / "t0" / RETIRED / "checkpoint_000001").is_dir()


def test_link_tree_copies_a_checkpoint_without_copying_its_bytes(tmp_path):
    src = tmp_path / "checkpoint_000001"
    _ckpt(src, 1)
    (src / "sub").mkdir()
    (src / "sub" / "w.bin").write_bytes(b"\1" * 1000)
    dst = tmp_path / RETIRED / "checkpoint_000001"
    dst.parent.mkdir()
    checkpoints._link_tree(str(src), str(dst))
    assert (dst / "sub" / "w.bin").read_bytes() == b"\1" * 1000
    assert (dst / "sub" / "w.bin").stat().st_ino == (src / "sub" / "w.bin").stat().st_ino  # a hard link
    checkpoints._delete(str(src))  # what Tune does next: the retired copy keeps the data
    assert (dst / "state.json").read_text() == "1"


def test_the_callback_pickles_without_run_state_and_checks_its_argument():
    cb = KeepRestorable(every_s=2.5)
    cb._retired.add("/somewhere/t0")
    back = pickle.loads(pickle.dumps(cb))
    assert back.every_s == 2.5 and back._retired == set() and back._run_dir is None
    with pytest.raises(ValueError, match="every_s"):
        KeepRestorable(every_s=-1)
