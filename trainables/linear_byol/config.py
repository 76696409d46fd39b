"""The linear BYOL toy's configuration: defaults, validation, and the logspace grids of the sweep.

Every key of :data:`DEFAULT_CONFIG` is a hyper-parameter of a run and becomes a column of its Parquet
file. The EMA is configured by its rate ``tau`` = 1 − m (the tuned coordinate, log10 in a study);
``ema_m`` is accepted as well (the original scripts' flag) and both are kept consistent.
Bad input raises ``ValueError`` naming the argument.

>>> cfg = resolve_config({"ema_m": 0.99})
>>> round(cfg["tau"], 12), cfg["d_latent"], cfg["d_obs"]
(0.01, 10, 100)
>>> [float(f"{v:.3g}") for v in logspace((1e-5, 1e-2, 4), "--lr_pred_logspace")]
[1e-05, 0.0001, 0.001, 0.01]
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ohgw import protocol
from trainables import checks

ARCHS = ("linear", "mlp")
DEVICES = ("cpu", "cuda", "auto")
DEFAULT_CONFIG: dict[str, Any] = {
    "d_latent": 10,  # latent dimension k (also the embedding dimension)
    "d_obs": 100,  # observation dimension d ≥ k
    "sigma_n": 0.5,  # observation noise std σ_n
    "batch_size": 128,
    "samples_per_epoch": 1024,  # fresh latent draws per epoch: ceil(samples_per_epoch / batch_size) steps
    "lr_pred": 0.05,  # α, the predictor's SGD learning rate
    "lr_enc": 0.05,  # β, the encoder's SGD learning rate
    "mom_pred": 0.0,  # the predictor's SGD momentum
    "mom_enc": 0.0,  # the encoder's SGD momentum
    "pred_update_every": 1,  # update the predictor every k-th step
    "enc_update_every": 1,  # update the encoder every k-th step
    "freeze_enc": False,  # keep the encoder at its init (the closed-form check)
    "tau": 0.01,  # EMA rate τ = 1 − m: target ← target + τ (online − target)
    "auto_alpha_c": 0.0,  # > 0: α_t = c·τ / H_t (H_t: top eigenvalue of the online feature covariance)
    "auto_beta_c": 0.0,  # > 0: β_t = c·τ / H_t
    "power_iters": 3,  # power-iteration steps per training step for H_t (warm-started)
    "enc": "linear",  # encoder: linear map or a 2-layer SiLU MLP
    "pred": "linear",  # predictor: linear map or a 2-layer SiLU MLP
    "hidden": 64,  # MLP width
    "init_scale": 1.0,  # encoder init: Gaussian with std init_scale / sqrt(d_obs)
    "enc_init": "random",  # "random" or "pinv" (the rotated pseudo-inverse R·A⁺: an analytic encoder)
    "eval_samples": 4096,  # samples of the effective-rank metrics and the MLP linearisation
    "diverge_loss": 1e8,  # a train loss above this (or non-finite) ends the run as diverged
    "log_every": 1,  # epochs between two metric rows (the standalone driver)
    "device": "cpu",
    "dtype": "float32",
    protocol.MAX_T_KEY: 100,  # epochs
    protocol.SEED_KEY: 0,  # data (A), init and sampling seed
    "data_seed": None,  # seed of the mixing matrix A (None: the run's seed)
}


def resolve_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """DEFAULT_CONFIG updated with ``config`` (other keys kept), validated; ValueError names the key.

    ``ema_m`` (if given) sets ``tau`` = 1 − ``ema_m``; giving both inconsistently is an error.
    """
    given = dict(config)
    cfg = {**DEFAULT_CONFIG, **given}
    if "ema_m" in given:
        m = checks.number(given, "ema_m")
        if not 0.0 <= m < 1.0:
            raise ValueError(f"ema_m must be in [0, 1), got {m!r}")
        if "tau" in given and not math.isclose(float(given["tau"]), 1.0 - m, rel_tol=1e-9, abs_tol=1e-12):
            raise ValueError(f"ema_m {m!r} and tau {given['tau']!r} disagree (tau = 1 - ema_m)")
        cfg["tau"] = 1.0 - m
    for k in ("sigma_n", "lr_pred", "lr_enc", "mom_pred", "mom_enc", "tau", "auto_alpha_c", "auto_beta_c",
              "init_scale"):
        cfg[k] = checks.number(cfg, k)
    if not 0.0 < cfg["tau"] <= 1.0:
        raise ValueError(f"tau must be in (0, 1] (ema_m = 1 - tau in [0, 1)), got {cfg['tau']!r}")
    cfg["ema_m"] = 1.0 - cfg["tau"]
    for k in ("lr_pred", "lr_enc"):
        if cfg[k] <= 0:
            raise ValueError(f"{k} must be > 0, got {cfg[k]!r}")
    for k in ("mom_pred", "mom_enc"):
        if not 0.0 <= cfg[k] < 1.0:
            raise ValueError(f"{k} must be in [0, 1), got {cfg[k]!r}")
    for k in ("auto_alpha_c", "auto_beta_c", "sigma_n"):
        if cfg[k] < 0:
            raise ValueError(f"{k} must be >= 0, got {cfg[k]!r}")
    cfg["diverge_loss"] = checks.number(cfg, "diverge_loss")
    if cfg["diverge_loss"] <= 0:
        raise ValueError(f"diverge_loss must be > 0, got {cfg['diverge_loss']!r}")
    if cfg["init_scale"] <= 0:
        raise ValueError(f"init_scale must be > 0, got {cfg['init_scale']!r}")
    cfg["d_latent"] = checks.integer(cfg, "d_latent", 1)
    cfg["d_obs"] = checks.integer(cfg, "d_obs", 1)
    if cfg["d_latent"] > cfg["d_obs"]:
        raise ValueError(f"d_latent ({cfg['d_latent']}) must be <= d_obs ({cfg['d_obs']})")
    for k in ("batch_size", "samples_per_epoch", "pred_update_every", "enc_update_every", "hidden", "eval_samples",
              "log_every", "power_iters"):
        cfg[k] = checks.integer(cfg, k, 1)
    cfg[protocol.MAX_T_KEY] = checks.integer(cfg, protocol.MAX_T_KEY, 1)
    cfg[protocol.SEED_KEY] = checks.integer(cfg, protocol.SEED_KEY, 0, 2**63 - 1)
    if cfg["data_seed"] is not None:
        cfg["data_seed"] = checks.integer(cfg, "data_seed", 0, 2**63 - 1)
    if not isinstance(cfg["freeze_enc"], (bool, np.bool_)):
        raise ValueError(f"freeze_enc must be a bool, got {cfg['freeze_enc']!r}")
    cfg["freeze_enc"] = bool(cfg["freeze_enc"])
    cfg["enc"], cfg["pred"] = checks.choice(cfg, "enc", ARCHS), checks.choice(cfg, "pred", ARCHS)
    cfg["enc_init"] = checks.choice(cfg, "enc_init", ("random", "pinv"))
    cfg["device"] = checks.choice(cfg, "device", DEVICES)
    cfg["dtype"] = checks.choice(cfg, "dtype", ("float32", "float64"))
    return cfg


def steps_per_epoch(cfg: Mapping[str, Any]) -> int:
    """ceil(samples_per_epoch / batch_size): every batch size sees the same samples per epoch."""
    return -(-int(cfg["samples_per_epoch"]) // int(cfg["batch_size"]))


def logspace(triple: Sequence[float], name: str) -> np.ndarray:
    """``steps`` values from ``start`` to ``stop``, evenly spaced in log (seed 002: ``1e-5 1e-2 4`` gives
    1e-5, 1e-4, 1e-3, 1e-2); ValueError names the flag.

    The triple holds the values themselves, not exponents of 10: 0 < start < stop and an integer steps ≥ 1
    (steps 1 gives ``start``). A start ≤ 0 (an exponent, as this flag once read) says so.
    """
    if len(triple) != 3:
        raise ValueError(f"{name} needs three values (start stop steps), got {list(triple)!r}")
    start, stop, steps = (float(v) for v in triple)
    if not (math.isfinite(start) and math.isfinite(stop)):
        raise ValueError(f"{name}: start and stop must be finite, got start={start:g}, stop={stop:g}")
    if start <= 0:
        raise ValueError(f"{name}: start and stop are the values themselves and must be > 0 (e.g. 1e-5 1e-2 4), "
                         f"got start={start:g}; exponents are no longer accepted")
    if not start < stop:
        raise ValueError(f"{name}: need start < stop, got start={start:g}, stop={stop:g}")
    if steps != int(steps) or int(steps) < 1:
        raise ValueError(f"{name}: steps must be an integer >= 1, got {steps:g}")
    return np.geomspace(start, stop, int(steps))
