"""The grid sweep over (α, τ, batch size, seed[, β]): Ray Tune ``grid_search``, or in-process.

:func:`grid` builds the configs: α from ``lr_pred_logspace``, τ from ``tau_logspace``, each batch size
and seed, and β by ``lr_enc_mode``:

=============  ===================================================================
``same``       β = α
``ratio``      β = ``enc_over_pred``·α
``logspace``   β from ``lr_enc_logspace`` (one more grid axis)
``from_tau``   β = ``beta_from_tau_c``·τ
``auto``       β_t = ``auto_beta_c``·τ/H_t (the engine's auto schedule; ``lr_enc`` is then unused)
=============  ===================================================================

:func:`run_sweep` runs every config for ``max_t`` epochs. With ``backend="tune"`` the grid is one
``tune.grid_search`` over the configs (so it spreads over a Ray cluster when there is one); each trial
reports its log rows, and the driver writes each trial's rows (from its result's metrics
dataframe) into ``out_dir/<run_name>.parquet``, the same layout as a single run. A diverged run is
a file like any other, with ``diverged`` true in its last row. ``backend="local"`` runs the same grid
in this process (no Ray), for small grids and tests.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ohgw import protocol

from .config import logspace, resolve_config
from .driver import default_run_name, run_rows
from .records import COLUMNS, write_rows

LR_ENC_MODES = ("same", "ratio", "logspace", "from_tau", "auto")
BACKENDS = ("tune", "local")


def grid(base: Mapping[str, Any], lr_pred_logspace: Sequence[float], tau_logspace: Sequence[float],
         batch_sizes: Sequence[int], seeds: Sequence[int], lr_enc_mode: str = "same", enc_over_pred: float = 1.0,
         lr_enc_logspace: Sequence[float] | None = None, beta_from_tau_c: float = 1.0) -> list[dict[str, Any]]:
    """Every config of the sweep, resolved and validated (ValueError names the bad argument)."""
    if lr_enc_mode not in LR_ENC_MODES:
        raise ValueError(f"--lr_enc_mode must be one of {LR_ENC_MODES}, got {lr_enc_mode!r}")
    alphas = logspace(lr_pred_logspace, "--lr_pred_logspace")
    taus = logspace(tau_logspace, "--tau_logspace")
    if taus.max() > 1.0:
        raise ValueError(f"--tau_logspace: tau = 1 - m must be <= 1 (stop <= 1), got up to {taus.max():g}")
    if not batch_sizes:
        raise ValueError("--batch_sizes needs at least one batch size")
    if not seeds:
        raise ValueError("--seeds needs at least one seed")
    if lr_enc_mode == "logspace":
        if lr_enc_logspace is None:
            raise ValueError("--lr_enc_mode logspace needs --lr_enc_logspace start stop steps")
        betas: list[float | None] = list(logspace(lr_enc_logspace, "--lr_enc_logspace"))
    else:
        betas = [None]
    for name, v in (("--enc_over_pred", enc_over_pred), ("--beta_from_tau_c", beta_from_tau_c)):
        if not np.isfinite(v) or v <= 0:
            raise ValueError(f"{name} must be > 0, got {v!r}")
    out = []
    for bs, a, t, b, s in itertools.product(batch_sizes, alphas, taus, betas, seeds):
        cfg = {**dict(base), "batch_size": int(bs), "lr_pred": float(a), "tau": float(t), protocol.SEED_KEY: int(s)}
        cfg.pop("ema_m", None)
        if lr_enc_mode == "same":
            cfg["lr_enc"] = float(a)
        elif lr_enc_mode == "ratio":
            cfg["lr_enc"] = float(enc_over_pred * a)
        elif lr_enc_mode == "logspace":
            cfg["lr_enc"] = float(b)
        elif lr_enc_mode == "from_tau":
            cfg["lr_enc"] = float(beta_from_tau_c * t)
        else:  # auto
            if float(cfg.get("auto_beta_c", 0.0)) <= 0:
                raise ValueError("--lr_enc_mode auto needs --auto_beta_c > 0")
            cfg["lr_enc"] = float(a)  # unused: β_t comes from the schedule
        out.append(resolve_config(cfg))
    return out


def _sweep_trainable(config: dict) -> None:
    from ray import tune

    from trainables.scaffold import set_num_threads

    cpus = tune.get_context().get_trial_resources().required_resources.get("CPU", 1)
    set_num_threads(max(1, int(round(cpus))))
    cfg = config["cfg"]
    for row in run_rows(cfg, default_run_name(cfg)):
        tune.report({k: row[k] for k in COLUMNS if k in row and k not in ("data_seed",)} | {"row_epoch": row["epoch"]})


def _run_tune(configs: list[dict], out: Path, cpus_per_trial: float, address: str | None, quiet: bool) -> list[Path]:
    import ray
    from ray import tune

    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=not quiet, logging_level="ERROR")
    trainable = tune.with_resources(_sweep_trainable, {"cpu": cpus_per_trial})
    storage = (out / "_tune").resolve()
    tuner = tune.Tuner(
        trainable,
        param_space={"cfg": tune.grid_search(configs)},
        tune_config=tune.TuneConfig(reuse_actors=True),
        run_config=tune.RunConfig(name="linear_byol_sweep", storage_path=str(storage), verbose=0 if quiet else 1),
    )
    results = tuner.fit()
    paths = []
    for res in results:
        if res.error is not None:
            raise RuntimeError(f"sweep trial failed: {res.error}")
        cfg = res.config["cfg"]
        df = res.metrics_dataframe
        rows = []
        for rec in df.to_dict("records"):
            row = {k: rec[k] for k in COLUMNS if k in rec}
            row["epoch"] = int(rec["row_epoch"])
            row["data_seed"] = cfg[protocol.SEED_KEY] if cfg["data_seed"] is None else cfg["data_seed"]
            row["diverged"] = bool(row["diverged"])
            rows.append(row)
        paths.append(write_rows(rows, out, default_run_name(cfg)))
    return paths


def run_sweep(configs: list[dict], out_dir: str, backend: str = "tune", cpus_per_trial: float = 1.0,
              address: str | None = None, quiet: bool = False) -> list[Path]:
    """Run every config; one Parquet file per run in ``out_dir``. Returns the paths."""
    if backend not in BACKENDS:
        raise ValueError(f"--backend must be one of {BACKENDS}, got {backend!r}")
    out = Path(out_dir)
    if backend == "tune":
        return _run_tune(configs, out, cpus_per_trial, address, quiet)
    from tqdm import tqdm

    paths = []
    for cfg in tqdm(configs, desc="sweep", unit="run", disable=quiet):
        name = default_run_name(cfg)
        paths.append(write_rows(list(run_rows(cfg, name)), out, name))
    return paths
