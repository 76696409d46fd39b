"""Paired statistics: seed pairing, censored paired differences, Wilcoxon, speed-ups.

Pairing: a method and its vanilla partner are paired by seed (same sampled configs and data order).
A seed present for only one of the two drops out of that pair's statistics with a warning; the
remaining seeds keep their own partners (pairs are joined on the seed, never by position).

Censored pairs (documented rule): a study that never reached tau takes its censoring time (its end
on that clock, i.e. its budget) and is ranked as such. When *both* studies of a pair are censored
the pair carries no information: its difference is set to exactly 0 (ratio 1), so the Wilcoxon
signed-rank test (two-sided, scipy's default ``zero_method="wilcox"``) drops it; such pairs are
counted in ``n_both_censored``. Speed-up of a pair = T_vanilla / T_method; reduction =
1 - T_method / T_vanilla; both are summarised by their median over pairs.

>>> r = wilcoxon_paired(np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0]), np.array([2.0, 4.0, 0.0, 8.0, 10.0, 12.0]))
>>> r["n"], r["statistic"], round(r["p"], 5)
(6, 3.0, 0.15625)
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy import stats as sps


def pair_by_seed(
    left: pd.DataFrame, right: pd.DataFrame, left_name: str, right_name: str, sink: list[str] | None = None
) -> pd.DataFrame:
    """Inner join of two per-seed frames on ``seed`` (suffixes _m / _v), warning for each unpaired seed."""
    ls, rs = set(left["seed"]), set(right["seed"])
    for s in sorted(ls - rs):
        _warn(sink, f"{left_name} vs {right_name}: seed {s} has no {right_name} study; pair dropped")
    for s in sorted(rs - ls):
        _warn(sink, f"{left_name} vs {right_name}: seed {s} has no {left_name} study; pair dropped")
    return left.merge(right, on="seed", suffixes=("_m", "_v"), how="inner", validate="one_to_one").sort_values("seed")


def _warn(sink: list[str] | None, message: str) -> None:
    from .load import AnalysisWarning

    if sink is not None:
        sink.append(message)
    warnings.warn(message, AnalysisWarning, stacklevel=3)


def wilcoxon_paired(x: np.ndarray, y: np.ndarray) -> dict:
    """Two-sided Wilcoxon signed-rank test of x - y (scipy), n = non-zero differences used."""
    d = np.asarray(x, float) - np.asarray(y, float)
    d = d[np.isfinite(d)]
    n = int(np.count_nonzero(d))
    out = {"n_pairs": int(len(d)), "n": n, "statistic": float("nan"), "p": float("nan")}
    if n == 0:
        return out
    r = sps.wilcoxon(d, zero_method="wilcox", alternative="two-sided")
    out["statistic"] = float(r.statistic)
    out["p"] = float(r.pvalue)
    return out


def censored_pairs(
    t_m: np.ndarray, reached_m: np.ndarray, t_v: np.ndarray, reached_v: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x, y, both_censored): the pair values for the test, with both-censored pairs made equal."""
    both = ~np.asarray(reached_m, bool) & ~np.asarray(reached_v, bool)
    x = np.asarray(t_m, float).copy()
    y = np.asarray(t_v, float).copy()
    x[both] = y[both]
    return x, y, both


def paired_time(t_m, reached_m, t_v, reached_v) -> dict:
    """Paired T@tau comparison of a method (m) with its vanilla partner (v) on one clock."""
    x, y, both = censored_pairs(t_m, reached_m, t_v, reached_v)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(both, 1.0, x / y)
        speedup = np.where(both, 1.0, y / x)
    test = wilcoxon_paired(x, y)
    return {
        **test,
        "n_both_censored": int(both.sum()),
        "median_speedup": _median(speedup),
        "median_reduction": 1.0 - _median(ratio) if len(ratio) else float("nan"),
        "speedups": speedup.tolist(),
    }


def _median(a: np.ndarray) -> float:
    a = np.asarray(a, float)
    a = a[~np.isnan(a)]
    return float(np.median(a)) if len(a) else float("nan")


def seed_std(values: np.ndarray) -> float:
    """Sample standard deviation over seeds (ddof=1); NaN for fewer than two values."""
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    return float(np.std(v, ddof=1)) if len(v) >= 2 else float("nan")
