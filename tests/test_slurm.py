"""The Slurm scripts (deploy/slurm/) submitted to a real Slurm cluster: ``slurmctld`` and two ``slurmd`` nodes,
each in namespaces of its own (tests/slurm_cluster.py; Debian's slurm-wlm and munge, scripts/ensure_slurm.sh).

- ``ray-cluster.sbatch -N 2``: a tiny digits study (2 seeds, the smallest budget) on a Ray cluster across both
  nodes; one study per node's GPU group; ``ray stop`` ran on both nodes and no Ray process is left on either;
  the job's wall time is printed (docs/cluster.md);
- (slow) ``ray-array.sbatch`` as an array of 2: each index its own study on its own node;
- (slow) ``scancel`` in the middle of a study: the job ends and leaves no Ray process on either node;
- an sbatch script run outside a Slurm job, without its variables: one line and exit status 2;
- the helper leaves no namespace, process or folder behind on SIGTERM, nor after SIGKILL and ``remove_stale``.

One cluster serves the module. Token auth stays on (a private token, ``RAY_AUTH_TOKEN_PATH``); the head's
dashboard is off (``OHGW_RAY_DASHBOARD=false``) to save its start-up on 2 cores.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from ohgw.results import read_table  # noqa: E402

pytestmark = pytest.mark.ray

ROOT = HERE.parent
SLURM = ROOT / "deploy" / "slurm"
# the smallest study: one 1-epoch trial per seed (the first trial of a study has nothing to warm-start from)
TINY = ["--seeds", "2", "--budget", "1", "--max-t", "1", "--trials-per-study", "1", "--no-report",
        "--methods", "asha+ohgw"]
JOB_TIMEOUT_S = 420  # one tiny job on a loaded 2-core machine


def _require_slurm() -> None:
    if os.geteuid() != 0:
        pytest.fail("the Slurm cluster needs root (CI runs as root)")
    if not (shutil.which("slurmctld") and shutil.which("munged")):
        pytest.fail("slurm-wlm or munge is missing: run `bash scripts/ensure_slurm.sh`")


@pytest.fixture(scope="module")
def slurm():
    _require_slurm()
    from slurm_cluster import SlurmCluster, default_root, remove_stale

    remove_stale()
    c = SlurmCluster(default_root())
    try:
        c.start()
        token = c.root / "ray-token"
        token.write_text(secrets.token_hex(32))
        token.chmod(0o600)
        c.job_env = c.env(OHGW_PYTHON=sys.executable, OHGW_JOIN_WAIT_S="240", OHGW_POLL_S="0.5",
                          OHGW_RAY_DASHBOARD="false", OHGW_RAY_STOP_GRACE_S="6", RAY_AUTH_MODE="token",
                          RAY_AUTH_TOKEN_PATH=str(token))
        yield c
    finally:
        c.stop()


def _submit(slurm, *argv: str, output: str = "job-%j.out") -> int:
    return slurm.submit([f"--output={slurm.root}/logs/{output}", *argv], env=slurm.job_env, cwd=ROOT)


def _output(slurm, job: int) -> str:
    return "\n".join(p.read_text() for p in sorted((slurm.root / "logs").glob(f"job-{job}*.out")))


def _tail(log: str, n: int = 4000) -> str:
    """The job's output without Ray's INFO chatter, for a failure message."""
    return "\n".join(ln for ln in log.splitlines() if not re.search(r"\t(VINFO|INFO|SUCC) ", ln))[-n:]


def _no_ray_left(slurm, timeout_s: float = 60.0) -> dict[str, list[str]]:
    """Each node's processes other than its init and slurmd, once none is left or at the timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        left = {n: slurm.node_processes(n) for n in slurm.node_names}
        if not any(left.values()) or time.monotonic() > deadline:
            return left
        time.sleep(0.5)


def _seconds(hms: str) -> int:
    parts = [int(x) for x in re.split(r"[-:]", hms)]
    return sum(v * m for v, m in zip(reversed(parts), (1, 60, 3600, 86400), strict=False))


RAY_OVERLOADED = "The current node timed out during startup"  # Ray's fixed 30 s for a raylet to register
ENDED = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY"}


def _run_job(slurm, argv: list[str], output: str = "job-%j.out", phases: dict | None = None, attempts: int = 2):
    """Submit, wait until the job has ended; ``(job, states, log, seconds at which each phase's marker appeared)``.

    A job whose ``ray start`` hit Ray's fixed 30 s registration limit (a 2-core machine at load 30) is submitted
    again, at most ``attempts`` times in all; any other failure is returned as it is."""
    for attempt in range(attempts):
        t0, seen = time.monotonic(), {}
        job = _submit(slurm, *argv, output=output)
        while not ((states := slurm.job_states(job)) and set(states.values()) <= ENDED):
            log = _output(slurm, job)
            seen.update({k: time.monotonic() - t0 for k, m in (phases or {}).items() if k not in seen and m in log})
            assert time.monotonic() - t0 < JOB_TIMEOUT_S, f"job {job} not done within {JOB_TIMEOUT_S} s: {states}"
            time.sleep(0.5)
        log = _output(slurm, job)
        if set(states.values()) == {"COMPLETED"} or RAY_OVERLOADED not in log or attempt == attempts - 1:
            return job, states, log, {**seen, "end": time.monotonic() - t0}
        print(f"\njob {job}: a Ray node timed out during startup (load {os.getloadavg()[0]:.0f}); submitted again")
        _no_ray_left(slurm)


def test_a_two_node_ray_cluster_job_runs_the_study_on_both_nodes_and_stops_ray_on_each(slurm):
    out = slurm.shared / "cluster"
    job, states, log, seen = _run_job(
        slurm, ["-N", "2", "--gpus-per-task=1", "--cpus-per-task=1", str(SLURM / "ray-cluster.sbatch"), *TINY,
                "--out", str(out), "--storage", str(slurm.shared / "tune")],
        phases={"Ray up on both nodes": "node(s) joined:", "studies done": "studies: 2 run",
                "Ray stopped": "ray stop on n2:"})
    elapsed = seen.pop("end")
    info = slurm.job_info(job)
    assert states == {str(job): "COMPLETED"}, f"{states} {info.get('ExitCode')}\n{_tail(log)}"
    studies, it = read_table(out, "studies"), read_table(out, "iterations")
    assert sorted(studies["seed"]) == [0, 1] and set(studies["method"]) == {"asha+ohgw"} and studies["completed"].all()
    assert sorted(studies["group"]) == ["n1-g0", "n2-g0"], studies["group"].tolist()  # one study per node's group
    assert len(set(it["node_id"])) == 2, "the trials ran on fewer than two Ray nodes"
    for node in slurm.node_names:  # the job's own `ray stop` on every node, and nothing of Ray left there
        assert f"ray-cluster.sbatch: ray stop on {node}: exit 0" in log, _tail(log)
    left = _no_ray_left(slurm)
    assert not any(left.values()), left
    wall = _seconds(info["RunTime"])
    steps = ", ".join(f"{k} at {v:.0f} s" for k, v in seen.items())
    print(f"\nSlurm ray-cluster.sbatch -N 2 (2 digits studies): job wall time {wall} s (Slurm's RunTime), "
          f"{elapsed:.1f} s from sbatch to the end ({steps}); load average {os.getloadavg()[0]:.1f}")


def _wait_for(predicate, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


@pytest.mark.slow
def test_an_array_of_two_runs_each_line_on_its_own_node(slurm, tmp_path):
    settings = tmp_path / "settings.txt"
    outs = [slurm.shared / f"array-{i}" for i in range(2)]
    settings.write_text("# one study each\n" + "".join(
        f"--seeds 1 --budget 1 --max-t 1 --trials-per-study 1 --no-report --methods asha --out {o}\n" for o in outs))
    job, states, log, seen = _run_job(slurm, ["--array=0-1", "--gpus-per-task=1", "--cpus-per-task=1",
                                              str(SLURM / "ray-array.sbatch"), str(settings)], output="job-%A_%a.out")
    elapsed = seen["end"]
    assert states == {f"{job}_0": "COMPLETED", f"{job}_1": "COMPLETED"}, f"{states}\n{_tail(log)}"
    for o in outs:
        studies = read_table(o, "studies")
        assert studies["seed"].tolist() == [0] and studies["completed"].all()
    groups = {read_table(o, "studies")["group"].iloc[0] for o in outs}
    assert groups == {"n1-g0", "n2-g0"}, groups  # the two indices ran on the two nodes (--exclusive)
    assert sorted(re.findall(r"ray-array.sbatch: ray stop on (n\d): exit 0", log)) == ["n1", "n2"], _tail(log)
    left = _no_ray_left(slurm)
    assert not any(left.values()), left
    print(f"\nSlurm ray-array.sbatch --array=0-1: both COMPLETED, {elapsed:.1f} s from sbatch to the end")


@pytest.mark.slow
def test_scancel_mid_study_leaves_no_ray_process_on_either_node(slurm):
    out = slurm.shared / "cancelled"
    job = _submit(slurm, "-N", "2", "--gpus-per-task=1", "--cpus-per-task=1", str(SLURM / "ray-cluster.sbatch"),
                  "--seeds", "2", "--budget", "50", "--max-t", "5", "--trials-per-study", "1", "--no-report",
                  "--methods", "asha", "--out", str(out), "--storage", str(slurm.shared / "tune-cancelled"))
    _wait_for(lambda: "studies:" in _output(slurm, job), JOB_TIMEOUT_S, "the studies to start")
    time.sleep(3.0)  # trials running
    running = {n: [p for p in slurm.node_processes(n) if "raylet" in p] for n in slurm.node_names}
    assert all(running.values()), f"Ray is not up on both nodes: {running}"
    t0 = time.monotonic()
    r = slurm.client(["scancel", str(job)])
    assert r.returncode == 0, r.stderr
    states = slurm.wait_job(job, 180)
    left = _no_ray_left(slurm)
    log = _output(slurm, job)
    assert states == {str(job): "CANCELLED"}, f"{states}\n{_tail(log)}"
    assert not any(left.values()), f"{left}\n{_tail(log)}"
    stopped = set(re.findall(r"ray stop on (n\d): exit 0", log))
    assert stopped == {"n1", "n2"}, _tail(log)
    print(f"\nscancel mid-study: job CANCELLED, Ray processes left 0 on both nodes, "
          f"{time.monotonic() - t0:.1f} s from scancel to the last one gone")


@pytest.mark.parametrize("script, args, message", [
    ("ray-cluster.sbatch", [], "ray-cluster.sbatch: error: not inside a Slurm job (submit it with sbatch)"),
    ("ray-array.sbatch", [str(SLURM / "settings.example.txt")],
     "ray-array.sbatch: error: not an array task (submit with sbatch --array=...)"),
])
def test_an_sbatch_script_run_outside_slurm_is_one_line_and_exit_2(script, args, message, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    r = subprocess.run(["bash", str(SLURM / script), *args], env=env, cwd=tmp_path, capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 2 and r.stderr.splitlines() == [message], r.stderr
    assert list(tmp_path.iterdir()) == []  # nothing written


def _ended(pid: int) -> bool:
    """Gone, or a zombie (munged daemonizes: this machine's PID 1 reaps it, in its own time)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


HOLD = ("import sys, time\n"
        f"sys.path.insert(0, {str(HERE)!r})\n"
        "from slurm_cluster import SlurmCluster, default_root\n"
        "c = SlurmCluster(default_root())\n"
        "c.start()\n"
        "print('up', (c.root / 'munge' / 'munged.pid').read_text().strip(), flush=True)\n"
        "time.sleep(600)\n")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_the_helper_leaves_no_namespace_process_or_folder_behind(sig):
    """SIGTERM: the helper's handler stops the cluster; SIGKILL: the next run's ``remove_stale`` does."""
    _require_slurm()
    from slurm_cluster import PREFIX, remove_stale

    p = subprocess.Popen([sys.executable, "-c", HOLD], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = p.stdout.readline().split()
        assert line[:1] == ["up"], p.stderr.read() if p.poll() is not None else line
        munged, root = int(line[1]), Path(f"/tmp/ohgw-slurm-{p.pid}")

        def namespaces() -> list[str]:
            listing = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split()
            return [n for n in listing if n.startswith(f"{PREFIX}{p.pid}-")]

        assert root.is_dir() and len(namespaces()) == 3 and Path(f"/proc/{munged}").exists()
        p.send_signal(sig)
        p.wait(timeout=60)
        if sig == signal.SIGKILL:
            assert namespaces(), "a SIGKILLed helper cannot clean up itself"
            remove_stale()
        assert not root.exists() and namespaces() == []
        _wait_for(lambda: _ended(munged), 10, "munged to end")
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
