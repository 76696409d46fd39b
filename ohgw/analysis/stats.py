"""Paired statistics: seed pairing, censored paired differences, Wilcoxon, speed-ups.

Pairing: a method and its vanilla partner are paired by seed (same sampled configs and data order).
A seed present for only one of the two drops out of that pair's statistics with a warning; the
remaining seeds keep their own partners (pairs are joined on the seed, never by position).

Censored pairs (documented rule): a study that never reached tau takes its censoring time (its end
on that clock, i.e. its budget) and is ranked as such. When *both* studies of a pair are censored
the pair carries no information on which is faster: its difference is set to exactly 0, so the
Wilcoxon signed-rank test (two-sided, scipy's default ``zero_method="wilcox"``) drops it, and its
speed-up is undefined (NaN); such pairs are counted in ``n_both_censored``, never dropped silently.
Speed-up of a pair = T_vanilla / T_method; reduction = 1 - T_method / T_vanilla; both are
summarised by their median over the *informative* pairs, those where at least one study reached tau
(counting a both-censored pair as ratio 1 would pull the median towards "no effect" by construction).

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
        ratio = np.where(both, np.nan, x / y)
        speedup = np.where(both, np.nan, y / x)
    test = wilcoxon_paired(x, y)
    return {
        **test,
        "n_both_censored": int(both.sum()),
        "median_speedup": _median(speedup),  # over the informative pairs (module doc)
        "median_reduction": 1.0 - _median(ratio),
        "speedups": speedup.tolist(),  # per pair; NaN for a both-censored one
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


# ---- power of the paired signed-rank test ------------------------------------------------------------------
#
# Exact null distribution of the signed-rank statistic W+ (sum of the ranks of the positive differences among
# n non-zero, untied differences): every sign pattern is equally likely, so the number of patterns with
# W+ = k is the number of subsets of {1..n} summing to k (a subset-sum count). scipy's exact two-sided
# p-value is 2 * P(W <= min(W+, W-)), capped at 1.

POWER_SIMULATIONS = 10000
POWER_SEED = 20240531


def signed_rank_null(n: int) -> np.ndarray:
    """Counts of sign patterns per W+ = 0 .. n(n+1)/2 for n non-zero differences (they sum to 2**n).

    >>> signed_rank_null(3).tolist()
    [1, 1, 1, 2, 1, 1, 1]
    """
    counts = np.zeros(n * (n + 1) // 2 + 1, dtype=object)  # exact integers, no overflow for large n
    counts[0] = 1
    for r in range(1, n + 1):
        counts[r:] = counts[r:] + counts[:-r].copy()
    return counts


def signed_rank_critical(n: int, alpha: float = 0.05) -> int:
    """The largest c with exact two-sided p = 2 P(W <= c) <= alpha: p < alpha needs min(W+, W-) <= c.

    -1 when no p <= alpha is possible with n pairs (the smallest p is 2 / 2**n).

    >>> [signed_rank_critical(n) for n in (5, 6, 7, 8, 10)]
    [-1, 0, 2, 3, 8]
    """
    if n < 1:
        return -1
    counts = signed_rank_null(n)
    cum = np.cumsum(counts)
    ok = np.flatnonzero([2 * int(c) <= alpha * 2**n for c in cum])
    return int(ok[-1]) if len(ok) else -1


def min_pairs(alpha: float = 0.05) -> int:
    """Smallest n whose exact two-sided signed-rank test can give p <= alpha: 2 / 2**n <= alpha.

    >>> min_pairs(0.05), min_pairs(0.01)
    (6, 8)
    """
    n = 1
    while 2.0 / 2**n > alpha:
        n += 1
    return n


def min_n_statement(n: int, alpha: float = 0.05) -> str:
    """What n informative pairs allow the exact two-sided signed-rank test at level alpha.

    >>> min_n_statement(5)
    'n=5 pairs: no p < 0.05 is possible (smallest two-sided p = 2/2^5 = 0.0625; needs n >= 6)'
    >>> min_n_statement(6)
    'n=6 pairs: p < 0.05 only if all 6 pairs agree (p = 2/2^6 = 0.03125)'
    """
    c = signed_rank_critical(n, alpha)
    smallest = 2.0 / 2**n if n >= 1 else float("nan")
    if c < 0:
        return (f"n={n} pairs: no p < {alpha:g} is possible (smallest two-sided p = 2/2^{n} = {smallest:.4g}; "
                f"needs n >= {min_pairs(alpha)})")
    if c == 0:
        return f"n={n} pairs: p < {alpha:g} only if all {n} pairs agree (p = 2/2^{n} = {smallest:.4g})"
    return f"n={n} pairs: p < {alpha:g} needs the rank sum of the disagreeing pairs <= {c} (of {n * (n + 1) // 2})"


def _wminus(z: np.ndarray, delta: float, sigma: float) -> np.ndarray:
    """W- (rank sum of the negative differences) of each row of delta + sigma * z."""
    d = delta + sigma * z
    ranks = np.argsort(np.argsort(np.abs(d), axis=1), axis=1) + 1
    return np.sum(np.where(d < 0, ranks, 0), axis=1)


def signed_rank_power(delta: float, sigma: float, n: int, alpha: float = 0.05,
                      n_sim: int = POWER_SIMULATIONS, seed: int = POWER_SEED) -> float:
    """Monte-Carlo power of the exact two-sided signed-rank test to find an effect in its direction.

    Model: n paired differences D_i ~ N(delta, sigma^2), delta > 0 the effect; power =
    P(W- <= c) with c = :func:`signed_rank_critical` (n, alpha). Common random numbers (a fixed
    seed), so the power is non-decreasing in delta (W+ counts the positive Walsh averages).
    For n = 6 (c = 0) the exact power is Phi(delta / sigma)^6.
    """
    c = signed_rank_critical(n, alpha)
    if c < 0:
        return 0.0
    if sigma == 0:
        return 1.0 if delta > 0 else 0.0
    z = np.random.default_rng(seed).standard_normal((n_sim, n))
    return float(np.mean(_wminus(z, delta, sigma) <= c))


def paired_power(d: np.ndarray, alpha: float = 0.05, power: float = 0.8, target_reduction: float = 0.15,
                 n_sim: int = POWER_SIMULATIONS, seed: int = POWER_SEED) -> dict:
    """Minimum detectable effect of the paired T@tau test from the observed paired log-speed-ups ``d``.

    ``d`` = log(T_vanilla / T_method) of the *informative* pairs (the non-zero differences the
    Wilcoxon test uses; both-censored ties already dropped). Method (documented):

    * minimum n: the exact two-sided test with n pairs can give p <= alpha only if
      2 / 2**n <= alpha (n >= 6 at alpha = 0.05; with n = 6 only if all six pairs agree, p = 2/64);
    * MDE: the smallest shift delta* of the log speed-up that the exact test detects (p < alpha in
      the method's favour) with probability ``power``, under D_i ~ N(delta, sigma^2) with sigma = the
      sample standard deviation (ddof = 1) of ``d``; by Monte-Carlo power (:func:`signed_rank_power`,
      ``n_sim`` draws, fixed seed) and bisection. Reported as the median relative T@tau reduction
      1 - exp(-delta*) (the median of T_m / T_v under the model is exp(-delta));
    * cross-check (``mde_reduction_asymptotic``): the normal approximation with the signed-rank
      test's asymptotic relative efficiency 3/pi vs the paired t-test (Noether 1987, Lehmann 1975):
      delta* = (z_{1-alpha/2} + z_power) * sigma * sqrt(pi / (3 n));
    * ``power_at_target``: the power to detect a ``target_reduction`` (C1's 15 %) median reduction;
      ``n_for_target``: the pairs the same normal approximation needs for it at ``power``,
      n = (z_{1-alpha/2} + z_power)^2 * sigma^2 * pi / (3 * log(1 / (1 - target))^2), at least n_min.

    ``underpowered`` = the MDE is larger than ``target_reduction`` (or no p < alpha is possible).

    >>> r = paired_power(np.array([0.1, -0.2, 0.3, 0.4, -0.1, 0.2]))
    >>> r["n"], r["n_min"], r["critical_w"], r["underpowered"]
    (6, 6, 0, True)
    """
    d = np.asarray(d, float)
    d = d[np.isfinite(d) & (d != 0)]
    n = int(len(d))
    crit = signed_rank_critical(n, alpha)
    sigma = float(np.std(d, ddof=1)) if n >= 2 else float("nan")
    out = {
        "method": "exact signed-rank test, Monte-Carlo power under a normal shift of the log speed-up",
        "n": n, "alpha": alpha, "power": power, "n_min": min_pairs(alpha), "critical_w": crit,
        "smallest_p": 2.0 / 2**n if n >= 1 else float("nan"), "statement": min_n_statement(n, alpha),
        "sigma_log_speedup": sigma, "observed_median_log_speedup": float(np.median(d)) if n else float("nan"),
        "mde_log_speedup": float("nan"), "mde_reduction": float("nan"), "mde_reduction_asymptotic": float("nan"),
        "target_reduction": target_reduction, "power_at_target": float("nan"), "n_for_target": float("nan"),
        "underpowered": True,
        "n_sim": n_sim,
    }
    za = sps.norm.ppf(1 - alpha / 2) + sps.norm.ppf(power)
    delta_target = -np.log1p(-target_reduction)
    if np.isfinite(sigma):
        out["n_for_target"] = max(out["n_min"], int(np.ceil(za**2 * sigma**2 * np.pi / (3 * delta_target**2))))
    if crit < 0:
        out.update(mde_log_speedup=float("inf"), mde_reduction=1.0, power_at_target=0.0)
        return out
    if not np.isfinite(sigma):
        return out
    out["mde_reduction_asymptotic"] = float(1 - np.exp(-za * sigma * np.sqrt(np.pi / (3 * n))))
    if sigma == 0:
        out.update(mde_log_speedup=0.0, mde_reduction=0.0, power_at_target=1.0, underpowered=False)
        return out
    z = np.random.default_rng(seed).standard_normal((n_sim, n))

    def pw(delta: float) -> float:
        return float(np.mean(_wminus(z, delta, sigma) <= crit))

    lo, hi = 0.0, sigma
    while pw(hi) < power:
        lo, hi = hi, 2 * hi
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if pw(mid) < power else (lo, mid)
    out["mde_log_speedup"] = hi
    out["mde_reduction"] = float(1 - np.exp(-hi))
    out["power_at_target"] = pw(delta_target)
    out["underpowered"] = bool(out["mde_reduction"] > target_reduction)
    return out
