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

The Tune backend's console is the main job's (:class:`ohgw.studies.tune_console.TuneConsole`): one
progress bar over the runs, one line per finished run, a short table at the end (:func:`best_runs`);
Ray's and Tune's output goes to ``out_dir/_logs/ray-tune-<time>.log`` (named at the start; on the console
too with ``verbose``). Tune's folder ``out_dir/_tune`` (the trials' results) is deleted once every run's
Parquet file is written, unless ``keep_tune_dirs``.
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


def _run_line(trial) -> str:
    """A finished sweep run in one line: its α, τ, batch size, seed, epochs and last W_Fro_aligned."""
    cfg, res = trial.config["cfg"], trial.last_result or {}
    tail = " DIVERGED" if res.get("diverged") else ""
    return (f"α {cfg['lr_pred']:.3g}, τ {cfg['tau']:.3g}, batch {cfg['batch_size']}, seed {cfg[protocol.SEED_KEY]}: "
            f"epoch {res.get('row_epoch', 0)}, W_Fro_aligned {res.get('W_Fro_aligned', float('nan')):.4g}{tail}")


def best_runs(paths: Sequence[Path], metric: str = "W_Fro_aligned", n: int = 5) -> str:
    """The table after a sweep: the ``n`` runs with the lowest last ``metric``, and how many diverged."""
    import pandas as pd

    last = pd.concat([pd.read_parquet(p) for p in paths], ignore_index=True).sort_values("epoch")
    last = last.groupby("run_name").tail(1)
    diverged = int(last["diverged"].sum())
    cols = [c for c in ("lr_pred", "tau", "lr_enc", "batch_size", "seed", "epoch", metric) if c in last]
    top = last.sort_values(metric).head(n)[cols]
    return (f"best {len(top)} of {len(last)} runs by last {metric} ({diverged} diverged):\n"
            + top.to_string(index=False, float_format=lambda v: f"{v:.4g}") + "\n")


def _run_tune(configs: list[dict], out: Path, cpus_per_trial: float, address: str | None, quiet: bool,
              verbose: bool = False, keep_tune_dirs: bool = False) -> list[Path]:
    from ray import tune

    from ohgw.studies.ray_session import default_log_path
    from ohgw.studies.tune_console import TuneConsole, remove_tune_dir

    trainable = tune.with_resources(_sweep_trainable, {"cpu": cpus_per_trial})
    storage = (out / "_tune").resolve()
    log = out / "_logs" / default_log_path(out).name  # "_": a Parquet reader of the runs folder skips it
    with TuneConsole(out, total=len(configs), unit="run", verbose=verbose and not quiet, name="linear_byol sweep",
                     log_path=log) as console:
        console.start_ray(address=address)
        tuner = tune.Tuner(
            trainable,
            param_space={"cfg": tune.grid_search(configs)},
            tune_config=tune.TuneConfig(reuse_actors=True),
            run_config=tune.RunConfig(name="linear_byol_sweep", storage_path=str(storage),
                                      verbose=console.tune_verbose, callbacks=[console.callback(_run_line)]),
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
    remove_tune_dir(storage, keep=keep_tune_dirs)  # every run's rows are in its Parquet file now
    if not quiet and paths:
        print(best_runs(paths), end="")
    return paths


def run_sweep(configs: list[dict], out_dir: str, backend: str = "tune", cpus_per_trial: float = 1.0,
              address: str | None = None, quiet: bool = False, verbose: bool = False,
              keep_tune_dirs: bool = False) -> list[Path]:
    """Run every config; one Parquet file per run in ``out_dir``. Returns the paths.

    Tune backend: ``verbose`` puts Ray's and Tune's output on the console too (it is in ``out_dir/logs/``
    either way); ``keep_tune_dirs`` keeps ``out_dir/_tune``.
    """
    if backend not in BACKENDS:
        raise ValueError(f"--backend must be one of {BACKENDS}, got {backend!r}")
    out = Path(out_dir)
    if backend == "tune":
        return _run_tune(configs, out, cpus_per_trial, address, quiet, verbose, keep_tune_dirs)
    from tqdm import tqdm

    paths = []
    for cfg in tqdm(configs, desc="sweep", unit="run", disable=quiet):
        name = default_run_name(cfg)
        paths.append(write_rows(list(run_rows(cfg, name)), out, name))
    return paths
