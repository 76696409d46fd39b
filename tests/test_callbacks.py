"""AdjustedConfigCallback and SchedulerStateCallback, unit-level and through a real interrupted Tuner run."""

from __future__ import annotations

import os
import signal
import tempfile
from pathlib import Path

import pytest
from ray import tune
from ray.tune.callback import Callback
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

from ohgw import SearchSpace
from ohgw.protocol import ORIGINAL_KEY
from ohgw.testing.replay import stub_trial
from ohgw.tune.callbacks import AdjustedConfigCallback, SchedulerStateCallback
from ohgw.tune.wrapper import OHGW
from ohgw.warmstart import WarmStartSettings

SPACE = SearchSpace.from_bounds({"lr": (1e-3, 1.0, "log10"), "wd": (1e-6, 1e-2, "log10")})
FIRST = {"training_iteration": 1, "val_acc": 0.4, "ohgw/x/lr": 0.1, "ohgw/x_prime/lr": 0.2, "ohgw/g/lr": -2.0,
         "ohgw/x/wd": 1e-4, "ohgw/x_prime/wd": 1e-4, "ohgw/g/wd": 0.0}


# ---- unit ----------------------------------------------------------------------------------
def test_adjusted_config_callback_rewrites_result_config_after_the_scheduler_recorded_x_prime():
    sched = OHGW(FIFOScheduler(), SPACE)
    trial = stub_trial(0, {"lr": 0.1, "wd": 1e-4})
    sched.on_trial_add(None, trial)
    sched.on_trial_result(None, trial, dict(FIRST))
    result = {**FIRST, "config": {"lr": 0.1, "wd": 1e-4, "ohgw": {"mode": "hypergrad"}}}
    AdjustedConfigCallback().on_trial_result(iteration=1, trials=[trial], trial=trial, result=result)
    assert result["config"]["lr"] == 0.2 and result["config"][ORIGINAL_KEY] == {"lr": 0.1, "wd": 1e-4}
    assert result["config"] is not trial.config  # a copy, not the live dict
    later = {"training_iteration": 2, "val_acc": 0.5, "config": {"lr": 0.1, "wd": 1e-4}}
    AdjustedConfigCallback().on_trial_result(iteration=2, trials=[trial], trial=trial, result=later)
    assert later["config"]["lr"] == 0.2


def test_adjusted_config_callback_records_x_prime_under_a_scheduler_that_is_not_ohgw():
    trial = stub_trial(0, {"lr": 0.1, "wd": 1e-4})
    result = {**FIRST, "config": dict(trial.config)}
    AdjustedConfigCallback().on_trial_result(iteration=1, trials=[trial], trial=trial, result=result)
    assert trial.config["lr"] == 0.2 and trial.config[ORIGINAL_KEY]["lr"] == 0.1
    assert result["config"]["lr"] == 0.2
    untouched = stub_trial(1, {"lr": 0.3, "wd": 1e-4})
    plain = {"training_iteration": 1, "val_acc": 0.1, "config": {"lr": 0.3, "wd": 1e-4}}
    AdjustedConfigCallback().on_trial_result(iteration=1, trials=[untouched], trial=untouched, result=plain)
    assert plain["config"] == {"lr": 0.3, "wd": 1e-4} and ORIGINAL_KEY not in untouched.config


def test_scheduler_state_callback_round_trip_and_bad_input():
    with pytest.raises(ValueError, match="scheduler must have get_state"):
        SchedulerStateCallback(ASHAScheduler())
    a = OHGW(ASHAScheduler(metric="val_acc", mode="max", max_t=9), SPACE)
    trial = stub_trial(0, {"lr": 0.1, "wd": 1e-4})
    a.on_trial_add(None, trial)
    a.on_trial_result(None, trial, dict(FIRST))
    state = SchedulerStateCallback(a).get_state()
    b = OHGW(ASHAScheduler(metric="val_acc", mode="max", max_t=9), SPACE)
    cb = SchedulerStateCallback(b)
    assert cb.restored is False
    cb.set_state(state)
    assert cb.restored is True
    assert b.get_state() == a.get_state()
    assert b.records[trial.trial_id]["x_prime"]["lr"] == 0.2
    other = SchedulerStateCallback(OHGW(FIFOScheduler(), SPACE))
    other.scheduler.__class__ = type("NotOHGW", (OHGW,), {})
    with pytest.raises(ValueError, match="state: saved for a OHGW"):
        other.set_state(state)


# ---- a real interrupted and restored run -------------------------------------------------------
def counting_trainable(config):
    """A torch-free trainable (what is checked is the callbacks' state, not a model): ``val_acc`` a curve in lr
    and the epoch; a warm-start with the exact gradient of ``|u - u*|^2`` (u: log10 search coordinates; u* is u
    with lr at 0.1, so lr moves by the whole normalized step) through :func:`ohgw.warmstart.warm_start_with`; a
    JSON checkpoint every epoch. Appends one line to <ws_dir>/<trial_index> each time it warm-starts."""
    import json
    import math

    from ray.tune import Checkpoint

    from ohgw.testing.quadratic import warm_start_toward

    checkpoint = tune.get_checkpoint()
    first = {}
    start = 0
    if checkpoint is None:
        config, record = warm_start_toward(config, {"lr": 0.1})
        if record is not None:
            if record.mode != "none":
                with open(Path(config["ws_dir"]) / str(config["ohgw"]["trial_index"]), "a") as f:
                    f.write(f"{record.x['lr']!r} {record.x_prime['lr']!r}\n")
            first = record.flat()
    else:
        with checkpoint.as_directory() as d, open(f"{d}/state.json") as f:
            start = json.load(f)["epoch"]
    ceiling = 0.95 - 0.2 * abs(math.log10(config["lr"]) + 1.0)
    for epoch in range(start, config["epochs"]):
        acc = ceiling * (1 - math.exp(-(epoch + 1) / 2.0))
        with tempfile.TemporaryDirectory() as d:
            with open(f"{d}/state.json", "w") as f:
                json.dump({"epoch": epoch + 1}, f)
            tune.report({"val_acc": acc + 0.01 * config["trial_seed_offset"], **first},
                        checkpoint=Checkpoint.from_directory(d))
        first = {}


class InterruptOnce(Callback):
    """Sends SIGUSR1 (Tune's 'stop and checkpoint') after ``after`` results, once per flag file."""

    def __init__(self, flag: str, after: int) -> None:
        self.flag, self.after, self.seen = flag, after, 0

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self.seen += 1
        if self.seen == self.after and not os.path.exists(self.flag):
            Path(self.flag).touch()
            os.kill(os.getpid(), signal.SIGUSR1)


def _pasha():
    from ohgw.pasha import PASHA

    return PASHA(max_t=8, grace_period=1, reduction_factor=2, max_concurrent=2)


@pytest.mark.ray
@pytest.mark.parametrize(
    "kind", ["asha", pytest.param("pasha", marks=pytest.mark.slow)]
)
def test_interrupted_and_restored_run_keeps_state_and_never_warm_starts_twice(ray_local, tmp_path, kind):
    ws_dir = tmp_path / "ws"
    ws_dir.mkdir()
    inner = ASHAScheduler(max_t=3, grace_period=1, reduction_factor=2) if kind == "asha" else _pasha()
    sched = OHGW(inner, SPACE, WarmStartSettings(step_rule="normalized", seed=3))
    param_space = {**SPACE.param_space(), "ws_dir": str(ws_dir), "trial_seed_offset": tune.uniform(0, 1),
                   "epochs": 3 if kind == "asha" else 8}
    concurrency = {"max_concurrent_trials": 2} if kind == "asha" else {}  # PASHA limits concurrency itself
    tuner = tune.Tuner(
        counting_trainable,
        param_space=param_space,
        tune_config=tune.TuneConfig(metric="val_acc", mode="max", scheduler=sched, num_samples=4,
                                    reuse_actors=True, **concurrency),
        run_config=tune.RunConfig(name="restore", storage_path=str(tmp_path),
                                  callbacks=[InterruptOnce(str(tmp_path / "flag"), after=3), *sched.callbacks()],
                                  verbose=0),
    )
    first = tuner.fit()
    assert (tmp_path / "flag").exists()
    unfinished = [r for r in first if not (r.metrics or {}).get("done")]
    assert unfinished, "the interruption left no unfinished trial; the test would prove nothing"
    before = {p.name: p.read_text().splitlines() for p in ws_dir.iterdir()}
    assert before and all(len(v) == 1 for v in before.values())

    restored = tune.Tuner.restore(str(tmp_path / "restore"), counting_trainable, resume_unfinished=True)
    restored_sched = restored._local_tuner._tune_config.scheduler
    state_cb = restored._local_tuner._run_config.callbacks[2]
    assert isinstance(restored_sched, OHGW) and state_cb.scheduler is restored_sched
    grid = restored.fit()
    assert state_cb.restored is True  # Tune handed the saved scheduler state back
    assert grid.num_errors == 0 and len(grid) == 4
    after = {p.name: p.read_text().splitlines() for p in ws_dir.iterdir()}
    assert sorted(after) == [str(i) for i in range(4)]  # every trial warm-started
    reported = {str(r.config["ohgw"]["trial_index"]) for r in first if (r.metrics or {}).get("training_iteration")}
    assert reported
    final = {str(r.config["ohgw"]["trial_index"]): r.config for r in grid}
    for index, lines in after.items():
        x, x_prime = (float(v) for v in lines[0].split())
        # never a second step from an adjusted config: every warm-start of a trial started at its sampled x ...
        assert final[index]["ohgw_x"]["lr"] == x and final[index]["lr"] == x_prime
        # ... and a warm-start lost with its unreported trial is redone identically (same seed, same batches)
        assert len(set(lines)) == 1
        if index in reported:  # a trial whose x' was recorded before the interruption never warm-starts again
            assert len(lines) == 1
    assert {k: v for k, v in after.items() if k in reported} == {k: v for k, v in before.items() if k in reported}
    if kind == "asha":  # the rungs recorded before the interruption survived into the restored ASHA
        rungs_before = {tid for _, rec in sched.scheduler._brackets[0]._rungs for tid in rec}
        rungs_after = {tid for _, rec in restored_sched.scheduler._brackets[0]._rungs for tid in rec}
        assert rungs_before and rungs_before <= rungs_after
    assert all(result.config["ohgw"]["applied"] == "hypergrad" for result in grid)
