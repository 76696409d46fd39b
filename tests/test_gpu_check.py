"""``benchmarks/gpu_check.py`` on the CPU at tiny sizes (``--device cpu --quick``): the prepared device check
cannot rot. It runs every stage through the same code as on a GPU, without Ray anywhere in its imports
(``ray`` is made unimportable for it and for every process it starts), and its JSON holds every field.
A stage that hangs is killed at its limit with every process it started, and one that fails is reported with
its error line (the CPU stages are forked from the driver; :func:`run_stage` here forks this process).
``--device cuda`` without CUDA (one line, exit status 2, nothing written) is in ``tests/test_bad_device.py``
with every other entry point.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_check.py"


def _gpu_check_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _run(args: list[str], tmp: Path) -> subprocess.CompletedProcess:
    no_ray = tmp / "no_ray"
    no_ray.mkdir(exist_ok=True)
    # imported first by every Python process that inherits PYTHONPATH (stage processes, packed trials, pytest)
    (no_ray / "sitecustomize.py").write_text("import sys\nsys.modules['ray'] = None  # import ray fails\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(no_ray), str(ROOT)]), "OHGW_CACHE_DIR": str(tmp / "cache")}
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, cwd=tmp, env=env,
                          timeout=600)


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("gpu_check")
    done = _run(["--device", "cpu", "--quick", "--out", str(tmp / "out")], tmp)
    return done, tmp / "out"


def test_the_quick_check_runs_every_stage_without_ray_and_writes_every_field(quick):
    done, out = quick
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    record = json.loads((out / "gpu_check.json").read_text())
    mod = _gpu_check_module()
    assert set(record) >= {"command", "versions", "device", "gpu_name", "quick", "date_utc", "goals", "stages",
                           "total_s"}
    assert record["device"] == "cpu" and record["quick"] is True and set(record["stages"]) == set(mod.STAGES)
    for name, fields in mod.FIELDS.items():
        stage = record["stages"][name]
        assert stage["status"] == "ok" and set(stage) >= {*fields, "wall_s", "limit_s"}, (name, stage)
    p2 = record["stages"]["p2"]
    assert all(p2[f] > 0 for f in mod.FIELDS["p2"] if f.endswith("_s"))
    pack = record["stages"]["packing"]
    assert pack["n"] == [1, 2] and len(pack["aggregate_images_per_s"]) == 2 and pack["speedup_vs_1"][0] == 1.0
    assert record["stages"]["p3"]["psi"] == ["lr", "wd", "momentum", "aug_magnitude", "label_smoothing"]
    assert all(v > 0 for v in record["stages"]["ssl"].values() if isinstance(v, float))
    tests = record["stages"]["gpu_tests"]
    if not torch.cuda.is_available():  # here: none ran, and the one line said how many
        assert tests["passed"] == 0 and tests["not_run"] >= 10 and "GPU tests not run" in tests["summary"]
    md = (out / "gpu_check.md").read_text()
    assert "| p2 | device_bf16_cl_deterministic_s |" in md and "| packing | speedup_vs_1 |" in md
    assert done.stdout.startswith(f"# command: python {SCRIPT} --device cpu --quick --out ")  # benchmarks/_machine
    assert done.stdout.splitlines()[1].startswith("# versions: python ") and f"torch {torch.__version__.split('+')[0]}" in done.stdout
    assert sorted(p.name for p in out.iterdir()) == ["gpu_check.json", "gpu_check.md"]  # nothing else left


def _hang(device: str, quick: bool) -> dict:
    child = subprocess.Popen(["sleep", "120"])  # a process the stage started (as packing and pytest do)
    Path(os.environ["HANG_PID_FILE"]).write_text(str(child.pid))
    time.sleep(120)
    return {}


def _fail(device: str, quick: bool) -> dict:
    raise ValueError("stage broke on purpose")


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0]
    except FileNotFoundError:
        return True
    return state == "Z"  # killed, not yet reaped by init


def test_a_hung_stage_is_killed_at_its_limit_with_its_children_and_a_failed_one_names_its_error(tmp_path,
                                                                                                  monkeypatch):
    mod = _gpu_check_module()
    monkeypatch.setitem(mod.STAGES, "hang", (2, 2))
    monkeypatch.setitem(mod.STAGES, "fail", (30, 30))
    monkeypatch.setitem(mod.STAGE_FUNCTIONS, "hang", _hang)
    monkeypatch.setitem(mod.STAGE_FUNCTIONS, "fail", _fail)
    monkeypatch.setenv("HANG_PID_FILE", str(tmp_path / "pid"))
    hung = mod.run_stage("hang", "cpu", False)
    assert hung["status"] == "timeout" and hung["limit_s"] == 2 and 2 <= hung["wall_s"] < 30, hung
    pid = int((tmp_path / "pid").read_text())
    for _ in range(50):  # SIGKILL is delivered at once; init reaps the orphan soon after
        if _gone(pid):
            break
        time.sleep(0.1)
    assert _gone(pid), f"the hung stage's child {pid} survived"
    failed = mod.run_stage("fail", "cpu", False)
    assert failed["status"] == "failed" and failed["error"] == "ValueError: stage broke on purpose", failed
