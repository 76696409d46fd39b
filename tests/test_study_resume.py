"""An interrupted study resumes where it stopped (issue 10 §2), and an interrupted experiment reruns each study
exactly once: SIGKILL of the driver mid-study, then the same command again. The resumed study's decisions and
Parquet rows equal an uninterrupted run's; the studies done before the kill are kept bit for bit.

The trainable (:func:`harness_trainables.resume_trainable`) is deterministic on the epochs clock and
one trial runs at a time, so two uninterrupted runs of a study are equal row for row (asserted below
too: without it the comparison would prove nothing). Compared are every column but the wall clock,
Tune's random trial ids and the node id; the studies row differs in ``resumes`` (1) only, apart from
times. Run as a script, this module is the driver that the tests kill (a process of its own, with its own
local Ray, killed with it); the rerun is the same experiment through the same runner, here on the suite's
shared Ray (a process of its own would add only another Ray start).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

HERE = Path(__file__).parent
if str(HERE) not in sys.path:  # as a script (the killed driver) and for the Ray workers
    sys.path.insert(0, str(HERE))

from ohgw.results import read_table, study_dir  # noqa: E402
from ohgw.space import SearchSpace  # noqa: E402
from ohgw.studies import checkpoints, resume, study  # noqa: E402
from ohgw.studies.runner import run_experiment, tune_run_dir  # noqa: E402
from ohgw.studies.study import ExperimentConfig  # noqa: E402
from ohgw.warmstart import WarmStartSettings  # noqa: E402

import harness_trainables  # noqa: E402
from harness_trainables import resume_trainable  # noqa: E402

pytestmark = pytest.mark.ray

SPACE = SearchSpace.from_bounds({"lr": (1e-3, 1.0, "log10")})
TIMES = {"wall_s", "start_wall_s", "end_wall_s", "start_ts", "end_ts", "node_id", "trial_id", "study_id"}


def config(method: str = "asha+ohgw", **kw) -> ExperimentConfig:
    base = dict(experiment="resume-test", space=SPACE, base_config={"epoch_s": 0.05}, max_t=9, grace_period=1,
                reduction_factor=2, budget=14.0, tau=0.5, trials_per_study=1,
                warm_start=WarmStartSettings(step_rule="normalized", eta_h=0.2))
    base.update(kw)
    return ExperimentConfig(**base)


@pytest.fixture(scope="module")
def ray_here(ray_local):
    import ray

    ray.cloudpickle.register_pickle_by_value(harness_trainables)  # the workers cannot import tests/
    yield ray_local
    ray.cloudpickle.unregister_pickle_by_value(harness_trainables)


def _comparable(out: Path, method: str) -> dict[str, pd.DataFrame]:
    """The three tables of ``method``'s study without wall-clock columns and Tune's random trial ids, in a
    stable order."""
    out_tables = {}
    for name, order in (("iterations", ["trial_index", "epoch"]), ("trials", ["trial_index"]), ("studies", [])):
        df = read_table(out, name)
        df = df[df["method"] == method]
        df = df.drop(columns=[c for c in df.columns if c in TIMES or c.endswith("_time")])
        out_tables[name] = df.sort_values(order).reset_index(drop=True) if order else df.reset_index(drop=True)
    return out_tables


def _assert_same_study(resumed: dict, reference: dict, resumes: int) -> None:
    for name in ("iterations", "trials"):
        pd.testing.assert_frame_equal(resumed[name], reference[name], check_like=True, obj=name)
    a, b = resumed["studies"].iloc[0], reference["studies"].iloc[0]
    assert (int(a["resumes"]), int(b["resumes"])) == (resumes, 0)
    for col in ("epoch_equiv", "compute_s", "n_trials", "budget_exhausted", "completed"):
        assert a[col] == b[col], col


def _driver(out: Path, methods: list[str], hold: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": f"{HERE}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           "RAY_AUTH_MODE": "disabled", harness_trainables.HOLD_ENV: str(hold)}
    return subprocess.Popen([sys.executable, str(Path(__file__)), str(out), ",".join(methods)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)


def _mark(method: str) -> dict:
    return resume.marker(study.study_id("resume-test", method, 0), method, 0, config(method).fingerprint())


def _study_file(out: Path, method: str) -> Path:
    return study_dir(out, "studies", "resume-test", method, 0) / "part-0.parquet"


def _kill_after(out: Path, methods: list[str], held: str, k: int) -> None:
    """Run the experiment (``methods`` x seed 0) in a driver process and SIGKILL it (and its local Ray) once
    study ``held`` has made ``k`` reports and every other study is done.

    The trainable holds ``held``'s (k+1)-th report (:func:`harness_trainables._hold_before_report`), so the
    kill lands while the driver waits, after the k-th report's checkpoint and snapshot were stored; the
    other studies (run beside it) are not held. (A kill in the milliseconds around a snapshot is a
    separate matter: a checkpoint the stored snapshot names is never deleted, see ``tests/test_studies_disk.py``.)
    """
    hold = out.parent / "hold"
    hold.write_text(f"{k + 1} {held}")
    t0 = time.time()
    proc = _driver(out, methods, hold)
    run_dir = tune_run_dir(out / "_tune", config(held), held, 0)
    others = [_study_file(out, m) for m in methods if m != held]
    deadline = time.time() + 240
    while (not Path(f"{hold}.held").exists() or not all(p.exists() for p in others)
           or resume.inspect(run_dir, _mark(held)).action != "resume"):
        assert proc.poll() is None, proc.stderr.read().decode()[-3000:]
        assert time.time() < deadline, f"the driver never got to {k} reports, a restorable state and the other studies done"
        time.sleep(0.05)
    print(f"driver: {held} held at report {k + 1} and {len(others)} other studies done {time.time() - t0:.1f} s "
          "after its start")
    time.sleep(0.5)  # the driver's background copy of its last snapshot, if one was still going
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # the local Ray it started goes with it
    hold.unlink()
    assert not _study_file(out, held).exists(), "the kill must land mid-study"


def _study_files(out: Path) -> dict[str, str]:
    return {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(out.glob("*/experiment=*/method=*/seed=*/part-0.parquet"))}


@pytest.fixture(scope="module")
def reference(ray_here, tmp_path_factory):
    """Uninterrupted runs, per method, through the same runner."""
    cache = {}

    def get(method: str) -> dict:
        if method not in cache:
            out = tmp_path_factory.mktemp(f"ref-{method.replace('+', '_')}")
            summary = run_experiment(config(method), resume_trainable, [method], [0], out, quiet=True)
            assert summary.ran == 1 and not summary.failed
            cache[method] = _comparable(out, method)
        return cache[method]

    return get


def _sigkill_and_resume(methods: list[str], held: str, tmp_path, reference, k: int) -> dict:
    """Kill the driver of ``methods`` mid-study ``held`` (the others done), run the same experiment again:
    the done studies are kept bit for bit, ``held`` resumes and equals its uninterrupted run."""
    out = tmp_path / "results"
    _kill_after(out, methods, held, k)
    run_dir = tune_run_dir(out / "_tune", config(held), held, 0)
    found = resume.inspect(run_dir, _mark(held))
    assert found.action == "resume", found.reason
    before = _study_files(out)
    n_done = len(methods) - 1
    assert len([k for k in before if k.startswith("studies/")]) == n_done
    err = io.StringIO()
    t0 = time.time()
    summary = run_experiment(config(held), resume_trainable, methods, [0], out, quiet=True, stream=err)
    print(f"rerun: {time.time() - t0:.1f} s")
    assert summary.ran == 1 and summary.skipped == n_done and not summary.failed, err.getvalue()
    if n_done:
        assert f"resuming: {n_done} completed studies kept, 1 to run" in err.getvalue()
    after = _study_files(out)
    assert {k: v for k, v in after.items() if k in before} == before  # completed studies are bit-identical
    assert len(after) == 3 * len(methods)
    st, tr = read_table(out, "studies"), read_table(out, "trials")
    assert sorted(st["method"]) == sorted(methods) and not st.duplicated(["method", "seed"]).any()
    assert set(tr["method"]) == set(methods) and not tr.duplicated(["method", "seed", "trial_id"]).any()
    resumed = _comparable(out, held)
    _assert_same_study(resumed, reference(held), resumes=1)
    return resumed


def test_driver_killed_mid_experiment_keeps_done_studies_and_resumes_the_killed_one_with_equal_rows(tmp_path, reference):
    # ASHA (not held) runs beside ASHA+OHGW and is done; the driver is killed during ASHA+OHGW's 8th report
    resumed = _sigkill_and_resume(["asha", "asha+ohgw"], "asha+ohgw", tmp_path, reference, k=7)
    it, tr = resumed["iterations"], resumed["trials"]
    # the comparison means something: trials were cut at rungs, warm-starts moved x, the budget ended the study
    assert {"STOP", "CONTINUE"} <= set(it["decision"]) and tr["trial_index"].nunique() >= 4
    assert (tr["x_prime.lr"] != tr["x.lr"]).all() and (tr["ws_mode"] == "hypergrad").all()
    assert "STOPPED_BY_BUDGET" in set(tr["status"])


@pytest.mark.slow
def test_pasha_study_killed_mid_study_resumes_with_equal_decisions_and_rows(tmp_path, reference):
    resumed = _sigkill_and_resume(["pasha"], "pasha", tmp_path, reference, k=9)
    assert "PAUSE" in set(resumed["iterations"]["decision"])


# ---- in-process: the on-disk state of a study at a moment mid-way, then resumed or redone ----------------
def _tables(tables: dict) -> dict[str, pd.DataFrame]:
    out = {}
    for name, order in (("iterations", ["trial_index", "epoch"]), ("trials", ["trial_index"]), ("studies", [])):
        df = tables[name].drop(columns=[c for c in tables[name].columns if c in TIMES or c.endswith("_time")])
        out[name] = df.sort_values(order).reset_index(drop=True) if order else df.reset_index(drop=True)
    return out


class _CopyAt(study.StudyRecorder):
    """The recorder, plus: at the k-th recorded report, a copy of the study's Tune folder as it is on disk
    then (what a driver killed at that moment leaves behind)."""

    k, dest = 0, None

    def on_trial_result(self, iteration, trials, trial, result, **info):
        super().on_trial_result(iteration, trials, trial, result, **info)
        src = Path(trial.storage.experiment_fs_path)
        # (restored from tuner.pkl, this class comes back by value, with k and dest: copy once only)
        if len(self.rows) == _CopyAt.k and _CopyAt.dest is not None and not (_CopyAt.dest / src.name).exists():
            shutil.copytree(src, _CopyAt.dest / src.name)


@pytest.fixture(scope="module")
def pasha_midway(ray_here, tmp_path_factory):
    """An uninterrupted PASHA study, and copies of its Tune folder taken after its 8th report."""
    mp = pytest.MonkeyPatch()
    mp.setattr(study, "StudyRecorder", _CopyAt)
    copy = tmp_path_factory.mktemp("midway")
    _CopyAt.k, _CopyAt.dest = 8, copy
    try:
        tables = study.run_study(config("pasha"), resume_trainable, "pasha", 0, str(tmp_path_factory.mktemp("full")))
    finally:
        mp.undo()
        _CopyAt.dest = None
    return _tables(tables), copy


def _copy_of(midway: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "tune"
    shutil.copytree(midway, dest)
    return dest


def test_pasha_study_resumes_from_its_midway_state_with_equal_decisions_and_rows(pasha_midway, tmp_path, caplog):
    reference, midway = pasha_midway
    storage = _copy_of(midway, tmp_path)
    run_dir = tune_run_dir(storage, config("pasha"), "pasha", 0)
    assert resume.inspect(run_dir, _mark("pasha")).action == "resume"
    with caplog.at_level(logging.INFO, logger="ohgw.studies.study"):
        resumed = _tables(study.run_study(config("pasha"), resume_trainable, "pasha", 0, str(storage)))
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and r.name.startswith("ohgw")] == []
    _assert_same_study(resumed, reference, resumes=1)
    assert "PAUSE" in set(resumed["iterations"]["decision"])  # trials paused at rungs and were promoted
    assert (resumed["iterations"].groupby("trial_index")["epoch"].max() > 1).sum() >= 2
    # its tables are kept beside the Tune state until exported: run again, they come back as they are
    again = _tables(study.run_study(config("pasha"), resume_trainable, "pasha", 0, str(storage)))
    pd.testing.assert_frame_equal(again["iterations"], resumed["iterations"])


def test_a_corrupt_tune_state_is_redone_with_one_log_line(pasha_midway, tmp_path, caplog):
    reference, midway = pasha_midway
    storage = _copy_of(midway, tmp_path)
    run_dir = tune_run_dir(storage, config("pasha"), "pasha", 0)
    state = next(run_dir.glob("experiment_state-*.json"))
    state.write_bytes(state.read_bytes()[: state.stat().st_size // 2])  # a write cut short
    with caplog.at_level(logging.INFO, logger="ohgw.studies.study"):
        redone = _tables(study.run_study(config("pasha"), resume_trainable, "pasha", 0, str(storage)))
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and r.name.startswith("ohgw")]
    assert len(lines) == 1, lines
    assert "cannot resume" in lines[0] and f"{state.name} is unreadable" in lines[0] and "redoing it from scratch" in lines[0]
    _assert_same_study(redone, reference, resumes=0)  # a redo from scratch is the uninterrupted study


@pytest.mark.parametrize("damage, reason", [
    ("no_state", "no experiment state was saved yet"),
    ("no_callbacks", "the callback states hold no study ledger"),
    ("gone_checkpoint", "are gone"),
    ("older_records", "newer than the study's records"),
    ("no_marker", "has no ohgw_study.json"),
])
def test_what_cannot_be_restored_is_named(pasha_midway, tmp_path, damage, reason):
    _, midway = pasha_midway
    run_dir = tune_run_dir(_copy_of(midway, tmp_path), config("pasha"), "pasha", 0)
    if damage == "no_state":
        for p in run_dir.glob("experiment_state-*.json"):
            p.unlink()
    elif damage == "no_callbacks":
        for p in run_dir.glob("callback-states-*.pkl"):
            p.unlink()
    elif damage == "gone_checkpoint":
        for p in [*run_dir.glob("*/checkpoint_*"), *run_dir.glob(f"*/{checkpoints.RETIRED}/checkpoint_*")]:
            shutil.rmtree(p)
    elif damage == "older_records":  # the callback states of an earlier snapshot: a report not recorded
        import pickle

        path = next(run_dir.glob("callback-states-*.pkl"))
        states = pickle.loads(path.read_bytes())
        for s in states.values():
            if isinstance(s, dict) and s.get("kind") == "ohgw-study-ledger":
                last = s["rows"].pop()
                s["last_epoch"][last["trial_id"]] = last["epoch"] - 1
        path.write_bytes(pickle.dumps(states))
    elif damage == "no_marker":
        (run_dir / resume.MARKER).unlink()
    found = resume.inspect(run_dir, _mark("pasha"))
    assert found.action == "redo" and reason in found.reason, found


def test_the_tune_state_of_another_experiment_is_refused_with_one_line(pasha_midway, tmp_path):
    _, midway = pasha_midway
    storage = _copy_of(midway, tmp_path)
    before = sorted((p, p.stat().st_size) for p in storage.rglob("*") if p.is_file())
    with pytest.raises(resume.StudyStateMismatch) as err:
        study.run_study(config("pasha", budget=15.0), resume_trainable, "pasha", 0, str(storage))
    msg = str(err.value)
    assert "\n" not in msg and "belongs to another experiment" in msg and "differs in budget" in msg, msg
    assert sorted((p, p.stat().st_size) for p in storage.rglob("*") if p.is_file()) == before  # nothing touched
    # the runner refuses it before it starts anything (here the manifest is gone, so only the Tune state tells)
    out = tmp_path / "results"
    shutil.copytree(storage, out / "_tune")
    with pytest.raises(resume.StudyStateMismatch, match="differs in budget"):
        run_experiment(config("pasha", budget=15.0), resume_trainable, ["pasha"], [0], out, quiet=True)
    assert not (out / "logs").exists() and not (out / "studies").exists()


if __name__ == "__main__":  # the driver that the tests kill: python test_study_resume.py OUT METHOD[,METHOD...]
    logging.basicConfig(level=logging.WARNING)
    out_dir, method_names = sys.argv[1], sys.argv[2].split(",")
    run_experiment(config(method_names[0]), resume_trainable, method_names, [0], out_dir, quiet=True, num_cpus=2)
