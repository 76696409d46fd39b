"""A sequential study through the harness (``--seeds auto``): it stops at a look, and a rerun keeps its decisions."""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ohgw.analysis.sequential import LOOKS_FILE, SequentialDesign
from ohgw.space import SearchSpace
from ohgw.studies.study import ExperimentConfig
from ohgw.warmstart import WarmStartSettings

pytestmark = pytest.mark.ray

SLOWDOWN = (1.6, 3.0)  # the warm-started twin's epochs take this many times longer (range over configs)


def slow_twin(config: dict) -> None:
    """A deterministic trainable whose warm-started twin is slower: 1.6x to 3x, depending on its config.

    The curve is ``val_acc = 0.9 (1 - exp(-epoch / 2))`` on every config; the twin (asked for a
    warm-start by the OHGW wrapper, with a zero hyper-gradient so x' = x) pays its slowdown on the
    compute clock, so T@tau on that clock is larger for the twin, by a config-dependent factor.
    """
    import numpy as np
    from ray import tune

    from ohgw import protocol
    from ohgw.warmstart import instruction, warm_start_with

    epoch_s = float(config.get("epoch_s", 0.01))
    config = dict(config)
    ws_report: dict = {}
    found = instruction(config)
    if found is not None:
        settings, space = found
        config, record = warm_start_with(lambda cur, step: (np.zeros(len(space.names)), 0.0), space, config, settings)
        record.wall_s = record.compute_s = 0.0
        record.peak_rss_mib = 1.0
        ws_report = protocol.warm_start_result(record.to_dict(), share_of_epoch=0.0)
    twin = found is not None or protocol.applied_mode(config) != "none"
    frac = (1000 * math.log10(config["lr"])) % 1.0  # a config-dependent number in [0, 1)
    slow = SLOWDOWN[0] + (SLOWDOWN[1] - SLOWDOWN[0]) * frac if twin else 1.0
    for epoch in range(1, int(config["max_t"]) + 1):
        acc = 0.9 * (1 - math.exp(-epoch / 2.0))
        report = {"val_acc": acc, "test_acc": acc, "val_loss": 1 - acc, "train_loss": 1 - acc,
                  protocol.EPOCH_S: epoch_s, protocol.TRIAL_COMPUTE_S: epoch_s * epoch * slow,
                  protocol.TRIAL_EPOCH_EQUIV: float(epoch), protocol.WS_COMPUTE_S: 0.0,
                  protocol.NODE_ID: "", protocol.DIVERGED: False, protocol.PEAK_RSS_MIB: 1.0}
        if epoch == 1:
            report.update(ws_report)
        tune.report(report)


SPACE = SearchSpace.from_bounds({"lr": (1e-3, 1.0, "log10")})
DESIGN = SequentialDesign(max_pairs=6, look_every=2)  # looks at 2, 4 and 6 pairs


def config() -> ExperimentConfig:
    return ExperimentConfig(experiment="sequential-test", space=SPACE, base_config={"epoch_s": 0.01}, max_t=2,
                            grace_period=1, reduction_factor=2, budget=2.0, tau=0.5, trials_per_study=1,
                            warm_start=WarmStartSettings(step_rule="normalized", eta_h=0.2))


def _run(out, design=DESIGN):
    from ohgw.studies.runner import run_experiment

    return run_experiment(config(), slow_twin, ["asha", "asha+ohgw"], list(range(design.max_pairs)), out,
                          quiet=True, sequential=design)


def _studies(out) -> set[tuple[str, int]]:
    return {(p.parent.name.split("=", 1)[1], int(p.name.split("=")[1]))
            for p in out.glob("studies/experiment=*/method=*/seed=*") if (p / "part-0.parquet").exists()}


@pytest.mark.slow  # ~65 s on 2 loaded cores; tests/test_sequential_looks.py covers the looks and resume without Ray
def test_a_sequential_study_stops_at_its_first_look_and_a_rerun_keeps_the_decision(ray_local, tmp_path):
    out = tmp_path / "seq"
    summary = _run(out)
    record = json.loads((out / LOOKS_FILE).read_text())
    looks = record["looks"]
    # the twin is 1.6-3x slower: after the first 2 pairs the 15 % target is out of reach -> futility
    assert [(lk["look"], lk["n"], lk["seeds"], lk["decision"]) for lk in looks] == [(1, 2, [0, 1], "futility")]
    assert looks[0]["z"] == pytest.approx(-3 / math.sqrt(5))  # both pairs favour the vanilla method
    assert looks[0]["conditional_power"] < 0.10 and record["final"]["stopping_look"] == 1
    assert record["final"]["median_reduction_adjusted"] < 0 and record["final"]["naive_median_reduction"] < 0
    assert "Stopped at look 1 (2 of 6 pairs)" in summary.decision and "conditional power" in summary.decision
    done = _studies(out)
    assert {(m, s) for m in ("asha", "asha+ohgw") for s in (0, 1)} <= done
    assert len(done) <= 6 and summary.ran == len(done)  # at most the 2 studies running at the stop were added
    before = (out / LOOKS_FILE).read_bytes()

    again = _run(out)  # a rerun: nothing new starts, the record is kept as it is
    assert again.ran == 0 and again.decision == summary.decision
    assert (out / LOOKS_FILE).read_bytes() == before

    (out / LOOKS_FILE).unlink()  # killed after the pairs were recorded but before the look was written
    third = _run(out)
    assert third.ran == 0 and third.decision == summary.decision
    redone = json.loads((out / LOOKS_FILE).read_text())
    assert [(lk["n"], lk["z"], lk["decision"]) for lk in redone["looks"]] == [
        (lk["n"], lk["z"], lk["decision"]) for lk in looks]  # the same first pairs, whatever else finished since

    with pytest.raises(ValueError, match="another design"):
        _run(out, SequentialDesign(max_pairs=6, look_every=3))
    assert json.loads((out / LOOKS_FILE).read_text()) == redone


def _driver(out: Path) -> subprocess.Popen:
    """This file as a script: the sequential experiment in a process of its own (with its own local Ray)."""
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    return subprocess.Popen([sys.executable, str(Path(__file__)), str(out)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)


@pytest.mark.slow  # two driver processes with a local Ray each: minutes on 2 loaded cores
def test_killed_before_its_first_look_a_rerun_makes_it_from_the_same_pairs(tmp_path):
    out = tmp_path / "seq"
    proc = _driver(out)
    deadline = time.time() + 400
    while len(_studies(out)) < 2:  # the kill lands once 2 of look 1's 4 studies are recorded (bounded wait)
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        assert time.time() < deadline, "precondition: 2 studies were not recorded within 400 s"
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    time.sleep(1.0)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # the local Ray it started goes with it
    kept = len(_studies(out))
    rerun = _driver(out)
    _, err = rerun.communicate(timeout=500)
    assert rerun.returncode == 0, err.decode()[-2000:]
    assert f"resuming: {kept} completed studies kept" in err.decode()
    looks = json.loads((out / LOOKS_FILE).read_text())["looks"]
    assert [(lk["look"], lk["seeds"], lk["decision"]) for lk in looks] == [(1, [0, 1], "futility")]
    assert looks[0]["z"] == pytest.approx(-3 / math.sqrt(5))
    assert {(m, s) for m in ("asha", "asha+ohgw") for s in (0, 1)} <= _studies(out) and len(_studies(out)) <= 6


if __name__ == "__main__":  # the driver of the kill test
    from ohgw.studies.runner import run_experiment

    run_experiment(config(), slow_twin, ["asha", "asha+ohgw"], list(range(DESIGN.max_pairs)), Path(sys.argv[1]),
                   quiet=True, num_cpus=2, sequential=DESIGN)
