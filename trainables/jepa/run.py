"""The JEPA run object (VICReg / SimCLR JEPA, RSSM baseline on the moving-dot world) and its Tune trainable.

:class:`JepaRun` is this family's :class:`trainables.scaffold.Run`: it validates a config
(:mod:`~trainables.jepa.config`), builds the world's fixed sets (:mod:`~trainables.jepa.world`,
cached per process), builds the model from the seed, warm-starts once (problem from
:mod:`~trainables.jepa.problem`), trains one epoch over the training set, evaluates
(:mod:`~trainables.jepa.evaluate`) and saves / loads exact checkpoints. The scaffold does
the rest (restore, one report + checkpoint per epoch, costs, the divergence and collapse endings).

Training: AdamW (β₁ = ``momentum``, β₂ = 0.999, decoupled wd) or SGD (momentum, coupled wd) at a
constant ``lr``; ``dataset_size // batch_size`` steps per epoch in a seeded random order; each
step draws its teacher-forcing mask / reparameterisation noise whatever the config (twins with one
seed see the same stream). ``precision`` (``auto``: bf16 on CUDA, fp32 on the CPU) puts the conv nets
under bf16 autocast wherever the model runs (training, the warm-start's lookahead, evaluation); the
predictors, the losses and the ridge probe stay fp32 (:mod:`~trainables.jepa.models`).

Warm-start (the config's OHGW instruction, :mod:`ohgw.warmstart`): before the first epoch, on the
freshly initialised model, one training batch and one held-out batch of the probe set
(:func:`~trainables.jepa.problem.warm_start_batches`, their own random stream) give x′; the optimizer
and the loss coefficients are then x′, which the checkpoint keeps. Which ψ get a real one-step
signal (lr and wd always; the loss coefficients only under SGD): :mod:`~trainables.jepa.problem`.

Reports (the tuned metric :data:`METRIC` = ``val_rmse``, mode min, pixels): ``test_rmse``,
``val_rmse_t00`` … ``val_rmse_t16`` (per step), ``val_rollout_rmse_h01`` … ``h16`` (open-loop
rollout vs horizon), ``rankme`` and ``embedding_std`` (the collapse guard's inputs: RankMe below
``collapse_rank``, or for VICReg a std below ``collapse_std``, ends the run),
``ref_random_init_rmse`` and ``ref_mean_rmse`` (the reference lines, computed once),
``eval_share`` (evaluation seconds / (train + evaluation) of the epoch), ``protocol.VAL_LOSS`` (the coefficient-free validation objective on the val set, see
:mod:`~trainables.jepa.problem`) and the training terms (``train_pred``, ``train_var``, …). A
collapse sets ``protocol.COLLAPSED``: the scaffold ends the trial cleanly. A diverged epoch
reports RMSEs of +inf.

>>> from ohgw import protocol
>>> cfg = {"dataset_size": 64, "probe_size": 16, "val_size": 8, "test_size": 8, "batch_size": 32, "max_t": 1,
...        "embedding_dim": 32, "predictor_hidden": 32}
>>> (r,) = train_epochs(cfg, 1, num_threads=1)
>>> r[protocol.ITERATION], r[protocol.DIVERGED], r[protocol.COLLAPSED], r["val_rmse"] > 0, "val_rmse_t16" in r
(1, False, False, True, True)
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ohgw import protocol
from ohgw.warmstart import WarmStartRecord, instruction, maybe_warm_start
from trainables.checks import resolve_device
from trainables.scaffold import TrainResult, run_epochs, run_in_tune, set_num_threads
from trainables.state_io import load_state, rng_state, save_state, set_rng_state

from . import evaluate as ev
from .config import CONTINUOUS, resolve_config, world_spec
from .losses import simclr_jepa_loss
from .models import JEPA, RSSM, rollout
from .problem import draws, make_problem, train_objective, validation_objective, warm_start_batches
from .world import make_world

METRIC = "val_rmse"  # tuned, mode min (pixels); its twin is protocol.test_metric(METRIC) = "test_rmse"
MODE = "min"
CHECKPOINT_FILE = "jepa_state.pt"
STEPS = 17


def build_model(cfg: Mapping[str, Any], bf16: bool = False) -> torch.nn.Module:
    """The model of a resolved config (initialised from the global torch stream); ``bf16``: its conv nets
    under bf16 autocast (:mod:`~trainables.jepa.models`)."""
    if cfg["model_type"] == "RSSM":
        return RSSM(cfg["embedding_dim"], cfg["width"], cfg["det_dim"], cfg["stoch_dim"], cfg["rssm_hidden"],
                    bf16=bf16)
    return JEPA(cfg["embedding_dim"], cfg["width"], cfg["predictor"], cfg["predictor_hidden"], bf16=bf16)


def uses_bf16(cfg: Mapping[str, Any], device: torch.device) -> bool:
    """Whether a resolved config's run autocasts to bf16 on ``device`` (``precision`` auto: on CUDA only)."""
    return cfg["precision"] == "bf16" or (cfg["precision"] == "auto" and device.type == "cuda")


def initial_model(cfg: Mapping[str, Any], device) -> torch.nn.Module:
    """The model exactly as a run with this config's seed initialises it; the global stream is left alone."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg[protocol.SEED_KEY])
        return build_model(cfg, uses_bf16(cfg, torch.device(device))).to(device)


def step_keys(prefix: str, first: int, count: int) -> list[str]:
    return [f"{prefix}{i:02d}" for i in range(first, first + count)]


class JepaRun:
    """One trial's training state (a :class:`trainables.scaffold.Run`); plain Python, no Ray."""

    def __init__(self, config: Mapping[str, Any], *, num_threads: int | None = None) -> None:
        self.config = cfg = resolve_config(config)
        set_num_threads(num_threads)
        self.device = resolve_device(cfg["device"])
        sizes = (cfg["dataset_size"], cfg["probe_size"], cfg["val_size"], cfg["test_size"])
        self.world = make_world(world_spec(cfg), sizes, cfg["data_seed"], self.device)
        seed = cfg[protocol.SEED_KEY]
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)
        self.bf16 = uses_bf16(cfg, self.device)
        self.model = build_model(cfg, self.bf16).to(self.device)
        self.generator = torch.Generator().manual_seed(seed)  # batch order and draws, on the CPU
        self.hp = {k: cfg[k] for k in CONTINUOUS[cfg["model_type"]]}
        self.epoch = 0
        self.ws_done = False
        self.ws_record: WarmStartRecord | None = None
        self.optimizer: torch.optim.Optimizer | None = None
        self.refs: dict[str, float] | None = None  # reference lines, computed at the first evaluation
        self.train_s = 0.0

    @property
    def finished(self) -> bool:
        return self.epoch >= self.config["max_t"]

    # ---- warm-start and optimizer ------------------------------------------------------------------
    def _build_optimizer(self) -> None:
        cfg, params = self.config, self.model.parameters()
        if cfg["optimizer"] == "sgd":
            self.optimizer = torch.optim.SGD(params, lr=self.hp["lr"], momentum=cfg["momentum"], weight_decay=self.hp["wd"])
        else:
            self.optimizer = torch.optim.AdamW(params, lr=self.hp["lr"], betas=(cfg["momentum"], 0.999),
                                               weight_decay=self.hp["wd"])

    def warm_start(self) -> WarmStartRecord | None:
        """Run the config's warm-start once and build the optimizer with x′ (returns the same record again)."""
        if self.ws_done:
            return self.ws_record
        found = instruction(self.config)
        if found is not None:
            settings, _ = found
            source = warm_start_batches(self.config, self.world.train, self.world.probe, settings.batch_size,
                                        self.config[protocol.SEED_KEY], self.device)
            problem = make_problem(self.model, self.config)
            new_config, self.ws_record = maybe_warm_start(self.config, problem, source)
            self.hp = {k: float(new_config[k]) for k in self.hp}
        self.ws_done = True
        self._build_optimizer()
        return self.ws_record

    # ---- one epoch ---------------------------------------------------------------------------------
    def train_pass(self, max_batches: int | None = None) -> TrainResult:
        """The training half of an epoch (the epoch count does not move); ``max_batches`` for benchmarks."""
        if self.optimizer is None:
            self.warm_start()
        t0 = time.perf_counter()
        cfg, train = self.config, self.world.train
        self.model.train()
        bs, n = cfg["batch_size"], len(train)
        order = torch.randperm(n, generator=self.generator)
        steps = n // bs if max_batches is None else min(n // bs, max_batches)
        sums: dict[str, float] = {}
        total, done = 0.0, 0
        for i in range(steps):
            idx = order[i * bs:(i + 1) * bs].to(self.device)
            batch = train.index(idx)
            d = draws(cfg, bs, self.generator, self.device)
            loss, terms = train_objective(self.model, cfg, (batch.frames, batch.actions, d), self.hp)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg["grad_clip"] > 0:
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg["grad_clip"])
            self.optimizer.step()
            value = float(loss.detach())
            total, done = total + value, done + 1
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach())
            if not np.isfinite(value):
                break
        self.train_s = time.perf_counter() - t0
        metrics = {f"train_{k}": v / max(done, 1) for k, v in sums.items()}
        return TrainResult(total / max(done, 1), done * bs, metrics)

    def train_epoch(self) -> TrainResult:
        if self.finished:
            raise RuntimeError(f"the run is finished (epoch {self.epoch} of {self.config['max_t']})")
        result = self.train_pass()
        self.epoch += 1
        return result

    def references(self) -> dict[str, float]:
        """The reference lines: probe RMSE (val) of the untrained model with this seed, and of the mean position."""
        if self.refs is None:
            w, cfg = self.world, self.config
            init = initial_model(cfg, self.device)
            m = ev.representation_metrics(init, w.probe, w.val, w.test, cfg["probe_ridge"], rollout=False)
            self.refs = {"ref_random_init_rmse": m["val"], "ref_mean_rmse": ev.mean_position_rmse(w.probe, w.val)}
        return dict(self.refs)

    @torch.no_grad()
    def evaluate_epoch(self) -> dict[str, Any]:
        t0 = time.perf_counter()
        w, cfg = self.world, self.config
        refs = self.references()
        m = ev.representation_metrics(self.model, w.probe, w.val, w.test, cfg["probe_ridge"], cfg["eval_rollout"])
        val_loss = self._val_loss(m["val_features"])
        out: dict[str, Any] = {METRIC: m["val"], protocol.test_metric(METRIC): m["test"], protocol.VAL_LOSS: val_loss,
                               "rankme": m["rank"], "embedding_std": m["std"], **refs}
        out.update(zip(step_keys(METRIC + "_t", 0, STEPS), m["val_steps"]))
        if "rollout" in m:
            out.update(zip(step_keys(METRIC.replace("_", "_rollout_", 1) + "_h", 1, STEPS - 1), m["rollout"]))
        eval_s = time.perf_counter() - t0
        out["eval_share"] = eval_s / (eval_s + self.train_s) if eval_s + self.train_s > 0 else float("nan")
        shrunk = cfg["model_type"] == "VICReg" and m["std"] < cfg["collapse_std"]
        out[protocol.COLLAPSED] = bool(m["rank"] < cfg["collapse_rank"] or shrunk)
        return out

    @torch.no_grad()
    def _val_loss(self, z: torch.Tensor) -> float:
        """The validation objective on the val set (JEPAs: from its already computed encodings z)."""
        cfg, val = self.config, self.world.val
        self.model.eval()
        try:
            if cfg["model_type"] == "RSSM":
                return float(validation_objective(self.model, cfg, val.frames, val.actions))
            pred = rollout(self.model.predictor, z, val.actions, cfg["pred_horizon"])
            if cfg["model_type"] == "VICReg":
                return float(F.mse_loss(pred, z[:, 1:]))
            return float(simclr_jepa_loss(z, pred, cfg["ref_temperature"], cfg["similarity"]))
        finally:
            self.model.train()

    def diverged_metrics(self) -> dict[str, Any]:
        """RMSEs of +inf (worse than any real result) and a NaN validation loss."""
        inf = float("inf")
        return {METRIC: inf, protocol.test_metric(METRIC): inf, protocol.VAL_LOSS: float("nan"),
                **(self.refs or {})}

    # ---- checkpoints -------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        if self.optimizer is None:
            self.warm_start()
        return {"epoch": self.epoch, "hp": dict(self.hp), "ws_done": self.ws_done, "refs": self.refs,
                "config": dict(self.config),  # what trainables.jepa.export rebuilds the model from
                "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                **rng_state(self.generator, self.device)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.epoch, self.hp, self.ws_done, self.refs = state["epoch"], dict(state["hp"]), state["ws_done"], state["refs"]
        self.model.load_state_dict(state["model"])
        self._build_optimizer()
        self.optimizer.load_state_dict(state["optimizer"])
        set_rng_state(state, self.generator, self.device)

    def save(self, directory: str | os.PathLike) -> str:
        return save_state(directory, CHECKPOINT_FILE, self.state_dict())

    def load(self, directory: str | os.PathLike) -> None:
        self.load_state_dict(load_state(directory, CHECKPOINT_FILE))


def train_epochs(config: Mapping[str, Any], epochs: int, *, restore_from: str | os.PathLike | None = None,
                 save_to: str | os.PathLike | None = None, num_threads: int | None = None) -> list[dict[str, Any]]:
    """Up to ``epochs`` more epochs without Ray (fewer if the trial ends); returns the reports."""
    return run_epochs(JepaRun, config, epochs, restore_from=restore_from, save_to=save_to, num_threads=num_threads)


def train_jepa(config: dict) -> None:
    """Ray Tune function trainable: one report + checkpoint per epoch until max_t, divergence or collapse.

    Tuned metric :data:`METRIC` (mode ``min``). See :func:`trainables.scaffold.run_in_tune`.
    """
    run_in_tune(JepaRun, config)
