"""Every script that runs Ray Tune follows the main job's console contract and leaves no Tune folder behind.

Issue 22, §2. Each script runs at its smallest size: the scripts with a Tuner of their own in this process, on
the suite's shared Ray (``ray_local``), the harness's scripts as a subprocess (a whole CLI run, its own Ray);
the console is captured at the file descriptors: at most :data:`MAX_LINES` lines, a line naming the Ray/Tune log
file (which exists and is not empty), no Tune trial table on the console, and no checkpoint or Tune folder left
in its output. The linear BYOL sweep (a 1-run grid) runs in the default suite; the others are slow.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ohgw.studies.tune_console import remove_tune_dir

pytestmark = pytest.mark.ray

ROOT = Path(__file__).resolve().parents[1]
MAX_LINES = 80
TABLE = re.compile(r"Trial status|Trial name|╭|│")
LOG_LINE = re.compile(r"Ray/Tune log in (\S+\.log)|Ray/Tune log: (\S+\.log)|log(?: file)?:? (\S+\.log)")
TUNE_DIRS = ("_tune", "tune")
BAR = re.compile(r"^\s*([\w .-]+?):\s+\d+%\|")  # a tqdm bar's line: "studies:  50%|###  ..."

LB_SWEEP = ["sweep", "--epochs", "2", "--log_every", "1", "--samples_per_epoch", "64", "--lr_pred_logspace", "1e-2",
            "1e-1", "1", "--tau_logspace", "1e-1", "1", "1"]  # one run
HARNESS = ["--seeds", "1", "--budget", "2", "--max-t", "1", "--trials-per-study", "1", "--no-report"]

# name -> (how to run it, its arguments before --out, the output flag)
SCRIPTS = {
    "linear_byol sweep": ("module", "trainables.linear_byol", LB_SWEEP, "--out_dir"),
    "tw_byol_ablation": ("main", "experiments/tw_byol_ablation.py",
                         ["--seeds", "1", "--max-t", "1", "--taus", "5", "--weightings", "uniform",
                          "--steps-per-epoch", "2"], "--out"),
    "jepa_noise_sweep": ("main", "experiments/jepa_noise_sweep.py",
                         ["--smoke", "--models", "VICReg", "--noise-types", "changing", "--samples", "1",
                          "--max-t", "1"], "--out"),
    "asha_vs_ohgw": ("script", "experiments/asha_vs_ohgw.py", HARNESS, "--out"),
    "linear_byol_ohgw": ("script", "experiments/linear_byol_ohgw.py", [*HARNESS[:-1], "--sweep_steps", "1"], "--out"),
    # the other harness scripts: the same CLI (ohgw.studies.cli.main) on their own workloads and methods
    # PASHA needs two rungs below max_t (1 and 3 at its reduction factor 3)
    "pasha_vs_ohgw": ("script", "experiments/pasha_vs_ohgw.py",
                      ["--seeds", "1", "--budget", "8", "--max-t", "4", "--trials-per-study", "1", "--no-report"], "--out"),
    "hyperband_vs_ohgw": ("script", "experiments/hyperband_vs_ohgw.py", HARNESS, "--out"),
    "dyhpo_vs_ohgw": ("script", "experiments/dyhpo_vs_ohgw.py", HARNESS, "--out"),
    "lcbench_vs_ohgw": ("script", "experiments/lcbench_vs_ohgw.py", HARNESS, "--out"),
    "ssl_asha_vs_ohgw": ("script", "experiments/ssl_asha_vs_ohgw.py", [*HARNESS, "--method", "byol"], "--out"),
}
SLOW = {name for name in SCRIPTS if name != "linear_byol sweep"}


def _run(kind: str, target: str, argv: list[str]) -> int:
    if kind == "module":
        from trainables.linear_byol.cli import main

        return main(argv)
    if kind == "main":
        spec = importlib.util.spec_from_file_location(Path(target).stem, ROOT / target)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod.main(argv)
    r = subprocess.run([sys.executable, str(ROOT / target), *argv, "--num-cpus", "2"], cwd=ROOT, timeout=540,
                       env={**os.environ, "RAY_AUTH_MODE": "disabled"})
    return r.returncode


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in SCRIPTS])
def test_script_console_is_short_names_its_log_and_leaves_no_tune_folder(name, ray_local, tmp_path, capfd):
    kind, target, argv, out_flag = SCRIPTS[name]
    out = tmp_path / "out"
    rc = _run(kind, target, [*argv, out_flag, str(out)])
    console = capfd.readouterr()
    text = console.out + console.err
    lines = text.splitlines()
    assert rc == 0, text[-3000:]
    assert len(lines) <= MAX_LINES, f"{len(lines)} console lines:\n{text}"
    assert not [ln for ln in lines if TABLE.search(ln)], text  # Tune's trial tables are in the log file
    bars = {m.group(1) for m in map(BAR.match, re.split(r"[\r\n]", text)) if m}
    assert len(bars) == 1, f"one progress bar, not {sorted(bars)}"
    logs = [next(g for g in m.groups() if g) for m in map(LOG_LINE.search, console.err.splitlines()[:5]) if m]
    assert logs and Path(logs[0]).is_file() and Path(logs[0]).stat().st_size > 0, text[:2000]
    left = [str(p.relative_to(out)) for p in out.rglob("*") if p.is_dir()
            and (p.name.startswith("checkpoint_") or p.name in TUNE_DIRS)]
    assert left == [], left


def test_remove_tune_dir_frees_the_folder_unless_kept(tmp_path):
    tune = tmp_path / "_tune" / "run" / "checkpoint_000001"
    tune.mkdir(parents=True)
    (tune / "weights.bin").write_bytes(b"\0" * 1000)
    assert remove_tune_dir(tmp_path / "_tune", keep=True) == 0 and tune.is_dir()
    assert remove_tune_dir(tmp_path / "_tune") == 1000 and not (tmp_path / "_tune").exists()
    assert remove_tune_dir(tmp_path / "_tune") == 0  # nothing there: nothing to do


def test_console_puts_what_the_driver_prints_in_the_log_unless_verbose(tmp_path, capsys):
    from ohgw.studies.tune_console import TuneConsole

    for verbose in (False, True):
        out = tmp_path / f"verbose-{verbose}"
        with TuneConsole(out, total=1, unit="cell", verbose=verbose, name="demo") as console:
            print("Tune's configuration box")  # what Tune prints in the driver
            console.step("cell 1: done")
        seen = capsys.readouterr()
        log = next(out.glob("logs/ray-tune-*.log")).read_text()
        assert seen.err.splitlines()[0] == f"demo: Ray/Tune log in {console.log_path}" + (
            " (and on the console)" if verbose else "")
        assert "cell 1: done" in seen.err
        assert ("Tune's configuration box" in seen.out) is verbose
        assert ("Tune's configuration box" in log) is not verbose
