"""The Tune scaffold (trainables/scaffold.py) with a tiny run object that is not a classifier.

LinearRun: linear regression y = X·w* + noise, mini-batch SGD on the MSE with the tuned
``lr``, its own metric names (``val_mse``, ``test_mse``), and a stand-in collapse check
(``collapse_at``: the epoch whose evaluation reports collapse), so the scaffold is seen
to assume nothing about classification.
"""

import math
import os

import numpy as np
import pytest
import torch
from torch import nn
from torch.func import functional_call

from ohgw import protocol
from ohgw.hypergrad import HyperGradProblem
from ohgw.space import Continuous, SearchSpace
from ohgw.update_rules import SGD
from ohgw.warmstart import WarmStartSettings, make_instruction, maybe_warm_start
from trainables import scaffold

SPACE = SearchSpace([Continuous("lr", 1e-3, 1.0, "log10")])
ETA = 0.1  # the normalized step moves lr by 10 % of its 3-decade range: ±0.3 in log10
METRIC = "val_mse"
WARM_STARTS: list[int] = []  # seeds of the warm-starts this process ran


def _instruction():
    return make_instruction(SPACE, WarmStartSettings(mode="hypergrad", step_rule="normalized", eta_h=ETA))


def _mse(model, x, y):
    return torch.mean((model(x).squeeze(-1) - y) ** 2)


class LinearRun:
    """A complete scaffold.Run in a few lines."""

    def __init__(self, config):
        self.config = {"max_t": 4, "lr": 0.1, protocol.SEED_KEY: 0, **config}
        seed = self.config[protocol.SEED_KEY]
        g = torch.Generator().manual_seed(seed)
        w_true = torch.arange(1.0, 5.0)
        self.x, self.xv, self.xt = (torch.randn(n, 4, generator=g) for n in (64, 32, 32))
        self.y, self.yv, self.yt = (x @ w_true + 0.1 * torch.randn(len(x), generator=g) for x in (self.x, self.xv, self.xt))
        torch.manual_seed(seed)
        self.model = nn.Linear(4, 1, bias=False)
        self.device, self.epoch, self.hp = torch.device("cpu"), 0, {"lr": float(self.config["lr"])}
        self.generator = torch.Generator().manual_seed(seed)  # batch order

    @property
    def finished(self):
        return self.epoch >= self.config["max_t"]

    def warm_start(self):
        model = self.model

        def train_loss(params, buffers, batch, hp):
            x, y = batch
            return torch.mean((functional_call(model, (params, buffers), (x,)).squeeze(-1) - y) ** 2)

        def val_loss(params, buffers, batch):
            return train_loss(params, buffers, batch, {})

        problem = HyperGradProblem(model, train_loss, val_loss, SGD())
        new, record = maybe_warm_start(self.config, problem, ((self.x[:32], self.y[:32]), (self.xv, self.yv)))
        if record is not None:
            WARM_STARTS.append(self.config[protocol.SEED_KEY])
        self.hp = {"lr": float(new["lr"])}
        return record

    def train_epoch(self):
        losses = []
        for idx in torch.randperm(len(self.y), generator=self.generator).split(16):
            loss = _mse(self.model, self.x[idx], self.y[idx])
            self.model.zero_grad()
            loss.backward()
            with torch.no_grad():
                self.model.weight -= self.hp["lr"] * self.model.weight.grad
            losses.append(float(loss.detach()))
        self.epoch += 1
        return scaffold.TrainResult(float(np.mean(losses)), len(self.y), {"weight_norm": float(self.model.weight.detach().norm())})

    @torch.no_grad()
    def evaluate_epoch(self):
        val = float(_mse(self.model, self.xv, self.yv))
        out = {METRIC: val, protocol.VAL_LOSS: val, protocol.test_metric(METRIC): float(_mse(self.model, self.xt, self.yt))}
        if self.epoch >= self.config.get("collapse_at", math.inf):
            out[protocol.COLLAPSED] = True
        return out

    def diverged_metrics(self):
        return {METRIC: math.inf, protocol.VAL_LOSS: math.nan, protocol.test_metric(METRIC): math.inf}

    def save(self, directory):
        state = {"w": self.model.weight.detach().clone(), "epoch": self.epoch, "hp": self.hp,
                 "generator": self.generator.get_state()}  # fmt: skip
        torch.save(state, os.path.join(directory, "linear.pt"))

    def load(self, directory):
        state = torch.load(os.path.join(directory, "linear.pt"))
        with torch.no_grad():
            self.model.weight.copy_(state["w"])
        self.epoch, self.hp = state["epoch"], state["hp"]
        self.generator.set_state(state["generator"])


class FailingRun(LinearRun):
    """Raises once, before training epoch 3, so that Tune retries the trial from its checkpoint."""

    def train_epoch(self):
        marker = self.config["fail_marker"] + ("-ws" if protocol.read_instruction(self.config) else "-plain")
        if self.epoch == 2 and not os.path.exists(marker):
            open(marker, "w").close()
            raise RuntimeError("planned failure")
        return super().train_epoch()


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # the plain driver and a 1-CPU Tune trial compute bit-identically
    yield
    torch.set_num_threads(n)


def _rows(config, epochs, **kw):
    return scaffold.run_epochs(LinearRun, config, epochs, num_threads=1, **kw)


def _exact(rows):
    keys = (protocol.ITERATION, METRIC, protocol.VAL_LOSS, protocol.TRAIN_LOSS, protocol.hp_key("lr"), "weight_norm")
    return [[r[k] for k in keys] for r in rows]


# ---- the plain-Python driver ----------------------------------------------------------------------------


def test_every_epoch_reports_the_contract_with_the_familys_own_metrics():
    rows = _rows({"max_t": 3}, 5)
    assert isinstance(LinearRun({}), scaffold.Run)
    assert [r[protocol.ITERATION] for r in rows] == [1, 2, 3]  # stops at max_t, not at `epochs`
    for r in rows:
        assert set(r) >= {*protocol.CONTRACT_KEYS, protocol.COLLAPSED, METRIC, "test_mse", "weight_norm"}
        assert r[protocol.DIVERGED] is False and r[protocol.COLLAPSED] is False
        assert r[protocol.WS_COMPUTE_S] == 0.0 and r[protocol.hp_key("lr")] == 0.1
        assert r[protocol.DEVICE] == "cpu" and r[protocol.SAMPLES_PER_S] > 0
        assert not any(k.startswith(protocol.WS_PREFIX) for k in r)
    assert [r[protocol.TRIAL_EPOCH_EQUIV] for r in rows] == [1.0, 2.0, 3.0]
    compute = [r[protocol.TRIAL_COMPUTE_S] for r in rows]
    assert compute[0] > 0 and compute == sorted(compute)
    # it learns w* = (1, 2, 3, 4): the validation MSE falls by more than 10×
    assert rows[0][METRIC] > rows[1][METRIC] > rows[2][METRIC] and rows[2][METRIC] < rows[0][METRIC] / 10
    assert rows[0][protocol.TRAIN_LOSS] > rows[-1][protocol.TRAIN_LOSS]
    assert _exact(rows) == _exact(_rows({"max_t": 3}, 3))


def test_restore_continues_exactly_and_does_not_warm_start_again(tmp_path):
    cfg = {"max_t": 4, protocol.INSTRUCTION_KEY: _instruction()}
    WARM_STARTS.clear()
    straight = _rows(cfg, 4, save_to=tmp_path / "done")
    first = _rows(cfg, 2, save_to=tmp_path / "half")
    assert WARM_STARTS == [0, 0]
    rest = _rows(cfg, 5, restore_from=tmp_path / "half")
    assert WARM_STARTS == [0, 0]  # x′ came from the checkpoint
    assert _exact(straight) == _exact(first + rest)
    assert [r[protocol.ITERATION] for r in rest] == [3, 4]
    assert rest[0][protocol.hp_key("lr")] == straight[0][protocol.X_PRIME_PREFIX + "lr"] != 0.1
    assert all(r[protocol.WS_COMPUTE_S] == 0.0 and not any(k.startswith(protocol.WS_PREFIX) for k in r) for r in rest)
    # the ledger carried the costs over: the warm-start stays charged, in seconds and in epochs
    share = first[0][protocol.WS_PREFIX + "share_of_epoch"]
    assert rest[0][protocol.TRIAL_EPOCH_EQUIV] == pytest.approx(3 + share)
    assert rest[0][protocol.TRIAL_COMPUTE_S] > first[1][protocol.TRIAL_COMPUTE_S]
    assert _rows(cfg, 3, restore_from=tmp_path / "done") == []  # a finished trial trains no further
    os.remove(tmp_path / "half" / scaffold.LEDGER_FILE)
    with pytest.raises(ValueError, match="has no scaffold_ledger.json"):
        _rows(cfg, 1, restore_from=tmp_path / "half")


def test_warm_start_is_reported_once_with_the_first_epoch_and_charged_to_the_trial():
    WARM_STARTS.clear()
    r0, r1, r2 = _rows({"max_t": 3, protocol.INSTRUCTION_KEY: _instruction()}, 3)
    assert WARM_STARTS == [0]
    adj = protocol.adjusted_from_result(r0)
    assert adj["x"] == {"lr": 0.1} and math.isfinite(adj["g"]["lr"]) and adj["g"]["lr"] != 0
    # the normalized step: u′ = u − η·range·sign(g), exactly
    du = math.log10(adj["x_prime"]["lr"]) - math.log10(0.1)
    assert du == pytest.approx(-ETA * 3 * math.copysign(1, adj["g"]["lr"]), rel=1e-9)
    assert all(r[protocol.hp_key("lr")] == adj["x_prime"]["lr"] for r in (r0, r1, r2))
    ws = protocol.warm_start_fields(r0)
    assert ws["mode"] == "hypergrad" and ws["eta_h"] == ETA and ws["compute_s"] > 0
    assert r0[protocol.WS_COMPUTE_S] == ws["compute_s"] and r1[protocol.WS_COMPUTE_S] == r2[protocol.WS_COMPUTE_S] == 0.0
    first_epoch = r0[protocol.TRIAL_COMPUTE_S] - ws["compute_s"]
    assert ws["share_of_epoch"] == pytest.approx(ws["compute_s"] / first_epoch)
    assert r0[protocol.TRIAL_EPOCH_EQUIV] == pytest.approx(1 + ws["share_of_epoch"])
    assert r2[protocol.TRIAL_EPOCH_EQUIV] == pytest.approx(3 + ws["share_of_epoch"])
    assert protocol.warm_start_fields(r1) == {} and protocol.adjusted_from_result(r1) is None


def test_a_non_finite_train_loss_ends_the_trial_cleanly(tmp_path):
    rows = _rows({"lr": 1e8, "max_t": 5}, 5, save_to=tmp_path)
    assert len(rows) == 1
    (r,) = rows
    assert r[protocol.DIVERGED] is True and r[protocol.COLLAPSED] is False
    assert not math.isfinite(r[protocol.TRAIN_LOSS]) and math.isnan(r[protocol.VAL_LOSS])
    assert r[METRIC] == math.inf and r["test_mse"] == math.inf  # diverged_metrics, no evaluation
    assert r[protocol.ITERATION] == 1 and r[protocol.TRIAL_EPOCH_EQUIV] == 1.0
    assert _rows({"lr": 1e8, "max_t": 5}, 5, restore_from=tmp_path) == []  # it stays ended


def test_a_collapse_reported_by_the_run_ends_the_trial_after_that_report(tmp_path):
    rows = _rows({"collapse_at": 2, "max_t": 5}, 5, save_to=tmp_path)
    assert [r[protocol.COLLAPSED] for r in rows] == [False, True]
    assert [r[protocol.DIVERGED] for r in rows] == [False, False]
    assert _exact(rows) == _exact(_rows({"max_t": 5}, 2))  # the collapsed epoch is reported in full
    assert _rows({"collapse_at": 2, "max_t": 5}, 5, restore_from=tmp_path) == []


def test_a_run_that_does_not_count_its_epochs_is_a_clear_error():
    class Stuck(LinearRun):
        def train_epoch(self):
            out = super().train_epoch()
            self.epoch -= 1
            return out

    with pytest.raises(RuntimeError, match=r"Stuck.train_epoch must advance epoch by one \(0 → 0\)"):
        scaffold.run_epochs(Stuck, {}, 1)
    with pytest.raises(ValueError, match="epochs must be an integer >= 1"):
        _rows({}, 0)
    with pytest.raises(ValueError, match="num_threads must be an integer >= 1"):
        scaffold.run_epochs(LinearRun, {}, 1, num_threads=0)


# ---- in a real Tuner (ray_local: tests/conftest.py) -----------------------------------------------------


@pytest.mark.ray
def test_tuner_reports_checkpoints_and_retries_from_the_checkpoint_exactly(ray_local, tmp_path):
    from ray import tune

    trainable = scaffold.make_trainable(FailingRun, name="linear_scaffold")
    assert trainable.__name__ == "linear_scaffold"
    marker = str(tmp_path / "failed")
    tuner = tune.Tuner(
        tune.with_resources(trainable, {"cpu": 1}),
        param_space={"max_t": 4, "fail_marker": marker, protocol.INSTRUCTION_KEY: tune.grid_search([None, _instruction()])},
        # one trial at a time, a worker reused where Tune can (a failed one is replaced): fewer torch imports
        tune_config=tune.TuneConfig(metric=METRIC, mode="min", max_concurrent_trials=1, reuse_actors=True),
        run_config=tune.RunConfig(storage_path=str(tmp_path), name="scaffold", verbose=0,
                                  failure_config=tune.FailureConfig(max_failures=1)),
    )  # fmt: skip
    results = tuner.fit()
    assert not results.errors and len(results) == 2
    assert os.path.exists(marker + "-ws") and os.path.exists(marker + "-plain")  # both failed once
    for result in results:
        warm = result.config[protocol.INSTRUCTION_KEY] is not None
        reference = _rows({"max_t": 4, protocol.INSTRUCTION_KEY: _instruction() if warm else None}, 4)
        last = result.metrics
        assert last[protocol.ITERATION] == 4 and last["iterations_since_restore"] == 2  # resumed after epoch 2
        assert result.checkpoint is not None
        assert set(last) >= {*protocol.CONTRACT_KEYS, protocol.COLLAPSED, METRIC}
        assert last[protocol.NODE_ID] == ray_local.get_runtime_context().get_node_id()
        # the retried epochs equal the uninterrupted run's, with x′ from the checkpoint and no second charge
        for key in (METRIC, protocol.TRAIN_LOSS, protocol.hp_key("lr"), "weight_norm"):
            assert last[key] == reference[-1][key], key
        assert last[protocol.WS_COMPUTE_S] == 0.0
        df = result.metrics_dataframe
        for _, row in df.iterrows():
            assert row[METRIC] == reference[int(row[protocol.ITERATION]) - 1][METRIC]
        if 1 in set(df[protocol.ITERATION]):  # under load Tune's progress file can restart at the restore (seen in CI)
            assert (protocol.X_PRIME_PREFIX + "lr" in df.columns) == warm
        assert set(df[protocol.ITERATION]) >= {3, 4}
        # the ledger came back with the checkpoint: the warm-start stays charged in epoch units
        assert (last[protocol.TRIAL_EPOCH_EQUIV] > 4.0) if warm else (last[protocol.TRIAL_EPOCH_EQUIV] == 4.0)
        if warm:
            assert last[protocol.hp_key("lr")] == reference[0][protocol.X_PRIME_PREFIX + "lr"] != 0.1
