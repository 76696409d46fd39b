"""Kill the driver mid-run with SIGKILL, run the same experiment again: every study exactly once.

The killed driver is a process of its own (``run_tiny_experiment.py``, its own local Ray, killed with
it); the rerun is the same experiment through the same runner, here on the suite's shared Ray (a
process of its own would add only another Ray start).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).parent
if str(HERE) not in sys.path:  # harness_trainables and the tiny experiment's driver
    sys.path.insert(0, str(HERE))

import run_tiny_experiment  # noqa: E402

from ohgw.results import read_table  # noqa: E402
from ohgw.studies.runner import run_experiment  # noqa: E402

import harness_trainables  # noqa: E402

pytestmark = pytest.mark.ray


def _study_files(out: Path) -> dict[str, str]:
    return {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(out.glob("*/experiment=*/method=*/seed=*/part-0.parquet"))}


def _run(out: Path, **kw) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": f"{HERE}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", "RAY_AUTH_MODE": "disabled"}
    return subprocess.Popen([sys.executable, str(HERE / "run_tiny_experiment.py"), str(out)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True, **kw)


@pytest.fixture(scope="module")
def ray_here(ray_local):
    ray_local.cloudpickle.register_pickle_by_value(harness_trainables)  # the workers cannot import tests/
    yield ray_local
    ray_local.cloudpickle.unregister_pickle_by_value(harness_trainables)


def test_sigkill_then_rerun(tmp_path, ray_here):
    out = tmp_path / "results"
    proc = _run(out)
    # the kill must land mid-run: wait (on a busy machine as long as it takes, bounded) until 1 of the 4
    # studies is done; the others take seconds each, far longer than one 0.2 s poll
    deadline = time.time() + 300
    done_dir = out / "studies"
    while len(list(done_dir.glob("*/*/*/part-0.parquet"))) < 1:
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        assert time.time() < deadline, "precondition: no study was done within 300 s"
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)  # the driver dies mid-run ...
    proc.wait()
    time.sleep(1.0)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # ... and the local Ray it started goes with it
    before = _study_files(out)
    n_done = len([k for k in before if k.startswith("studies")])
    assert 1 <= n_done < 4, "the kill must land mid-run"
    err = io.StringIO()
    summary = run_experiment(*run_tiny_experiment.experiment(out), quiet=True, stream=err)
    assert summary.ran == 4 - n_done and not summary.failed, err.getvalue()
    assert f"resuming: {n_done} completed studies kept" in err.getvalue()
    after = _study_files(out)
    for k in before:
        if k.startswith("studies"):
            study = k.split("/", 1)[1]
            for table in ("iterations", "trials", "studies"):
                key = f"{table}/{study}"
                assert after[key] == before[key], f"{key} changed"  # completed studies are bit-identical
    st = read_table(out, "studies")
    assert len(st) == 4 and not st.duplicated(["method", "seed"]).any()
    tr = read_table(out, "trials")
    assert set(map(tuple, tr[["method", "seed"]].drop_duplicates().to_numpy())) == {
        (m, s) for m in ("asha", "hyperband") for s in range(2)}
    assert not tr.duplicated(["method", "seed", "trial_id"]).any()
