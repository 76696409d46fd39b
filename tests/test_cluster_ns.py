"""Studies on a cluster of real Ray nodes, each in namespaces of its own (tests/ns_cluster.py), run through the
harness's command line from the head's namespaces with ``--address``, as a user runs them.

One cluster serves the module: a CPU-only head, ``w0`` and ``w1`` in GPU group ``g0`` and ``w2`` in
``g1`` (one fake GPU each). Every node has its own results disk at the same path (``disk``) and sees
``shared`` (a bind mount standing for NFS).

- a storage on the nodes' own disks is refused in one line, with nothing written;
- with the shared storage, a PASHA+OHGW experiment of 2 studies runs its trials on the labelled nodes
  (seed 0 on g0's nodes, seed 1 on g1's), pauses trials at rungs and resumes promoted ones from their
  checkpoints in the shared storage (10 epochs: PASHA's rungs 1, 3 and 9, so it promotes; where a
  promoted trial resumes, on its own node or g0's other one, is Ray's choice and printed; a trial that
  must resume on another node is the node-loss test's);
- its Parquet tables equal a single-node run's on the epochs clock (one trial at a time per study);
- a node that dies mid-study (every process SIGKILLed while its trial holds a report): the trial is
  restored from its checkpoint on the group's other node; nothing is lost or doubled. It runs after the
  tests that need every node; the head notices a dead node within ~1.5 s (:data:`HEALTH_CHECK`);
- (slow) the driver on the head SIGKILLed mid-study: the same command run again resumes the study.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest

HERE = Path(__file__).parent
if str(HERE) not in sys.path:  # as the driver script on the head, and for the Ray workers
    sys.path.insert(0, str(HERE))

from ohgw.results import read_table  # noqa: E402
from ohgw.space import SearchSpace  # noqa: E402
from ohgw.studies.workload import Workload  # noqa: E402

import harness_trainables  # noqa: E402
from harness_trainables import resume_trainable  # noqa: E402

pytestmark = pytest.mark.ray

PRESETS = {"tiny": {"base_config": {"epoch_s": 0.05}, "max_t": 10, "seeds": 2, "budget": 14.0, "tau": 0.5,
                    "cpus_per_trial": 1.0, "gpus_per_trial": 1.0, "trials_per_study": 1}}


def copy_checkpoint(checkpoint_dir: str, dest_dir: str) -> None:
    """The workload's ``export_best`` hook: the best checkpoint's files, as they are."""
    shutil.copytree(checkpoint_dir, dest_dir, dirs_exist_ok=True)


WORKLOAD = Workload("resume", trainable=resume_trainable, presets=PRESETS, export_best=copy_checkpoint,
                    space=SearchSpace.from_bounds({"lr": (1e-3, 1.0, "log10")}))
ARGS = ["--methods", "pasha+ohgw", "--no-report", "--quiet", "--step-rule", "normalized", "--eta-h", "0.2"]
TIMES = {"wall_s", "start_wall_s", "end_wall_s", "start_ts", "end_ts", "node_id", "trial_id", "study_id"}
DRIVER_TIMEOUT_S = 420  # one experiment of two small studies, on a loaded 2-core machine
# the head's health check of the nodes: a dead node is marked dead after ~3 x 0.5 s (Ray's default: 5 x 3 s,
# which dominated the node-loss test's recovery); a live node must miss 3 checks of 10 s (Ray's timeout) in a row
HEALTH_CHECK = {"period_ms": 500, "failure_threshold": 3}


def _held(path: Path) -> Path:
    return Path(f"{path}.held")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.fail("the namespaced cluster needs root (CI runs as root)")
    from ns_cluster import NsCluster, remove_stale

    remove_stale()
    root = Path(f"/tmp/ohgw-ns-{os.getpid()}")
    holds = {f"w{i}": {harness_trainables.HOLD_ENV: str(root / "shared" / f"hold-w{i}")} for i in range(3)}
    c = NsCluster(root, groups=("g0", "g0", "g1"), node_envs=holds, health_check=HEALTH_CHECK)
    try:
        c.start()
        yield c
    finally:
        c.stop()


def _drive(cluster, *argv: str, timeout: float = DRIVER_TIMEOUT_S) -> subprocess.CompletedProcess:
    """The harness's command line (this file as a script), run in the head's namespaces."""
    cmd = cluster.driver_command([sys.executable, str(Path(__file__).resolve()), "--address", cluster.address,
                                  *ARGS, *argv])
    return subprocess.run(cmd, env=cluster.node_env(), capture_output=True, text=True, timeout=timeout)


def _in_head(cluster, *argv: str) -> str:
    return subprocess.run(cluster.driver_command(list(argv)), capture_output=True, text=True, timeout=60).stdout


def _marked_dead_at(cluster, node_id: str) -> float | None:
    """When the head's GCS marked node ``node_id`` dead (epoch seconds, from its log), or None."""
    log = _in_head(cluster, "cat", str(cluster.temp_dir / "session_latest" / "logs" / "gcs_server.out"))
    for line in log.splitlines():  # [2026-12-07 11:45:05,998 W 18 18] (gcs_server) …: Node is dead because the …
        if "Node is dead because the health check failed" in line and node_id in line:
            return datetime.strptime(line[1:24], "%Y-%m-%d %H:%M:%S,%f").timestamp()
    return None


def test_a_storage_on_the_nodes_own_disks_is_refused_in_one_line_and_nothing_is_written(cluster):
    out = cluster.shared / "refused"
    # the refusal comes before any study, whatever the method
    r = _drive(cluster, "--methods", "asha+ohgw", "--out", str(out), "--storage", str(cluster.disk / "tune"))
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2, r.stderr[-3000:]
    workers = {n.ip for n in cluster.nodes.values() if n.group}
    assert lines[-1].startswith(f"resume_ns.py: error: storage {cluster.disk / 'tune'} is not shared: node "), lines
    assert lines[-1].split("node ")[1].split()[0] in workers
    assert lines[-1].endswith("use a shared filesystem (NFS) mounted at the same path on every node")
    assert len(lines) == 1, lines
    assert not cluster.host_path(out).exists() and not any(cluster.host_path(cluster.shared).iterdir())
    assert _in_head(cluster, "ls", "-A", str(cluster.disk)).split() == []  # the driver's own disk: untouched


@pytest.fixture(scope="module")
def cluster_run(cluster):
    out = cluster.shared / "out"
    t0 = time.monotonic()
    r = _drive(cluster, "--out", str(out), "--storage", str(cluster.shared / "tune"))
    assert r.returncode == 0, r.stderr[-4000:]
    return cluster.host_path(out), time.monotonic() - t0, r.stderr


def test_a_pasha_ohgw_experiment_runs_its_trials_on_the_labelled_nodes_and_pauses_them(cluster, cluster_run):
    out, _, stderr = cluster_run
    it, studies = read_table(out, "iterations"), read_table(out, "studies")
    assert sorted(studies["seed"].tolist()) == [0, 1] and studies["completed"].all()
    groups = dict(zip(studies["seed"], studies["group"], strict=True))
    assert groups == {0: "g0", 1: "g1"}  # one study per group, round-robin
    by_group = {"g0": {cluster.nodes["w0"].node_id, cluster.nodes["w1"].node_id}, "g1": {cluster.nodes["w2"].node_id}}
    for seed, rows in it.groupby("seed"):
        assert set(rows["node_id"]) <= by_group[groups[seed]], f"seed {seed} ran off its group's nodes"
    assert (it.groupby("seed")["decision"].apply(lambda d: (d == "PAUSE").sum()) > 0).all(), "PASHA paused no trial"
    # promoted: a trial paused at a rung ran on later, from the rung's checkpoint (its next epoch, no restart)
    it = it.sort_values(["seed", "trial_id", "epoch"])
    nxt = it.groupby(["seed", "trial_id"])["epoch"].shift(-1)
    resumed = it[(it["decision"] == "PAUSE") & nxt.notna()]
    assert len(resumed) > 0, "PASHA promoted no paused trial"
    assert (nxt[resumed.index] == resumed["epoch"] + 1).all(), "a promoted trial did not resume from its checkpoint"
    after = it.groupby(["seed", "trial_id"])["node_id"].shift(-1)[resumed.index]
    moved = int((after != resumed["node_id"]).sum())
    print(f"\nPASHA+OHGW on the cluster: {len(resumed)} promotions, {moved} resumed on another node of the group")
    for seed in (0, 1):  # each study's best checkpoint, exported beside its tables (not beside the storage)
        assert (out / "exports" / "experiment=resume_ns-tiny" / "method=pasha+ohgw" / f"seed={seed}" / "best.json").exists()
    assert not cluster.host_path(cluster.shared / "exports").exists()
    tune = cluster.host_path(cluster.shared / "tune")
    assert not tune.exists() or not any(tune.iterdir()), "Tune's folders are removed once exported"


def _comparable(out: Path) -> dict[str, pd.DataFrame]:
    """The tables without wall-clock columns, nodes and Tune's random trial ids, in a stable order."""
    tables = {}
    for name, order in (("iterations", ["seed", "trial_index", "epoch"]), ("trials", ["seed", "trial_index"])):
        df = read_table(out, name)
        df = df.drop(columns=[c for c in df.columns if c in TIMES or c.endswith("_time")])
        tables[name] = df.sort_values(order).reset_index(drop=True)
    tables["studies"] = read_table(out, "studies").sort_values("seed").reset_index(drop=True)
    return tables


def test_the_cluster_tables_equal_a_single_node_run_on_the_epochs_clock(cluster_run, ray_local, tmp_path):
    from ohgw.studies.cli import build_parser, config_from_args
    from ohgw.studies.runner import run_experiment

    ray_local.cloudpickle.register_pickle_by_value(harness_trainables)
    try:
        out = tmp_path / "single"
        argv = [*ARGS, "--out", str(out), "--gpus-per-trial", "0"]  # the same studies; this Ray has no GPUs
        cfg, methods, seeds, _ = config_from_args(
            build_parser("resume_ns.py", WORKLOAD, ["pasha+ohgw"], "doc").parse_args(argv), "resume_ns", WORKLOAD)
        # stream: the runner's default is the sys.stderr of its import, which a capturing test may have closed
        summary = run_experiment(cfg, resume_trainable, methods, seeds, out, quiet=True, stream=sys.stderr)
        assert summary.ran == 2 and not summary.failed
    finally:
        ray_local.cloudpickle.unregister_pickle_by_value(harness_trainables)
    on_cluster, single = _comparable(cluster_run[0]), _comparable(out)
    for name in ("iterations", "trials"):
        pd.testing.assert_frame_equal(on_cluster[name], single[name], check_like=True, obj=name)
    for col in ("epoch_equiv", "compute_s", "n_trials", "budget_exhausted", "completed", "resumes"):
        assert on_cluster["studies"][col].tolist() == single["studies"][col].tolist(), col


def test_a_lost_node_s_trial_is_restored_on_the_group_s_other_node(cluster):
    """SIGKILL every process of the g0 node that runs an ASHA+OHGW study's trial while that trial holds its 3rd
    report there (of 4 epochs; ASHA lets a study's first trial go past its first rung, so it has a checkpoint to
    restore): the trial is restored from its last checkpoint on g0's other node; no study, row or budget is
    lost or doubled. Prints the recovery time and the epochs re-done (docs/cluster.md). Kept small (one study
    of 4-epoch trials and a 5-epoch budget) for the default suite; it leaves g0 with one node."""
    holds = {name: cluster.host_path(cluster.node_envs[name][harness_trainables.HOLD_ENV]) for name in ("w0", "w1")}
    for h in holds.values():
        for f in (_held(h), Path(f"{h}.reports")):
            f.unlink(missing_ok=True)
        h.write_text("3")
    out = cluster.shared / "loss"
    cmd = cluster.driver_command([sys.executable, str(Path(__file__).resolve()), "--address", cluster.address,
                                  *ARGS, "--methods", "asha+ohgw", "--seeds", "1", "--max-t", "4", "--budget", "5",
                                  "--out", str(out), "--storage", str(cluster.shared / "tune-loss")])
    t0 = time.monotonic()
    driver = subprocess.Popen(cmd, env=cluster.node_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240
        while not any(_held(h).exists() for h in holds.values()):
            assert driver.poll() is None, driver.stderr.read()[-3000:]
            assert time.monotonic() < deadline, "no trial reached its held report on g0's nodes"
            time.sleep(0.1)
        victim = next(name for name, h in holds.items() if _held(h).exists())
        for h in holds.values():
            h.unlink()  # the surviving node does not hold; the victim's waiting report never comes
        t_kill, held_s = time.time(), time.monotonic() - t0
        killed = cluster.kill_node(victim)
        assert killed, f"node {victim} had no process"
        _, err = driver.communicate(timeout=DRIVER_TIMEOUT_S)
        ended_s = time.time() - t_kill
        assert driver.returncode == 0, err[-4000:]
    finally:
        if driver.poll() is None:
            driver.kill()
    out = cluster.host_path(out)
    it, trials, studies = read_table(out, "iterations"), read_table(out, "trials"), read_table(out, "studies")
    assert len(studies) == 1 and studies["completed"].all()
    assert not it.duplicated(["trial_id", "epoch"]).any(), "a row was doubled"
    for _, rows in it.groupby("trial_id"):  # no epoch of a trial is missing
        assert sorted(rows["epoch"]) == list(range(1, int(rows["epoch"].max()) + 1))
    dead, alive = cluster.nodes[victim].node_id, ({"w0", "w1"} - {victim}).pop()
    on_nodes = it.groupby("trial_id")["node_id"].agg(frozenset)
    hit = [t for t, nodes in on_nodes.items() if nodes == {dead, cluster.nodes[alive].node_id}]
    assert len(hit) == 1, f"one trial ran on both g0 nodes, got {len(hit)}: {on_nodes.to_dict()}"
    rows = it[it["trial_id"] == hit[0]].sort_values("epoch")
    before, after = rows[rows["node_id"] == dead], rows[rows["node_id"] != dead]
    assert after["epoch"].min() == before["epoch"].max() + 1, "not restored from its last checkpoint"
    # the budget: the study's epoch-equivalents are the sum of its trials' (a redone report is charged once)
    per_trial = it.groupby("trial_id")["trial_epoch_equiv"].max().sum()
    assert studies["epoch_equiv"].iloc[0] == pytest.approx(per_trial)
    resumes = int(studies["resumes"].iloc[0])  # 1 if the study task itself ran on the lost node
    recovery = float(studies["start_ts"].iloc[0]) + after["wall_s"].iloc[0] - t_kill
    dead_at = _marked_dead_at(cluster, dead)
    noticed = f"marked dead {dead_at - t_kill:.1f} s after the kill, " if dead_at else ""
    print(f"\nnode loss: trial restored on {alive} at epoch {int(after['epoch'].iloc[0])}; {noticed}first report there "
          f"{recovery:.1f} s after the kill{' (study clock; the study task was retried)' if resumes else ''}; "
          f"epochs computed twice: 1 (the held epoch); redone reports {int(studies['redone_reports'].iloc[0])}; "
          f"study resumes {resumes}; trials {len(trials)}, rows {len(it)}; driver: held {held_s:.1f} s after its start, "
          f"ended {ended_s:.1f} s after the kill")


@pytest.mark.slow
def test_a_driver_killed_on_the_head_mid_run_resumes_when_the_command_is_run_again(cluster):
    """The driver (on the head) is SIGKILLed while a trial holds its 2nd report; running the same command again
    resumes the study from its Tune state in the shared storage: it completes once, no row doubled or missing."""
    alive = [n for n in cluster.nodes.values() if n.group and n.proc is not None]  # after the node-loss test
    holds = [cluster.host_path(cluster.node_envs[n.name][harness_trainables.HOLD_ENV]) for n in alive]
    for h in holds:
        for f in (h, _held(h), Path(f"{h}.reports")):
            f.unlink(missing_ok=True)
        h.write_text("2")
    out = cluster.shared / "driver-kill"
    argv = ["--methods", "asha+ohgw", "--seeds", "1", "--out", str(out), "--storage", str(cluster.shared / "tune-dk")]
    cmd = cluster.driver_command([sys.executable, str(Path(__file__).resolve()), "--address", cluster.address,
                                  *ARGS, *argv])
    driver = subprocess.Popen(cmd, env=cluster.node_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while not any(_held(h).exists() for h in holds):
            assert driver.poll() is None, driver.stderr.read()[-3000:]
            assert time.monotonic() < deadline, "no trial reached its held report"
            time.sleep(0.1)
        time.sleep(0.5)  # the driver's background copy of its last snapshot, if one was still going
    finally:
        os.killpg(driver.pid, signal.SIGKILL)  # nsenter and the driver it forked: one process group
        driver.wait(timeout=30)
        for h in holds:
            h.unlink(missing_ok=True)
    host_out = cluster.host_path(out)
    assert not (host_out / "studies").exists(), "the kill must land mid-study"
    r = _drive(cluster, *argv)
    assert r.returncode == 0, r.stderr[-4000:]
    it, studies = read_table(host_out, "iterations"), read_table(host_out, "studies")
    assert len(studies) == 1 and int(studies["resumes"].iloc[0]) == 1
    assert not it.duplicated(["trial_id", "epoch"]).any(), "a row was doubled"
    for _, rows in it.groupby("trial_id"):
        assert sorted(rows["epoch"]) == list(range(1, int(rows["epoch"].max()) + 1)), "a row was lost"
    assert studies["epoch_equiv"].iloc[0] == pytest.approx(it.groupby("trial_id")["trial_epoch_equiv"].max().sum())


if __name__ == "__main__":  # the driver: python test_cluster_ns.py <harness flags>
    from ohgw.studies.cli import main

    sys.exit(main("resume_ns", WORKLOAD, ["pasha+ohgw"], "studies on the namespaced cluster", sys.argv[1:]))
