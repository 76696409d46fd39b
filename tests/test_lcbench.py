"""The LCBench surrogate trainable (trainables/lcbench): encoding, busy epochs, contract, restore, Tune."""

import math
import time

import numpy as np
import pytest

from ohgw import protocol
from ohgw.warmstart import WarmStartSettings, make_instruction
from trainables import scaffold
from trainables.lcbench import LCBenchRun, busy, search_space, train_epochs, workload
from trainables.lcbench import surrogate as sur

# FACTS.md's reference table: config-space defaults, task 3945 (epoch: time, val_acc %, val_ce, val_bacc, test_ce, test_bacc)
REFERENCE_3945 = {
    1: (15.9236, 38.195, 0.680329, 0.454226, 0.6852, 0.457832),
    2: (23.0229, 76.4429, 0.631818, 0.553409, 0.65474, 0.550842),
    13: (75.1231, 91.1799, 0.442402, 0.653283, 0.566954, 0.637764),
    52: (165.69, 93.3988, 0.380098, 0.684497, 0.541495, 0.670152),
}
REFERENCE_189909_52 = (142.834, 64.5028, 0.797324, 0.656802, 0.972021, 0.656613)
DEFAULTS = {"lr": 0.0031622777, "momentum": 0.545, "weight_decay": 0.050005}  # config_space.json's


def _ws(mode="hypergrad", **kw):
    return make_instruction(search_space(), WarmStartSettings(mode=mode, **kw))


def test_surrogate_reproduces_the_reference_table_with_the_exact_encoding():
    assert sur.task_codes()[3945] == 34 and sur.task_codes()[189909] == 32 and len(sur.task_codes()) == 34
    rows = sur.rows_for([sur.DEFAULTS])
    np.testing.assert_allclose(rows[0], [1, 91, 0.0031622777, 0.545, 0.050005, 3, 256, 0.5])  # FACTS' x_cont row 1
    assert list(rows[:, 0]) == list(range(1, 53))
    c = sur.curve(3945, sur.DEFAULTS)
    for epoch, ref in REFERENCE_3945.items():
        np.testing.assert_allclose(c[epoch - 1], ref, rtol=2e-5, err_msg=f"epoch {epoch}")
    np.testing.assert_allclose(sur.curve(189909, sur.DEFAULTS)[51], REFERENCE_189909_52, rtol=2e-5)
    # the run's metrics are these outputs, mapped (val_acc from percent; test_acc = test balanced accuracy)
    (r,) = train_epochs({"task_id": 3945, **DEFAULTS, "max_t": 1}, 1)
    assert r["val_acc"] == pytest.approx(0.38195, rel=2e-5) and r["test_acc"] == pytest.approx(0.457832, rel=2e-5)
    assert r[protocol.VAL_LOSS] == pytest.approx(0.680329, rel=2e-5) and r["lcbench_time_s"] == pytest.approx(
        15.9236, rel=1e-4
    )
    with pytest.raises(ValueError, match="task_id must be one of"):
        LCBenchRun({"task_id": 167083})  # in the embedding, not in the config space
    with pytest.raises(ValueError, match=r"learning_rate must be in \[0.0001, 0.1\]"):
        LCBenchRun({"lr": 0.5})
    with pytest.raises(ValueError, match=r"max_t must be an integer in \[1, 52\]"):
        LCBenchRun({"max_t": 53})


def test_a_busy_epoch_is_cpu_time_not_sleep():
    t0 = time.process_time()
    n = busy(0.1)
    spent = time.process_time() - t0
    assert n > 0 and 0.1 <= spent < 0.15
    rows = train_epochs({"epoch_s": 0.05, "max_t": 2}, 2)
    compute = [r[protocol.TRIAL_COMPUTE_S] for r in rows]
    assert 0.05 <= compute[0] < 0.09 and 0.1 <= compute[1] < 0.17  # the Stopwatch's process_time
    assert all(r[protocol.SAMPLES_PER_S] > 0 for r in rows)


def test_every_epoch_reports_the_contract_and_the_curve_is_deterministic():
    assert isinstance(LCBenchRun({}), scaffold.Run)
    rows = train_epochs({"max_t": 4}, 9)
    assert [r[protocol.ITERATION] for r in rows] == [1, 2, 3, 4]
    for r in rows:
        assert set(r) >= {*protocol.CONTRACT_KEYS, protocol.COLLAPSED, "val_acc", "test_acc", "val_bacc", "test_loss"}
        assert 0 <= r["val_acc"] <= 1 and 0 <= r["test_acc"] <= 1 and r[protocol.DIVERGED] is False
        assert r[protocol.hp_key("lr")] == pytest.approx(0.0031622777)
    assert [r[protocol.TRIAL_EPOCH_EQUIV] for r in rows] == [1.0, 2.0, 3.0, 4.0]
    assert rows[-1]["val_acc"] > rows[0]["val_acc"]
    keys = ("val_acc", "test_acc", protocol.VAL_LOSS, "lcbench_time_s")
    again = train_epochs({"max_t": 4}, 4)
    assert [[r[k] for k in keys] for r in rows] == [[r[k] for k in keys] for r in again]
    # observation noise: off by default, seeded when on
    noisy = [train_epochs({"max_t": 2, "noise": 0.01, "seed": s}, 2) for s in (1, 1, 2)]
    assert [r["val_acc"] for r in noisy[0]] == [r["val_acc"] for r in noisy[1]] != [r["val_acc"] for r in noisy[2]]
    assert [r["val_acc"] for r in noisy[0]] != [r["val_acc"] for r in rows[:2]]


def test_restore_continues_the_same_curve_with_x_prime_from_the_checkpoint(tmp_path):
    cfg = {"max_t": 5, protocol.INSTRUCTION_KEY: _ws()}
    straight = train_epochs(cfg, 5)
    first = train_epochs(cfg, 2, save_to=tmp_path)
    rest = train_epochs(cfg, 9, restore_from=tmp_path)
    keys = (protocol.ITERATION, "val_acc", "test_acc", protocol.hp_key("lr"), protocol.hp_key("momentum"))
    assert [[r[k] for k in keys] for r in first + rest] == [[r[k] for k in keys] for r in straight]
    assert not any(k.startswith(protocol.WS_PREFIX) for r in rest for k in r)
    with pytest.raises(ValueError, match="has no lcbench_state.json"):
        LCBenchRun({}).load(str(tmp_path / "nothing"))


def test_the_finite_difference_warm_start_follows_ohgws_step_rule():
    (r,) = train_epochs({"max_t": 1, protocol.INSTRUCTION_KEY: _ws()}, 1)
    adj = protocol.adjusted_from_result(r)
    space, ws = search_space(), protocol.warm_start_fields(r)
    assert adj["x"] == DEFAULTS and ws["mode"] == "hypergrad" and ws["compute_s"] > 0 and not ws["nonfinite"]
    assert r[protocol.WS_COMPUTE_S] == ws["compute_s"] and r[protocol.TRIAL_EPOCH_EQUIV] > 1
    # the normalized rule: the ψ with the largest |g·range| moves by exactly η of its range, against g
    v = lambda x: (space.to_u(x) - space.u_low) / space.u_range  # noqa: E731
    g = np.array([adj["g"][n] for n in space.names]) * space.u_range
    dv = v(adj["x_prime"]) - v(adj["x"])
    i = int(np.argmax(np.abs(g)))
    assert dv[i] == pytest.approx(-0.05 * math.copysign(1, g[i]), rel=1e-9)
    np.testing.assert_allclose(dv, -0.05 * g / np.abs(g).max(), atol=1e-12)
    assert ws["step_norm"] == pytest.approx(np.linalg.norm(dv))
    assert {protocol.hp_key(n): r[protocol.hp_key(n)] for n in space.names} == {
        protocol.hp_key(n): x for n, x in adj["x_prime"].items()
    }
    # the step lowers the surrogate's one-epoch-ahead validation loss, as a descent step should
    before, after = (train_epochs({"max_t": 1, **x}, 1)[0][protocol.VAL_LOSS] for x in (adj["x"], adj["x_prime"]))
    assert after < before
    # the random control moves as far; mode none is a free no-op
    (rr,) = train_epochs({"max_t": 1, protocol.INSTRUCTION_KEY: _ws("random")}, 1)
    assert protocol.warm_start_fields(rr)["step_norm"] == pytest.approx(ws["step_norm"])
    (rn,) = train_epochs({"max_t": 1, protocol.INSTRUCTION_KEY: _ws("none")}, 1)
    assert protocol.warm_start_fields(rn)["step_norm"] == 0.0 and rn[protocol.hp_key("lr")] == DEFAULTS["lr"]
    with pytest.raises(ValueError, match="this trainable tunes only"):
        LCBenchRun(
            {
                protocol.INSTRUCTION_KEY: make_instruction(
                    search_space().from_bounds({"aug": (0.0, 1.0, "identity")}), WarmStartSettings()
                )
            }
        ).warm_start()


def test_workload_for_the_study_harness():
    w = workload()
    assert w.metric == "val_acc" and w.mode == "max" and w.default_preset == "cpu" and set(w.presets) == {"cpu", "sim"}
    assert w.space.names == ("lr", "momentum", "weight_decay") and w.space["lr"].is_log
    for p in w.presets.values():
        w.check_base_config(p["base_config"])
        assert p["max_t"] <= sur.MAX_EPOCH
    with pytest.raises(ValueError, match="epoch_s and noise must be >= 0"):
        w.check_base_config({"epoch_s": -1})


@pytest.mark.ray
def test_a_tuner_with_asha_and_ohgw_runs_eight_trials(ray_local, tmp_path):
    """A few seconds on a quiet 2-core machine (actors reused; each new one imports torch and Ray)."""
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    from ohgw.tune.wrapper import OHGW
    from trainables.lcbench import train_lcbench

    space = search_space()
    sched = OHGW(ASHAScheduler(max_t=9, grace_period=1, reduction_factor=3), space, WarmStartSettings(seed=1))
    results = tune.Tuner(
        tune.with_resources(train_lcbench, {"cpu": 1}),
        param_space={**space.param_space(), "max_t": 9, "epoch_s": 0.0},
        # one trial at a time in one reused worker: one process imports torch and Ray, not two
        tune_config=tune.TuneConfig(metric="val_acc", mode="max", scheduler=sched, num_samples=8, reuse_actors=True,
                                    max_concurrent_trials=1),
        run_config=tune.RunConfig(storage_path=str(tmp_path), name="lcbench", verbose=0, callbacks=sched.callbacks()),
    ).fit()
    assert not results.errors and len(results) == 8
    lengths = sorted(r.metrics[protocol.ITERATION] for r in results)
    assert lengths[-1] == 9 and lengths[0] < 9  # ASHA stopped some trials early
    for r in results:
        last = r.metrics
        assert set(last) >= {*protocol.CONTRACT_KEYS, "val_acc", "test_acc"} and r.checkpoint is not None
        # the same curve outside Ray, from the recorded x′
        config = {k: r.config[k] for k in space.names}
        (ref,) = train_epochs({**config, "max_t": 9}, last[protocol.ITERATION])[-1:]
        assert last["val_acc"] == ref["val_acc"]
        assert r.config[protocol.ORIGINAL_KEY] != config  # x′ was recorded
    # no wall-clock bound: on a shared machine it says nothing; the trials' own compute is tiny
    assert sum(r.metrics[protocol.TRIAL_COMPUTE_S] for r in results) < 5.0
