"""The Tune function-trainable adapter that every trainable family reuses.

A family writes only its *run object* (:class:`Run`) and names only its own metrics
(e.g. ``val_acc``, ``test_acc``); this module builds every key of the reporting contract
from :mod:`ohgw.protocol` and does the rest:

- restore: ``tune.get_checkpoint()`` → ``run.load(dir)`` plus the scaffold's :class:`Ledger`
  (warm-start record, costs, ending), checkpointed beside the run's own state;
- warm-start once: ``run.warm_start()`` before the first epoch of a *fresh* trial only
  (after a restore, x′ is in the run's checkpoint and its record in the ledger);
- one report per epoch, each with a checkpoint (``tune.report(metrics, checkpoint=...)``);
- costs (:class:`ohgw.cost.Stopwatch` around each epoch's train + evaluation): cumulative
  ``protocol.TRIAL_COMPUTE_S`` with the warm-start; ``protocol.TRIAL_EPOCH_EQUIV`` = epochs +
  warm-start / first-epoch compute; the first report alone charges ``protocol.WS_COMPUTE_S``
  and carries the record (:func:`ohgw.protocol.warm_start_result`, with its share of that epoch);
- determinism: :meth:`Trial.start` applies ``protocol.DETERMINISTIC_KEY`` (reported as ``protocol.DETERMINISTIC``);
- clean endings: a non-finite train loss (reported ``protocol.DIVERGED`` true, :meth:`Run.diverged_metrics`, no
  evaluation) or an evaluation's ``protocol.COLLAPSED`` true (e.g. SSL collapse) ends the trial, also after a restore.

:func:`run_epochs` drives a run without Ray; :func:`run_in_tune` / :func:`make_trainable` are for Tune.

>>> class Halving:  # a complete, if tiny, run object: x ← x·rate per epoch, no warm-start
...     def __init__(self, config):
...         self.device, self.epoch, self.x, self.hp = "cpu", 0, 1.0, {"rate": 0.5}
...     finished = property(lambda self: self.epoch >= 2)
...     warm_start = save = load = lambda self, *directory: None
...     def train_epoch(self):
...         self.epoch, self.x = self.epoch + 1, self.x * self.hp["rate"]
...         return TrainResult(self.x, samples=1)
...     evaluate_epoch = diverged_metrics = lambda self: {"val_x": self.x}
>>> [(r[protocol.ITERATION], r["val_x"], r[protocol.TRIAL_EPOCH_EQUIV]) for r in run_epochs(Halving, {}, 5)]
[(1, 0.5, 1.0), (2, 0.25, 2.0)]
"""

from __future__ import annotations

import json
import math
import os
import socket
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, NamedTuple, Protocol, runtime_checkable

import torch

from ohgw import protocol
from ohgw.cost import Stopwatch
from ohgw.metrics import record_warm_start
from ohgw.warmstart import WarmStartRecord
from trainables import checks

LEDGER_FILE = "scaffold_ledger.json"


class TrainResult(NamedTuple):
    """What :meth:`Run.train_epoch` returns: the mean train loss, images (samples) seen, extra metrics."""

    loss: float
    samples: int
    metrics: Mapping[str, Any] = {}


@runtime_checkable
class Run(Protocol):
    """The run object a family writes: one trial's training state, plain Python (no Ray); built by
    ``factory(config)`` (bad input raises ValueError there)."""

    epoch: int  # epochs done, 0 when fresh
    hp: Mapping[str, float]  # the values trained with (x′ after a warm-start), reported as protocol.hp_key(ψ)
    device: torch.device | str  # where its compute runs (the Stopwatch syncs it)

    @property
    def finished(self) -> bool: ...  # True once the run has trained its last epoch

    def warm_start(self) -> WarmStartRecord | None:
        """Apply the config's OHGW instruction, if any (:func:`ohgw.warmstart.maybe_warm_start`), and set up
        training with the resulting hp. Called once, before a fresh trial's first epoch."""

    def train_epoch(self) -> TrainResult:
        """Train one epoch and advance ``epoch`` by one (no evaluation)."""

    def evaluate_epoch(self) -> dict[str, Any]:
        """Its metrics (tuned one, ``test_`` twins, ``protocol.VAL_LOSS``; maybe ``protocol.COLLAPSED``)."""

    def diverged_metrics(self) -> dict[str, Any]:
        """The same metrics for a non-finite train loss: worse than any real result (accuracy 0, NaN loss)."""

    def save(self, directory: str) -> Any:
        """Write the complete state (hp = x′ and every random stream included) into ``directory``."""

    def load(self, directory: str) -> None:
        """Restore what :meth:`save` wrote; ValueError if ``directory`` holds none."""


RunFactory = Callable[[dict], Run]


@dataclass
class Ledger:
    """The scaffold's state of a trial, checkpointed beside the run's (:data:`LEDGER_FILE`)."""

    warm_started: bool = False
    ws_record: dict | None = None  # WarmStartRecord.to_dict() of this trial's warm-start
    ws_compute_s: float = 0.0
    first_epoch_compute_s: float | None = None
    trial_compute_s: float = 0.0
    ending: str | None = None  # protocol.DIVERGED or protocol.COLLAPSED once the trial ended early


def set_num_threads(num_threads: int | None) -> None:
    """``torch.set_num_threads`` for this process (None leaves it alone; else an integer >= 1)."""
    if num_threads is not None:
        torch.set_num_threads(checks.integer({"num_threads": num_threads}, "num_threads", low=1))


def _ratio(a: float, b: float) -> float:  # a / b; NaN when only b is 0 (an epoch too short to time)
    return a / b if b > 0 else (0.0 if a == 0 else float("nan"))


@dataclass
class Trial:
    """A run object plus its ledger: the reports of the contract, one epoch at a time."""

    run: Run
    node_id: str = field(default_factory=socket.gethostname)
    ledger: Ledger = field(default_factory=Ledger)
    deterministic: bool = True  # the setting :meth:`start` applied (reported; a CPU run is deterministic anyway)

    @classmethod
    def start(cls, factory: RunFactory, config: Mapping[str, Any], node_id: str | None = None) -> Trial:
        """``factory(config)``, its determinism applied in this process (:func:`checks.build_deterministic`)."""
        run, on = checks.build_deterministic(factory, config)
        return cls(run, node_id=node_id or socket.gethostname(), deterministic=on)

    @property
    def finished(self) -> bool:
        return self.ledger.ending is not None or self.run.finished

    def restore(self, directory: str | os.PathLike) -> None:
        self.run.load(os.fspath(directory))
        path = os.path.join(os.fspath(directory), LEDGER_FILE)
        if not os.path.isfile(path):
            raise ValueError(f"checkpoint directory {os.fspath(directory)!r} has no {LEDGER_FILE}")
        with open(path) as f:
            self.ledger = Ledger(**json.load(f))

    def save(self, directory: str | os.PathLike) -> None:
        self.run.save(os.fspath(directory))
        with open(os.path.join(os.fspath(directory), LEDGER_FILE), "w") as f:
            json.dump(asdict(self.ledger), f)

    def step(self) -> dict[str, Any]:
        """Train and evaluate one epoch (warm-starting first, once); returns its report."""
        run, led = self.run, self.ledger
        if self.finished:
            raise RuntimeError(f"the trial is finished (epoch {run.epoch}, ending {led.ending})")
        if not led.warm_started:
            record = run.warm_start()
            if record is not None:
                led.ws_record, led.ws_compute_s = record.to_dict(), float(record.compute_s)
                record_warm_start(record)  # live count and wall time (Ray's metrics)
            led.warm_started = True
        before, t0 = run.epoch, time.perf_counter()
        with Stopwatch(run.device) as sw:
            trained = run.train_epoch()
            train_wall = time.perf_counter() - t0
            diverged = not math.isfinite(trained.loss)
            metrics = dict(run.diverged_metrics() if diverged else run.evaluate_epoch())
        if run.epoch != before + 1:
            raise RuntimeError(f"{type(run).__name__}.train_epoch must advance epoch by one ({before} → {run.epoch})")
        collapsed = bool(metrics.pop(protocol.COLLAPSED, False)) and not diverged
        if diverged or collapsed:
            led.ending = protocol.DIVERGED if diverged else protocol.COLLAPSED
        compute, first = sw.cost.compute_s, led.first_epoch_compute_s is None
        if first:
            led.first_epoch_compute_s = compute
        ws_now = led.ws_compute_s if first else 0.0
        led.trial_compute_s += compute + ws_now
        report: dict[str, Any] = {
            protocol.ITERATION: run.epoch, **trained.metrics, **metrics,
            protocol.TRAIN_LOSS: float(trained.loss),
            protocol.EPOCH_S: sw.cost.wall_s,
            protocol.SAMPLES_PER_S: trained.samples / train_wall if train_wall > 0 else float("nan"),
            protocol.TRIAL_COMPUTE_S: led.trial_compute_s,
            protocol.TRIAL_EPOCH_EQUIV: run.epoch + _ratio(led.ws_compute_s, led.first_epoch_compute_s),
            protocol.WS_COMPUTE_S: ws_now,
            protocol.DEVICE: str(run.device),
            protocol.DETERMINISTIC: self.deterministic,
            protocol.NODE_ID: self.node_id,
            protocol.DIVERGED: diverged,
            protocol.COLLAPSED: collapsed,
            protocol.PEAK_RSS_MIB: sw.cost.peak_rss_mib,
            **{protocol.hp_key(k): float(v) for k, v in run.hp.items()},
        }  # fmt: skip
        if first and led.ws_record is not None:
            report.update(protocol.warm_start_result(led.ws_record, share_of_epoch=_ratio(led.ws_compute_s, compute)))
        return report


def run_epochs(factory: RunFactory, config: Mapping[str, Any], epochs: int, *,
               restore_from: str | os.PathLike | None = None, save_to: str | os.PathLike | None = None,
               num_threads: int | None = None, node_id: str | None = None) -> list[dict[str, Any]]:  # fmt: skip
    """Up to ``epochs`` more epochs' reports without Ray, resumed from / checkpointed to a directory if asked."""
    epochs = checks.integer({"epochs": epochs}, "epochs", low=1)
    set_num_threads(num_threads)
    trial = Trial.start(factory, config, node_id=node_id)
    if restore_from is not None:
        trial.restore(restore_from)
    rows = [trial.step() for _ in range(epochs) if not trial.finished]
    if save_to is not None:
        os.makedirs(save_to, exist_ok=True)
        trial.save(save_to)
    return rows


def run_in_tune(factory: RunFactory, config: dict) -> None:
    """A function trainable's body: restore, then one report + checkpoint per epoch until the end; threads
    follow the trial's CPUs, ``protocol.ITERATION`` is left to Tune (it counts reports)."""
    import ray
    from ray import tune

    try:
        cpus = tune.get_context().get_trial_resources().required_resources.get("CPU", 0)
    except Exception:  # outside a Tune session there are no trial resources
        cpus = 0
    set_num_threads(max(1, int(round(cpus))) if cpus else None)
    node_id = ray.get_runtime_context().get_node_id() if ray.is_initialized() else socket.gethostname()
    trial = Trial.start(factory, config, node_id=node_id)
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as d:
            trial.restore(d)
    while not trial.finished:
        metrics = {k: v for k, v in trial.step().items() if k != protocol.ITERATION}
        with tempfile.TemporaryDirectory() as d:
            trial.save(d)
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(d))


def make_trainable(factory: RunFactory, name: str) -> Callable[[dict], None]:
    """A Ray Tune function trainable of ``factory``, registered by Tune under ``name``."""

    def trainable(config: dict) -> None:
        run_in_tune(factory, config)

    trainable.__name__ = trainable.__qualname__ = name
    return trainable
