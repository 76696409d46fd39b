"""The LCBench run object: real learning curves from a surrogate, plus a configurable busy epoch.

:class:`LCBenchRun` is a :class:`trainables.scaffold.Run` whose "training" reads its curve
from YAHPO Gym's LCBench surrogate (:mod:`~trainables.lcbench.surrogate`: a network fitted to
LCBench's logs of MLPs trained for 52 epochs; 34 OpenML tasks) and then burns ``epoch_s``
seconds of CPU time, *busy* (small NumPy matmuls until :func:`time.process_time` has advanced by
``epoch_s``; not a sleep), so that the compute the scaffold's :class:`ohgw.cost.Stopwatch`
charges is real CPU time, on a shared machine too. At ``epoch_s`` 0 an epoch costs
microseconds: thousands of trials run in minutes, and what a study then spends is the
harness's own overhead (``benchmarks/harness_overhead.py`` measures it at 0.3, 2 and 10 s).

Config (defaults :data:`DEFAULT_CONFIG`): ``task_id`` (one of LCBench's 34 OpenML task ids;
default 167149: a wide spread of final accuracies over the space, 95 % of epoch steps rising,
accuracy ≈ balanced accuracy, so the ``test_acc`` twin below is a fair one; the config
space's own default 3945 is an imbalanced task where accuracy is ~0.92 while balanced accuracy is
~0.65), the tuned ``lr`` (the surrogate's ``learning_rate``), ``momentum``, ``weight_decay``;
the fixed ``batch_size``, ``num_layers``, ``max_units``, ``max_dropout`` (config-space defaults);
``epoch_s`` (busy CPU seconds per epoch); ``max_t`` ≤ 52; ``noise`` (standard deviation of
Gaussian observation noise on ``val_acc`` and ``test_acc``, default 0: none; drawn from
(``seed``, epoch), so a restored trial sees the same noise); ``seed``.

Metrics: ``val_acc`` = val_accuracy / 100 (the surrogate gives percent), ``test_acc`` =
test_balanced_accuracy (the surrogate has no test accuracy; FACTS.md), ``val_bacc`` =
val_balanced_accuracy (the like-for-like partner of ``test_acc``), ``val_loss`` /
``test_loss`` = the cross-entropies, ``lcbench_time_s`` = the surrogate's predicted
cumulative training time of the real MLP (a running max: the prediction dips at 0.4 % of
steps). There is no training loss; ``train_loss`` repeats the epoch's validation
cross-entropy (a stand-in, always finite: these trials never diverge).

Warm-start (OHGW) — choice (b) of the issue, a finite-difference hyper-gradient: there is no
differentiable training step, but the surrogate *is* a smooth function of the hyper-parameters,
so g = ∂ val_cross_entropy(epoch = ``lookahead``) / ∂u is taken by central differences in the
search coordinates u (step :data:`FD_STEP` of each range, one-sided at a bound): one ONNX call
of 2·|ψ| + 1 rows per hyper-step, timed by a Stopwatch and charged as the warm-start's compute.
``lookahead`` counts epochs, the surrogate's finest step (a real warm-start unrolls optimizer
steps); ``batch_size`` has no meaning here and is only recorded. The step itself (both rules,
the ``random`` control, clipping) is :mod:`ohgw.warmstart`'s, and the record is a
:class:`~ohgw.warmstart.WarmStartRecord` like every other trainable's. Why (b) rather than a
no-op: the harness then runs the whole OHGW path (instruction, x′ in the first report, the
wrapper's feedback, the warm-start columns) on this trainable, so its overhead is measured
too, and "ASHA vs ASHA+OHGW" on real curves costs seconds. It says nothing about how the
hyper-gradient of a real training step behaves.

>>> from ohgw import protocol
>>> rows = train_epochs({"max_t": 3, "task_id": 3945, "lr": 0.0031622777, "weight_decay": 0.050005}, epochs=5)
>>> [(r[protocol.ITERATION], round(r["val_acc"], 4)) for r in rows]
[(1, 0.382), (2, 0.7644), (3, 0.8507)]
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from ohgw import protocol
from ohgw.space import SearchSpace
from ohgw.warmstart import WarmStartRecord, instruction, warm_start_with
from trainables import checks
from trainables.scaffold import TrainResult, make_trainable, run_epochs

from . import surrogate as sur

METRIC = "val_acc"  # tuned, mode max; its twin is protocol.test_metric(METRIC) = "test_acc"
CHECKPOINT_FILE = "lcbench_state.json"
# config name → surrogate input name, for the hyper-parameters a trial may tune (and warm-start)
CONTINUOUS = {"lr": "learning_rate", "momentum": "momentum", "weight_decay": "weight_decay"}
FIXED = ("batch_size", "num_layers", "max_units", "max_dropout")
DEFAULT_CONFIG: dict[str, Any] = {
    "task_id": 167149,  # OpenML task id (one of surrogate.task_codes())
    "lr": sur.DEFAULTS["learning_rate"],  # SGD learning rate, 1e-4..1e-1
    "momentum": sur.DEFAULTS["momentum"],  # 0.1..0.99
    "weight_decay": sur.DEFAULTS["weight_decay"],  # 1e-5..1e-1
    **{k: sur.DEFAULTS[k] for k in FIXED},  # batch_size 91, num_layers 3, max_units 256, max_dropout 0.5
    "epoch_s": 0.0,  # busy CPU seconds per epoch (0: as fast as possible)
    "noise": 0.0,  # std of the observation noise on val_acc / test_acc (0: none)
    protocol.MAX_T_KEY: sur.MAX_EPOCH,  # epochs, 1..52
    protocol.SEED_KEY: 0,  # the noise's seed
}
FD_STEP = 1e-3  # finite-difference step, as a fraction of each ψ's range in u
BUSY_N = 32  # the busy loop's matrices are BUSY_N × BUSY_N (single-threaded BLAS)
BUSY_CHUNK = 32  # matmuls between two clock reads (~0.1 ms)
_BUSY = np.random.default_rng(0).standard_normal((2, BUSY_N, BUSY_N)) / math.sqrt(BUSY_N)


def busy(seconds: float) -> int:
    """Burn ``seconds`` of this process's CPU time (``time.process_time``) on matmuls; returns how many."""
    if seconds <= 0:
        return 0
    a, b = _BUSY
    out = np.empty_like(a)
    n, t0 = 0, time.process_time()
    while time.process_time() - t0 < seconds:
        for _ in range(BUSY_CHUNK):
            np.matmul(a, b, out=out)
        n += BUSY_CHUNK
    return n


def resolve_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """DEFAULT_CONFIG updated with ``config`` (other keys kept), validated; ValueError names the key."""
    cfg = {**DEFAULT_CONFIG, **dict(config)}
    cfg["task_id"] = checks.integer(cfg, "task_id", 0, 10**9)
    for k in (*CONTINUOUS, "max_dropout", "epoch_s", "noise"):
        cfg[k] = checks.number(cfg, k)
    for k in ("batch_size", "num_layers", "max_units"):
        cfg[k] = checks.integer(cfg, k, *map(int, sur.RANGES[k]))
    cfg[protocol.MAX_T_KEY] = checks.integer(cfg, protocol.MAX_T_KEY, 1, sur.MAX_EPOCH)
    cfg[protocol.SEED_KEY] = checks.integer(cfg, protocol.SEED_KEY, 0, 2**63 - 1)
    if cfg["epoch_s"] < 0 or cfg["noise"] < 0:
        raise ValueError(f"epoch_s and noise must be >= 0, got {cfg['epoch_s']!r}, {cfg['noise']!r}")
    sur.check(cfg["task_id"], _inputs(cfg, {k: cfg[k] for k in CONTINUOUS}))
    return cfg


def _inputs(cfg: Mapping[str, Any], hp: Mapping[str, float]) -> dict[str, float]:
    """The surrogate's named inputs (epoch excluded) for tuned values ``hp``."""
    return {**{k: cfg[k] for k in FIXED}, **{CONTINUOUS[k]: v for k, v in hp.items()}}


class LCBenchRun:
    """One trial on the LCBench surrogate (a :class:`trainables.scaffold.Run`); plain Python, no Ray.

    Construction validates the config and opens the process's ONNX session (cached); the
    curve is evaluated once, from the values trained with (x′ after a warm-start), and again
    after a restore. Same config (and seed) → same curve, bit for bit.
    """

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.config = resolve_config(config)
        self.device = "cpu"
        self.epoch = 0
        self.hp = {k: self.config[k] for k in CONTINUOUS}  # becomes x′ after a warm-start
        self._curve: np.ndarray | None = None
        sur.session()

    @property
    def finished(self) -> bool:
        return self.epoch >= self.config[protocol.MAX_T_KEY]

    @property
    def curve(self) -> np.ndarray:
        """The 52 × 6 surrogate outputs at the current hp (time as a running max)."""
        if self._curve is None:
            c = sur.curve(self.config["task_id"], _inputs(self.config, self.hp))
            c[:, 0] = np.maximum.accumulate(c[:, 0])
            self._curve = c
        return self._curve

    def _row(self) -> dict[str, float]:
        return dict(zip(sur.OUTPUT_ORDER, (float(v) for v in self.curve[self.epoch - 1])))

    # ---- warm-start: a finite-difference hyper-gradient of the surrogate --------------------------------
    def _fd_gradient(self, space: SearchSpace, u: np.ndarray, epoch: int) -> tuple[np.ndarray, float]:
        """(∂ val_cross_entropy(epoch) / ∂u by central differences, the value at u): one ONNX call."""
        h = FD_STEP * space.u_range
        lo, hi = space.clip_u(u - h), space.clip_u(u + h)
        points = [u]
        for i in range(len(u)):
            up, down = u.copy(), u.copy()
            up[i], down[i] = hi[i], lo[i]
            points += [up, down]
        rows = np.empty((len(points), len(sur.INPUT_ORDER)))
        for j, p in enumerate(points):
            named = {"epoch": float(epoch), **_inputs(self.config, space.to_x(p))}
            rows[j] = [named[k] for k in sur.INPUT_ORDER]
        val = sur.predict(self.config["task_id"], rows)[:, sur.OUTPUT_ORDER.index("val_cross_entropy")]
        g = np.array([(val[1 + 2 * i] - val[2 + 2 * i]) / (hi[i] - lo[i]) for i in range(len(u))])
        return g, float(val[0])

    def warm_start(self) -> WarmStartRecord | None:
        """The config's OHGW instruction, if any, on the surrogate (see the module docstring); sets hp = x′."""
        found = instruction(self.config)
        if found is None:
            return None
        settings, space = found
        unknown = [n for n in space.names if n not in CONTINUOUS]
        if unknown:
            raise ValueError(f"the warm-start space names {unknown}; this trainable tunes only {tuple(CONTINUOUS)}")
        epoch = min(self.epoch + settings.lookahead, sur.MAX_EPOCH)  # the val loss `lookahead` epochs ahead

        def gradient(current: dict, step: int) -> tuple[np.ndarray, float]:
            return self._fd_gradient(space, space.to_u(current), epoch)

        new, record = warm_start_with(gradient, space, {**self.config, **self.hp}, settings, self.device)
        self.hp.update({n: float(new[n]) for n in space.names})
        self._curve = None
        return record

    # ---- epochs -----------------------------------------------------------------------------------------
    def train_epoch(self) -> TrainResult:
        """Advance one epoch: ``epoch_s`` busy CPU seconds; the loss is the surrogate's val cross-entropy."""
        matmuls = busy(self.config["epoch_s"])
        self.epoch += 1
        row = self._row()
        return TrainResult(row["val_cross_entropy"], samples=matmuls, metrics={"lcbench_time_s": row["time"]})

    def _noise(self) -> tuple[float, float]:
        sd = self.config["noise"]
        if sd == 0:
            return 0.0, 0.0
        rng = np.random.default_rng([self.config[protocol.SEED_KEY], self.epoch])
        a, b = rng.normal(0.0, sd, 2)
        return float(a), float(b)

    def evaluate_epoch(self) -> dict[str, Any]:
        row = self._row()
        dv, dt = self._noise()
        return {
            METRIC: min(max(row["val_accuracy"] / 100.0 + dv, 0.0), 1.0),
            protocol.test_metric(METRIC): min(max(row["test_balanced_accuracy"] + dt, 0.0), 1.0),
            "val_bacc": row["val_balanced_accuracy"],
            protocol.VAL_LOSS: row["val_cross_entropy"],
            "test_loss": row["test_cross_entropy"],
        }

    def diverged_metrics(self) -> dict[str, Any]:
        return {METRIC: 0.0, protocol.test_metric(METRIC): 0.0, "val_bacc": 0.0, protocol.VAL_LOSS: math.nan,
                "test_loss": math.nan}  # fmt: skip

    def save(self, directory: str) -> None:
        with open(os.path.join(directory, CHECKPOINT_FILE), "w") as f:
            json.dump({"epoch": self.epoch, "hp": self.hp}, f)

    def load(self, directory: str) -> None:
        path = os.path.join(directory, CHECKPOINT_FILE)
        if not os.path.isfile(path):
            raise ValueError(f"checkpoint directory {directory!r} has no {CHECKPOINT_FILE}")
        with open(path) as f:
            state = json.load(f)
        self.epoch, self.hp, self._curve = int(state["epoch"]), {k: float(v) for k, v in state["hp"].items()}, None


train_lcbench = make_trainable(LCBenchRun, "train_lcbench")


def train_epochs(config: Mapping[str, Any], epochs: int, **kw) -> list[dict[str, Any]]:
    """Up to ``epochs`` reports without Ray (:func:`trainables.scaffold.run_epochs` of :class:`LCBenchRun`)."""
    return run_epochs(LCBenchRun, config, epochs, **kw)
