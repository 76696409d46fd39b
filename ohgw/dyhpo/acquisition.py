"""DyHPO's multi-fidelity expected improvement (Wistuba et al., NeurIPS 2022, eq. 5).

Scores are oriented so that higher is better (the scheduler negates a metric in "min" mode).
A candidate is a configuration at its *next* budget: a paused trial at its current epochs plus
the increment, a new one at the first increment. Its EI is taken over the best score observed
*at that budget*; when no trial has reached that budget yet, over the best score observed at any
budget (the reference's ``calculate_fidelity_ymax``).

>>> round(float(expected_improvement(np.array([1.0]), np.array([1.0]), 1.0)[0]), 6)  # pdf(0)
0.398942
>>> best_at_budget([[0.1, 0.5], [0.3]], 2), best_at_budget([[0.1, 0.5], [0.3]], 3)
(0.5, 0.5)
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy.special import ndtr


def expected_improvement(mean: np.ndarray, std: np.ndarray, best: float | np.ndarray) -> np.ndarray:
    """E[max(f − best, 0)] for f ~ N(mean, std²), elementwise; 0 where std is 0 (as the reference)."""
    mean = np.asarray(mean, dtype=np.float64)
    std = np.asarray(std, dtype=np.float64)
    best = np.broadcast_to(np.asarray(best, dtype=np.float64), mean.shape)
    out = np.zeros_like(mean)
    ok = std > 0
    z = (mean[ok] - best[ok]) / std[ok]
    out[ok] = (mean[ok] - best[ok]) * ndtr(z) + std[ok] * np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)
    return out


def best_at_budget(curves: Sequence[Sequence[float]], budget: int) -> float | None:
    """The best finite score at epoch ``budget`` over ``curves`` (curve[e − 1] is epoch e), else the
    best finite score anywhere; None when there is none."""
    at = [c[budget - 1] for c in curves if len(c) >= budget and math.isfinite(c[budget - 1])]
    if at:
        return float(max(at))
    anywhere = [v for c in curves for v in c if math.isfinite(v)]
    return float(max(anywhere)) if anywhere else None


def rank(mean: np.ndarray, std: np.ndarray, budgets: Sequence[int], curves: Sequence[Sequence[float]]) -> np.ndarray:
    """Candidate indices by EI at their budgets, best first (ties: lower index first)."""
    bests = {b: best_at_budget(curves, b) for b in set(int(b) for b in budgets)}
    best = np.array([bests[int(b)] if bests[int(b)] is not None else -np.inf for b in budgets])
    ei = np.where(np.isfinite(best), expected_improvement(mean, std, np.where(np.isfinite(best), best, 0.0)), np.inf)
    return np.lexsort((np.arange(len(ei)), -ei))
