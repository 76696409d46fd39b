"""scripts/busy_test.sh: the suite's exit status comes back; its busy processes run as a job of their own
(a session apart from the suite's, so that they do not starve Ray's niceness-15 workers) and stop, also on
Ctrl-C and after the script itself is SIGKILLed.

A stand-in interpreter (``PYTHON=``) plays the suite, so no tests run here and the load lasts about a second.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "busy_test.sh"


def _children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split()[2] != "Z"


def _start(tmp_path: Path, body: str) -> subprocess.Popen:
    fake = tmp_path / "fake_python"
    fake.write_text(f"#!/bin/sh\n{body}\n")
    fake.chmod(0o755)
    return subprocess.Popen(["bash", str(SCRIPT), "-k", "nothing"], env={**os.environ, "PYTHON": str(fake)},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)


def _session(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[3])


def _busy_pids(proc: subprocess.Popen) -> list[int]:
    line = proc.stdout.readline()
    assert line.startswith(f"busy_test: {2 * os.cpu_count()} busy processes"), line
    busy = [int(p) for p in line.split("pids ")[1].split(")")[0].split()]
    assert len(busy) == 2 * os.cpu_count(), (line, busy)
    # one session of their own, led by the script's own child: not the suite's session
    (leader,) = {_session(p) for p in busy}
    assert leader in _children(proc.pid) and leader != _session(proc.pid), (leader, _children(proc.pid))
    assert set(busy) <= set(_children(leader))
    return busy


def _all_stop(busy: list[int], within_s: float = 10) -> bool:
    deadline = time.monotonic() + within_s
    while any(map(_alive, busy)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not [p for p in busy if _alive(p)]


@pytest.mark.parametrize(("body", "interrupt", "status"), [("sleep 1; exit 3", False, 3),
                                                           ("sleep 30", True, 130)])
def test_busy_script_returns_the_suite_status_and_stops_its_load(tmp_path, body, interrupt, status):
    proc = _start(tmp_path, body)
    busy = _busy_pids(proc)
    if interrupt:
        time.sleep(0.3)
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C: the whole foreground group
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == status, out
    assert _all_stop(busy), "busy processes left running"
    if not interrupt:
        assert f"busy_test: suite exit status {status} after" in out


def test_busy_processes_stop_by_themselves_when_the_script_is_killed(tmp_path):
    proc = _start(tmp_path, "sleep 30")
    busy = _busy_pids(proc)
    os.kill(proc.pid, signal.SIGKILL)  # no trap runs
    proc.wait(timeout=10)
    try:
        assert _all_stop(busy), "busy processes outlived the killed script"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # the stand-in suite (sleep 30) left by the killed script
        proc.communicate(timeout=10)
