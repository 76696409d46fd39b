"""The supervised Tune trainable: ResNet-20 on digits / CIFAR-10 / synthetic, with the OHGW warm-start.

Two layers:

- :class:`ClassificationRun`, plain Python with no Ray: validates a config, loads
  the data onto the device, builds the model, runs the warm-start once, trains
  and evaluates one epoch at a time (:meth:`~ClassificationRun.train_epoch`) and
  saves / loads exact checkpoints. :func:`train_epochs` drives it for tests and scripts.
- :func:`train_classifier`, a *function* trainable (chosen over a class trainable:
  no ``checkpoint_at_end``/``reset_config`` subtleties, and its whole state is one
  run object) that wraps the run with ``tune.report(..., checkpoint=...)`` every epoch
  and ``tune.get_checkpoint()`` on start, so HyperBand/PASHA pauses and
  ``FailureConfig`` retries continue exactly where they stopped.

Training: ``torch.optim.SGD`` (momentum, optional Nesterov, coupled weight decay on
every parameter, the same as :class:`ohgw.update_rules.SGD`), the written-out
label-smoothed loss :func:`trainables.classification.losses.smoothed_cross_entropy`, and a per-step cosine
learning-rate schedule from ``lr`` down to 0 over ``max_t`` epochs, with no warm-up
(the first real step uses exactly the ``lr`` the warm-start's lookahead
differentiated). A trial that a scheduler stops at a rung was therefore evaluated
mid-schedule, at a learning rate not yet annealed: standard in HPO, and the same for
every method compared. Speed: channels_last everywhere (config ``channels_last``; on
this AVX-512 CPU it trains 1.2–1.3× faster than NCHW, fp32 either way), bf16 autocast on
CUDA (config ``precision``, "auto"; on the CPU fp32 unless ``precision="bf16"`` is asked,
about 1.6× faster again at 32×32), optionally ``torch.compile`` on CUDA (config ``compile``);
on the CPU, ``torch.set_num_threads`` is set from the CPUs Tune gave the trial. The
warm-start itself always runs in fp32.

Warm-start (config ``"ohgw"``, see :mod:`ohgw.warmstart`): before the first epoch,
on the freshly initialised model, one training batch (crop/flip, fixed magnitude
draws; the train loss applies :func:`trainables.classification.augment.magnitude_augment` at the
differentiable magnitude and the smoothed CE) and one clean validation batch
(:func:`trainables.classification.data.warm_start_batches`) give x′; the optimizer and the loss are
then built with x′. It runs once per trial: the checkpoint stores x′ and its record.

Cost accounting: an epoch's cost is its train + evaluation compute
(:class:`ohgw.cost.Stopwatch`: CPU seconds on CPU, synced wall seconds on CUDA).
``trial_compute_s`` is cumulative and includes the warm-start; ``trial_epoch_equiv``
is epochs done + warm-start compute / first-epoch compute; the first report
carries ``ws_compute_s``, the record's ``ohgw/...`` keys and ``ohgw/share_of_epoch``.

Besides the contract's keys every report carries ``hp/<name>``: the continuous values
actually trained with (x′ after a warm-start).

Divergence: a non-finite training loss in an epoch ends the trial cleanly: that
epoch is reported with ``diverged=True``, accuracies 0.0 (a diverged net is worse
than chance, so no scheduler promotes it) and NaN losses, and training stops.

In a study: ``tune.Tuner(tune.with_resources(train_classifier, {"cpu": 1}),
param_space={**SearchSpace.default().param_space(), "dataset": "digits", "max_t": 10},
tune_config=tune.TuneConfig(metric="val_acc", mode="max", scheduler=...))``.

>>> rows = train_epochs({"dataset": "digits", "max_t": 2, "seed": 0}, epochs=1)
>>> r = rows[0]
>>> r["training_iteration"], r["diverged"], r["ws_compute_s"], r["trial_epoch_equiv"], r["device"]
(1, False, 0.0, 1.0, 'cpu')
"""

from __future__ import annotations

import math
import os
import random
import socket
import tempfile
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.func import functional_call

from ohgw.cost import Stopwatch
from ohgw.hypergrad import HyperGradProblem
from ohgw.update_rules import SGD
from ohgw.warmstart import instruction, maybe_warm_start
from trainables.classification.augment import magnitude_augment, sample_draws
from trainables.classification.losses import smoothed_cross_entropy

from .data import DATASETS, check_source, crop_flip, eval_batches, load_dataset, shuffled_batches, warm_start_batches
from .models import resnet20

# The one place for defaults (units in the comments). The digits default reaches
# >= 95 % validation accuracy within 10 epochs on a CPU (tests/test_classification.py).
DEFAULT_CONFIG: dict[str, Any] = {
    "dataset": "digits",  # "digits" | "cifar10" | "synthetic"
    "data_dir": None,  # cifar10: the folder that holds cifar-10-batches-py
    "download": False,  # cifar10: fetch into data_dir only when asked
    "split_seed": 0,  # seeds the train/val split (fixed across trials and methods)
    "lr": 0.1,  # peak SGD learning rate, per step, at the schedule's start
    "wd": 5e-4,  # coupled L2 weight decay, on every parameter
    "momentum": 0.9,  # SGD momentum in [0, 1)
    "nesterov": True,  # Nesterov momentum (plain SGD when momentum is 0)
    "aug_magnitude": 0.1,  # trainables.classification.augment magnitude in [0, 1+]: shift, brightness, contrast
    "label_smoothing": 0.05,  # epsilon in [0, 1)
    "batch_size": 128,  # images per SGD step
    "max_t": 10,  # epochs the cosine LR schedule spans (= the trial's maximum length)
    "width": 1,  # ResNet-20 channel multiplier (16/32/64 at 1)
    "seed": 0,  # model init, data order and augmentation
    "device": "auto",  # "auto" (CUDA if visible) | "cpu" | "cuda" | "cuda:N"
    "precision": "auto",  # "auto" (bf16 autocast on CUDA, fp32 on CPU) | "fp32" | "bf16"
    "channels_last": True,  # NHWC memory format (faster convolutions on CUDA and on this AVX-512 CPU)
    "compile": False,  # torch.compile the training forward (CUDA only)
}
PRECISIONS = ("auto", "fp32", "bf16")
CONTINUOUS = ("lr", "wd", "momentum", "aug_magnitude", "label_smoothing")
EVAL_BATCH = 1024
CHECKPOINT_FILE = "classification_state.pt"


# ---- configuration ---------------------------------------------------------------------------------


def _number(config: Mapping, name: str) -> float:
    v = config[name]
    if isinstance(v, bool) or not isinstance(v, (int, float, np.floating, np.integer)):
        raise ValueError(f"{name} must be a number, got {v!r}")
    v = float(v)
    if not math.isfinite(v):
        raise ValueError(f"{name} must be finite, got {v}")
    return v


def _integer(config: Mapping, name: str, low: int) -> int:
    v = config[name]
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {v!r}")
    return int(v)


def resolve_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """DEFAULT_CONFIG updated with ``config``, validated; a ValueError names the first bad key and its rule.

    Checks everything that can be checked without loading data (the batch size
    against the training split is checked by :class:`ClassificationRun` right after loading).
    """
    cfg = {**DEFAULT_CONFIG, **dict(config)}
    if cfg["dataset"] not in DATASETS:
        raise ValueError(f"dataset must be one of {DATASETS}, got {cfg['dataset']!r}")
    lr, wd, mu = _number(cfg, "lr"), _number(cfg, "wd"), _number(cfg, "momentum")
    m, ls = _number(cfg, "aug_magnitude"), _number(cfg, "label_smoothing")
    if lr <= 0:
        raise ValueError(f"lr must be > 0, got {lr}")
    if wd < 0:
        raise ValueError(f"wd must be >= 0, got {wd}")
    if not 0 <= mu < 1:
        raise ValueError(f"momentum must be in [0, 1), got {mu}")
    if not 0 <= ls < 1:
        raise ValueError(f"label_smoothing must be in [0, 1), got {ls}")
    if m < 0:
        raise ValueError(f"aug_magnitude must be >= 0, got {m}")
    cfg.update(lr=lr, wd=wd, momentum=mu, aug_magnitude=m, label_smoothing=ls)
    for name, low in (("batch_size", 1), ("max_t", 1), ("width", 1), ("seed", 0), ("split_seed", 0)):
        cfg[name] = _integer(cfg, name, low)
    if cfg["precision"] not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {cfg['precision']!r}")
    for name in ("nesterov", "download", "compile", "channels_last"):
        if not isinstance(cfg[name], (bool, np.bool_)):
            raise ValueError(f"{name} must be True or False, got {cfg[name]!r}")
        cfg[name] = bool(cfg[name])
    dev = cfg["device"]
    if not isinstance(dev, str) or not (dev in ("auto", "cpu") or dev.startswith("cuda")):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda[:N]', got {dev!r}")
    check_source(cfg["dataset"], cfg["data_dir"], cfg["download"])
    return cfg


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} asked for, but CUDA is not available here")
    return torch.device(name)


# ---- the warm-start problem -------------------------------------------------------------------------


def make_problem(model: torch.nn.Module, nesterov: bool = False) -> HyperGradProblem:
    """The classifier's hyper-gradient problem.

    Train loss on a batch ``(x, y, draws)``: smoothed CE (``label_smoothing``) of the
    model on ``magnitude_augment(x, aug_magnitude, draws)``. Validation loss on a clean
    batch ``(x, y)``: plain CE. Update rule: :class:`ohgw.update_rules.SGD` with the
    real optimizer's Nesterov flag, so lr, wd and momentum are differentiable.
    """

    def train_loss(params, buffers, batch, hp):
        x, y, draws = batch
        if "aug_magnitude" in hp:
            x = magnitude_augment(x, hp["aug_magnitude"], draws)
        logits = functional_call(model, (params, buffers), (x,))
        return smoothed_cross_entropy(logits, y, hp.get("label_smoothing", 0.0))

    def val_loss(params, buffers, batch):
        x, y = batch
        return F.cross_entropy(functional_call(model, (params, buffers), (x,)), y)

    return HyperGradProblem(
        model=model,
        train_loss=train_loss,
        val_loss=val_loss,
        update_rule=SGD(nesterov=nesterov),
        loss_hyperparameters=("aug_magnitude", "label_smoothing"),
    )


def cosine_lr(lr: float, step: int, total_steps: int) -> float:
    """lr · ½(1 + cos(π·step/total)), held at 0 after ``total_steps``."""
    frac = min(step, total_steps) / total_steps
    return lr * 0.5 * (1.0 + math.cos(math.pi * frac))


# ---- the run ----------------------------------------------------------------------------------------


class ClassificationRun:
    """One trial's training state; every method is plain Python (no Ray needed).

    Construction validates the config, loads the data (cached per process) onto the
    device and builds the model from ``seed``; no training happens before
    :meth:`train_epoch`. Bad input raises ValueError here, before any training.
    """

    def __init__(
        self,
        config: Mapping[str, Any],
        *,
        num_threads: int | None = None,
        node_id: str | None = None,
    ) -> None:
        self.config = resolve_config(config)
        cfg = self.config
        if num_threads is not None:
            if num_threads < 1:
                raise ValueError(f"num_threads must be >= 1, got {num_threads}")
            torch.set_num_threads(int(num_threads))
        self.device = resolve_device(cfg["device"])
        self.node_id = node_id or socket.gethostname()
        self.data = load_dataset(cfg["dataset"], cfg["data_dir"], cfg["download"], cfg["split_seed"]).to(self.device)
        n_train = len(self.data.train_y)
        if cfg["batch_size"] > n_train:
            raise ValueError(f"batch_size {cfg['batch_size']} is larger than the training split ({n_train} images)")
        self.cuda = self.device.type == "cuda"
        seed = cfg["seed"]
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)  # model init comes from the global torch stream
        self.model = resnet20(self.data.num_classes, self.data.in_channels, cfg["width"]).to(self.device)
        self.channels_last = cfg["channels_last"]
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.bf16 = cfg["precision"] == "bf16" or (cfg["precision"] == "auto" and self.cuda)
        if self.cuda:
            torch.backends.cudnn.benchmark = True
        self.forward = torch.compile(self.model) if (cfg["compile"] and self.cuda) else self.model
        self.generator = torch.Generator().manual_seed(seed)  # data order + augmentation, on the CPU
        self.hp = {k: cfg[k] for k in CONTINUOUS}  # becomes x' after a warm-start
        self.steps_per_epoch = n_train // cfg["batch_size"]
        self.total_steps = cfg["max_t"] * self.steps_per_epoch
        self.epoch = 0
        self.step = 0
        self.diverged = False
        self.ws_done = False
        self.ws_record: dict | None = None  # WarmStartRecord.flat() of this trial's warm-start
        self.ws_compute_s = 0.0
        self.first_epoch_compute_s: float | None = None
        self.trial_compute_s = 0.0
        self.optimizer: torch.optim.Optimizer | None = None

    # ---- life cycle ----------------------------------------------------------------------------
    @property
    def finished(self) -> bool:
        return self.diverged or self.epoch >= self.config["max_t"]

    def _build_optimizer(self) -> None:
        mu = self.hp["momentum"]
        self.optimizer = torch.optim.SGD(
            self.model.parameters(),
            lr=self.hp["lr"],
            momentum=mu,
            weight_decay=self.hp["wd"],
            nesterov=bool(self.config["nesterov"] and mu > 0),
        )

    def warm_start(self) -> dict | None:
        """Run the config's warm-start once (no-op without an instruction, or if already done)."""
        if self.ws_done:
            return self.ws_record
        found = instruction(self.config)
        if found is not None:
            settings, _ = found
            source = warm_start_batches(self.data, settings.batch_size, self.config["seed"], self.device)
            problem = make_problem(self.model, nesterov=self.config["nesterov"])
            new_config, record = maybe_warm_start(self.config, problem, source)
            self.hp = {k: float(new_config[k]) for k in CONTINUOUS}
            self.ws_record = record.flat()
            self.ws_compute_s = float(record.compute_s)
        self.ws_done = True
        self._build_optimizer()
        return self.ws_record

    def _augment(self, x: torch.Tensor) -> torch.Tensor:
        x = crop_flip(x, self.data.crop_padding, self.data.flip, self.generator)
        m = self.hp["aug_magnitude"]
        if m > 0:  # at 0 the augmentation is the identity: skip its cost
            x = magnitude_augment(x, m, sample_draws(len(x), generator=self.generator, device=self.device))
        return x

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16)

    def _prep(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def train_pass(self, max_batches: int | None = None) -> tuple[float, int]:
        """The training half of an epoch (no evaluation, no report): (mean train loss, images seen).

        ``max_batches`` cuts the pass short (benchmarks only: the epoch count does not move).
        """
        if self.optimizer is None:
            self.warm_start()
        self.model.train()
        d, bs, opt = self.data, self.config["batch_size"], self.optimizer
        loss_sum = torch.zeros((), dtype=torch.float64, device=self.device)
        seen = 0
        batches = shuffled_batches(len(d.train_y), bs, self.generator)
        for idx in batches[:max_batches] if max_batches is not None else batches:
            idx = idx.to(self.device)
            x, y = self._augment(d.train_x[idx]), d.train_y[idx]
            lr = cosine_lr(self.hp["lr"], self.step, self.total_steps)
            for group in opt.param_groups:
                group["lr"] = lr
            with self._autocast():
                logits = self.forward(self._prep(x))
            loss = smoothed_cross_entropy(logits, y, self.hp["label_smoothing"])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum += loss.detach().double()
            seen += len(y)
            self.step += 1
        return float(loss_sum) / max(1, seen // bs), seen

    @torch.no_grad()
    def evaluate(self, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
        """(accuracy, mean plain cross-entropy) of the model in eval mode."""
        self.model.eval()
        correct = torch.zeros((), dtype=torch.int64, device=self.device)
        loss = torch.zeros((), dtype=torch.float64, device=self.device)
        for xb, yb in eval_batches(x, y, EVAL_BATCH):
            with self._autocast():
                logits = self.forward(self._prep(xb))
            logits = logits.float()
            loss += F.cross_entropy(logits, yb, reduction="sum").double()
            correct += (logits.argmax(1) == yb).sum()
        n = len(y)
        return float(correct) / n, float(loss) / n

    def train_epoch(self) -> dict[str, Any]:
        """Train and evaluate one epoch; returns the report (the contract's keys)."""
        if self.finished:
            raise RuntimeError(f"the run is finished (epoch {self.epoch}, diverged={self.diverged})")
        first = self.epoch == 0
        self.warm_start()
        t0 = time.perf_counter()
        with Stopwatch(self.device) as sw:
            train_loss, seen = self.train_pass()
            train_wall = time.perf_counter() - t0
            diverged = not math.isfinite(train_loss)
            if diverged:
                val_acc = test_acc = 0.0
                val_loss = test_loss = float("nan")
            else:
                val_acc, val_loss = self.evaluate(self.data.val_x, self.data.val_y)
                test_acc, test_loss = self.evaluate(self.data.test_x, self.data.test_y)
        compute = sw.cost.compute_s
        self.epoch += 1
        self.diverged = diverged
        if self.first_epoch_compute_s is None:
            self.first_epoch_compute_s = compute
        ws_now = self.ws_compute_s if first else 0.0
        self.trial_compute_s += compute + ws_now
        report: dict[str, Any] = {
            "training_iteration": self.epoch,
            "val_acc": val_acc,
            "val_loss": val_loss,
            "train_loss": train_loss,
            "test_acc": test_acc,
            "test_loss": test_loss,
            "epoch_s": sw.cost.wall_s,
            "samples_per_s": seen / train_wall if train_wall > 0 else float("nan"),
            "trial_compute_s": self.trial_compute_s,
            "trial_epoch_equiv": self.epoch + self.ws_compute_s / self.first_epoch_compute_s,
            "ws_compute_s": ws_now,
            "device": str(self.device),
            "node_id": self.node_id,
            "diverged": diverged,
            "peak_rss_mib": sw.cost.peak_rss_mib,
        }
        for k in CONTINUOUS:  # the values trained with (x' after a warm-start)
            report[f"hp/{k}"] = self.hp[k]
        if first and self.ws_record is not None:
            report.update(self.ws_record)
            report["ohgw/share_of_epoch"] = self.ws_compute_s / compute if compute > 0 else float("nan")
        return report

    # ---- checkpoints ---------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        if self.optimizer is None:
            self.warm_start()
        state = {
            "epoch": self.epoch,
            "step": self.step,
            "diverged": self.diverged,
            "hp": dict(self.hp),
            "ws_done": self.ws_done,
            "ws_record": self.ws_record,
            "ws_compute_s": self.ws_compute_s,
            "first_epoch_compute_s": self.first_epoch_compute_s,
            "trial_compute_s": self.trial_compute_s,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "numpy_rng": np.random.get_state(),
            "python_rng": random.getstate(),
        }
        if self.cuda:
            state["cuda_rng"] = torch.cuda.get_rng_state(self.device)
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.epoch, self.step, self.diverged = state["epoch"], state["step"], state["diverged"]
        self.hp = dict(state["hp"])
        self.ws_done, self.ws_record = state["ws_done"], state["ws_record"]
        self.ws_compute_s = state["ws_compute_s"]
        self.first_epoch_compute_s = state["first_epoch_compute_s"]
        self.trial_compute_s = state["trial_compute_s"]
        self.model.load_state_dict(state["model"])
        self._build_optimizer()
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        np.random.set_state(state["numpy_rng"])
        random.setstate(state["python_rng"])
        if self.cuda and "cuda_rng" in state:
            torch.cuda.set_rng_state(state["cuda_rng"], self.device)

    def save(self, directory: str | os.PathLike) -> str:
        path = os.path.join(os.fspath(directory), CHECKPOINT_FILE)
        torch.save(self.state_dict(), path)
        return path

    def load(self, directory: str | os.PathLike) -> None:
        path = os.path.join(os.fspath(directory), CHECKPOINT_FILE)
        if not os.path.isfile(path):
            raise ValueError(f"checkpoint directory {os.fspath(directory)!r} has no {CHECKPOINT_FILE}")
        # RNG states must stay CPU tensors; model and optimizer state are copied to the device on load
        self.load_state_dict(torch.load(path, map_location="cpu", weights_only=False))


def train_epochs(
    config: Mapping[str, Any],
    epochs: int,
    *,
    restore_from: str | os.PathLike | None = None,
    save_to: str | os.PathLike | None = None,
    num_threads: int | None = None,
) -> list[dict[str, Any]]:
    """Train up to ``epochs`` more epochs without Ray (fewer if the run finishes); returns the reports.

    ``restore_from`` resumes from a checkpoint directory; ``save_to`` writes one at the end.
    """
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be an integer >= 1, got {epochs!r}")
    run = ClassificationRun(config, num_threads=num_threads)
    if restore_from is not None:
        run.load(restore_from)
    rows = []
    for _ in range(epochs):
        if run.finished:
            break
        rows.append(run.train_epoch())
    if save_to is not None:
        os.makedirs(save_to, exist_ok=True)
        run.save(save_to)
    return rows


# ---- Ray Tune -----------------------------------------------------------------------------------------


def _trial_cpus() -> int | None:
    from ray import tune

    try:
        pgf = tune.get_context().get_trial_resources()
        cpus = pgf.required_resources.get("CPU", 0)
    except Exception:  # outside a Tune session there are no trial resources
        return None
    return max(1, int(round(cpus))) if cpus else None


def _node_id() -> str | None:
    import ray

    return ray.get_runtime_context().get_node_id() if ray.is_initialized() else None


def train_classifier(config: dict) -> None:
    """Ray Tune function trainable: one report + checkpoint per epoch until max_t or divergence.

    Tuned metric ``val_acc`` (mode ``max``); ``training_iteration`` is the epoch.
    Restores from ``tune.get_checkpoint()`` when Tune resumes a paused or failed trial
    (the warm-start is not run again: x′ comes from the checkpoint).
    """
    from ray import tune

    run = ClassificationRun(config, num_threads=_trial_cpus(), node_id=_node_id())
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as d:
            run.load(d)
    while not run.finished:
        metrics = run.train_epoch()
        metrics.pop("training_iteration")  # Tune counts reports itself; it equals the epoch
        with tempfile.TemporaryDirectory() as d:
            run.save(d)
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(d))


__all__ = [
    "DEFAULT_CONFIG",
    "ClassificationRun",
    "cosine_lr",
    "make_problem",
    "resolve_config",
    "train_classifier",
    "train_epochs",
]
