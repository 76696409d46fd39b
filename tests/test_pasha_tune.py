"""PASHA in real Tuner runs: pause/resume from checkpoints, exact decisions across Tuner.restore, and OHGW around PASHA."""

from __future__ import annotations

import json
import math
import os
import signal
import tempfile

import pytest

pytestmark = pytest.mark.ray

MAX_T = 8  # rung levels 1, 2, 4 (eta 2); PASHA starts with max resource 2
XS = [0.15, 0.3, 0.45, 0.6, 0.75, 0.9, 0.22, 0.52]


def curve(x: float, epoch: int) -> float:
    """Deterministic learning curves that cross each other."""
    return x * (1 - math.exp(-epoch / 3)) + 0.06 * math.sin(9 * x * epoch)


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
            tune.report(
                {"val_acc": curve(config["x"], epoch), "resumed_from": start - 1},
                checkpoint=tune.Checkpoint.from_directory(d),
            )


def _callbacks(pasha, log_path, interrupt_after=None):
    from ray import tune

    from ohgw.tune.callbacks import SchedulerStateCallback

    class Seen(tune.Callback):
        """Writes every result (x, epoch, resumed_from) and, at the end, PASHA's log, to files."""

        def __init__(self, scheduler, path, interrupt_after):
            self.scheduler, self.path, self.interrupt_after, self.n = scheduler, path, interrupt_after, 0

        def on_trial_result(self, iteration, trials, trial, result, **info):
            with open(self.path + ".results", "a") as f:
                f.write(json.dumps([trial.config["x"], result["training_iteration"], result["resumed_from"]]) + "\n")

        def on_checkpoint(self, iteration, trials, trial, checkpoint, **info):
            # Interrupt once the k-th trial checkpoint is registered (Tune registers it a step after
            # the result; interrupting in between would make the restored trial redo that epoch).
            self.n += 1
            if self.interrupt_after is not None and self.n == self.interrupt_after:
                state = self.scheduler.get_state()
                with open(self.path + ".cut", "w") as f:
                    json.dump({"state": state, "status": {t.trial_id: t.status for t in trials}}, f)
                os.kill(os.getpid(), signal.SIGUSR1)  # Tune's graceful interrupt: checkpoint and return

        def on_experiment_end(self, trials, **info):
            xs = {t.trial_id: t.config["x"] for t in trials}
            log = [[d[0], xs[d[1]], *d[2:]] for d in self.scheduler.decisions]
            with open(self.path, "w") as f:
                json.dump({"log": log, "max_t": self.scheduler.current_max_t, "eps": self.scheduler.eps}, f)

        def get_state(self):
            return {"n": self.n}

        def set_state(self, state):
            self.n = state["n"]

    return [SchedulerStateCallback(pasha), Seen(pasha, str(log_path), interrupt_after)]


def _tuner(tmp_path, name, log_path, interrupt_after=None, progressive=True, cpus=2):
    from ray import tune

    from ohgw.pasha import PASHA

    pasha = PASHA(
        metric="val_acc", mode="max", max_t=MAX_T, grace_period=1, reduction_factor=2, progressive=progressive
    )
    return tune.Tuner(
        tune.with_resources(trainable, {"cpu": cpus}),  # 2 CPUs each: one worker, a deterministic run
        param_space={"x": tune.grid_search(XS), "max_t": MAX_T},
        tune_config=tune.TuneConfig(scheduler=pasha, reuse_actors=True),
        run_config=tune.RunConfig(
            name=name,
            storage_path=str(tmp_path),
            verbose=0,
            callbacks=_callbacks(pasha, log_path, interrupt_after),
        ),
    )


def _results(log_path):
    with open(str(log_path) + ".results") as f:
        return [tuple(json.loads(line)) for line in f]


@pytest.fixture(scope="module")
def uninterrupted(ray_local, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pasha_full")
    grid = _tuner(tmp, "full", tmp / "log.json").fit()
    return grid, json.loads((tmp / "log.json").read_text()), _results(tmp / "log.json")


def test_real_run_completes_and_paused_trials_resume_from_checkpoint(uninterrupted):
    grid, log, results = uninterrupted
    assert len(grid) == len(XS) and not grid.errors
    assert all(r.metrics["training_iteration"] >= 1 for r in grid)
    by_x: dict[float, list[tuple[int, int]]] = {}
    for x, it, resumed_from in results:
        by_x.setdefault(x, []).append((it, resumed_from))
    for x, seq in by_x.items():
        # every epoch once, in order: a resumed trial continues, it never starts from scratch
        assert [it for it, _ in seq] == list(range(1, len(seq) + 1)), (x, seq)
    resumed = {x: seq for x, seq in by_x.items() if any(r > 0 for _, r in seq)}
    assert resumed, "no trial was paused and resumed from its checkpoint"
    for seq in resumed.values():
        for (it, r), (prev_it, prev_r) in zip(seq[1:], seq):
            if r != prev_r:  # a new actor run: it starts right after the epoch it was paused at
                assert r == prev_it and it == r + 1
    # what PASHA decided is what happened
    promotions = [d for d in log["log"] if d[0] == "promote"]
    assert {d[1] for d in promotions} >= set(resumed)
    assert log["max_t"] in (2, 4, MAX_T)
    reports = [d for d in log["log"] if d[0] == "report"]
    assert len(reports) == len(results)


def test_restore_continues_with_exactly_the_same_decisions(uninterrupted, tmp_path):
    from ray import tune

    _, full, full_results = uninterrupted
    log_path = tmp_path / "log.json"
    k = 11  # interrupt after this many checkpoints (several rung decisions made, trials paused)
    _tuner(tmp_path, "cut", log_path, interrupt_after=k).fit()
    first = _results(log_path)
    assert k <= len(first) < len(full_results)
    cut = json.loads((tmp_path / "log.json.cut").read_text())
    core = cut["state"]["core"]
    paused_in_rungs = {e[0] for _, entries in core["rungs"] for e in entries if not e[2]}
    never_started = [t for t in cut["status"] if t not in core["order"]]
    assert len(paused_in_rungs) >= 2 and never_started  # the interrupt fell mid-run
    assert any(d[0] == "promote" for d in cut["state"]["log"])
    restored = tune.Tuner.restore(str(tmp_path / "cut"), trainable=tune.with_resources(trainable, {"cpu": 2}))
    grid = restored.fit()
    assert len(grid) == len(XS) and not grid.errors
    again = json.loads(log_path.read_text())
    assert again["log"] == full["log"]  # every decision, before and after the restore
    assert again["max_t"] == full["max_t"] and again["eps"] == full["eps"]
    assert _results(log_path) == full_results  # no epoch was run twice or skipped


def test_promotion_asha_with_two_workers_runs_to_max_t(ray_local, tmp_path):
    log_path = tmp_path / "log.json"
    grid = _tuner(tmp_path, "asha2", log_path, progressive=False, cpus=1).fit()  # 2 workers from the cluster
    assert len(grid) == len(XS) and not grid.errors
    log = json.loads(log_path.read_text())
    results = _results(log_path)
    by_x: dict[float, list[int]] = {}
    for x, it, _ in results:
        by_x.setdefault(x, []).append(it)
    assert all(seq == list(range(1, len(seq) + 1)) for seq in by_x.values())
    assert max(len(seq) for seq in by_x.values()) == MAX_T  # promotion-type ASHA reaches max_t
    assert log["max_t"] == MAX_T
    stops = [d for d in log["log"] if d[0] == "report" and d[3] == "STOP"]
    assert stops and all(d[2] == MAX_T for d in stops)
    assert len([d for d in log["log"] if d[0] == "report"]) == len(results)


# ---------------------------------------------------------------- OHGW around PASHA (default suite)
def ohgw_trainable(config):
    """A tiny user trainable without torch (what is checked is the scheduling): the crossing curves of
    :func:`curve` in lr; the OHGW warm-start through :func:`ohgw.warmstart.warm_start_with` with the exact
    gradient of ``|u - u*|^2`` (u: log10 search coordinates; u* is u with lr at 0.1, so lr
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
            tune.report(
                {"val_acc": curve(config["lr"], epoch), "resumed_from": start, "lr_used": config["lr"], **first},
                checkpoint=tune.Checkpoint.from_directory(d),
            )
        first = {}


def _result_log(path):
    from ray import tune

    class ResultLog(tune.Callback):
        """Appends every result as it arrives (Tune's own per-trial log keeps only the last actor run)."""

        def on_trial_result(self, iteration, trials, trial, result, **info):
            keep = ("training_iteration", "resumed_from", "lr_used", "ohgw/x_prime/lr")
            with open(path, "a") as f:
                f.write(json.dumps([trial.trial_id, {k: result.get(k) for k in keep}]) + "\n")

    return ResultLog()


def test_ohgw_around_pasha_warm_starts_once_and_resumes_from_checkpoints(ray_local, tmp_path):
    from ray import tune

    from ohgw import SearchSpace
    from ohgw.pasha import PASHA
    from ohgw.tune.wrapper import OHGW

    space = SearchSpace.from_bounds({"lr": (1e-2, 1.0, "log10"), "wd": (1e-6, 1e-2, "log10")})
    sched = OHGW(
        PASHA(max_t=8, grace_period=1, reduction_factor=2, max_concurrent=2),
        space,
        mode="hypergrad",
        step_rule="normalized",
        seed=3,
    )
    n, path = 5, str(tmp_path / "results.jsonl")
    grid = tune.Tuner(
        tune.with_resources(ohgw_trainable, {"cpu": 1}),
        param_space={**space.param_space(), "max_t": 8},
        tune_config=tune.TuneConfig(metric="val_acc", mode="max", scheduler=sched, num_samples=n, reuse_actors=True),
        run_config=tune.RunConfig(
            name="ohgw_pasha", storage_path=str(tmp_path), verbose=0, callbacks=[*sched.callbacks(), _result_log(path)]
        ),
    ).fit()
    assert grid.num_errors == 0 and len(grid) == n
    assert len(sched.records) == n
    rows: dict[str, list[dict]] = {}
    with open(path) as f:
        for line in f:
            tid, row = json.loads(line)
            rows.setdefault(tid, []).append(row)
    resumed = 0
    for result in grid:
        tid = result.metrics["trial_id"]
        seq, x_prime = rows[tid], sched.records[tid]["x_prime"]
        # every epoch once, in order; x' is reported with the first epoch only (one warm-start per trial)
        assert [r["training_iteration"] for r in seq] == list(range(1, len(seq) + 1)), seq
        assert [r["ohgw/x_prime/lr"] is not None for r in seq] == [True] + [False] * (len(seq) - 1), seq
        assert seq[0]["ohgw/x_prime/lr"] == pytest.approx(x_prime["lr"])
        # x' is what trained, before and after every resume, and what result.config shows
        assert [r["lr_used"] for r in seq] == pytest.approx([x_prime["lr"]] * len(seq))
        assert result.config["lr"] == pytest.approx(x_prime["lr"]) and result.config["ohgw"]["applied"] == "hypergrad"
        assert result.config["ohgw_x"]["lr"] != pytest.approx(x_prime["lr"])
        assert seq[0]["resumed_from"] == 0
        for r, prev in zip(seq[1:], seq):  # a new actor run continues right after the epoch it paused at
            assert r["resumed_from"] in (prev["resumed_from"], prev["training_iteration"]), seq
        resumed += any(r["resumed_from"] > 0 for r in seq)
    assert resumed >= 1, "no trial was paused and resumed from its checkpoint"
    # what PASHA (inside OHGW) decided is what happened: every promoted trial went past its rung
    promotions = [d for d in sched.scheduler.decisions if d[0] == "promote"]
    assert promotions and all(len(rows[tid]) > resume_from for _, tid, resume_from, _ in promotions)
