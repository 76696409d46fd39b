"""Disk stays bounded: a study's trials keep only the checkpoints Tune can still need.

Real (small) studies through :func:`ohgw.studies.study.run_study`, one to four concurrent trials each,
with a trainable that checkpoints every epoch. A watcher (the study's recorder, extended) looks
at the trial folders each time Tune has registered a checkpoint (``on_trial_save``).
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
import time
from pathlib import Path

import pytest

from ohgw.space import SearchSpace
from ohgw.studies import checkpoints, resume, study
from ohgw.studies.checkpoints import CHECKPOINTS_KEPT, RETIRED
from ohgw.studies.study import ExperimentConfig, run_study

pytestmark = pytest.mark.ray

CKPT = re.compile(r"checkpoint_\d+")


def epoch_trainable(config: dict) -> None:
    """Checkpoints every epoch; reports its *own* epoch as trial_epoch_equiv (a restart from scratch shows).

    The earlier a trial was created, the better its curve: trial 0 leads every rung, so it is never
    cut, and under PASHA it pauses at rung 1 (too few trials there to promote any) until the third
    trial reaches the rung, which promotes it: it resumes from its checkpoint.

    With ``fail_dir`` set, trial index 0 raises once at epoch 3, before reporting it (Tune retries it).
    With ``barrier_dir`` set, a fresh trial waits before its first epoch until ``barrier_n`` trials have
    started (a bounded wait, :data:`BARRIER_S`): that many run at once, however busy the machine.
    """
    import ray
    from ray import tune

    start = 0
    ckpt = tune.get_checkpoint()
    if ckpt is not None:
        with ckpt.as_directory() as d, open(os.path.join(d, "state.json")) as f:
            start = json.load(f)["epoch"]
    ceiling = 0.9 - 0.05 * config["trial_index"]
    if config.get("barrier_dir") and start == 0:
        _wait_for_peers(config["barrier_dir"], config["trial_index"], int(config["barrier_n"]))
    node = ray.get_runtime_context().get_node_id()
    for epoch in range(start + 1, int(config["max_t"]) + 1):
        time.sleep(0.02)
        marker = os.path.join(config.get("fail_dir") or "", "failed")
        if config.get("fail_dir") and config["trial_index"] == 0 and epoch == 3 and not os.path.exists(marker):
            Path(marker).touch()
            raise RuntimeError("one injected failure")
        acc = ceiling * (1 - math.exp(-epoch / 2.0))
        with tempfile.TemporaryDirectory() as d:
            with open(os.path.join(d, "state.json"), "w") as f:
                json.dump({"epoch": epoch}, f)
            with open(os.path.join(d, "weights.bin"), "wb") as f:
                f.write(b"\0" * 10_000)
            time.sleep(float(config.get("save_s", 0.0)))  # a slow checkpoint save, when asked
            tune.report(
                {"val_acc": acc, "test_acc": acc, "val_loss": 1 - acc, "train_loss": 1 - acc, "epoch_s": 0.02,
                 "trial_compute_s": 0.02 * epoch, "trial_epoch_equiv": float(epoch), "ws_compute_s": 0.0,
                 "node_id": node, "diverged": False, "peak_rss_mib": 1.0},
                checkpoint=tune.Checkpoint.from_directory(d),
            )


BARRIER_S = 120.0  # the longest a trial waits for its peers; the test then fails on its precondition


def _wait_for_peers(folder: str, index: int, n: int) -> None:
    """A file barrier across trial actors: mark this trial started, wait until ``n`` trials have."""
    Path(folder, f"started-{index}").touch()
    deadline = time.monotonic() + BARRIER_S
    while len(os.listdir(folder)) < n and time.monotonic() < deadline:
        time.sleep(0.02)


def _ckpt_dirs(trial_dir: str) -> int:
    """Checkpoint folders of one trial on disk: Tune's and those retired (kept for a restore)."""
    n = 0
    for d in (trial_dir, os.path.join(trial_dir, RETIRED)):
        if os.path.isdir(d):
            n += sum(1 for e in os.scandir(d) if e.is_dir() and CKPT.fullmatch(e.name))
    return n


def _stored(run_dir: str):
    """The stored experiment state: (its trials by folder, the unfinished trials whose named checkpoint is gone)."""
    path = checkpoints.newest(run_dir, checkpoints.EXPERIMENT_STATE)
    if path is None:
        return {}, []
    # the driver's background thread may be copying the snapshot right now (not atomic: an empty or cut file
    # for a few ms): read it again until it parses, a bounded number of times
    for _ in range(100):
        try:
            state = json.loads(path.read_text())
            break
        except json.JSONDecodeError:
            time.sleep(0.01)
    else:
        raise AssertionError(f"{path} did not parse for 1 s")
    return checkpoints.stored_trials(state), resume._missing_checkpoints(Path(run_dir), state)


class _Watch(study.StudyRecorder):
    """The recorder, plus: after each registered checkpoint (Tune has just deleted the trial's previous one,
    and not yet stored the snapshot naming the new one), the checkpoint folders on disk and what the
    stored experiment state names: what a driver killed at that moment leaves behind."""

    seen: list = []
    max_running = 0
    shown_ended: set = set()  # the ended trials the stored state showed ended at the previous save

    def on_trial_save(self, iteration, trials, trial, **info):
        own = _ckpt_dirs(trial.storage.trial_fs_path)
        stored, missing = _stored(trial.storage.experiment_fs_path)
        ended = [t for t in trials if t.status == "TERMINATED"]
        # an ended trial's checkpoints go once the stored state shows it ended: at the next prune, which
        # KeepRestorable runs at every checkpoint, so by the next save (the snapshot that shows it may be
        # written just before this save, after that checkpoint's prune: seen with 4 trials and slow saves).
        # A trial the stored state does not name yet keeps them (a restore may need them), until the study's end
        ended_stored = sum(_ckpt_dirs(t.storage.trial_fs_path) for t in ended
                           if t.storage.trial_dir_name in _Watch.shown_ended)
        _Watch.shown_ended = {t.storage.trial_dir_name for t in ended
                              if t.storage.trial_dir_name in stored and stored[t.storage.trial_dir_name].ended}
        live = sum(_ckpt_dirs(t.storage.trial_fs_path) for t in trials if t.status != "TERMINATED")
        _Watch.seen.append((own, ended_stored, live, missing))
        self._note_running(trials)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        super().on_trial_result(iteration, trials, trial, result, **info)
        self._note_running(trials)

    @staticmethod
    def _note_running(trials) -> None:
        _Watch.max_running = max(_Watch.max_running, sum(t.status == "RUNNING" for t in trials))


def _run(method: str, tmp_path, monkeypatch, **kw):
    monkeypatch.setattr(study, "StudyRecorder", _Watch)
    _Watch.seen, _Watch.max_running, _Watch.shown_ended = [], 0, set()
    base = dict(experiment="disk", space=SearchSpace.from_bounds({"lr": (1e-3, 1.0, "log10")}), base_config={},
                max_t=10, grace_period=1, reduction_factor=3, trials_per_study=2, cpus_per_trial=1.0, tau=0.5)
    base.update(kw)
    tables = run_study(ExperimentConfig(**base), epoch_trainable, method, 0, str(tmp_path))
    return tables, list(_Watch.seen)


def _check_bounded(seen, tmp_path, trials: int, running: int = 2):
    assert seen, "no checkpoint was registered"
    # the stored state never names a checkpoint that is gone: a kill at any of these moments is resumable
    assert [m for *_, m in seen if m] == []
    # a trial keeps only its latest checkpoint, and the one the stored state names until the next snapshot ...
    assert max(own for own, *_ in seen) <= CHECKPOINTS_KEPT + 1
    # ... an ended trial none, once the stored state has shown it ended (by the next save: _Watch) ...
    assert max(ended for _, ended, _, _ in seen) == 0
    # ... so a study holds at most two per trial it still holds (running or paused), plus the one
    # each running trial may be writing before Tune registers it
    assert max(live for _, _, live, _ in seen) <= trials * (CHECKPOINTS_KEPT + 1) + running
    # and a finished study none at all
    assert not [p for p in tmp_path.rglob("checkpoint_*") if p.is_dir()]


def _no_restarts(it):
    # the trainable's own epoch is Tune's epoch on every row: no trial restarted from epoch 1
    assert (it["trial_epoch_equiv"] == it["epoch"]).all()
    for _, rows in it.groupby("trial_id"):
        assert list(rows.sort_values("epoch")["epoch"]) == list(range(1, len(rows) + 1))


def test_four_trials_at_once_with_slow_saves_never_leave_a_dead_reference(ray_local, tmp_path, monkeypatch):
    # ASHA keeps only the latest checkpoint of its running trials (and the one the stored state names), ended
    # trials none, a finished study none, and no trial restarts: the checks of a plain two-trial ASHA study,
    # here on the harder case (4 at once, slow saves), which asserts each of them
    # 4 concurrent trials (0.5 CPU each on the 2-CPU Ray), each checkpoint save taking 0.15 s; the first 4 wait
    # for each other before their first epoch, so the 4 really run at once even on a busy machine. The budget
    # (20 epochs) outlasts the 4 trials run to max_t (16), so a 5th trial starts whatever order the 4 reach
    # ASHA's rung in (worst first, as a busy machine may have it, stops none of them)
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    tables, seen = _run("asha", tmp_path / "run", monkeypatch, budget=20.0, max_t=4, trials_per_study=4,
                        cpus_per_trial=0.5, base_config={"save_s": 0.15, "barrier_dir": str(barrier), "barrier_n": 4})
    it = tables["iterations"]
    assert len(os.listdir(barrier)) >= 4, "fewer than 4 trials started"
    assert it["trial_id"].nunique() >= 5 and it["epoch"].max() >= 3
    assert _Watch.max_running == 4, "the 4 trials were never RUNNING at once (precondition)"
    _check_bounded(seen, tmp_path / "run", trials=4, running=4)
    _no_restarts(it)


def test_a_retried_failure_resumes_from_the_kept_checkpoint(ray_local, tmp_path, monkeypatch):
    fail_dir = tmp_path / "fail"
    fail_dir.mkdir()
    # one trial at a time, so that no other trial spends the budget while trial 0 is retried
    tables, seen = _run("asha", tmp_path / "tune", monkeypatch, budget=6.0, max_t=4, trials_per_study=1,
                        base_config={"fail_dir": str(fail_dir)})
    it = tables["iterations"]
    # trial 0 failed once before reporting epoch 3, was retried from its epoch-2 checkpoint and ran on
    assert (fail_dir / "failed").exists() and it.loc[it["trial_index"] == 0, "epoch"].max() == 4
    _no_restarts(it)
    _check_bounded(seen, tmp_path / "tune", trials=1, running=1)


def test_pasha_paused_trials_keep_their_rung_checkpoint_and_resume_from_it(ray_local, tmp_path, monkeypatch):
    tables, seen = _run("pasha", tmp_path, monkeypatch, budget=10.0)
    it = tables["iterations"].sort_values(["trial_id", "epoch"])
    # some trial paused at a rung and later ran on from it (promoted): it resumed from its checkpoint
    nxt = it.groupby("trial_id")["epoch"].shift(-1)
    assert ((it["decision"] == "PAUSE") & (nxt == it["epoch"] + 1)).any()
    _check_bounded(seen, tmp_path, trials=it["trial_id"].nunique())
    _no_restarts(it)
    assert set(tables["trials"]["status"]) <= {"COMPLETED", "PRUNED", "STOPPED_BY_BUDGET"}


def test_without_keeping_them_the_stored_state_names_deleted_checkpoints(ray_local, tmp_path, monkeypatch):
    """The control: with Tune's deletion alone, a kill right after a checkpoint leaves a state that names
    a deleted checkpoint (the window that made a SIGKILLed study unresumable now and then)."""
    from ray.tune import Callback

    monkeypatch.setattr(study, "KeepRestorable", Callback)
    _, seen = _run("asha", tmp_path, monkeypatch, budget=6.0, max_t=4, trials_per_study=1)
    assert [m for *_, m in seen if m], "Tune kept every checkpoint its stored state names"
