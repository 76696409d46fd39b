"""Heatmaps over (α, τ) per batch size, and loss-vs-α slices, from a runs directory.

For each run (one Parquet file, :mod:`~trainables.linear_byol.records`) the value at ``epoch`` is its
row at that epoch. A run that diverged before (or at) it has none: it is a NaN cell, or, with
``use_last_valid``, the last finite value it logged, and the cell is marked (×, and listed in the
hover text). Seeds are averaged (mean over the runs of a cell). With the sweep's β modes a cell may
hold several β: they are averaged too, and the figure's title says so.

Figures (plotly): ``heatmap_<metric>_bs<B>``, ``heatmap_<enc_metric>_bs<B>`` (y = α, x = τ, both log10;
each cell shows its value, and the dashed line is the edge of the analytic regime α·H ≲ c·τ of seed 002's
auto schedule, H the median logged curvature ``H_t`` of the batch size's runs at ``epoch``, c ``regime_c``)
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


def curvature_at(df: pd.DataFrame, epoch: int) -> dict[int, float]:
    """Batch size → median ``H_t`` over its runs' non-diverged rows at ``epoch`` (batch sizes without one left out)."""
    at = df[(df["epoch"] == epoch) & ~df["diverged"].astype(bool)]
    out = {}
    for bs, sub in at.groupby("batch_size"):
        h = sub["H_t"].astype(float)
        h = h[np.isfinite(h) & (h > 0)]
        if len(h):
            out[int(bs)] = float(h.median())
    return out


def regime_line(g: Grid, c: float, h: float) -> tuple[np.ndarray, np.ndarray]:
    """(log10 τ, log10 α) of the line α·H = c·τ across the heatmap's τ range (log10 α = log10 τ + log10(c/H))."""
    x = np.log10(g.taus[[0, -1]]) if len(g.taus) > 1 else np.log10(g.taus[[0, 0]]) + np.array([-0.5, 0.5])
    return x, x + math.log10(c / h)


def heatmap(g: Grid, metric: str, epoch: int, regime: tuple[float, float] | None = None) -> go.Figure:
    """The (log10 τ, log10 α) heatmap of one batch size, each cell labelled with its value; marked cells carry an
    × and say so on hover; ``regime`` = (c, H) adds the line α·H = c·τ."""
    x, y = np.log10(g.taus), np.log10(g.alphas)
    hover = [[f"α={a:.3g}, τ={t:.3g}<br>{metric}={v:.4g}<br>runs: {n}" + ("<br>diverged: last valid value" if m else "")
              for t, v, m, n in zip(g.taus, row, mrow, nrow)]
             for a, row, mrow, nrow in zip(g.alphas, g.values, g.marked, g.runs)]
    labels = [[f"{v:.3g}" if np.isfinite(v) else "" for v in row] for row in g.values]
    fig = go.Figure(go.Heatmap(x=x, y=y, z=g.values, text=labels, texttemplate="%{text}", hovertext=hover,
                               hoverinfo="text", colorscale="Viridis", colorbar={"title": metric}))
    mi, mj = np.nonzero(g.marked)
    if len(mi):
        fig.add_trace(go.Scatter(x=x[mj], y=y[mi], mode="markers", name="diverged",
                                 marker={"symbol": "x", "size": 12, "color": "red"}, hoverinfo="skip"))
    if regime is not None:
        c, h = regime
        lx, ly = regime_line(g, c, h)
        fig.add_trace(go.Scatter(x=lx, y=ly, mode="lines", name=f"α·H = c·τ (c={c:g}, H={h:.3g})",
                                 line={"dash": "dash", "color": "white", "width": 2}, hoverinfo="name"))
        fig.update_yaxes(range=[y.min() - 0.5, y.max() + 0.5])  # the line must not stretch the α axis
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
            static: bool = True, regime_c: float = 1.0) -> dict[str, go.Figure]:
    """Every figure of the module docstring for the runs in ``runs_dir``, written into ``out_dir``.

    ``epoch`` None: the largest epoch any run logged; an epoch that no run logged is a ValueError (its
    heatmaps would be blank), as is a ``regime_c`` <= 0. Returns the figures by name.
    """
    for name, m in (("--metric", metric), ("--enc_metric", enc_metric)):
        if m not in ROW_METRICS:
            raise ValueError(f"{name} must be one of {', '.join(ROW_METRICS)}, got {m!r}")
    if epoch is not None and (isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 1):
        raise ValueError(f"--epoch must be an integer >= 1, got {epoch!r}")
    if isinstance(regime_c, bool) or not isinstance(regime_c, (int, float)) or not math.isfinite(regime_c) \
            or regime_c <= 0:
        raise ValueError(f"--regime_c must be a number > 0, got {regime_c!r}")
    df = read_runs(runs_dir)
    last = int(df["epoch"].max())
    epoch = last if epoch is None else epoch
    if epoch > last:
        raise ValueError(f"--epoch {epoch} is beyond the runs' length: the longest run logged up to epoch {last}")
    if not (df["epoch"] == epoch).any():
        logged = sorted(int(e) for e in df["epoch"].unique())
        shown = ", ".join(map(str, logged[:6])) + (", …" if len(logged) > 6 else "")
        raise ValueError(f"--epoch {epoch}: no run logged that epoch (logged: {shown})")
    curvature = curvature_at(df, epoch)
    figs: dict[str, go.Figure] = {}
    for m in dict.fromkeys((metric, enc_metric)):
        for g in grids(df, m, epoch, use_last_valid):
            h = curvature.get(g.batch_size)
            figs[f"heatmap_{m}_bs{g.batch_size}"] = heatmap(g, m, epoch, None if h is None else (regime_c, h))
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


__all__ = ["Grid", "METRIC_KEYS", "analyze", "curvature_at", "grids", "heatmap", "regime_line", "slices", "values_at"]
