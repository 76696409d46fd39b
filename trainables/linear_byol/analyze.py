"""Heatmaps over (α, τ) per batch size, and loss-vs-α slices, from a runs directory.

For each run (one Parquet file, :mod:`~trainables.linear_byol.records`) the value at ``epoch`` is its
row at that epoch. A run that diverged before (or at) it has none: it is a NaN cell, or, with
``use_last_valid``, the last finite value it logged, and the cell is marked (×, and listed in the
hover text). Seeds are averaged (mean over the runs of a cell). With the sweep's β modes a cell may
hold several β: they are averaged too, and the figure's title says so.

Figures (plotly): ``heatmap_<metric>_bs<B>``, ``heatmap_<enc_metric>_bs<B>`` (y = α, x = τ, both log10)
and ``slices_loss_bs<B>`` (the loss at ``epoch`` vs α, one line per τ). Each is written as a
self-contained HTML file, and as PDF and PNG through :func:`ohgw.analysis.report.export_static`
where kaleido finds a browser (otherwise one log line says why; the HTML stands).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from ohgw.results import atomic_path

from .metrics import METRIC_KEYS
from .records import ROW_METRICS, read_runs


@dataclass(frozen=True)
class Grid:
    """One batch size's cells: values[i, j] at (alphas[i], taus[j]); ``marked`` where a last valid value stands in."""

    batch_size: int
    alphas: np.ndarray
    taus: np.ndarray
    values: np.ndarray
    marked: np.ndarray
    runs: np.ndarray  # runs per cell


def values_at(df: pd.DataFrame, metric: str, epoch: int, use_last_valid: bool) -> pd.DataFrame:
    """One row per run: its ``metric`` at ``epoch`` (see the module docstring) and whether it stood in."""
    if metric not in df.columns:
        raise ValueError(f"--metric {metric!r} is not a column of the runs (known: {', '.join(ROW_METRICS)})")
    out = []
    for name, run in df.groupby("run_name", sort=True):
        run = run.sort_values("epoch")
        first = run.iloc[0]
        at = run[run["epoch"] == epoch]
        diverged_by = bool((run["diverged"] & (run["epoch"] <= epoch)).any())
        value, marked = math.nan, False
        if len(at) and not bool(at["diverged"].iloc[0]):
            value = float(at[metric].iloc[0])
        elif use_last_valid:
            upto = run[(run["epoch"] <= epoch) & np.isfinite(run[metric].astype(float)) & ~run["diverged"]]
            if len(upto):
                value, marked = float(upto[metric].iloc[-1]), True
        out.append({"run_name": name, "batch_size": int(first["batch_size"]), "lr_pred": float(first["lr_pred"]),
                    "tau": float(first["tau"]), "value": value, "marked": marked, "diverged": diverged_by})
    return pd.DataFrame(out)


def grids(df: pd.DataFrame, metric: str, epoch: int, use_last_valid: bool) -> list[Grid]:
    per_run = values_at(df, metric, epoch, use_last_valid)
    result = []
    for bs, sub in per_run.groupby("batch_size", sort=True):
        alphas, taus = np.sort(sub["lr_pred"].unique()), np.sort(sub["tau"].unique())
        vals = np.full((len(alphas), len(taus)), np.nan)
        marked = np.zeros_like(vals, dtype=bool)
        runs = np.zeros_like(vals, dtype=int)
        for (a, t), cell in sub.groupby(["lr_pred", "tau"]):
            i, j = int(np.searchsorted(alphas, a)), int(np.searchsorted(taus, t))
            finite = cell["value"][np.isfinite(cell["value"])]
            vals[i, j] = float(finite.mean()) if len(finite) else np.nan
            marked[i, j] = bool(cell["marked"].any() or cell["diverged"].any())
            runs[i, j] = len(cell)
        result.append(Grid(int(bs), alphas, taus, vals, marked, runs))
    return result


def heatmap(g: Grid, metric: str, epoch: int) -> go.Figure:
    """The (log10 τ, log10 α) heatmap of one batch size; marked cells carry an × and say so on hover."""
    x, y = np.log10(g.taus), np.log10(g.alphas)
    text = [[f"α={a:.3g}, τ={t:.3g}<br>{metric}={v:.4g}<br>runs: {n}" + ("<br>diverged: last valid value" if m else "")
             for t, v, m, n in zip(g.taus, row, mrow, nrow)]
            for a, row, mrow, nrow in zip(g.alphas, g.values, g.marked, g.runs)]
    fig = go.Figure(go.Heatmap(x=x, y=y, z=g.values, text=text, hoverinfo="text", colorscale="Viridis",
                               colorbar={"title": metric}))
    mi, mj = np.nonzero(g.marked)
    if len(mi):
        fig.add_trace(go.Scatter(x=x[mj], y=y[mi], mode="markers", name="diverged",
                                 marker={"symbol": "x", "size": 12, "color": "red"}, hoverinfo="skip"))
    fig.update_layout(title=f"{metric} at epoch {epoch}, batch size {g.batch_size} (mean over seeds)",
                      xaxis_title="log10 τ (EMA rate, 1 − m)", yaxis_title="log10 α (predictor lr)",
                      width=700, height=560)
    return fig


def slices(g: Grid, epoch: int, metric: str = "loss") -> go.Figure:
    """``metric`` at ``epoch`` vs α (log axis), one line per τ."""
    fig = go.Figure()
    for j, t in enumerate(g.taus):
        fig.add_trace(go.Scatter(x=g.alphas, y=g.values[:, j], mode="lines+markers", name=f"τ={t:.3g}"))
    fig.update_layout(title=f"{metric} vs α at epoch {epoch}, batch size {g.batch_size}", xaxis_type="log",
                      xaxis_title="α (predictor lr)", yaxis_title=metric, width=760, height=460)
    return fig


def _write_html(fig: go.Figure, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.write_html(str(tmp), include_plotlyjs=True, full_html=True)


def analyze(runs_dir: str | os.PathLike, out_dir: str | os.PathLike, metric: str = "W_Fro_aligned",
            enc_metric: str = "BA_err_aligned", epoch: int | None = None, use_last_valid: bool = False,
            static: bool = True) -> dict[str, go.Figure]:
    """Every figure of the module docstring for the runs in ``runs_dir``, written into ``out_dir``.

    ``epoch`` None: the largest epoch any run logged. Returns the figures by name.
    """
    for name, m in (("--metric", metric), ("--enc_metric", enc_metric)):
        if m not in ROW_METRICS:
            raise ValueError(f"{name} must be one of {', '.join(ROW_METRICS)}, got {m!r}")
    if epoch is not None and (isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 1):
        raise ValueError(f"--epoch must be an integer >= 1, got {epoch!r}")
    df = read_runs(runs_dir)
    epoch = int(df["epoch"].max()) if epoch is None else epoch
    if not (df["epoch"] <= epoch).any():
        raise ValueError(f"--epoch {epoch}: no run logged an epoch <= {epoch} (first logged: {int(df['epoch'].min())})")
    figs: dict[str, go.Figure] = {}
    for m in dict.fromkeys((metric, enc_metric)):
        for g in grids(df, m, epoch, use_last_valid):
            figs[f"heatmap_{m}_bs{g.batch_size}"] = heatmap(g, m, epoch)
    for g in grids(df, "loss", epoch, use_last_valid):
        figs[f"slices_loss_bs{g.batch_size}"] = slices(g, epoch)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name, fig in figs.items():
        _write_html(fig, out / f"{name}.html")
    if static:
        from ohgw.analysis.report import export_static

        export_static(figs, out)
    return figs


__all__ = ["Grid", "METRIC_KEYS", "analyze", "grids", "heatmap", "slices", "values_at"]
