"""DyHPO in real Tuner runs: paused trials resume from their checkpoints, a restored run decides exactly as an
uninterrupted one, and OHGW(DyHPO) warm-starts once with the surrogate learning x′."""

from __future__ import annotations

import json
import math
import os
import signal
import tempfile

import pytest

pytestmark = pytest.mark.ray

MAX_T = 4
XS = [0.15, 0.9, 0.45, 0.6, 0.75, 0.3]
FAST = {"fit_steps": 15, "refit_steps": 3, "refit_every": 3}


def curve(x: float, epoch: int) -> float:
    return x * (1 - math.exp(-epoch / 2)) + 0.05 * math.sin(7 * x * epoch)


def trainable(config):
    from ray import tune

    start = 1
    ckpt = tune.get_checkpoint()
    if ckpt is not None:
        with ckpt.as_directory() as d, open(os.path.join(d, "state.json")) as f:
            start = json.load(f)["epoch"] + 1
    for epoch in range(start, config["max_t"] + 1):
        with tempfile.TemporaryDirectory() as d:
            with open(os.path.join(d, "state.json"), "w") as f:
                json.dump({"epoch": epoch}, f)
            tune.report({"val_acc": curve(config["x"], epoch), "resumed_from": start - 1},
                        checkpoint=tune.Checkpoint.from_directory(d))


def _callbacks(sched, path, interrupt_after=None):
    from ray import tune

    from ohgw.tune.callbacks import SchedulerStateCallback

    class Seen(tune.Callback):
        def __init__(self):
            self.n = 0

        def on_trial_result(self, iteration, trials, trial, result, **info):
            with open(path + ".results", "a") as f:
                f.write(json.dumps([trial.config["x"], result["training_iteration"], result["resumed_from"]]) + "\n")

        def on_checkpoint(self, iteration, trials, trial, checkpoint, **info):
            self.n += 1
            if interrupt_after is not None and self.n == interrupt_after:
                with open(path + ".cut", "w") as f:
                    json.dump({"decisions": len(sched.decisions)}, f)
                os.kill(os.getpid(), signal.SIGUSR1)  # Tune's graceful interrupt

        def on_experiment_end(self, trials, **info):
            xs = {t.trial_id: t.config["x"] for t in trials}
            with open(path, "w") as f:
                json.dump([[d[0], xs[d[1]], *d[2:]] for d in sched.decisions], f)

        def get_state(self):
            return {"n": self.n}

        def set_state(self, state):
            self.n = state["n"]

    return [SchedulerStateCallback(sched), Seen()]


def _tuner(tmp_path, name, interrupt_after=None):
    from ray import tune

    from ohgw.dyhpo import DyHPO
    from ohgw.space import SearchSpace

    sched = DyHPO(metric="val_acc", mode="max", max_t=MAX_T, pool_size=3, max_concurrent=1,
                  space=SearchSpace.from_bounds({"x": (0.0, 1.0, "identity")}), **FAST)
    return tune.Tuner(
        tune.with_resources(trainable, {"cpu": 2}),  # one trial at a time: a deterministic run
        param_space={"x": tune.grid_search(XS), "max_t": MAX_T},
        tune_config=tune.TuneConfig(scheduler=sched, reuse_actors=True),
        run_config=tune.RunConfig(name=name, storage_path=str(tmp_path), verbose=0,
                                  callbacks=_callbacks(sched, str(tmp_path / "log.json"), interrupt_after)),
    )


def _results(tmp_path):
    with open(tmp_path / "log.json.results") as f:
        return [tuple(json.loads(line)) for line in f]


@pytest.fixture(scope="module")
def uninterrupted(ray_local, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dyhpo_full")
    grid = _tuner(tmp, "full").fit()
    return grid, json.loads((tmp / "log.json").read_text()), _results(tmp)


def test_real_run_completes_and_paused_trials_resume_from_checkpoints(uninterrupted):
    grid, log, results = uninterrupted
    assert len(grid) == len(XS) and not grid.errors
    by_x: dict[float, list[tuple[int, int]]] = {}
    for x, it, resumed_from in results:
        by_x.setdefault(x, []).append((it, resumed_from))
    assert all([it for it, _ in seq] == list(range(1, MAX_T + 1)) for seq in by_x.values()), by_x
    resumed = [seq for seq in by_x.values() if any(r > 0 for _, r in seq)]
    assert resumed, "no trial was paused and resumed from its checkpoint"
    for seq in resumed:  # a new actor run starts right after the epoch it was paused at
        for (it, r), (prev_it, prev_r) in zip(seq[1:], seq):
            if r != prev_r:
                assert r == prev_it and it == r + 1
    # what DyHPO decided is what happened: each advance resumed the trial where it paused
    assert [d for d in log if d[0] == "report"] and len([d for d in log if d[0] == "report"]) == len(results)
    advances = [d for d in log if d[0] == "advance"]
    assert {d[1] for d in advances} >= {x for x, seq in by_x.items() if any(r > 0 for _, r in seq)}


def test_restore_continues_with_exactly_the_same_decisions(uninterrupted, tmp_path):
    from ray import tune

    _, full, full_results = uninterrupted
    _tuner(tmp_path, "cut", interrupt_after=9).fit()
    first = _results(tmp_path)
    assert 9 <= len(first) < len(full_results)
    cut = json.loads((tmp_path / "log.json.cut").read_text())
    assert any(d[0] == "advance" for d in full[: cut["decisions"]])  # the cut fell after surrogate decisions
    restored = tune.Tuner.restore(str(tmp_path / "cut"), trainable=tune.with_resources(trainable, {"cpu": 2}))
    grid = restored.fit()
    assert len(grid) == len(XS) and not grid.errors
    assert json.loads((tmp_path / "log.json").read_text()) == full  # every decision, before and after the restore
    # the same epochs in the same order, none run twice or skipped (the trial running at the cut resumes from
    # its checkpoint in a new actor, so only its resumed_from differs)
    assert [r[:2] for r in _results(tmp_path)] == [r[:2] for r in full_results]


def ohgw_trainable(config):
    """A tiny user trainable without torch (what is checked is the scheduling): the curves of :func:`curve` in
    lr; the OHGW warm-start through :func:`ohgw.warmstart.warm_start_with` with the exact gradient of
    ``|u - u*|^2`` (u: log10 search coordinates; u* is u with lr at 0.1, so lr
    moves by the whole normalized step); a checkpoint per epoch."""
    from ray import tune

    from ohgw.testing.quadratic import warm_start_toward

    record, start = None, 0
    ckpt = tune.get_checkpoint()
    if ckpt is None:  # warm-start once, at the start, never on resume
        config, record = warm_start_toward(config, {"lr": 0.1})
    else:
        with ckpt.as_directory() as d, open(os.path.join(d, "state.json")) as f:
            start = json.load(f)["epoch"]
    first = record.flat() if record is not None else {}
    for epoch in range(start + 1, config["max_t"] + 1):
        with tempfile.TemporaryDirectory() as d:
            with open(os.path.join(d, "state.json"), "w") as f:
                json.dump({"epoch": epoch}, f)
            tune.report({"val_acc": curve(config["lr"], epoch), "resumed_from": start, "lr_used": config["lr"],
                         **first}, checkpoint=tune.Checkpoint.from_directory(d))
        first = {}


def test_ohgw_around_dyhpo_warm_starts_once_and_the_surrogate_sees_x_prime(ray_local, tmp_path):
    from ray import tune

    from ohgw import SearchSpace
    from ohgw.dyhpo import DyHPO
    from ohgw.tune.wrapper import OHGW

    space = SearchSpace.from_bounds({"lr": (1e-2, 1.0, "log10"), "wd": (1e-6, 1e-2, "log10")})
    sched = OHGW(DyHPO(max_t=4, pool_size=2, max_concurrent=2, **FAST), space, mode="hypergrad", seed=3)
    n, path = 4, str(tmp_path / "results.jsonl")

    class ResultLog(tune.Callback):
        def on_trial_result(self, iteration, trials, trial, result, **info):
            with open(path, "a") as f:
                f.write(json.dumps([trial.trial_id, result["training_iteration"], result["resumed_from"],
                                    result["lr_used"]]) + "\n")

    grid = tune.Tuner(
        tune.with_resources(ohgw_trainable, {"cpu": 1}),
        param_space={**space.param_space(), "max_t": 4},
        tune_config=tune.TuneConfig(metric="val_acc", mode="max", scheduler=sched, num_samples=n, reuse_actors=True),
        run_config=tune.RunConfig(name="ohgw_dyhpo", storage_path=str(tmp_path), verbose=0,
                                  callbacks=[*sched.callbacks(), ResultLog()]),
    ).fit()
    assert grid.num_errors == 0 and len(grid) == n and len(sched.records) == n
    rows: dict[str, list] = {}
    with open(path) as f:
        for line in f:
            tid, *row = json.loads(line)
            rows.setdefault(tid, []).append(row)
    seen = sched.scheduler.configs()
    resumed = 0
    for tid, seq in rows.items():
        x_prime = sched.records[tid]["x_prime"]
        assert [r[0] for r in seq] == list(range(1, 5)), seq  # every epoch once, in order
        assert [r[2] for r in seq] == pytest.approx([x_prime["lr"]] * 4)  # x′ trained, before and after resumes
        assert seen[tid]["lr"] == pytest.approx(x_prime["lr"]) and seen[tid]["wd"] == pytest.approx(x_prime["wd"])
        assert seen[tid]["lr"] != pytest.approx(sched.records[tid]["x"]["lr"])  # the surrogate saw x′, not x
        resumed += any(r[1] > 0 for r in seq)
    assert resumed >= 1
