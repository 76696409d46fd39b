"""Kill the driver mid-run with SIGKILL, run the same command again: every study exactly once."""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ohgw.results import read_table

pytestmark = pytest.mark.ray

HERE = Path(__file__).parent


def _study_files(out: Path) -> dict[str, str]:
    return {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(out.glob("*/experiment=*/method=*/seed=*/part-0.parquet"))}


def _run(out: Path, **kw) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": f"{HERE}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", "RAY_AUTH_MODE": "disabled"}
    return subprocess.Popen([sys.executable, str(HERE / "run_tiny_experiment.py"), str(out)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True, **kw)


def test_sigkill_then_rerun(tmp_path):
    out = tmp_path / "results"
    proc = _run(out)
    # the kill must land mid-run: wait (on a busy machine as long as it takes, bounded) until 2 of the 6
    # studies are done; the 4 others take seconds each, far longer than one 0.2 s poll
    deadline = time.time() + 300
    done_dir = out / "studies"
    while len(list(done_dir.glob("*/*/*/part-0.parquet"))) < 2:
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        assert time.time() < deadline, "precondition: 2 studies were not done within 300 s"
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)  # the driver dies mid-run ...
    proc.wait()
    time.sleep(1.0)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # ... and the local Ray it started goes with it
    before = _study_files(out)
    n_done = len([k for k in before if k.startswith("studies")])
    assert 2 <= n_done < 6, "the kill must land mid-run"
    rerun = _run(out)
    _, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err.decode()[-2000:]
    assert f"resuming: {n_done} completed studies kept" in err.decode()
    after = _study_files(out)
    for k in before:
        if k.startswith("studies"):
            study = k.split("/", 1)[1]
            for table in ("iterations", "trials", "studies"):
                key = f"{table}/{study}"
                assert after[key] == before[key], f"{key} changed"  # completed studies are bit-identical
    st = read_table(out, "studies")
    assert len(st) == 6 and not st.duplicated(["method", "seed"]).any()
    tr = read_table(out, "trials")
    assert set(map(tuple, tr[["method", "seed"]].drop_duplicates().to_numpy())) == {
        (m, s) for m in ("asha", "hyperband") for s in range(3)}
    assert not tr.duplicated(["method", "seed", "trial_id"]).any()
