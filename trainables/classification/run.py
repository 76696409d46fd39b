"""The classification run object (ResNet-20 on digits / CIFAR-10 / synthetic) and its Tune trainable.

:class:`ClassificationRun` is this family's :class:`trainables.scaffold.Run`: plain Python,
no Ray. It validates a config (:mod:`~trainables.classification.config`), loads the data
onto the device, builds the model, runs the warm-start (:meth:`~ClassificationRun.warm_start`,
problem from :mod:`~trainables.classification.problem`), trains one epoch
(:meth:`~ClassificationRun.train_epoch`), evaluates (:meth:`~ClassificationRun.evaluate_epoch`)
and saves / loads exact checkpoints. Everything else (restore, warm-start once, one
report + checkpoint per epoch, cost accounting, the divergence ending and every key of
:mod:`ohgw.protocol`) is :mod:`trainables.scaffold`'s: :func:`train_classifier` is the
scaffold's Tune function trainable of this run and :func:`train_epochs` its plain-Python driver.

Training: ``torch.optim.SGD`` (momentum, optional Nesterov, coupled weight decay on
every parameter, the same as :class:`ohgw.update_rules.SGD`; on the CPU its bit-identical
:class:`~trainables.classification.sgd.PlainSGD`, which spares the trial process the
``torch._dynamo`` import that ``torch.optim`` brings), the written-out
label-smoothed loss :func:`~trainables.classification.losses.smoothed_cross_entropy`, and a
per-step cosine learning-rate schedule from ``lr`` down to 0 over ``max_t`` epochs, with no
warm-up (the first real step uses exactly the ``lr`` the warm-start's lookahead
differentiated). A trial that a scheduler stops at a rung was therefore evaluated
mid-schedule, at a learning rate not yet annealed: standard in HPO, and the same for
every method compared. Speed options: the channels_last memory format (config
``channels_last``, on by default), bf16 autocast (config ``precision``: "auto" is bf16 on
CUDA and fp32 on the CPU) and ``torch.compile`` on CUDA (config ``compile``); their effects
are measured by ``benchmarks/trainable_throughput.py``. The warm-start always runs in fp32.

Augmentation draws one crop/flip and one set of magnitude draws per batch from the trial's
generator, *whatever the magnitude* (at 0 the magnitude augmentation is the identity and
is skipped, its draws are not): twins with the same seed see the same batches and the same
draws, also when a warm-start or random step clipped one of them to ``aug_magnitude`` 0.

Warm-start (the instruction under the config's ``protocol.INSTRUCTION_KEY``, see
:mod:`ohgw.warmstart`): before the first epoch, on the freshly initialised model, one
training batch (crop/flip, fixed magnitude draws) and one clean validation batch (:func:`~trainables.classification.data.warm_start_batches`, their
own random stream) give x′; the optimizer and the loss are then built with x′, which the
checkpoint keeps. A diverged epoch reports accuracies 0.0 (worse than chance, so no
scheduler promotes it) and NaN losses (:meth:`~ClassificationRun.diverged_metrics`).

In a study: ``tune.Tuner(tune.with_resources(train_classifier, {"cpu": 1}),
param_space={**SearchSpace.default().param_space(), "dataset": "digits", "max_t": 10},
tune_config=tune.TuneConfig(metric="val_acc", mode="max", scheduler=...))``.

>>> from ohgw import protocol
>>> (r,) = train_epochs({"dataset": "digits", "max_t": 2, protocol.SEED_KEY: 0}, epochs=1)
>>> r[protocol.ITERATION], r[protocol.DIVERGED], r[protocol.WS_COMPUTE_S], r[protocol.TRIAL_EPOCH_EQUIV]
(1, False, 0.0, 1.0)
>>> r[protocol.DEVICE], r[protocol.hp_key("lr")], 0.0 <= r["val_acc"] <= 1.0
('cpu', 0.1, True)
"""

from __future__ import annotations

import math
import os
import random
import socket
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ohgw import protocol
from ohgw.warmstart import WarmStartRecord, instruction, maybe_warm_start
from trainables.augment import magnitude_augment, sample_draws
from trainables.checks import resolve_device
from trainables.nets import resnet20
from trainables.scaffold import TrainResult, run_epochs, run_in_tune, set_num_threads
from trainables.state_io import load_state, rng_state, save_state, set_rng_state

from .config import CONTINUOUS, DEFAULT_CONFIG, METRIC, resolve_config
from .data import crop_flip, eval_batches, load_dataset, shuffled_batches, warm_start_batches
from .losses import smoothed_cross_entropy
from .problem import make_problem
from .sgd import PlainSGD

EVAL_BATCH = 1024
CHECKPOINT_FILE = "classification_state.pt"


def cosine_lr(lr: float, step: int, total_steps: int) -> float:
    """lr · ½(1 + cos(π·step/total)), held at 0 after ``total_steps``."""
    frac = min(step, total_steps) / total_steps
    return lr * 0.5 * (1.0 + math.cos(math.pi * frac))


class ClassificationRun:
    """One trial's training state (a :class:`trainables.scaffold.Run`); plain Python, no Ray.

    Construction validates the config, loads the data (cached per process) onto the
    device and builds the model from the config's seed; no training happens before
    :meth:`train_epoch`. Bad input raises ValueError here, before any training.
    ``num_threads`` sets torch's thread count (the scaffold's drivers set it themselves).
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
        set_num_threads(num_threads)
        self.device = resolve_device(cfg["device"])
        self.node_id = node_id or socket.gethostname()
        self.data = load_dataset(cfg["dataset"], cfg["data_dir"], cfg["download"], cfg["split_seed"]).to(self.device)
        n_train = len(self.data.train_y)
        if cfg["batch_size"] > n_train:
            raise ValueError(f"batch_size {cfg['batch_size']} is larger than the training split ({n_train} images)")
        self.cuda = self.device.type == "cuda"
        seed = cfg[protocol.SEED_KEY]
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
        self.ws_done = False
        self.ws_record: WarmStartRecord | None = None
        self.optimizer: torch.optim.Optimizer | PlainSGD | None = None

    # ---- life cycle ----------------------------------------------------------------------------
    @property
    def finished(self) -> bool:
        return self.epoch >= self.config["max_t"]

    def _build_optimizer(self) -> None:
        mu = self.hp["momentum"]
        # on the CPU: torch.optim.SGD's own step without importing torch._dynamo (~2.4 s per trial process)
        sgd = PlainSGD if self.device.type == "cpu" else torch.optim.SGD
        self.optimizer = sgd(
            self.model.parameters(),
            lr=self.hp["lr"],
            momentum=mu,
            weight_decay=self.hp["wd"],
            nesterov=bool(self.config["nesterov"] and mu > 0),
        )

    def warm_start(self) -> WarmStartRecord | None:
        """Run the config's warm-start once and build the optimizer with x′ (returns the same record again)."""
        if self.ws_done:
            return self.ws_record
        found = instruction(self.config)
        if found is not None:
            settings, _ = found
            seed = self.config[protocol.SEED_KEY]
            source = warm_start_batches(self.data, settings.batch_size, seed, self.device)
            problem = make_problem(self.model, nesterov=self.config["nesterov"])
            new_config, self.ws_record = maybe_warm_start(self.config, problem, source)
            self.hp = {k: float(new_config[k]) for k in CONTINUOUS}
        self.ws_done = True
        self._build_optimizer()
        return self.ws_record

    def _augment(self, x: torch.Tensor) -> torch.Tensor:
        x = crop_flip(x, self.data.crop_padding, self.data.flip, self.generator)
        # draw at every magnitude, so the random stream does not depend on it (paired twins)
        draws = sample_draws(len(x), generator=self.generator, device=self.device)
        m = self.hp["aug_magnitude"]
        return magnitude_augment(x, m, draws) if m > 0 else x  # at 0 it is the identity: skip its cost

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

    def train_epoch(self) -> TrainResult:
        """One training epoch (the scaffold evaluates and reports it)."""
        if self.finished:
            raise RuntimeError(f"the run is finished (epoch {self.epoch} of {self.config['max_t']})")
        loss, seen = self.train_pass()
        self.epoch += 1
        return TrainResult(loss, seen)

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

    def _metrics(self, val: tuple[float, float], test: tuple[float, float]) -> dict[str, float]:
        return {
            METRIC: val[0],
            protocol.VAL_LOSS: val[1],
            protocol.test_metric(METRIC): test[0],
            protocol.test_metric(protocol.VAL_LOSS): test[1],
        }

    def evaluate_epoch(self) -> dict[str, float]:
        """Accuracy and loss on the validation and the test split."""
        d = self.data
        return self._metrics(self.evaluate(d.val_x, d.val_y), self.evaluate(d.test_x, d.test_y))

    def diverged_metrics(self) -> dict[str, float]:
        """Accuracy 0.0 (worse than chance) and NaN losses."""
        return self._metrics((0.0, float("nan")), (0.0, float("nan")))

    # ---- checkpoints ---------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        if self.optimizer is None:
            self.warm_start()
        state = {
            "epoch": self.epoch,
            "step": self.step,
            "hp": dict(self.hp),
            "ws_done": self.ws_done,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            **rng_state(self.generator, self.device),
        }
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.epoch, self.step = state["epoch"], state["step"]
        self.hp = dict(state["hp"])
        self.ws_done = state["ws_done"]
        self.model.load_state_dict(state["model"])
        self._build_optimizer()
        self.optimizer.load_state_dict(state["optimizer"])
        set_rng_state(state, self.generator, self.device)

    def save(self, directory: str | os.PathLike) -> str:
        return save_state(directory, CHECKPOINT_FILE, self.state_dict())

    def load(self, directory: str | os.PathLike) -> None:
        self.load_state_dict(load_state(directory, CHECKPOINT_FILE))


def train_epochs(
    config: Mapping[str, Any],
    epochs: int,
    *,
    restore_from: str | os.PathLike | None = None,
    save_to: str | os.PathLike | None = None,
    num_threads: int | None = None,
) -> list[dict[str, Any]]:
    """Train up to ``epochs`` more epochs without Ray (fewer if the trial ends); returns the reports.

    ``restore_from`` resumes from a checkpoint directory; ``save_to`` writes one at the end
    (:func:`trainables.scaffold.run_epochs`).
    """
    return run_epochs(
        ClassificationRun, config, epochs, restore_from=restore_from, save_to=save_to, num_threads=num_threads
    )


def train_classifier(config: dict) -> None:
    """Ray Tune function trainable: one report + checkpoint per epoch until max_t or divergence.

    Tuned metric :data:`METRIC` (mode ``max``); ``protocol.ITERATION`` is the epoch. Restores
    from ``tune.get_checkpoint()`` when Tune resumes a paused or failed trial (the
    warm-start is not run again: x′ comes from the checkpoint). See :func:`trainables.scaffold.run_in_tune`.
    """
    run_in_tune(ClassificationRun, config)


__all__ = [
    "DEFAULT_CONFIG",
    "METRIC",
    "ClassificationRun",
    "cosine_lr",
    "make_problem",
    "resolve_config",
    "resolve_device",
    "train_classifier",
    "train_epochs",
]
