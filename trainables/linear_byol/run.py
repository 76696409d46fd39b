"""The linear BYOL run object (a :class:`trainables.scaffold.Run`) and its Tune trainable.

:class:`LinearBYOLRun` validates a config (:mod:`~trainables.linear_byol.config`), builds the
:class:`~trainables.linear_byol.engine.Trainer`, warm-starts once (the problem of
:mod:`~trainables.linear_byol.problem`), trains one epoch per :meth:`~LinearBYOLRun.train_epoch`
and evaluates the theory metrics (:mod:`~trainables.linear_byol.metrics`) plus ``loss`` / ``val_loss``
(the MSE on a fresh pair of evaluation views) and ``test_loss`` (on another pair), ``H_t``,
``alpha_t``, ``beta_t``. The tuned metric is :data:`METRIC` = ``W_Fro_aligned`` (mode min); it is a
closed form of the weights, not an estimate, so its held-out twin ``test_W_Fro_aligned`` is the same
number. A diverged epoch (a train loss that is non-finite or above the config's ``diverge_loss``) reports :data:`DIVERGED_SCORE` (error 10¹⁰: worse than any real run, finite
so that every scheduler can rank it) and NaN for everything else.

>>> from ohgw import protocol
>>> rows = train_epochs({"max_t": 2, "d_obs": 20, "d_latent": 4, "eval_samples": 256}, epochs=3)
>>> [r[protocol.ITERATION] for r in rows], rows[-1][METRIC] < rows[0][METRIC]
([1, 2], True)
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import Any

import torch

from ohgw import protocol
from ohgw.results import atomic_path
from ohgw.warmstart import WarmStartRecord, instruction, maybe_warm_start
from trainables.scaffold import TrainResult, make_trainable, run_epochs

from .config import resolve_config, steps_per_epoch
from .engine import Trainer
from .metrics import METRIC_KEYS, linearise, theory_metrics
from .problem import TUNED, curvature, make_problem

METRIC = "W_Fro_aligned"  # tuned, mode min
DIVERGED_SCORE = 10.0  # log10 error reported by a diverged run
CHECKPOINT_FILE = "linear_byol_state.pt"
EXTRA_KEYS = ("loss", "H_t", "alpha_t", "beta_t")


class LinearBYOLRun:
    """One trial of the toy; plain Python, no Ray. Bad input raises ValueError at construction."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.config = resolve_config(config)
        self.trainer = Trainer(self.config)
        self.device = self.trainer.device
        self.epoch = 0
        self.hp = {k: self.config[k] for k in TUNED}  # x′ after a warm-start
        self.ws_done = False
        self.last_loss = math.nan

    @property
    def finished(self) -> bool:
        return self.epoch >= self.config[protocol.MAX_T_KEY]

    def _set_hp(self, hp: Mapping[str, float]) -> None:
        self.hp = {k: float(hp[k]) for k in TUNED}
        self.trainer.hp.update(self.hp)

    def warm_start_batches(self, batch_size: int):
        """step → (train pair, validation pair) of fresh views from the warm-start's own stream."""
        g = torch.Generator(self.device).manual_seed(self.config[protocol.SEED_KEY] + 3)
        return lambda step: (self.trainer.data.sample(batch_size, g), self.trainer.data.sample(batch_size, g))

    def warm_start(self) -> WarmStartRecord | None:
        """The config's OHGW instruction, if any (ψ = log α, log β, log τ; see :mod:`.problem`)."""
        if self.ws_done:
            return None
        self.ws_done = True
        found = instruction(self.config)
        if found is None:
            return None
        settings, _ = found
        source = self.warm_start_batches(settings.batch_size)
        model = self.trainer.model
        auto = self.config["auto_alpha_c"] > 0 or self.config["auto_beta_c"] > 0
        h = curvature(model, self.trainer.data.sample(settings.batch_size, torch.Generator(self.device).manual_seed(
            self.config[protocol.SEED_KEY] + 3))[0]) if auto else 1.0
        problem = make_problem(model, self.config, h=h, step=self.trainer.step)
        new, record = maybe_warm_start({**self.config, **self.hp}, problem, source)
        self._set_hp(new)
        return record

    def train_epoch(self) -> TrainResult:
        if self.finished:
            raise RuntimeError(f"the run is finished (epoch {self.epoch} of {self.config[protocol.MAX_T_KEY]})")
        self.trainer.hp.update(self.hp)
        loss = self.trainer.train_epoch()
        self.epoch += 1
        self.last_loss = loss
        samples = steps_per_epoch(self.config) * self.config["batch_size"]
        # a loss above diverge_loss counts as diverged: exponential growth overflows only much later
        return TrainResult(loss if math.isfinite(loss) and loss <= self.config["diverge_loss"] else math.nan, samples)

    def matrices(self, x1: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, B_t, P, encoded, predicted): the weights of linear networks, else least-squares linearisations."""
        m = self.trainer.model
        with torch.no_grad():
            o, p, _ = m(x1, x1)
            t = m.target(x1)
            lin = isinstance(m.encoder, torch.nn.Linear)
            b = m.encoder.weight.detach() if lin else linearise(x1, o)
            bt = m.target.weight.detach() if lin else linearise(x1, t)
            pm = m.predictor.weight.detach() if isinstance(m.predictor, torch.nn.Linear) else linearise(o, p)
        return b, bt, pm, o, p

    def evaluate_epoch(self) -> dict[str, Any]:
        tr = self.trainer
        x1, x2 = tr.eval_views()
        b, bt, p, o, pr = self.matrices(x1)
        out: dict[str, Any] = theory_metrics(tr.data, b, bt, p, o, pr)
        out[protocol.test_metric(METRIC)] = out[METRIC]
        out["loss"] = self.last_loss
        out[protocol.VAL_LOSS] = tr.eval_loss(x1, x2)
        out[protocol.test_metric(protocol.VAL_LOSS)] = tr.eval_loss(*tr.eval_views())
        auto = self.config["auto_alpha_c"] > 0 or self.config["auto_beta_c"] > 0
        out["H_t"] = float(tr.h_t) if auto else float(torch.linalg.eigvalsh((o.T @ o / len(o)).double())[-1])
        out.update(tr.used_rates())
        if not math.isfinite(out[METRIC]):  # weights blew up although the loss stayed finite
            out[METRIC] = out[protocol.test_metric(METRIC)] = DIVERGED_SCORE
        return out

    def diverged_metrics(self) -> dict[str, Any]:
        out: dict[str, Any] = {k: math.nan for k in (*METRIC_KEYS, *EXTRA_KEYS)}
        out[METRIC] = out[protocol.test_metric(METRIC)] = DIVERGED_SCORE
        out[protocol.VAL_LOSS] = out[protocol.test_metric(protocol.VAL_LOSS)] = math.nan
        out.update(self.trainer.used_rates())
        return out

    def save(self, directory: str) -> str:
        path = os.path.join(directory, CHECKPOINT_FILE)
        state = {"epoch": self.epoch, "hp": self.hp, "ws_done": self.ws_done, "last_loss": self.last_loss,
                 "trainer": self.trainer.state_dict()}
        with atomic_path(path) as tmp:
            torch.save(state, tmp)
        return path

    def load(self, directory: str) -> None:
        path = os.path.join(directory, CHECKPOINT_FILE)
        if not os.path.isfile(path):
            raise ValueError(f"checkpoint directory {directory!r} has no {CHECKPOINT_FILE}")
        state = torch.load(path, map_location="cpu", weights_only=False)
        self.trainer.load_state_dict(state["trainer"])
        self.epoch, self.ws_done, self.last_loss = int(state["epoch"]), bool(state["ws_done"]), state["last_loss"]
        self._set_hp(state["hp"])


train_linear_byol = make_trainable(LinearBYOLRun, "train_linear_byol")


def train_epochs(config: Mapping[str, Any], epochs: int, **kw) -> list[dict[str, Any]]:
    """Up to ``epochs`` reports without Ray (:func:`trainables.scaffold.run_epochs` of :class:`LinearBYOLRun`)."""
    return run_epochs(LinearBYOLRun, config, epochs, **kw)
