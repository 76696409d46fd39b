"""The SSL run object (BYOL, TW-BYOL, temporal SimCLR on frame folders) and its Tune trainable.

:class:`SSLRun` is this family's :class:`trainables.scaffold.Run`: plain Python, no Ray. It
validates a config (:mod:`~trainables.ssl.config`), loads the frames once per process onto the
device (:mod:`~trainables.ssl.frames`; the embedded behaviour video by default), builds
:class:`~trainables.ssl.models.SSLNet`, warm-starts (:mod:`~trainables.ssl.problem`), trains one
epoch, evaluates (:mod:`~trainables.ssl.metrics`) and saves / loads exact checkpoints (the EMA
target, the optimizer, the schedules' step and every random stream included). Restore, the
warm-start-once rule, reports, checkpoints, costs and the divergence / collapse endings are
:mod:`trainables.scaffold`'s: :func:`train_ssl` is its Tune trainable, :func:`train_epochs` its driver.

Training: ``torch.optim.SGD`` (momentum, Nesterov, coupled weight decay on the online weights) or, with
``optimizer="adam"``, ``torch.optim.Adam`` (β₁ = ``momentum``, coupled weight decay; seed 000's),
per-step cosine learning rate from ``lr`` to 0 over ``max_t`` epochs (no warm-up: the first step
uses the lr the warm-start differentiated), and for BYOL-type methods the EMA target update after
every step with momentum :func:`~trainables.ssl.losses.ema_momentum` (cosine-scheduled to 1 by
default). An epoch is ``steps_per_epoch`` steps (default: training frames // frames per step).

- ``byol``: view pairs at Δt ≤ ``max_dt`` (temporal BYOL, ρBYOL-style), weighted uniformly; ``max_dt=0``
  is plain BYOL (two augmentations of one frame);
- ``tw-byol``: the same pairs, per-pair loss weighted by w(Δt) (``weighting``, ``tau``, ``weight_norm``);
- ``simclr-temporal``: ``batch_size`` windows per step (seed 003's meaning), multi-positive InfoNCE.

Metrics every epoch on held-out clips (validation; ``test_`` twins on the test clips), frozen
encoder: :data:`METRIC` (kNN accuracy of the first label column, the tuned metric), ``val_probe_f1``,
``val_rare_recall``, ``val_spearman``, ``val_mrr``, ``val_rankme``, ``val_rankme_frac`` (RankMe / feature
dimension, in (0, 1]), ``val_rankme_proj``, the same kNN /
probe numbers of every further label column with the column's name appended
(``val_knn_acc_identity``), ``train_knn_acc``, ``protocol.VAL_LOSS`` (the reference SSL loss of the
warm-start's validation objective on one fixed held-out batch per split) and ``eval_share`` (evaluation wall
time / the epoch's train + evaluation wall time). A projection RankMe below ``collapse_rank``
reports ``protocol.COLLAPSED`` and ends the trial.

>>> from ohgw import protocol
>>> cfg = {"video_clips": 6, "video_frames": 40, "batch_size": 32, "max_t": 1, "bank_frames": 64, "eval_frames": 32}
>>> (r,) = train_epochs({**cfg, "cache_dir": _doctest_dir()}, epochs=1)
>>> r[protocol.ITERATION], r[protocol.DIVERGED], 0.0 <= r[METRIC] <= 1.0, r[protocol.hp_key("tau")]
(1, False, True, 10.0)
"""

from __future__ import annotations

import math
import os
import random
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ohgw import protocol
from ohgw.warmstart import WarmStartRecord, instruction, maybe_warm_start
from trainables.checks import resolve_device
from trainables.scaffold import TrainResult, make_trainable, run_epochs, set_num_threads
from trainables.state_io import load_state, rng_state, save_state, set_rng_state

from . import metrics as M
from .behaviour import ensure_video
from .config import CONTINUOUS, resolve_config
from .export import CHECKPOINT_FILE
from .frames import FrameIndex, frame_stats, load_frames
from .losses import byol_pair_loss, ema_momentum, ema_update, temporal_simclr_loss, tw_byol_loss
from .models import SSLNet, encoder_kind
from .problem import ADAM_BETA2, make_problem
from .views import apply_magnitude, augment, sample_pairs, to_float

METRIC = "val_knn_acc"  # tuned, mode max; its held-out twin is protocol.test_metric(METRIC)
CONV_BASE = 32  # the conv encoder's first-stage channels (per width)
WARM_START_SEED_OFFSET = 7919
REFERENCE_SEED = 104729  # the fixed validation-loss batches
EVAL_BATCH = 512
N_MIN_CLIP = 16  # at least this many consecutive frames per held-out clip in the evaluation


def cosine_lr(lr: float, step: int, total_steps: int) -> float:
    frac = min(step, total_steps) / max(1, total_steps)
    return lr * 0.5 * (1.0 + math.cos(math.pi * frac))


@dataclass
class Data:
    """The frames of one root on one device, with the split's frame ids and per-frame clip bounds."""

    index: FrameIndex
    store: Any
    mean: torch.Tensor
    std: torch.Tensor
    clip_start: np.ndarray  # per global frame id
    clip_end: np.ndarray
    ids: dict  # split → global frame ids

    def frames(self, ids) -> torch.Tensor:
        ids = torch.as_tensor(np.asarray(ids), dtype=torch.int64)
        return to_float(self.store.get(ids), self.mean, self.std)


_DATA: dict[tuple, Data] = {}


def load_data(cfg: Mapping[str, Any], device: torch.device) -> Data:
    """The config's frames on ``device``, loaded once per process (key: root, window, split seed, device)."""
    root = cfg["root_dir"] or ensure_video(cfg["cache_dir"], cfg["video_clips"], cfg["video_frames"],
                                           cfg["video_seed"])
    key = (os.path.abspath(root), cfg["window_size"], cfg["frame_step"], cfg["split_seed"], str(device),
           cfg["cache"])
    if key not in _DATA:
        index, store = load_frames(root, cfg["window_size"], cfg["frame_step"], cfg["split_seed"], device,
                                   cfg["cache"])
        ids = {s: index.frames_of(s) for s in ("train", "val", "test")}
        for s in ("train", "val"):
            if len(ids[s]) == 0:
                raise ValueError(f"root_dir {root!r}: the {s} split is empty ({len(index.clips)} usable clips; "
                                 "at least 3 are needed for train / val / test)")
        clip = index.clip_of_frame()
        mean, std = frame_stats(store, ids["train"])
        _DATA[key] = Data(index, store, mean, std, index.offsets[clip], index.offsets[clip + 1], ids)
    return _DATA[key]


def clear_cache() -> None:
    _DATA.clear()


def _doctest_dir() -> str:
    return os.path.join(tempfile.gettempdir(), "ohgw-ssl-doctest")


class SSLRun:
    """One SSL trial's training state (a :class:`trainables.scaffold.Run`); bad input raises ValueError here."""

    def __init__(self, config: Mapping[str, Any], *, num_threads: int | None = None) -> None:
        self.config = cfg = resolve_config(config)
        set_num_threads(num_threads)
        self.device = resolve_device(cfg["device"])
        self.method = cfg["method"]
        self.data = d = load_data(cfg, self.device)
        cols = d.index.label_columns
        if cfg["label"] is not None and cfg["label"] not in cols:
            raise ValueError(f"label {cfg['label']!r} is not a column of labels.csv (found {cols})")
        self.label = cfg["label"] or (cols[0] if cols else None)
        self.label_order = ([self.label] + [c for c in cols if c != self.label]) if self.label else []
        self.windows = d.index.windows("train", cfg["window_size"], cfg["frame_step"], cfg["window_stride"])
        self.n_windows = cfg["batch_size"]  # temporal SimCLR: windows per step (seed 003's batch size)
        if self.method == "simclr-temporal" and len(self.windows) < self.n_windows:
            raise ValueError(f"the train split has {len(self.windows)} windows, fewer than the "
                             f"{self.n_windows} one batch needs")
        if self.method != "simclr-temporal" and len(d.ids["train"]) < cfg["batch_size"]:
            raise ValueError(f"batch_size {cfg['batch_size']} is larger than the train split "
                             f"({len(d.ids['train'])} frames)")
        self.cuda = self.device.type == "cuda"
        seed = cfg[protocol.SEED_KEY]
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)
        c, h, _ = d.store.get(torch.zeros(1, dtype=torch.int64)).shape[1:]
        self.conv_base = CONV_BASE
        self.net = SSLNet(int(c), int(h), self.method, cfg["encoder"], cfg["width"], cfg["proj_hidden"],
                          cfg["proj_dim"], cfg["predictor"], cfg["activation"], self.conv_base).to(self.device)
        if cfg["channels_last"]:
            self.net = self.net.to(memory_format=torch.channels_last)
        self.bf16 = cfg["precision"] == "bf16" or (cfg["precision"] == "auto" and self.cuda)
        self.generator = torch.Generator().manual_seed(seed)
        self.hp = {k: cfg[k] for k in CONTINUOUS[self.method]}
        per_step = cfg["batch_size"] * (cfg["window_size"] if self.method == "simclr-temporal" else 1)
        self.steps_per_epoch = cfg["steps_per_epoch"] or max(1, len(d.ids["train"]) // per_step)
        self.total_steps = cfg["max_t"] * self.steps_per_epoch
        self.epoch = self.step = 0
        self.ws_done = False
        self.ws_record: WarmStartRecord | None = None
        self.optimizer: torch.optim.Optimizer | None = None
        self.train_wall = 0.0
        self._eval_sets = self._make_eval_sets()
        self._ref = {s: self._reference_batches(s) for s in ("val", "test") if len(d.ids[s])}

    # ---- config views ---------------------------------------------------------------------------
    @property
    def finished(self) -> bool:
        return self.epoch >= self.config["max_t"]

    def _cfg(self) -> dict:
        """The config with the current hp (x′ after a warm-start)."""
        return {**self.config, **self.hp}

    def _build_optimizer(self) -> None:
        mu, params = self.config["momentum"], self.net.online_parameters()
        if self.config["optimizer"] == "adam":  # the warm-start's lookahead unrolls the same (problem.EMAAdam)
            self.optimizer = torch.optim.Adam(params, lr=self.hp["lr"], betas=(mu, ADAM_BETA2), weight_decay=self.hp["wd"])
            return
        self.optimizer = torch.optim.SGD(params, lr=self.hp["lr"], momentum=mu, weight_decay=self.hp["wd"],
                                         nesterov=bool(self.config["nesterov"] and mu > 0))

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16)

    def _prep(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.config["channels_last"] else x

    # ---- batches --------------------------------------------------------------------------------
    def pair_batch(self, split: str, n: int, strength: float, gen: torch.Generator, anchors=None):
        """(cropped view 1, cropped view 2, |Δt| tensor, draws 1, draws 2) for ``n`` anchors of ``split``."""
        d, cfg = self.data, self.config
        if anchors is None:
            ids = d.ids[split]
            anchors = ids[torch.randint(0, len(ids), (n,), generator=gen).numpy()]
        partners, dt = sample_pairs(anchors, d.clip_start[anchors], d.clip_end[anchors], cfg["max_dt"],
                                    cfg["frame_step"], gen)
        v1, d1 = augment(d.frames(anchors), strength, cfg["flip"], gen)
        v2, d2 = augment(d.frames(partners), strength, cfg["flip"], gen)
        return v1, v2, torch.as_tensor(dt, dtype=torch.float32, device=self.device), d1, d2

    def window_batch(self, windows: np.ndarray, strength: float, gen: torch.Generator):
        """(cropped frames [B·T, C, H, W] window by window, draws, B) for windows [B, T]."""
        x, draws = augment(self.data.frames(windows.reshape(-1)), strength, self.config["flip"], gen)
        return x, draws, len(windows)

    def _split_windows(self, split: str) -> np.ndarray:
        c = self.config
        return self.data.index.windows(split, c["window_size"], c["frame_step"], c["window_stride"])

    def _reference_batches(self, split: str, n_batches: int = 1) -> list:
        """Fixed, fully augmented held-out batches at the reference strength (the validation objective)."""
        gen = torch.Generator().manual_seed(REFERENCE_SEED + (split == "test"))
        s, out = self.config["ref_aug_strength"], []
        for _ in range(n_batches):
            if self.method == "simclr-temporal":
                w = self._split_windows(split)
                if len(w) < 2:
                    return []
                pick = w[torch.randperm(len(w), generator=gen)[:self.n_windows].numpy()]
                x, draws, b = self.window_batch(pick, s, gen)
                out.append((apply_magnitude(x, s, draws), b))
            else:
                v1, v2, _, d1, d2 = self.pair_batch(split, self.config["batch_size"], s, gen)
                out.append((apply_magnitude(v1, s, d1), apply_magnitude(v2, s, d2)))
        return out

    def warm_start_source(self, batch_size: int, seed: int):
        """hyper-step → (train batch, val batch) for :func:`ohgw.warmstart.warm_start`, on its own stream."""
        gen = torch.Generator().manual_seed(int(seed) + WARM_START_SEED_OFFSET)
        made: list = []
        s_ref = self.config["ref_aug_strength"]

        def source(step: int):
            while len(made) <= step:
                s = self.hp["aug_strength"]
                if self.method == "simclr-temporal":
                    b = max(2, batch_size // self.config["window_size"])
                    tw = self.windows[torch.randperm(len(self.windows), generator=gen)[:b].numpy()]
                    vw = self._split_windows("val")
                    vw = vw[torch.randperm(len(vw), generator=gen)[:b].numpy()]
                    x, draws, nb = self.window_batch(vw, s_ref, gen)
                    made.append((self.window_batch(tw, s, gen), (apply_magnitude(x, s_ref, draws), nb)))
                else:
                    train = self.pair_batch("train", batch_size, s, gen)
                    v1, v2, _, d1, d2 = self.pair_batch("val", batch_size, s_ref, gen)
                    made.append((train, (apply_magnitude(v1, s_ref, d1), apply_magnitude(v2, s_ref, d2))))
            return made[step]

        return source

    # ---- life cycle -----------------------------------------------------------------------------
    def warm_start(self) -> WarmStartRecord | None:
        """Run the config's warm-start once (fp32) and build the optimizer with x′."""
        if self.ws_done:
            return self.ws_record
        found = instruction(self.config)
        if found is not None:
            settings, _ = found
            source = self.warm_start_source(settings.batch_size, self.config[protocol.SEED_KEY])
            problem = make_problem(self.net, self._cfg())
            new_config, self.ws_record = maybe_warm_start(self._cfg(), problem, source)
            self.hp = {k: float(new_config[k]) for k in CONTINUOUS[self.method]}
        self.ws_done = True
        self._build_optimizer()
        return self.ws_record

    def _epoch_order(self, n: int, per_step: int) -> np.ndarray:
        need = self.steps_per_epoch * per_step
        perms = [torch.randperm(n, generator=self.generator).numpy() for _ in range(math.ceil(need / n))]
        return np.concatenate(perms)[:need].reshape(self.steps_per_epoch, per_step)

    def train_step_loss(self, batch) -> torch.Tensor:
        """The training loss of one prepared batch at the current hp (the same function the warm-start steps)."""
        net, hp, cfg = self.net, self.hp, self.config
        s = hp["aug_strength"]
        if self.method == "simclr-temporal":
            x, draws, b = batch
            with self._autocast():
                z, _ = net(self._prep(apply_magnitude(x, s, draws)))
            return temporal_simclr_loss(z.float().reshape(b, -1, z.shape[-1]), hp["temperature"],
                                        cfg["infonce_form"])
        v1, v2, dt, d1, d2 = batch
        x1, x2 = self._prep(apply_magnitude(v1, s, d1)), self._prep(apply_magnitude(v2, s, d2))
        with self._autocast():
            _, p1 = net(x1)
            _, p2 = net(x2)
            with torch.no_grad():
                t1, _ = net(x1, "target")
                t2, _ = net(x2, "target")
        weighting = cfg["weighting"] if self.method == "tw-byol" else "uniform"
        return tw_byol_loss(p1.float(), t2.float(), p2.float(), t1.float(), dt, hp.get("tau"), weighting,
                            cfg["weight_norm"])

    def train_pass(self, max_batches: int | None = None) -> tuple[float, int]:
        """The training half of an epoch: (mean train loss, images seen); ``max_batches`` for benchmarks."""
        if self.optimizer is None:
            self.warm_start()
        t0 = time.perf_counter()
        self.net.train()
        cfg, d, opt = self.config, self.data, self.optimizer
        simclr = self.method == "simclr-temporal"
        order = (self._epoch_order(len(self.windows), self.n_windows) if simclr
                 else self._epoch_order(len(d.ids["train"]), cfg["batch_size"]))
        if max_batches is not None:
            order = order[:max_batches]
        targets, onlines = self.net.target_pairs() if self.net.byol else ([], [])
        loss_sum = torch.zeros((), dtype=torch.float64, device=self.device)
        seen = 0
        for rows in order:
            s = self.hp["aug_strength"]
            if simclr:
                batch = self.window_batch(self.windows[rows], s, self.generator)
                seen += len(rows) * cfg["window_size"]
            else:
                batch = self.pair_batch("train", len(rows), s, self.generator, anchors=d.ids["train"][rows])
                seen += 2 * len(rows)
            for group in opt.param_groups:
                group["lr"] = cosine_lr(self.hp["lr"], self.step, self.total_steps)
            loss = self.train_step_loss(batch)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if targets:
                m = ema_momentum(1 - self.hp["ema_gap"], self.step, self.total_steps, cfg["ema_schedule"])
                ema_update(targets, onlines, m)
            loss_sum += loss.detach().double()
            self.step += 1
        self.train_wall = time.perf_counter() - t0
        return float(loss_sum) / max(1, len(order)), seen

    def train_epoch(self) -> TrainResult:
        if self.finished:
            raise RuntimeError(f"the run is finished (epoch {self.epoch} of {self.config['max_t']})")
        loss, seen = self.train_pass()
        self.epoch += 1
        return TrainResult(loss, seen)

    # ---- evaluation -----------------------------------------------------------------------------
    def _make_eval_sets(self) -> dict:
        """Fixed frames: a training bank, training queries, and per held-out split its query clips."""
        d, cfg, idx = self.data, self.config, self.data.index
        train = d.ids["train"]
        bank = M.evenly(train, cfg["bank_frames"])
        rest = np.setdiff1d(train, bank)
        sets = {"bank": bank, "train": M.evenly(rest if len(rest) else train, max(2, cfg["eval_frames"] // 2))}
        for split in ("val", "test"):
            clips = idx.clip_ids(split)
            if not clips:
                continue
            per = max(N_MIN_CLIP, cfg["eval_frames"] // len(clips))
            runs = [np.arange(idx.offsets[i], min(idx.offsets[i + 1], idx.offsets[i] + per)) for i in clips]
            sets[split] = runs
        return sets

    @torch.no_grad()
    def _embed(self, ids: np.ndarray, proj: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        feats, projs = [], []
        for i in range(0, len(ids), EVAL_BATCH):
            with self._autocast():
                f = self.net.embed(self._prep(self.data.frames(ids[i:i + EVAL_BATCH])))
                if proj:
                    projs.append(self.net.projector(f).float())
            feats.append(f.float())
        return torch.cat(feats), (torch.cat(projs) if proj else None)

    def _labels(self, col: str, ids: np.ndarray) -> np.ndarray:
        return self.data.index.labels[col][ids]

    @torch.no_grad()
    def _reference_loss(self, split: str) -> float:
        batches = self._ref.get(split) or []
        if not batches:
            return float("nan")
        total = 0.0
        for batch in batches:
            with self._autocast():
                if self.method == "simclr-temporal":
                    x, b = batch
                    z, _ = self.net(self._prep(x))
                    total += float(temporal_simclr_loss(z.float().reshape(b, -1, z.shape[-1]),
                                                        self.config["ref_temperature"], self.config["infonce_form"]))
                else:
                    x1, x2 = batch
                    _, p1 = self.net(self._prep(x1))
                    _, p2 = self.net(self._prep(x2))
                    t1, _ = self.net(self._prep(x1), "target")
                    t2, _ = self.net(self._prep(x2), "target")
                    total += float(byol_pair_loss(p1.float(), t2.float(), p2.float(), t1.float()).mean())
        return total / len(batches)

    def evaluate_epoch(self) -> dict[str, Any]:
        t0 = time.perf_counter()
        self.net.eval()
        sets, cfg, index = self._eval_sets, self.config, self.data.index
        bank_z, _ = self._embed(sets["bank"])
        out: dict[str, Any] = {}
        rare = {c: M.rare_labels(index.labels[c][self.data.ids["train"]], len(index.classes[c]))
                for c in self.label_order}
        if self.label:
            tz, _ = self._embed(sets["train"])
            m = M.label_metrics(bank_z, self._labels(self.label, sets["bank"]), tz,
                                self._labels(self.label, sets["train"]), len(index.classes[self.label]),
                                rare[self.label], cfg["probe_lambda"], cfg["probe"])
            out["train_knn_acc"] = m["knn_acc"]
        collapsed = False
        for split in ("val", "test"):
            if split not in sets:
                continue
            runs = sets[split]
            ids = np.concatenate(runs)
            z, pz = self._embed(ids, proj=True)
            row: dict[str, float] = {}
            for j, col in enumerate(self.label_order):
                m = M.label_metrics(bank_z, self._labels(col, sets["bank"]), z, self._labels(col, ids),
                                    len(index.classes[col]), rare[col], cfg["probe_lambda"], cfg["probe"])
                suffix = "" if j == 0 else f"_{col}"
                row.update({f"knn_acc{suffix}": m["knn_acc"], f"probe_f1{suffix}": m["probe_f1"]})
                if j == 0:
                    row["rare_recall"] = m["rare_recall"]
            bounds = np.cumsum([0] + [len(r) for r in runs])
            row.update(M.temporal_metrics([z[a:b] for a, b in zip(bounds[:-1], bounds[1:])]))
            row["rankme"], row["rankme_proj"] = M.rankme(z), M.rankme(pz)
            row["rankme_frac"] = row["rankme"] / z.shape[1]  # in (0, 1]: the label-free tuned metric
            row["loss"] = self._reference_loss(split)
            if split == "val":
                collapsed = row["rankme_proj"] < cfg["collapse_rank"]
                out.update({("val_" + k if k != "loss" else protocol.VAL_LOSS): v for k, v in row.items()})
            else:
                out.update({protocol.test_metric("val_" + k if k != "loss" else protocol.VAL_LOSS): v
                            for k, v in row.items()})
        # without labels the label-based metrics are absent (null in tables), not NaN: the studies then tune
        # trainables.ssl.LABEL_FREE_METRIC (val_rankme_frac)
        out[protocol.COLLAPSED] = collapsed
        eval_wall = time.perf_counter() - t0
        out["eval_share"] = eval_wall / (eval_wall + self.train_wall) if self.train_wall > 0 else float("nan")
        if self.net.byol:
            out["ema_momentum"] = ema_momentum(1 - self.hp["ema_gap"], self.step, self.total_steps,
                                               cfg["ema_schedule"])
        out["learning_rate"] = cosine_lr(self.hp["lr"], self.step, self.total_steps)
        out["decay_rate"] = out["learning_rate"] / self.hp["lr"]  # seed 003's: learning_rate / initial_lr
        return out

    def diverged_metrics(self) -> dict[str, Any]:
        """Accuracies, F1 and MRR 0.0 (worse than chance: each may be the tuned metric), NaN losses, Spearman ρ
        and ranks; without labels no label-based metric at all."""
        out: dict[str, Any] = {"train_knn_acc": 0.0} if self.label else {}
        for prefix in ("val_", protocol.test_metric("val_")):
            if self.label:
                out.update({prefix + k: 0.0 for k in ("knn_acc", "probe_f1", "rare_recall")})
            out[prefix + "mrr"] = out[prefix + "rankme_frac"] = 0.0
            out.update({prefix + k: float("nan") for k in ("spearman", "rankme", "rankme_proj")})
        out[protocol.VAL_LOSS] = out[protocol.test_metric(protocol.VAL_LOSS)] = float("nan")
        return out

    # ---- checkpoints ----------------------------------------------------------------------------
    def encoder_spec(self) -> dict[str, Any]:
        """What :func:`trainables.ssl.export.load_encoder` needs to rebuild this run's encoder, and its history."""
        c, h, w = (int(v) for v in self.data.store.get(torch.zeros(1, dtype=torch.int64)).shape[1:])
        cfg = self.config
        return {"architecture": {"kind": encoder_kind(cfg["encoder"], h), "in_channels": c, "width": cfg["width"],
                                 "activation": cfg["activation"], "conv_base": self.conv_base,
                                 "out_dim": int(self.net.encoder.out_dim)},
                "input": {"channels": c, "height": h, "width": w, "dtype": "uint8 (0-255) or float in [0, 1]"},
                "normalisation": {"scale": 1 / 255, "mean": self.data.mean.tolist(), "std": self.data.std.tolist(),
                                  "formula": "(x / 255 - mean) / std, per channel; mean and std of the train split"},
                "config": {k: (v if v is None or isinstance(v, (bool, int, float, str)) else str(v))
                           for k, v in cfg.items()},
                "hp": dict(self.hp), "epoch": self.epoch}

    def state_dict(self) -> dict[str, Any]:
        if self.optimizer is None:
            self.warm_start()
        state = {"epoch": self.epoch, "step": self.step, "hp": dict(self.hp), "ws_done": self.ws_done,
                 "net": self.net.state_dict(), "optimizer": self.optimizer.state_dict(),
                 "encoder_spec": self.encoder_spec(),  # read by trainables.ssl.export, never by load_state_dict
                 **rng_state(self.generator, self.device)}
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.epoch, self.step, self.hp, self.ws_done = state["epoch"], state["step"], dict(state["hp"]), state["ws_done"]
        self.net.load_state_dict(state["net"])
        self._build_optimizer()
        self.optimizer.load_state_dict(state["optimizer"])
        set_rng_state(state, self.generator, self.device)

    def save(self, directory: str | os.PathLike) -> str:
        return save_state(directory, CHECKPOINT_FILE, self.state_dict())

    def load(self, directory: str | os.PathLike) -> None:
        self.load_state_dict(load_state(directory, CHECKPOINT_FILE))


def train_epochs(config: Mapping[str, Any], epochs: int, *, restore_from: str | os.PathLike | None = None,
                 save_to: str | os.PathLike | None = None, num_threads: int | None = None) -> list[dict[str, Any]]:
    """Up to ``epochs`` more epochs without Ray (:func:`trainables.scaffold.run_epochs`)."""
    return run_epochs(SSLRun, config, epochs, restore_from=restore_from, save_to=save_to, num_threads=num_threads)


train_ssl = make_trainable(SSLRun, "train_ssl")
train_ssl.__doc__ = """Ray Tune function trainable of :class:`SSLRun` (metric :data:`METRIC`, mode max)."""
