"""The SSL family's configuration: defaults, validation, the EMA momentum's two spellings.

:func:`resolve_config` checks everything that can be checked without reading frames; a
ValueError names the first bad key and its rule.

EMA momentum m: users write ``ema_momentum`` (in [0, 1)); a search space tunes ``ema_gap`` = 1 − m
on a log10 scale (log10(1 − m), the natural scale of BYOL's 0.99 … 0.999). Give one of them; the
other is derived (both given and inconsistent is an error). Time constant ``tau`` and the
distances ``max_dt`` are in frames; the behaviour video runs at a nominal 10 frames/s
(:data:`trainables.ssl.behaviour.FPS`). ``batch_size`` counts each method's sample: view pairs for
BYOL / TW-BYOL (default 64), windows for temporal SimCLR (default 16; seed 003's meaning: 16 windows
of ``window_size`` frames).

>>> cfg = resolve_config({"method": "tw-byol", "ema_momentum": 0.996})
>>> round(cfg["ema_gap"], 6), cfg["weighting"], cfg["weight_norm"]
(0.004, 'exp', 'mean')
>>> resolve_config({"tau": 0})
Traceback (most recent call last):
ValueError: tau must be > 0, got 0.0
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ohgw import protocol
from trainables import checks

from .frames import check_window
from .losses import EMA_SCHEDULES, WEIGHT_NORMS, WEIGHTINGS
from .models import ACTIVATIONS, ENCODERS

METHODS = ("byol", "tw-byol", "simclr-temporal")
OPTIMIZERS = ("sgd", "adam")
PROBES = ("ridge", "logistic")
DEFAULT_BATCH = {"byol": 64, "tw-byol": 64, "simclr-temporal": 16}  # view pairs (BYOL), windows (SimCLR)
PRECISIONS = ("auto", "fp32", "bf16")
CACHES = ("auto", "device", "stream")
DEFAULT_EMA = 0.99

DEFAULT_CONFIG: dict[str, Any] = {
    "method": "tw-byol",  # byol (temporal BYOL; max_dt 0: plain BYOL) | tw-byol | simclr-temporal
    "root_dir": None,  # a folder of clip folders; None: the embedded behaviour video
    "cache_dir": None,  # where the behaviour video is written (None: $OHGW_CACHE_DIR or ~/.cache/ohgw-tune/ssl)
    "video_clips": 24, "video_frames": 160, "video_seed": 0,  # the behaviour video's size and seed
    "cache": "auto",  # frames: "auto" (device cache if it fits, else stream) | "device" | "stream"
    "split_seed": 0,  # seeds the split by clip (fixed across trials and methods)
    "window_size": 4,  # frames per window (temporal SimCLR's T; every kept clip holds at least one window)
    "frame_step": 2,  # frames between a window's frames (also the Δt grid of view pairs)
    "window_stride": 1,  # frames between window starts
    "max_dt": 20,  # BYOL / TW-BYOL: largest frame distance of a view pair (0: plain BYOL)
    "weighting": "exp",  # TW-BYOL: exp | uniform | binary | linear | inverse_square
    "tau": 10.0,  # TW-BYOL time constant, frames (> 0)
    "weight_norm": "mean",  # none: (w·l).mean() as published | mean: Σwl/Σw (τ not confounded with lr)
    "temperature": 0.1,  # temporal SimCLR's InfoNCE temperature (> 0)
    "infonce_form": "out",  # SupCon L_out ("out") or L_in ("in")
    "ref_temperature": 0.1,  # the validation objective's fixed temperature (never tuned)
    "ref_aug_strength": 0.5,  # the validation objective's fixed augmentation strength
    "optimizer": "sgd",  # sgd (momentum, Nesterov) | adam (torch.optim.Adam, coupled wd: seed 000's)
    "lr": 0.1,  # peak learning rate (cosine schedule to 0 over max_t epochs, no warm-up)
    "wd": 1e-5,  # coupled L2 weight decay on the online weights
    "momentum": 0.9, "nesterov": True,  # SGD momentum (Adam: β₁), Nesterov (SGD only)
    "ema_momentum": None, "ema_gap": None,  # target momentum m, or 1 − m (default m = 0.99)
    "ema_schedule": "cosine",  # constant | cosine (m → 1 over the run, as solo-learn)
    "aug_strength": 0.5,  # augmentation strength s in [0, 1]: crop area, translation, brightness, contrast
    "flip": False,  # horizontal flips (off: the behaviour video's left/right actions are not mirror-symmetric)
    "predictor": True,  # BYOL's predictor (False + ema 0: the collapsing configuration)
    "encoder": "auto", "width": 1, "activation": "relu",  # auto: conv for ≤ 32 px, ResNet-20 trunk above
    "proj_hidden": 256, "proj_dim": 64,
    "batch_size": None,  # per step: BYOL view pairs (None: 64); temporal SimCLR windows, seed 003's (None: 16)
    "steps_per_epoch": None,  # None: training frames // frames per step
    "max_t": 10,  # epochs the schedules span (= the trial's maximum length)
    "label": None,  # the label column of the headline metrics (None: the first in labels.csv)
    "bank_frames": 512, "eval_frames": 256,  # kNN / probe bank (train split) and queries per split
    "probe": "ridge",  # the linear probe: ridge (closed form) | logistic (SGD, 20 epochs, lr 0.1: seed 000's)
    "probe_lambda": 1.0,  # ridge probe penalty on standardised features
    "collapse_rank": 1.1,  # RankMe of the projections below this: collapsed (see trainables.ssl.metrics)
    protocol.SEED_KEY: 0,
    "device": "auto", "precision": "auto", "channels_last": False,
}  # fmt: skip

# The seeds' definitions, wherever this project can express them (docs/seeds.md lists the rest); on the
# behaviour video's nominal 10 frames/s, seed 000's frame counts at 15 frames/s are scaled by 10/15.
SEED_PRESETS: dict[str, dict[str, Any]] = {
    "seed000": {  # TW-BYOL (seed 000): Adam lr 3e-4, wd 1e-6; EMA 0.996, constant; exp weights τ = 30 frames
        "method": "tw-byol", "optimizer": "adam", "lr": 3e-4, "wd": 1e-6, "momentum": 0.9,  # Adam's β₁
        "ema_momentum": 0.996, "ema_schedule": "constant", "weighting": "exp", "weight_norm": "none",
        "tau": 20.0,  # 30 frames at 15 fps = 2 s
        "max_dt": 19,  # pairs within a 30-frame clip at 15 fps: Δt ≤ 29 frames ≈ 1.9 s
        "proj_hidden": 4096, "proj_dim": 256, "batch_size": 64, "max_t": 50, "probe": "logistic",
    },
    "seed003": {  # temporal multi-positive SimCLR (seed 003): 16 windows of 5 frames, step 2, stride 10, 25 epochs
        "method": "simclr-temporal", "window_size": 5, "frame_step": 2, "window_stride": 10, "batch_size": 16,
        "infonce_form": "out", "max_t": 25,
    },
}  # fmt: skip

# the continuous hyper-parameters a trial trains with (a warm-start may move them), per method
CONTINUOUS = {
    "byol": ("lr", "wd", "ema_gap", "aug_strength"),
    "tw-byol": ("lr", "wd", "ema_gap", "tau", "aug_strength"),
    "simclr-temporal": ("lr", "wd", "temperature", "aug_strength"),
}


def resolve_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """DEFAULT_CONFIG updated with ``config``, validated; ValueError names the first bad key."""
    unknown = sorted(k for k in config if k not in DEFAULT_CONFIG and not protocol.is_protocol_key(k))
    if unknown:
        raise ValueError(f"unknown config key(s) {unknown}")
    cfg = {**DEFAULT_CONFIG, **dict(config)}
    for name, options in (("method", METHODS), ("optimizer", OPTIMIZERS), ("weighting", WEIGHTINGS),
                          ("weight_norm", WEIGHT_NORMS), ("ema_schedule", EMA_SCHEDULES),
                          ("infonce_form", ("out", "in")), ("encoder", ENCODERS), ("activation", ACTIVATIONS),
                          ("precision", PRECISIONS), ("cache", CACHES), ("probe", PROBES)):
        checks.choice(cfg, name, options)
    for name in ("lr", "wd", "momentum", "tau", "temperature", "ref_temperature", "aug_strength",
                 "ref_aug_strength", "probe_lambda", "collapse_rank"):
        cfg[name] = checks.number(cfg, name)
    for name in ("lr", "tau", "temperature", "ref_temperature"):
        if cfg[name] <= 0:
            raise ValueError(f"{name} must be > 0, got {cfg[name]}")
    for name in ("wd", "aug_strength", "ref_aug_strength", "probe_lambda"):
        if cfg[name] < 0:
            raise ValueError(f"{name} must be >= 0, got {cfg[name]}")
    if not 0 <= cfg["momentum"] < 1:
        raise ValueError(f"momentum must be in [0, 1), got {cfg['momentum']}")
    m, gap = cfg["ema_momentum"], cfg["ema_gap"]
    if gap is not None:
        gap = checks.number(cfg, "ema_gap")
        if not 0 < gap <= 1:
            raise ValueError(f"ema_gap (1 − EMA momentum) must be in (0, 1], got {gap}")
        if m is not None and abs(checks.number(cfg, "ema_momentum") - (1 - gap)) > 1e-12:
            raise ValueError(f"ema_momentum {m} and ema_gap {gap} disagree: give one of them")
    else:
        m = DEFAULT_EMA if m is None else checks.number(cfg, "ema_momentum")
        if not 0 <= m < 1:
            raise ValueError(f"ema_momentum must be in [0, 1), got {m}")
        gap = 1 - m
    cfg["ema_gap"], cfg["ema_momentum"] = float(gap), float(1 - gap)
    check_window(cfg["window_size"], cfg["frame_step"], cfg["window_stride"])
    if cfg["batch_size"] is None:
        cfg["batch_size"] = DEFAULT_BATCH[cfg["method"]]
    for name, low in (("max_dt", 0), ("batch_size", 2), ("max_t", 1), ("width", 1), ("proj_hidden", 1),
                      ("proj_dim", 1), ("bank_frames", 2), ("eval_frames", 2), ("video_clips", 1),
                      ("video_frames", 2), ("video_seed", 0), (protocol.SEED_KEY, 0), ("split_seed", 0)):
        cfg[name] = checks.integer(cfg, name, low)
    if cfg["steps_per_epoch"] is not None:
        cfg["steps_per_epoch"] = checks.integer(cfg, "steps_per_epoch", 1)
    for name in ("nesterov", "flip", "predictor", "channels_last"):
        if not isinstance(cfg[name], (bool, np.bool_)):
            raise ValueError(f"{name} must be True or False, got {cfg[name]!r}")
        cfg[name] = bool(cfg[name])
    dev = cfg["device"]
    if not isinstance(dev, str) or not (dev in ("auto", "cpu") or dev.startswith("cuda")):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda[:N]', got {dev!r}")
    if cfg["root_dir"] is not None and not isinstance(cfg["root_dir"], str):
        raise ValueError(f"root_dir must be a path string or None, got {cfg['root_dir']!r}")
    return cfg
