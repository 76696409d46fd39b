"""How close each tuner got to the known answer, per unit of budget (for ``experiments/linear_byol_ohgw.py``).

T@τ says how fast a method reaches a score; on this toy we can also say *where* it ended up. For
every study (method, seed) of a results directory (read through :mod:`ohgw.results` only) and each
budget fraction f, take the trial with the best ``W_Fro_aligned`` among the reports made within
f·budget epoch-equivalents, and its trained-with values x′ = (α, β, τ). Then:

- ``dist_best``: ‖(log10 α, log10 τ) − (log10 α*, log10 τ*)‖₂, the distance to the best cell of a grid
  sweep (:mod:`~trainables.linear_byol.sweep`, mean over seeds at its last epoch). The sweep's grid is
  (α, τ) with β tied to α, so the distance is measured in that plane;
- ``regime_excess``: max(0, log10(α·H / (c·τ))), in decades, how far x′ lies outside the analytic
  regime α·H ≲ c·τ (:mod:`~trainables.linear_byol.engine`), H = λ_max(I + σ_n²(AᵀA)⁻¹), the
  predictor's curvature at the analytic encoder A⁺ (:mod:`~trainables.linear_byol.data`).

The table gives, per method and fraction, the medians over seeds of both and of the best score.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from ohgw.results import atomic_path, read_table

from .config import resolve_config
from .data import LatentData
from .records import read_runs
from .run import METRIC

FRACTIONS = (0.25, 0.5, 1.0)


def analytic_curvature(base_config: Mapping[str, Any]) -> float:
    """λ_max(I + σ_n²(AᵀA)⁻¹) for the base config's problem (its ``data_seed``, else its seed)."""
    cfg = resolve_config(base_config)
    seed = cfg["seed"] if cfg["data_seed"] is None else cfg["data_seed"]
    data = LatentData.make(cfg["d_obs"], cfg["d_latent"], cfg["sigma_n"], seed, torch.float64)
    a = data.a
    c = torch.eye(data.d_latent, dtype=torch.float64) + data.sigma_n**2 * torch.linalg.inv(a.T @ a)
    return float(torch.linalg.eigvalsh(c)[-1])


def sweep_optimum(runs_dir: str | os.PathLike, metric: str = METRIC) -> dict[str, float]:
    """The sweep's best (α, τ) cell: lowest mean ``metric`` over seeds at each run's last non-diverged row."""
    df = read_runs(runs_dir)
    last = df.sort_values("epoch").groupby("run_name").tail(1)
    last = last[~last["diverged"] & np.isfinite(last[metric].astype(float))]
    if last.empty:
        raise ValueError(f"sweep {str(runs_dir)!r}: no run ended without diverging")
    cells = last.groupby(["lr_pred", "tau"])[metric].mean()
    (alpha, tau), value = cells.idxmin(), float(cells.min())
    return {"lr_pred": float(alpha), "tau": float(tau), metric: value, "epoch": int(last["epoch"].max())}


def distance_table(results_dir: str | os.PathLike, optimum: Mapping[str, float], curvature: float, c: float = 1.0,
                   fractions: Sequence[float] = FRACTIONS, experiment: str | None = None) -> pd.DataFrame:
    """One row per (method, fraction): medians over seeds of dist_best, regime_excess and the best score."""
    its = read_table(results_dir, "iterations", experiment=experiment)
    trials = read_table(results_dir, "trials", experiment=experiment)
    studies = read_table(results_dir, "studies", experiment=experiment)
    if its.empty:
        raise ValueError(f"results_dir {str(results_dir)!r} holds no complete study")
    xcols = {k: f"x_prime.{k}" for k in ("lr_pred", "tau")}
    missing = [v for v in xcols.values() if v not in trials.columns]
    if missing:
        raise ValueError(f"results_dir {str(results_dir)!r}: the trials table lacks {missing} (not a linear_byol study?)")
    a_star, t_star = math.log10(optimum["lr_pred"]), math.log10(optimum["tau"])
    rows = []
    for (method, seed), study_its in its.groupby(["method", "seed"]):
        budget = float(studies[(studies["method"] == method) & (studies["seed"] == seed)]["budget"].iloc[0])
        tri = trials[(trials["method"] == method) & (trials["seed"] == seed)].set_index("trial_id")
        for f in fractions:
            within = study_its[(study_its["epoch_equiv"] <= f * budget) & np.isfinite(study_its["val_score"])]
            if within.empty:
                continue
            best = within.loc[within["val_score"].idxmin()]
            x = tri.loc[best["trial_id"]]
            la, lt = math.log10(float(x[xcols["lr_pred"]])), math.log10(float(x[xcols["tau"]]))
            rows.append({"method": method, "seed": int(seed), "fraction": f, "best_score": float(best["val_score"]),
                         "dist_best": math.hypot(la - a_star, lt - t_star),
                         "regime_excess": max(0.0, la + math.log10(curvature) - math.log10(c) - lt)})
    per_study = pd.DataFrame(rows)
    if per_study.empty:
        raise ValueError(f"results_dir {str(results_dir)!r}: no finite score within any budget fraction")
    agg = per_study.groupby(["method", "fraction"]).agg(
        studies=("seed", "count"), best_score=("best_score", "median"), dist_best=("dist_best", "median"),
        regime_excess=("regime_excess", "median"))
    return agg.reset_index()


def format_table(table: pd.DataFrame, optimum: Mapping[str, float], curvature: float, c: float) -> str:
    head = (f"distance to the known answer (medians over seeds): sweep best cell α* = {optimum['lr_pred']:.3g}, "
            f"τ* = {optimum['tau']:.3g} ({METRIC} {optimum[METRIC]:.3f} at epoch {optimum['epoch']}); "
            f"regime α·H ≲ c·τ with H = {curvature:.4g}, c = {c:g}")
    return head + "\n" + table.to_string(index=False, float_format=lambda v: f"{v:.3f}")


def write_report(results_dir: str | os.PathLike, sweep_dir: str | os.PathLike, base_config: Mapping[str, Any],
                 c: float = 1.0, experiment: str | None = None) -> str:
    """The table as text, also written (atomically) to ``<results_dir>/linear_byol_distance.{txt,csv}``."""
    optimum = sweep_optimum(sweep_dir)
    h = analytic_curvature(base_config)
    table = distance_table(results_dir, optimum, h, c, experiment=experiment)
    text = format_table(table, optimum, h, c)
    out = Path(results_dir)
    for suffix, write in ((".txt", lambda p: p.write_text(text + "\n")), (".csv", lambda p: table.to_csv(p, index=False))):
        with atomic_path(out / f"linear_byol_distance{suffix}") as tmp:
            write(tmp)
    return text
