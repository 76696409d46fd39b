"""deploy/: the KubeRay manifest (yamllint + the fields we rely on) and the Slurm scripts (shellcheck, and
their argument handling under a stub ``srun`` / ``scontrol`` / ``ray`` on PATH that record their calls)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from ohgw.studies.cluster import GROUP_LABEL

from lint_tools import ROOT, run, tool

KUBERAY = ROOT / "deploy" / "kuberay" / "raycluster.yaml"
SLURM = ROOT / "deploy" / "slurm"
HEAD_IP = "192.0.2.10"  # TEST-NET-1: a documentation address, never contacted (the stubs only print it)


def test_yaml_lint():
    files = [KUBERAY, ROOT / "docker/compose.yaml", ROOT / "docker/prometheus/prometheus.yml",
             *sorted((ROOT / "docker/grafana/provisioning").rglob("*.yaml"))]
    r = run(tool("yamllint"), "-c", str(ROOT / "deploy/yamllint.yaml"), "--strict", *map(str, files))
    assert r.returncode == 0, r.stdout


def test_kuberay_structure():
    docs = list(yaml.safe_load_all(KUBERAY.read_text()))
    rc = next(d for d in docs if d["kind"] == "RayCluster")
    assert rc["apiVersion"] == "ray.io/v1"
    head = rc["spec"]["headGroupSpec"]
    assert head["rayStartParams"]["dashboard-host"] and head["rayStartParams"]["num-gpus"] == "0"
    (gpu,) = rc["spec"]["workerGroupSpecs"]
    assert gpu["rayStartParams"]["labels"].startswith(f"{GROUP_LABEL}=")
    for spec in (head["template"]["spec"], gpu["template"]["spec"]):
        assert spec["securityContext"]["runAsNonRoot"] is True
        (c,) = spec["containers"]
        env = {e["name"]: e.get("value") for e in c["env"]}
        assert env["RAY_AUTH_MODE"] == "token" and env["RAY_AUTH_TOKEN_PATH"].startswith("/run/secrets/ray/")
        assert any(m["mountPath"] == "/app/results" for m in c["volumeMounts"])
        claims = {v["persistentVolumeClaim"]["claimName"] for v in spec["volumes"] if "persistentVolumeClaim" in v}
        assert claims == {"ohgw-results"}
    worker = gpu["template"]["spec"]["containers"][0]
    gpus = worker["resources"]["limits"]["nvidia.com/gpu"]
    assert str(gpus) == gpu["rayStartParams"]["num-gpus"]  # Ray sees exactly the GPUs the pod holds
    pod_name = next(e for e in worker["env"] if e["name"] == "MY_POD_NAME")
    assert pod_name["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    pvc = next(d for d in docs if d["kind"] == "PersistentVolumeClaim")
    assert pvc["metadata"]["name"] == "ohgw-results" and pvc["spec"]["accessModes"] == ["ReadWriteMany"]


def test_slurm_scripts_pass_shellcheck():
    scripts = [SLURM / "ray-node.sh", SLURM / "ray-cluster.sbatch", SLURM / "ray-array.sbatch"]
    r = run(tool("shellcheck"), "-x", *map(str, scripts))
    assert r.returncode == 0, r.stdout


# ---- the stubs ---------------------------------------------------------------------------------------------
STUBS = {
    # srun: record the call; run the command "on" the node given with -w (STUB_HOST), forwarding signals (exec)
    "srun": """#!/usr/bin/env bash
echo "srun $*" >> "$STUB_LOG"
node=local
while [[ $# -gt 0 && "$1" == -* ]]; do
    if [[ "$1" == -w ]]; then node="$2"; shift 2; else shift; fi
done
export STUB_HOST="$node"
exec "$@"
""",
    "scontrol": """#!/usr/bin/env bash
echo "scontrol $*" >> "$STUB_LOG"
[[ "$1 $2" == "show hostnames" ]] && printf '%s\\n' $STUB_NODES
""",
    # ray: record the call; the head's GCS is "healthy" once a node has run `ray start --head`
    "ray": """#!/usr/bin/env bash
echo "ray[${STUB_HOST:-batch}] CUDA_VISIBLE_DEVICES=${CUDA_VISIBLE_DEVICES-unset} $*" >> "$STUB_LOG"
if [[ "$1" == start && " $* " == *" --block "* ]]; then exec sleep 600; fi  # a Ray node runs until stopped
if [[ "$1" == health-check ]]; then grep -q -e '--head --port' "$STUB_LOG"; fi
""",
    "hostname": f"""#!/usr/bin/env bash
if [[ "$1" == --ip-address ]]; then echo "{HEAD_IP}"; else echo "${{STUB_HOST:-local}}"; fi
""",
    "nvidia-smi": "#!/usr/bin/env bash\nexit 1\n",
    # the experiment's python: record the call; sleep when asked (to be cancelled)
    "fakepython": """#!/usr/bin/env bash
if [[ "$1" == */wait-for-nodes.py ]]; then  # the join wait: until every node has started a labelled group
    for _ in $(seq 300); do
        (( $(grep -e '--labels=' "$STUB_LOG" | cut -d' ' -f1 | sort -u | wc -l) >= $3 )) && exit 0
        sleep 0.1
    done
    exit 1
fi
echo "python RAY_ADDRESS=${RAY_ADDRESS-unset} $*" >> "$STUB_LOG"
exec sleep "${STUB_SLEEP:-0}"
""",
}


@pytest.fixture
def stubs(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in STUBS.items():
        (bin_dir / name).write_text(body)
        (bin_dir / name).chmod(0o755)
    log = tmp_path / "calls.log"
    log.touch()
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "STUB_LOG": str(log), "OHGW_PYTHON": str(bin_dir / "fakepython"),
           "OHGW_JOIN_WAIT_S": "0", "OHGW_POLL_S": "0.1", "SLURM_SUBMIT_DIR": str(ROOT), "HOME": str(tmp_path)}
    return env, log


def _calls(log: Path) -> list[str]:
    return log.read_text().splitlines()


def test_cluster_job_starts_head_then_labelled_workers_and_stops_them(stubs):
    env, log = stubs
    env.update(SLURM_JOB_NODELIST="n[1-3]", SLURM_JOB_ID="77", STUB_NODES="n1 n2 n3", CUDA_VISIBLE_DEVICES="0,1,2,3",
               OHGW_GPUS_PER_GROUP="2", OHGW_JOIN_WAIT_S="3")  # the workers' stub starts land before the experiment
    r = run("bash", str(SLURM / "ray-cluster.sbatch"), "--seeds", "4", env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    calls = _calls(log)
    sruns = [c for c in calls if c.startswith("srun") and "ray stop" not in c]
    stop_steps = sorted(c for c in calls if c.startswith("srun --overlap"))
    assert stop_steps == [f"srun --overlap --nodes=1 --ntasks=1 -w {n} ray stop --grace-period 30" for n in ("n1", "n2", "n3")]
    node = str(SLURM / "ray-node.sh")
    assert sruns[0] == "srun --nodes=1 --ntasks=1 -w n1 hostname --ip-address"
    assert sruns[1] == f"srun --nodes=1 --ntasks=1 -w n1 {node} head {HEAD_IP}:6379"
    assert sorted(sruns[2:]) == [f"srun --nodes=1 --ntasks=1 -w {n} {node} worker {HEAD_IP}:6379" for n in ("n2", "n3")]
    starts = [c for c in calls if " start " in c]
    assert sum("--head --port=6379" in c for c in starts) == 1 and "ray[n1]" in next(c for c in starts if "--head" in c)
    for n in ("n1", "n2", "n3"):  # two groups of two GPUs per node, each labelled for study pinning
        groups = [c for c in starts if c.startswith(f"ray[{n}]") and f"--address={HEAD_IP}:6379" in c]
        pairs = sorted((c.split()[1], re.search(f"--labels={GROUP_LABEL}=(\\S+)", c)[1]) for c in groups)
        assert pairs == [("CUDA_VISIBLE_DEVICES=0,1", f"{n}-g0"), ("CUDA_VISIBLE_DEVICES=2,3", f"{n}-g1")]
    (exp,) = [c for c in calls if c.startswith("python")]
    assert exp == f"python RAY_ADDRESS={HEAD_IP}:6379 experiments/asha_vs_ohgw.py --seeds 4 --address auto"
    stops = [c for c in calls if c.startswith("ray[") and c.endswith("stop --grace-period 30")]
    assert {c.split()[0] for c in stops} == {"ray[n1]", "ray[n2]", "ray[n3]"}  # a clean stop on every node
    assert calls.index(exp) < min(calls.index(c) for c in stops)


def test_cluster_job_stops_cleanly_on_scancel(stubs):
    env, log = stubs
    env.update(SLURM_JOB_NODELIST="n[1-2]", STUB_NODES="n1 n2", STUB_SLEEP="60")
    p = subprocess.Popen(["bash", str(SLURM / "ray-cluster.sbatch")], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 30
    while time.time() < deadline and not any(c.startswith("python") for c in _calls(log)):
        time.sleep(0.1)
    p.send_signal(signal.SIGTERM)  # what scancel (and --signal before the time limit) sends the batch shell
    assert p.wait(timeout=30) == 143
    calls = _calls(log)
    assert any(c.startswith("python") and "--preset cifar10 --address auto" in c for c in calls)
    stops = {c.split()[0] for c in calls if c.startswith("ray[") and c.endswith("stop --grace-period 30")}
    assert stops == {"ray[n1]", "ray[n2]"}
    # no CPU-only node joins with GPUs: without GPUs each node is one group labelled <host>-cpu
    assert any(f"--labels={GROUP_LABEL}=n2-cpu" in c for c in calls)


@pytest.mark.parametrize("args, env_extra, message", [
    (["--address", "10.0.0.1:6379"], {}, "--address is set by this script"),
    ([], {"SLURM_JOB_NODELIST": ""}, "not inside a Slurm job"),
    ([], {"OHGW_EXPERIMENT": "experiments/nope.py"}, "not found"),
])
def test_cluster_job_bad_input(stubs, args, env_extra, message):
    env, log = stubs
    env.update({"SLURM_JOB_NODELIST": "n1", "STUB_NODES": "n1", **env_extra})
    r = run("bash", str(SLURM / "ray-cluster.sbatch"), *args, env=env, timeout=30)
    assert r.returncode == 2 and message in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not any(c.startswith("srun") for c in _calls(log))  # nothing was started


def test_node_script_refuses_groups_that_do_not_divide_the_gpus(stubs):
    env, log = stubs
    env.update(CUDA_VISIBLE_DEVICES="0,1,2,3", OHGW_GPUS_PER_GROUP="3")
    r = run("bash", str(SLURM / "ray-node.sh"), "worker", f"{HEAD_IP}:6379", env=env, timeout=30)
    assert r.returncode == 2 and "does not divide the 4 GPUs" in r.stderr
    r = run("bash", str(SLURM / "ray-node.sh"), "boss", f"{HEAD_IP}:6379", env=env, timeout=30)
    assert r.returncode == 2 and "usage" in r.stderr
    assert not any(" start " in c for c in _calls(log))


def test_array_job_runs_its_own_line(stubs, tmp_path):
    env, log = stubs
    settings = tmp_path / "settings.txt"
    settings.write_text("# comment\n--tau 0.8 --experiment a\n\n--tau 0.9 --experiment b\n")
    env.update(SLURM_ARRAY_TASK_ID="1", SLURM_ARRAY_JOB_ID="900", SLURM_JOB_ID="901")
    r = run("bash", str(SLURM / "ray-array.sbatch"), str(settings), env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    calls = _calls(log)
    assert [c for c in calls if c.startswith("srun")] == [
        f"srun --nodes=1 --ntasks=1 --overlap {SLURM / 'ray-node.sh'} head 127.0.0.1:6380"]
    (exp,) = [c for c in calls if c.startswith("python")]
    assert exp == ("python RAY_ADDRESS=127.0.0.1:6380 experiments/asha_vs_ohgw.py --tau 0.9 --experiment b "
                   "--out results/900-1 --address auto")
    assert any(c.endswith("stop --grace-period 30") for c in calls)
    env["SLURM_ARRAY_TASK_ID"] = "2"  # only two setting lines
    r = run("bash", str(SLURM / "ray-array.sbatch"), str(settings), env=env, timeout=30)
    assert r.returncode == 2 and "has 2 setting line(s)" in r.stderr


def test_array_example_settings_parse():
    lines = [ln for ln in (SLURM / "settings.example.txt").read_text().splitlines() if ln and not ln.startswith("#")]
    assert len(lines) == 4 and all("--address" not in ln for ln in lines)
    assert len({ln.split("--experiment ")[1] for ln in lines}) == 4  # one results folder each
    assert os.access(SLURM / "ray-array.sbatch", os.X_OK) and os.access(SLURM / "ray-node.sh", os.X_OK)
