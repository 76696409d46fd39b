"""HyperBand with several trials at once: a trial still saving when its bracket finishes is not orphaned.

Ray's ``_Bracket.cleanup_full`` stops a finished bracket's other trials only if they are PAUSED;
one that was told to PAUSE a moment earlier is still RUNNING (saving its checkpoint), becomes
PAUSED afterwards and is never resumed nor stopped: the Tuner waits forever (see
:mod:`ohgw.tune.delegating`). The wrapper stops such a trial once it is PAUSED, as
``cleanup_full`` would have. Hook-level tests reproduce the window exactly (``Replay`` with
several workers and saves that take a tick); a real Tuner run widens it with a slow save.
"""

from __future__ import annotations

import json
import os
import time

import pytest
from ray.tune.experiment import Trial
from ray.tune.schedulers import HyperBandScheduler, TrialScheduler

from ohgw.space import SearchSpace
from ohgw.testing.replay import Replay
from ohgw.tune.delegating import DelegatingScheduler
from ohgw.tune.wrapper import OHGW
from ohgw.warmstart import WarmStartSettings

SPACE = SearchSpace.from_bounds({"lr": (1e-3, 1.0, "log10"), "wd": (1e-6, 1e-2, "log10")})


def config_of(i: int) -> dict:
    return {"lr": 0.01 * (i + 1), "wd": 1e-4}


def curve(i: int, t: int) -> float:
    return ((i * 0.618) % 1) * t


def hyperband(max_t: int) -> HyperBandScheduler:
    return HyperBandScheduler(metric="acc", mode="max", max_t=max_t, reduction_factor=2)


def run(sched, n: int, max_t: int, workers: int, save_ticks: int, max_live: int | None = None) -> Replay:
    r = Replay(sched, n, max_t, curve, configs=config_of, workers=workers, save_ticks=save_ticks, max_live=max_live)
    r.run(max_steps=1000)
    return r


class CountingStops(Replay):
    """A Replay that counts the ``stop_trial`` calls a scheduler makes."""

    stops: int = 0

    def stop_trial(self, trial: Trial) -> None:
        self.stops += 1
        super().stop_trial(trial)


# ---------------------------------------------------------------- hook level
@pytest.mark.parametrize(
    "n, max_t, workers",
    [(4, 3, 4), (4, 9, 2), (4, 9, 4), (8, 3, 2), (8, 9, 2)],
)
def test_bare_hyperband_orphans_a_trial_saving_when_its_bracket_finishes_and_the_wrapper_does_not(n, max_t, workers):
    bare = run(hyperband(max_t), n, max_t, workers, save_ticks=1)
    assert bare.stuck, "the stream must hit the save window"
    for i in bare.stuck:  # the orphan: PAUSED in a finished bracket, never to be chosen again
        t = bare.trials[i]
        assert t.status == Trial.PAUSED
        bracket, _ = bare.scheduler._trial_info[t]
        assert bracket.finished() and t in bracket.current_trials() and t not in bracket.trials_to_unpause
    for sched in (OHGW(hyperband(max_t), SPACE, mode="none"), DelegatingScheduler(hyperband(max_t))):
        wrapped = run(sched, n, max_t, workers, save_ticks=1)
        assert wrapped.stuck == []
        assert all(t.status == Trial.TERMINATED for t in wrapped.trials)
        assert wrapped.log == bare.log  # every decision is the bare scheduler's
        assert sched._stop_when_paused == []


@pytest.mark.parametrize("workers, max_live", [(2, None), (4, None), (4, 2), (3, 3)])
def test_without_the_race_the_wrapper_stops_nothing_and_decides_alike(workers, max_live):
    """No save window: the repair never fires; wrapped and bare make the same decisions and stop calls."""
    counts = {}
    for kind in ("bare", "wrapped"):
        sched = hyperband(9) if kind == "bare" else OHGW(hyperband(9), SPACE, mode="none")
        r = CountingStops(sched, 12, 9, curve, configs=config_of, workers=workers, save_ticks=0, max_live=max_live)
        r.run(max_steps=1000)
        assert r.stuck == []
        counts[kind] = (r.log, r.stops, [t.status for t in r.trials], r.iterations)
    assert counts["wrapped"] == counts["bare"]
    assert TrialScheduler.PAUSE in {d for _, _, d in counts["bare"][0]}


def test_the_orphan_is_stopped_only_after_its_save_ends():
    sched = OHGW(hyperband(3), SPACE, mode="none")
    r = Replay(sched, 4, 3, curve, configs=config_of, workers=4, save_ticks=3)
    seen_waiting = False
    while r.tick():
        for t in sched._stop_when_paused:
            seen_waiting = True
            assert t.is_saving and t.status == Trial.RUNNING  # remembered, not touched while saving
    assert seen_waiting and r.stuck == []


def test_the_repair_survives_a_pickle_made_before_it_existed():
    import ray.cloudpickle as pickle  # Tune's own pickler (HyperBand holds lambdas)

    old = OHGW(hyperband(3), SPACE, WarmStartSettings(mode="none"))
    del old.__dict__["_stop_when_paused"]  # as pickled by the wrapper before the repair
    clone = pickle.loads(pickle.dumps(old))
    assert clone._stop_when_paused == []


# ---------------------------------------------------------------- a real Tuner
def _slow_save_trainable():
    """A class trainable whose checkpoint save takes 1 s: long enough for the other trials to report."""
    from ray import tune

    class SlowSaveTrainable(tune.Trainable):
        def setup(self, config):
            self.lr = config["lr"]
            self.epoch = 0

        def step(self):
            time.sleep(0.05)
            self.epoch += 1
            return {"val_acc": self.lr * self.epoch}

        def save_checkpoint(self, checkpoint_dir):
            time.sleep(1.0)
            with open(os.path.join(checkpoint_dir, "s.json"), "w") as f:
                json.dump({"epoch": self.epoch}, f)

        def load_checkpoint(self, checkpoint_dir):
            with open(os.path.join(checkpoint_dir, "s.json")) as f:
                self.epoch = json.load(f)["epoch"]

    return SlowSaveTrainable


@pytest.mark.ray
@pytest.mark.timeout(120)
def test_wrapped_hyperband_with_four_trials_at_once_and_slow_saves_finishes(ray_local, tmp_path):
    """Bare, this exact run hangs (two trials of the first bracket are saving when it finishes)."""
    from ray import tune

    sched = OHGW(HyperBandScheduler(max_t=3, reduction_factor=2), SPACE, WarmStartSettings(mode="none"))
    t0 = time.monotonic()
    grid = tune.Tuner(
        tune.with_resources(_slow_save_trainable(), {"cpu": 0.5}),
        param_space=SPACE.param_space(),
        tune_config=tune.TuneConfig(metric="val_acc", mode="max", scheduler=sched, num_samples=4,
                                    max_concurrent_trials=4),
        run_config=tune.RunConfig(name="hb_slow_save", storage_path=str(tmp_path), verbose=0,
                                  checkpoint_config=tune.CheckpointConfig(checkpoint_at_end=False)),
    ).fit()
    assert grid.num_errors == 0 and len(grid) == 4
    assert sorted(r.metrics["training_iteration"] for r in grid) == [2, 3, 3, 3]
    assert time.monotonic() - t0 < 100
