"""The JEPA family's configuration: one dict of defaults per model (with units), validation, YAML overrides.

:data:`DEFAULTS` maps each ``model_type`` (``VICReg``, ``SimCLR``, ``RSSM``) to its complete
defaults: :data:`COMMON` plus the model's own keys. :func:`resolve_config` fills a config from the
defaults of its ``model_type`` and checks every key: a key that the model does not know is an
error naming the key it most likely means (:func:`trainables.config_keys.suggestion`: an alias table,
``learning_rate`` → ``lr``, then the closest spelling), so a typo never silently trains with a default.
Protocol keys (the OHGW instruction, the trial index, recorded x / g) pass through.

:func:`load_overrides` reads ``--configs a.yaml b.yaml`` (later files win) and ``--values k=v``
(values parsed as YAML scalars: ``0.5``, ``false``, ``VICReg``); a YAML error names the file and line.

>>> cfg = resolve_config({"model_type": "SimCLR"})
>>> cfg["temperature"], cfg["embedding_dim"], "var_coeff" in cfg
(0.1, 512, False)
>>> resolve_config({"var_cof": 1.0})
Traceback (most recent call last):
ValueError: unknown config key 'var_cof' for model_type VICReg; did you mean 'var_coeff'?
>>> resolve_config({"learning_rate": 1e-3})
Traceback (most recent call last):
ValueError: unknown config key 'learning_rate' for model_type VICReg; did you mean 'lr'?
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from ohgw import protocol
from trainables import checks
from trainables.config_keys import suggestion

from .world import WORLD_TYPES, WorldSpec

MODEL_TYPES = ("VICReg", "SimCLR", "RSSM")
PRECISIONS = ("auto", "fp32", "bf16")
OPTIMIZERS = ("adamw", "sgd")
PREDICTORS = ("mlp", "gru")
MAX_HORIZON = 16  # the world's 17 frames give 16 predictions

COMMON: dict[str, Any] = {
    "model_type": "VICReg",  # "VICReg" | "SimCLR" | "RSSM"
    # -- the world (trainables.jepa.world) --
    "dataset_type": "Single",  # "Single" (one dot) | "Multiple" (three dots; dot 0 follows the actions)
    "dataset_noise": 0.0,  # changing noise: coefficient × the dot's peak, a fresh overlay per frame (>= 0)
    "dataset_static_noise": 0.0,  # static noise: coefficient × the dot's peak, one overlay per sequence (>= 0)
    "dataset_structured_noise": False,  # overlays from the seeded texture bank instead of uniform noise
    "dataset_size": 1024,  # training sequences (an epoch), fixed by data_seed
    "probe_size": 128,  # held-out sequences the ridge probe is fitted on (also the warm-start's val batches)
    "val_size": 64,  # held-out sequences of the tuned metric
    "test_size": 64,  # held-out sequences of its test_ twin
    "data_seed": 0,  # seeds every set of the world (fixed across trials and methods)
    # -- optimisation --
    "optimizer": "adamw",  # "adamw" (decoupled wd, betas 0.9/0.999) | "sgd" (momentum, coupled wd)
    "lr": 1e-3,  # learning rate per step, constant
    "wd": 1e-5,  # weight decay (decoupled for adamw, L2 for sgd)
    "momentum": 0.9,  # sgd momentum (adamw: unused)
    "batch_size": 64,  # sequences per step
    "max_t": 5,  # epochs (= the trial's maximum length)
    "grad_clip": 0.0,  # global grad-norm clip (0: none)
    # -- models --
    "embedding_dim": 512,  # encoder output (MeNet5 linear), features
    "width": 1,  # MeNet5 channel multiplier (16/32 channels at 1)
    # -- evaluation --
    "probe_ridge": "cv",  # probe λ relative to the features' scale: "cv" (chosen by 2-fold CV) or a number >= 0
    "collapse_rank": 2.0,  # RankMe below this on the val embeddings ends the run as collapsed
    "collapse_std": 0.05,  # VICReg: mean per-dim std of the val embeddings below this also ends it (init: ~0.2)
    "eval_rollout": True,  # also probe the open-loop rollout (RMSE vs horizon)
    protocol.SEED_KEY: 0,  # model init, batch order, teacher-forcing and reparameterisation draws
    "device": "auto",  # "auto" (CUDA if visible) | "cpu" | "cuda[:N]"
    "precision": "auto",  # bf16 autocast of the conv nets: "auto" (bf16 on CUDA, fp32 on CPU) | "fp32" | "bf16"
    "output_path": None,  # train.py only: the folder the models are saved in (seed 004's meaning; None: not saved)
    "metrics_path": None,  # train.py only: the per-epoch Parquet file (None: <output_path>/metrics.parquet or
    #                        jepa_<model>.parquet); the trainable ignores both
}
_JEPA: dict[str, Any] = {
    "predictor": "gru",  # "gru" | "mlp" (the MLP's 16-step rollout compounds: it blew up at lr 1e-2 in our runs)
    "predictor_hidden": 512,  # MLP predictor hidden units
    "pred_horizon": 16,  # steps rolled out before restarting from the encoder (1 … 16)
    "teacher_forcing": 0.0,  # probability, per step, of feeding the true z_t instead of ẑ_t (0 … 1)
}
DEFAULTS: dict[str, dict[str, Any]] = {
    "VICReg": {**COMMON, **_JEPA, "model_type": "VICReg",
               "var_coeff": 1.0,  # weight of the variance hinge (prediction MSE has weight 1)
               "cov_coeff": 0.04,  # weight of the covariance term (VICReg's 25/25/1 ratio is 1/1/0.04)
               "vicreg_branches": "both"},  # var/cov on "both" (encoder states and predictions) | "encoder" (seed)
    "SimCLR": {**COMMON, **_JEPA, "model_type": "SimCLR",
               "similarity": "cosine",  # InfoNCE logits: "cosine" similarities | "dot" raw dot products (seed)
               "temperature": 0.1,  # InfoNCE temperature
               "ref_temperature": 0.1},  # fixed temperature of the validation InfoNCE (never tuned)
    "RSSM": {**COMMON, "model_type": "RSSM",
             "kl_scale": 1.0,  # β on the KL term
             "free_nats": 1.0,  # KL below this (nats per frame) is not penalised
             "det_dim": 200, "stoch_dim": 30,  # deterministic (GRU) and stochastic state sizes
             "rssm_hidden": 200},  # prior / posterior MLP width
}  # fmt: skip
# the continuous hyper-parameters a run trains with (a warm-start may move them), per model
CONTINUOUS: dict[str, tuple[str, ...]] = {
    "VICReg": ("lr", "wd", "var_coeff", "cov_coeff"),
    "SimCLR": ("lr", "wd", "temperature"),
    "RSSM": ("lr", "wd", "kl_scale"),
}
VICREG_BRANCHES = ("both", "encoder")
SIMILARITIES = ("cosine", "dot")
# every key's one line of --help: meaning [units or choices] (tests check that each key has one)
HELP: dict[str, str] = {
    "model_type": f"which model [{' | '.join(MODEL_TYPES)}]",
    "dataset_type": f"one dot or three (dot 0 follows the actions) [{' | '.join(WORLD_TYPES)}]",
    "dataset_noise": "changing noise: a fresh overlay per frame [× the dot's peak, >= 0]",
    "dataset_static_noise": "static noise: one overlay per sequence [× the dot's peak, >= 0]",
    "dataset_structured_noise": "overlays from the seeded texture bank instead of uniform noise [true | false]",
    "dataset_size": "training sequences of 17 frames, one epoch [sequences]",
    "probe_size": "held-out sequences the ridge probe is fitted on (also the warm-start's val batches) [sequences]",
    "val_size": "held-out sequences of the tuned metric val_rmse [sequences]",
    "test_size": "held-out sequences of its twin test_rmse [sequences]",
    "data_seed": "seed of every set of the world, fixed across trials and methods [integer >= 0]",
    "optimizer": "adamw: decoupled wd, betas (momentum, 0.999); sgd: momentum, coupled wd [adamw | sgd]",
    "lr": "learning rate, constant [per step, > 0]",
    "wd": "weight decay, decoupled (adamw) or L2 (sgd) [>= 0]",
    "momentum": "sgd momentum, or adamw's beta1 [0 … 1)",
    "batch_size": "sequences per step [sequences]",
    "max_t": "epochs of the run [epochs >= 1]",
    "grad_clip": "global gradient-norm clip, 0 for none [L2 norm, >= 0]",
    "embedding_dim": "MeNet5 encoder output size [features]",
    "width": "MeNet5 channel multiplier (16/32 channels at 1) [integer >= 1]",
    "probe_ridge": "ridge λ of the dot-position probe, relative to the features' scale [cv (2-fold) | number >= 0]",
    "collapse_rank": "RankMe of the val embeddings below this ends the run as collapsed [effective rank]",
    "collapse_std": "VICReg: mean per-dimension std of the val embeddings below this also ends it [embedding units]",
    "eval_rollout": "also probe the open-loop rollout, RMSE vs horizon [true | false]",
    "seed": "model init, batch order, teacher-forcing and reparameterisation draws [integer >= 0]",
    "device": "where it trains [auto (CUDA if visible) | cpu | cuda[:N]]",
    "deterministic": "deterministic kernels (CUDA) [true | false]",
    "precision": "bf16 autocast of the conv nets (encoder; RSSM decoder); predictors, losses and the probe stay "
                 "fp32 [auto (bf16 on CUDA) | fp32 | bf16]",
    "output_path": "train.py: the folder the encoders are saved in, best/ and last/ (seed 004) [path; none: not saved]",
    "metrics_path": "train.py: the per-epoch Parquet file [path; none: <output_path>/metrics.parquet, "
                    "else jepa_<model>.parquet]",
    "predictor": f"JEPA predictor [{' | '.join(PREDICTORS)}]",
    "predictor_hidden": "MLP predictor hidden units [units]",
    "pred_horizon": f"steps rolled out before restarting from the encoder [1 … {MAX_HORIZON}]",
    "teacher_forcing": "probability per step of feeding the true z_t instead of the prediction [0 … 1]",
    "var_coeff": "VICReg: weight of the variance hinge; the prediction MSE has weight 1 [>= 0]",
    "cov_coeff": "VICReg: weight of the covariance term [>= 0]",
    "vicreg_branches": f"VICReg: variance/covariance on encoder states and predictions, or encoder states only "
                       f"(seed 004) [{' | '.join(VICREG_BRANCHES)}]",
    "similarity": f"SimCLR: InfoNCE logits from cosine similarities or raw dot products (seed 004) "
                  f"[{' | '.join(SIMILARITIES)}]",
    "temperature": "SimCLR: InfoNCE temperature [> 0]",
    "ref_temperature": "SimCLR: fixed temperature of the validation InfoNCE, never tuned [> 0]",
    "kl_scale": "RSSM: β on the KL term [>= 0]",
    "free_nats": "RSSM: KL below this is not penalised [nats per frame, >= 0]",
    "det_dim": "RSSM: deterministic (GRU) state size [units]",
    "stoch_dim": "RSSM: stochastic state size [units]",
    "rssm_hidden": "RSSM: prior / posterior MLP width [units]",
}
# seed 004's definitions where this project can express them (``--preset seed``; docs/seeds.md lists the rest)
SEED_PRESET: dict[str, Any] = {"batch_size": 32, "embedding_dim": 512, "dataset_type": "Single"}
SEED_PRESET_BY_MODEL: dict[str, dict[str, Any]] = {"VICReg": {"vicreg_branches": "encoder"},
                                                   "SimCLR": {"similarity": "dot"}, "RSSM": {}}


def seed_preset(model_type: str) -> dict[str, Any]:
    """Seed 004's settings for ``model_type`` (overrides of the defaults; later --configs / --values win)."""
    if model_type not in MODEL_TYPES:
        raise ValueError(f"model_type must be one of {MODEL_TYPES}, got {model_type!r}")
    return {**SEED_PRESET, **SEED_PRESET_BY_MODEL[model_type]}


LOSS_HYPERPARAMETERS = {"VICReg": ("var_coeff", "cov_coeff"), "SimCLR": ("temperature",), "RSSM": ("kl_scale",)}
ALL_KEYS = sorted({k for d in DEFAULTS.values() for k in d})


def resolve_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """The defaults of ``config["model_type"]`` updated with ``config``, validated (ValueError names the key)."""
    model = config.get("model_type", COMMON["model_type"])
    if model not in MODEL_TYPES:
        raise ValueError(f"model_type must be one of {MODEL_TYPES}, got {model!r}")
    defaults = DEFAULTS[model]
    for key in config:
        if key not in defaults and not protocol.is_protocol_key(key):
            raise ValueError(f"unknown config key {key!r} for model_type {model}{suggestion(key, defaults)}")
    cfg = {**defaults, **dict(config)}
    checks.choice(cfg, "dataset_type", WORLD_TYPES)
    checks.choice(cfg, "optimizer", OPTIMIZERS)
    checks.choice(cfg, "precision", PRECISIONS)
    if cfg["probe_ridge"] != "cv":
        cfg["probe_ridge"] = checks.number(cfg, "probe_ridge", 0.0)
    for name in ("dataset_noise", "dataset_static_noise", "wd", "grad_clip", "collapse_rank", "collapse_std"):
        cfg[name] = checks.number(cfg, name, 0.0)
    cfg["lr"] = checks.number(cfg, "lr", 0.0, strict=True)
    cfg["momentum"] = checks.number(cfg, "momentum", 0.0)
    if cfg["momentum"] >= 1:
        raise ValueError(f"momentum must be in [0, 1), got {cfg['momentum']}")
    for name in ("dataset_structured_noise", "eval_rollout"):
        if not isinstance(cfg[name], (bool, np.bool_)):
            raise ValueError(f"{name} must be true or false, got {cfg[name]!r}")
        cfg[name] = bool(cfg[name])
    for name, low in (("dataset_size", 2), ("probe_size", 2), ("val_size", 2), ("test_size", 2), ("data_seed", 0),
                      ("batch_size", 2), ("max_t", 1), ("embedding_dim", 1), ("width", 1), (protocol.SEED_KEY, 0)):
        cfg[name] = checks.integer(cfg, name, low)
    if cfg["batch_size"] > cfg["dataset_size"]:
        raise ValueError(f"batch_size {cfg['batch_size']} is larger than dataset_size {cfg['dataset_size']}")
    if model in ("VICReg", "SimCLR"):
        checks.choice(cfg, "predictor", PREDICTORS)
        cfg["pred_horizon"] = checks.integer(cfg, "pred_horizon", 1, MAX_HORIZON)
        cfg["predictor_hidden"] = checks.integer(cfg, "predictor_hidden", 1)
        cfg["teacher_forcing"] = checks.number(cfg, "teacher_forcing", 0.0)
        if cfg["teacher_forcing"] > 1:
            raise ValueError(f"teacher_forcing must be in [0, 1], got {cfg['teacher_forcing']}")
    if model == "VICReg":
        cfg["var_coeff"], cfg["cov_coeff"] = checks.number(cfg, "var_coeff", 0.0), checks.number(cfg, "cov_coeff", 0.0)
        checks.choice(cfg, "vicreg_branches", VICREG_BRANCHES)
    if model == "SimCLR":
        checks.choice(cfg, "similarity", SIMILARITIES)
        cfg["temperature"] = checks.number(cfg, "temperature", 0.0, strict=True)
        cfg["ref_temperature"] = checks.number(cfg, "ref_temperature", 0.0, strict=True)
    if model == "RSSM":
        cfg["kl_scale"], cfg["free_nats"] = checks.number(cfg, "kl_scale", 0.0), checks.number(cfg, "free_nats", 0.0)
        for name in ("det_dim", "stoch_dim", "rssm_hidden"):
            cfg[name] = checks.integer(cfg, name, 1)
    dev = cfg["device"]
    if not isinstance(dev, str) or not (dev in ("auto", "cpu") or dev.startswith("cuda")):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda[:N]', got {dev!r}")
    for name in ("output_path", "metrics_path"):
        if cfg[name] is not None and not isinstance(cfg[name], (str, os.PathLike)):
            raise ValueError(f"{name} must be a path, got {cfg[name]!r}")
    if cfg["output_path"] is not None and os.fspath(cfg["output_path"]).endswith(".parquet"):
        raise ValueError(f"output_path is the folder the models are saved in (seed 004), got "
                         f"{os.fspath(cfg['output_path'])!r}: give the metrics file as metrics_path")
    return cfg


def world_spec(cfg: Mapping[str, Any]) -> WorldSpec:
    """The :class:`~trainables.jepa.world.WorldSpec` of a resolved config."""
    return WorldSpec(kind=cfg["dataset_type"], noise=float(cfg["dataset_noise"]),
                     static_noise=float(cfg["dataset_static_noise"]), structured_noise=cfg["dataset_structured_noise"])


# ---- YAML files and key=value overrides ---------------------------------------------------------------
def _scalar(value: Any) -> Any:
    """YAML 1.1 reads ``3e-3`` (no dot) as a string: such strings become the number they spell."""
    if isinstance(value, str):
        try:
            return float(value) if value.strip().lower() not in ("nan", "inf", "-inf", "+inf", "infinity") else value
        except ValueError:
            return value
    return value


def load_yaml(path: str | os.PathLike) -> dict[str, Any]:
    """One YAML mapping; ValueError naming the file (and line) if it is missing, does not parse or is no mapping."""
    import yaml

    path = os.fspath(path)
    try:
        with open(path) as f:
            data = yaml.safe_load(f)
    except OSError as e:
        raise ValueError(f"config file {path!r} cannot be read: {e.strerror}") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else path
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ValueError(f"config file {where}: YAML does not parse ({problem})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"config file {path}: expected a mapping of key: value, got {type(data).__name__}")
    return {k: _scalar(v) for k, v in data.items()}


def parse_value(item: str) -> tuple[str, Any]:
    """``"key=value"`` → (key, value parsed as a YAML scalar)."""
    import yaml

    key, sep, raw = item.partition("=")
    if not sep or not key.strip():
        raise ValueError(f"--values expects key=value, got {item!r}")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    return key.strip(), _scalar(value)


def load_overrides(configs: Iterable[str | os.PathLike] = (), values: Iterable[str] = ()) -> dict[str, Any]:
    """YAML files in order, then key=value pairs; the merged dict (not yet resolved)."""
    out: dict[str, Any] = {}
    for path in configs:
        out.update(load_yaml(path))
    for item in values:
        key, value = parse_value(item)
        out[key] = value
    return out
