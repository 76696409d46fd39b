"""Time-to-target (T@tau) on three clocks, with right-censoring, quantiles, profiles and AUC.

Definitions (scores are higher-is-better here; see ``load``):

* best-so-far curve of a study on clock c: its reports sorted by c, running maximum of the score
  (NaN scores, e.g. diverged trials, never count);
* T@tau on clock c = min { c_i : score_i >= tau } = the first moment on c at which the best-so-far
  reaches tau. Clocks are study-cumulative (wall_s, compute_s, epoch_equiv incl. warm-starts);
* a study that never reaches tau is *right-censored* at its end on that clock (the larger of
  ``studies.<clock>`` and its last report). It is kept, never dropped;
* quantiles (median, IQR) rank censored studies above every observed time (value +inf; with one
  common budget this is the Kaplan-Meier estimate), interpolated like numpy's default (type 7). A
  quantile that needs a censored value is +inf: "not reached within budget";
* AUC = mean best-so-far score over [0, H], H = the earliest study end on that clock (every study
  covers [0, H]); before a study's first report its curve sits at the experiment's worst score.

>>> import numpy as np
>>> quantiles(np.array([3.0, 1.0, 2.0, 9.0]), np.array([True, True, True, False]), (0.25, 0.5, 0.75))
array([1.75, 2.5 ,  inf])
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .load import CLOCKS, Results


@dataclass
class Curves:
    """Per-study best-so-far curves on one clock: study ``sid``'s points are ``t[start[sid]:stop[sid]]``."""

    clock: str
    t: np.ndarray
    best: np.ndarray  # running max of the score, -inf before any finite score
    start: np.ndarray
    stop: np.ndarray
    end: np.ndarray  # censoring time (study end) per sid

    def study(self, sid: int) -> tuple[np.ndarray, np.ndarray]:
        return self.t[self.start[sid]:self.stop[sid]], self.best[self.start[sid]:self.stop[sid]]


def curves(res: Results, clock: str) -> Curves:
    """Best-so-far curves of every study of ``res`` on ``clock`` (one of CLOCKS)."""
    if clock not in CLOCKS:
        raise ValueError(f"clock must be one of {tuple(CLOCKS)}, got {clock!r}")
    col = CLOCKS[clock]
    it = res.iterations
    n = len(res.studies)
    sid = it["sid"].to_numpy()
    t = it[col].to_numpy(dtype=float)
    score = it["score"].to_numpy(dtype=float)
    ok = np.isfinite(t)
    sid, t, score = sid[ok], t[ok], score[ok]
    order = np.lexsort((t, sid))
    sid, t, score = sid[order], t[order], np.where(np.isfinite(score[order]), score[order], -np.inf)
    best = pd.Series(score).groupby(sid).cummax().to_numpy() if len(score) else score
    start = np.searchsorted(sid, np.arange(n), side="left")
    stop = np.searchsorted(sid, np.arange(n), side="right")
    end = res.studies[col].to_numpy(dtype=float).copy()
    last = np.full(n, -np.inf)
    has = stop > start
    last[has] = t[stop[has] - 1]
    end = np.fmax(np.where(np.isfinite(end), end, -np.inf), last)
    end[~np.isfinite(end)] = np.nan
    return Curves(clock=clock, t=t, best=best, start=start, stop=stop, end=end)


def time_to_target(c: Curves, tau: float | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(T, reached) per study; ``tau`` scalar -> arrays (n,), array (k,) -> arrays (n, k).

    T is the reach time, or the censoring time (study end) where ``reached`` is False.
    """
    taus = np.atleast_1d(np.asarray(tau, dtype=float))
    n = len(c.start)
    T = np.empty((n, len(taus)))
    reached = np.zeros((n, len(taus)), dtype=bool)
    for sid in range(n):
        t, best = c.study(sid)
        idx = np.searchsorted(best, taus, side="left")  # best is non-decreasing
        hit = idx < len(best)
        reached[sid] = hit
        T[sid] = np.where(hit, t[np.minimum(idx, max(len(t) - 1, 0))] if len(t) else np.nan, c.end[sid])
    if np.ndim(tau) == 0:
        return T[:, 0], reached[:, 0]
    return T, reached


def quantiles(values: np.ndarray, reached: np.ndarray, qs=(0.25, 0.5, 0.75)) -> np.ndarray:
    """Quantiles with censored values ranked above all observed ones (+inf), numpy type-7 interpolation."""
    v = np.where(np.asarray(reached, bool), np.asarray(values, float), np.inf)
    return sorted_quantiles(np.sort(v[~np.isnan(v)]), qs)


def sorted_quantiles(v: np.ndarray, qs, axis: int = 0) -> np.ndarray:
    """Type-7 quantiles of data already sorted along ``axis`` that may hold +-inf (no NaN)."""
    v = np.moveaxis(np.asarray(v, float), axis, 0)
    qs = np.atleast_1d(np.asarray(qs, float))
    n = v.shape[0]
    if n == 0:
        return np.full((len(qs), *v.shape[1:]), np.nan).squeeze()
    pos = qs * (n - 1)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, n - 1)
    g = (pos - lo).reshape((-1,) + (1,) * (v.ndim - 1))
    a, b = v[lo], v[hi]
    with np.errstate(invalid="ignore"):
        out = np.where(g == 0, a, np.where(a == b, a, a + g * (b - a)))
    out = np.where((g > 0) & np.isposinf(b), np.inf, out)
    out = np.where((g > 0) & np.isneginf(a), -np.inf, out)
    return out


def auc(c: Curves, horizon: float, floor: float) -> np.ndarray:
    """Mean best-so-far score over [0, horizon] per study (floor before the first finite score)."""
    n = len(c.start)
    out = np.full(n, np.nan)
    if not np.isfinite(horizon) or horizon <= 0:
        return out
    for sid in range(n):
        t, best = c.study(sid)
        b = np.where(np.isfinite(best), best, floor)
        if len(t) == 0:
            out[sid] = floor
            continue
        edges = np.clip(np.append(t, horizon), 0.0, horizon)
        area = floor * edges[0] + float(np.sum(b * np.diff(edges)))
        out[sid] = area / horizon
    return out


def grid_quantiles(c: Curves, sids: np.ndarray, grid: np.ndarray, qs=(0.25, 0.5, 0.75)) -> np.ndarray:
    """Quantiles across studies ``sids`` of best-so-far at each grid time; (len(qs), len(grid)).

    A study with no score yet ranks lowest (-inf); after its end its final best holds. Quantiles
    that need a not-yet-scored study are NaN (undefined), so a median starts once half have scored.
    """
    rows = np.full((len(sids), len(grid)), -np.inf)
    for i, sid in enumerate(sids):
        t, best = c.study(int(sid))
        if len(t):
            idx = np.searchsorted(t, grid, side="right") - 1
            rows[i] = np.where(idx >= 0, best[np.maximum(idx, 0)], -np.inf)
    out = sorted_quantiles(np.sort(rows, axis=0), qs)
    out = np.asarray(out, float).reshape(len(np.atleast_1d(qs)), len(grid))
    out[~np.isfinite(out)] = np.nan
    return out
