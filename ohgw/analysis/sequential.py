"""Group-sequential paired analysis: look at the first n pairs every K seeds, stop when the answer is known.

**The statistic.** At a look over the first n pairs *in seed order* the standardised signed-rank
statistic of the paired log speed-ups d_i = log(T_vanilla / T_method) (> 0: the method is faster)::

    Z = sum_i sign(d_i) R_i / sqrt(sum_i R_i^2)

R_i the (mid-)ranks of |d_i| among the non-zero d_i. As in the fixed-n analysis (:mod:`.stats`) a
study that never reaches τ takes its censoring time and a pair whose two studies are both censored is
a tie (d = 0) that drops out. Why this statistic: it is the fixed-n analysis' own test (the final
look is its Wilcoxon test, normal-approximated, with the conditional variance that handles ties), it
needs neither a model nor a finite mean of the heavy-tailed, censored T@τ, and over growing prefixes
of exchangeable pairs it is asymptotically a Brownian motion in the information fraction t = n / N:
Z_k ≈ N(η sqrt(t_k), 1) with Corr(Z_j, Z_k) = sqrt(t_j / t_k) (the canonical joint distribution of
Jennison & Turnbull 2000, §3.1; for signed-rank statistics the invariance principles of Sen 1981,
*Sequential Nonparametrics*), which is all the boundary computation assumes. At small n the statistic
is discrete and its normal approximation slightly conservative (benchmarks/sequential_design.py
measures the level). The information fraction is the planned one (pairs looked at / N), so
the looks are fixed before any data (Lan & DeMets 1983 allow any such schedule).

**Efficacy** (two-sided, symmetric): reject at look k when |Z_k| >= c_k. Each side spends the
one-sided Lan–DeMets O'Brien–Fleming-type function at α/2 (Lan & DeMets 1983; DeMets & Lan 1994;
gsDesign's ``sfLDOF``, East's and rpact's "OF-type" two-sided design), so in all::

    α(t) = 4 - 4 Φ(z_{1-α/4} / sqrt(t))           (α(1) = α, two-sided)

solved look by look from P_0(|Z_1| < c_1, …, |Z_{k-1}| < c_{k-1}, |Z_k| >= c_k) = α(t_k) - α(t_{k-1})
by the recursive numerical integration of Armitage, McPherson & Rowe (1969), as in Jennison &
Turnbull 2000, ch. 19: the sub-density of the Brownian motion W(t) = Z sqrt(t) on the continuation
region is carried from look to look by convolution with the increment's normal density (Simpson's
rule on a fine grid; :func:`exit_probabilities`). A boundary above 8 is capped at 8 (its crossing
probability is below 1e-15).

**Futility** (non-binding: the efficacy boundaries are computed without it, so no α is recycled and
ignoring it keeps the level): stop when the conditional power for ``target_reduction`` falls below
``futility_power`` (default 10 %). Conditional power at look k of crossing the final upper boundary
given W_k = Z_k sqrt(t_k), under the drift η_r of a true median reduction r (the B-value formula of
Lan & Wittes 1988; Jennison & Turnbull 2000, §10.2)::

    CP_k = 1 - Φ((c_K - W_k - η_r (1 - t_k)) / sqrt(1 - t_k))

The drift of the signed-rank Z under a normal shift model d ~ N(δ, σ²), to first order in δ / σ
(the Pitman approximation: E[W+] = n p₁ + n(n-1)/2 p₂, p₂ = P(d_1 + d_2 > 0) = Φ(sqrt(2) δ / σ)
≈ ½ + δ / (σ sqrt(π)); Lehmann 1975, ch. 4), is η = sqrt(3 N / π) δ / σ: the signed-rank test's
efficiency 3/π against the paired t-test, the same relation as the fixed-n power note's cross-check
(:func:`.stats.paired_power`). So η_r = sqrt(3 N / π) δ_r / σ with δ_r = -log(1 - r) and σ the sample
standard deviation of the informative log speed-ups at the look (:func:`drift_for_shift`; its inverse
:func:`shift_for_drift` turns an estimated drift back into a shift of the log speed-up). The linear
relation does not saturate when every pair agrees (the exact p₂ would), so an estimate stays finite.

**Final analysis** by the stage-wise ordering (Armitage 1957; Tsiatis, Rosner & Mehta 1984;
Jennison & Turnbull 2000, §8.4): outcome (k', z') is more extreme upwards than the observed (k*, z*)
if it crossed the upper boundary at an earlier look (k' < k*), or k' = k* and z' >= z*. The adjusted
two-sided p-value is 2 min(P_0(≽ upper), P_0(≼ lower)); the median-unbiased drift η̃ solves
P_η̃(≽ observed) = ½ (its 1-α confidence interval: = α/2 and 1 - α/2). The drift is turned into a
shift of the log speed-up by the ratio of the naive estimates, δ̃ = δ̂ η̃ / η̂, with
δ̂ = -log(1 - the naive median reduction) and η̂ = Z_k / sqrt(t_k) (the fixed-n drift estimate): so a single look
reproduces the naive estimate, and the design only moves it by the factor the looks move the drift.
(Through σ, :func:`shift_for_drift`, is the fallback when δ̂ and η̂ disagree in sign or η̂ = 0: a
rank statistic is bounded, so when every pair agrees η̂ says little about δ's size.) The estimate is
reported as the median T@τ reduction 1 - exp(-δ̃). A study stopped for futility is analysed as if it
had continued (non-binding futility). The fixed-n numbers of the same n pairs, the exact Wilcoxon
p-value of the log speed-ups and the median reduction over the informative pairs, are given beside
them, labelled naive: they ignore the looks.

>>> design = SequentialDesign(max_pairs=16, look_every=4)
>>> design.looks, [round(float(c), 3) for c in design.boundaries]
([4, 8, 12, 16], [4.333, 2.963, 2.359, 2.014])
>>> look = design.look(1, np.log([1.5, 1.2, 2.0, 1.1]))
>>> look["decision"], round(look["z"], 3)
('continue', 1.826)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import optimize
from scipy import stats as sps

from .stats import censored_pairs, wilcoxon_paired

SETTINGS = {
    "alpha": 0.05,  # two-sided type-I error of the whole design
    "target_reduction": 0.15,  # median T@tau reduction the futility rule asks about (C1's threshold), fraction
    "futility_power": 0.10,  # stop for futility below this conditional power, probability
    "grid_per_sd": 24,  # Simpson grid points per standard deviation of the smallest increment
    "max_boundary": 8.0,  # z; a boundary above it is capped (crossing probability < 1e-15)
}
DECISIONS = ("continue", "efficacy", "harm", "futility", "final")
#: one sentence per decision, completed with the method and its partner
SENTENCES = {
    "efficacy": "{m} is faster than {v}: the efficacy boundary was crossed",
    "harm": "{m} is slower than {v}: the lower efficacy boundary was crossed",
    "futility": "{m} cannot reach the {r:.0%} target reduction over {v}: conditional power fell below {fp:.0%}",
    "final": "no difference between {m} and {v} was shown at the last look",
    "continue": "no decision yet on {m} vs {v}: the next look needs more pairs",
}


def obf_spending(t, alpha: float = SETTINGS["alpha"]) -> np.ndarray:
    """Two-sided α spent by information fraction ``t``: Lan–DeMets O'Brien–Fleming type.

    >>> round(float(obf_spending(1.0)), 6), round(float(obf_spending(0.5)), 6)
    (0.05, 0.003051)
    """
    t = np.asarray(t, float)
    with np.errstate(divide="ignore"):
        return 4.0 * sps.norm.sf(sps.norm.isf(alpha / 4) / np.sqrt(t))


def _simpson(b: float, h: float) -> tuple[np.ndarray, np.ndarray]:
    """Points and Simpson weights on [-b, b] with spacing at most ``h`` (an odd number of points)."""
    m = 2 * max(1, math.ceil(b / h)) + 1
    w, step = np.linspace(-b, b, m, retstep=True)
    wts = np.full(m, 2.0)
    wts[1::2] = 4.0
    wts[0] = wts[-1] = 1.0
    return w, wts * step / 3.0


def _propagate(u: np.ndarray, q: np.ndarray, b: float, dt: float, shift: float, h: float):
    """Carry the continuation sub-density (masses q at points u) to the grid of (-b, b) after dt."""
    w, wts = _simpson(b, h)
    sd = math.sqrt(dt)
    dens = sps.norm.pdf((w[:, None] - u[None, :] - shift) / sd) @ q / sd
    return w, wts * dens


def exit_probabilities(boundaries, fractions, drift: float = 0.0,
                       grid_per_sd: int = SETTINGS["grid_per_sd"]) -> tuple[np.ndarray, np.ndarray]:
    """P(first crossing at look k, upwards) and (downwards) for Z_k = W(t_k) / sqrt(t_k), W(t) ~ N(drift t, t).

    Armitage–McPherson–Rowe recursion (Jennison & Turnbull 2000, ch. 19); ``drift`` = E[Z at t = 1].

    >>> up, low = exit_probabilities([1.959964], [1.0])
    >>> round(float(up[0] + low[0]), 6)
    0.05
    """
    c, t = np.asarray(boundaries, float), np.asarray(fractions, float)
    _check_fractions(t)
    h = np.sqrt(np.diff(np.r_[0.0, t]).min()) / grid_per_sd
    u, q, prev = np.zeros(1), np.ones(1), 0.0
    up, low = np.zeros(len(t)), np.zeros(len(t))
    for k, (ck, tk) in enumerate(zip(c, t, strict=True)):
        dt, b = tk - prev, ck * math.sqrt(tk)
        mean = u + drift * dt
        up[k] = q @ sps.norm.sf((b - mean) / math.sqrt(dt))
        low[k] = q @ sps.norm.cdf((-b - mean) / math.sqrt(dt))
        if k + 1 < len(t):
            u, q = _propagate(u, q, b, dt, drift * dt, h)
        prev = tk
    return up, low


def _check_fractions(t: np.ndarray) -> None:
    if len(t) == 0 or t[0] <= 0 or t[-1] > 1 + 1e-12 or np.any(np.diff(t) <= 0):
        raise ValueError(f"fractions: must increase within (0, 1], got {t.tolist()}")


def efficacy_boundaries(fractions, alpha: float = SETTINGS["alpha"],
                        grid_per_sd: int = SETTINGS["grid_per_sd"]) -> np.ndarray:
    """Critical |z| per look spending :func:`obf_spending` (two-sided, symmetric).

    >>> [round(float(c), 3) for c in efficacy_boundaries([0.2, 0.4, 0.6, 0.8, 1.0])]
    [4.877, 3.357, 2.68, 2.29, 2.031]
    """
    if not 0 < alpha < 0.5:
        raise ValueError(f"alpha: must be in (0, 0.5), got {alpha}")
    t = np.asarray(fractions, float)
    _check_fractions(t)
    spend = np.diff(np.r_[0.0, obf_spending(t, alpha)])
    h = np.sqrt(np.diff(np.r_[0.0, t]).min()) / grid_per_sd
    cap = SETTINGS["max_boundary"]
    u, q, prev, out = np.zeros(1), np.ones(1), 0.0, []
    for tk, s in zip(t, spend, strict=True):
        dt = tk - prev
        sd = math.sqrt(dt)

        def excess(c, u=u, q=q, tk=tk, sd=sd, s=s):
            b = c * math.sqrt(tk)
            return float(q @ (sps.norm.sf((b - u) / sd) + sps.norm.cdf((-b - u) / sd))) - s

        ck = cap if excess(cap) >= 0 else optimize.brentq(excess, 0.0, cap, xtol=1e-10)
        out.append(ck)
        u, q = _propagate(u, q, ck * math.sqrt(tk), dt, 0.0, h)
        prev = tk
    return np.array(out)


def signed_rank_z(d) -> float:
    """Standardised signed-rank statistic of ``d`` (zeros dropped, mid-ranks for ties); 0 when all are 0.

    >>> round(signed_rank_z([0.5, -0.1, 0.3, 0.0]), 4)  # ranks 3, 1, 2: (3 - 1 + 2) / sqrt(14)
    1.069
    """
    d = np.asarray(d, float)
    d = d[np.isfinite(d) & (d != 0)]
    if not len(d):
        return 0.0
    r = sps.rankdata(np.abs(d))
    return float(np.sum(np.sign(d) * r) / np.sqrt(np.sum(r**2)))


def drift_for_shift(delta, sigma, n_max: int) -> np.ndarray:
    """E[Z at t = 1] of the signed-rank statistic over ``n_max`` pairs when d ~ N(delta, sigma²).

    >>> round(float(drift_for_shift(0.0, 1.0, 16)), 6), round(float(drift_for_shift(0.5, 1.0, 12)), 6)
    (0.0, 1.692569)
    """
    return np.sqrt(3.0 * n_max / np.pi) * np.asarray(delta, float) / sigma


def shift_for_drift(eta, sigma, n_max: int) -> np.ndarray:
    """Inverse of :func:`drift_for_shift`: the normal shift δ of the log speed-up with that drift.

    >>> round(float(shift_for_drift(drift_for_shift(0.3, 0.8, 16), 0.8, 16)), 6)
    0.3
    """
    return np.asarray(eta, float) * sigma / np.sqrt(3.0 * n_max / np.pi)


def conditional_power(z, t, c_final: float, drift) -> np.ndarray:
    """Lan–Wittes conditional power of crossing ``c_final`` at t = 1 given Z = ``z`` at ``t`` and ``drift``.

    >>> round(float(conditional_power(0.0, 0.5, 1.96, 0.0)), 4)  # 1 - Phi(1.96 / sqrt(0.5))
    0.0028
    """
    z, t = np.asarray(z, float), np.asarray(t, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return sps.norm.sf((c_final - z * np.sqrt(t) - drift * (1 - t)) / np.sqrt(1 - t))


def log_speedups(t_m, reached_m, t_v, reached_v) -> np.ndarray:
    """log(T_v / T_m) per pair, both-censored pairs as ties (0), censored studies at their end (:mod:`.stats`)."""
    x, y, both = censored_pairs(t_m, reached_m, t_v, reached_v)
    with np.errstate(divide="ignore", invalid="ignore"):
        d = np.log(y / x)
    d[both] = 0.0
    return d


def _sigma(d: np.ndarray) -> np.ndarray:
    """Sample sd (ddof 1) of the informative (non-zero) d per row of a 2-D array; NaN below two."""
    inf = np.isfinite(d) & (d != 0)
    n = inf.sum(axis=1)
    x = np.where(inf, d, 0.0)
    mean = x.sum(axis=1) / np.maximum(n, 1)
    ss = np.where(inf, (x - mean[:, None]) ** 2, 0.0).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(n >= 2, np.sqrt(ss / (n - 1)), np.nan)


@dataclass(frozen=True)
class SequentialDesign:
    """Looks every ``look_every`` pairs up to ``max_pairs``; efficacy, futility and the final analysis.

    >>> SequentialDesign(max_pairs=10, look_every=4).looks
    [4, 8, 10]
    """

    max_pairs: int
    look_every: int
    alpha: float = SETTINGS["alpha"]
    target_reduction: float = SETTINGS["target_reduction"]
    futility_power: float = SETTINGS["futility_power"]
    boundaries: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        check_design(self.max_pairs, self.look_every, self.alpha, self.target_reduction, self.futility_power)
        object.__setattr__(self, "boundaries", efficacy_boundaries(self.fractions, self.alpha))

    @property
    def looks(self) -> list[int]:
        """Pairs analysed at each look."""
        return sorted({*range(self.look_every, self.max_pairs + 1, self.look_every), self.max_pairs})

    @property
    def fractions(self) -> np.ndarray:
        return np.array(self.looks, float) / self.max_pairs

    def to_dict(self) -> dict:
        return {"max_pairs": self.max_pairs, "look_every": self.look_every, "alpha": self.alpha,
                "target_reduction": self.target_reduction, "futility_power": self.futility_power,
                "looks": self.looks, "boundaries": [float(c) for c in self.boundaries],
                "spending": "Lan-DeMets O'Brien-Fleming type, two-sided", "statistic": "standardised signed rank"}

    def decide(self, k: int, z, sigma) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(decision index into DECISIONS, conditional power, futility bound on z) at look ``k`` (1-based)."""
        z = np.asarray(z, float)
        c, t, last = self.boundaries[k - 1], self.fractions[k - 1], k == len(self.looks)
        with np.errstate(divide="ignore", invalid="ignore"):  # sigma 0 (all pairs alike): any target is certain
            eta = drift_for_shift(-math.log1p(-self.target_reduction), np.asarray(sigma, float), self.max_pairs)
        cp = conditional_power(z, t, self.boundaries[-1], eta)
        zf = (self.boundaries[-1] - eta * (1 - t) - np.sqrt(1 - t) * sps.norm.isf(self.futility_power)) / np.sqrt(t)
        out = np.zeros(z.shape, int)
        if not last:
            out = np.where(np.isfinite(cp) & (cp < self.futility_power), DECISIONS.index("futility"), out)
        else:
            out[...] = DECISIONS.index("final")
            cp, zf = np.full(z.shape, np.nan), np.full(z.shape, np.nan)
        out = np.where(z <= -c, DECISIONS.index("harm"), out)
        out = np.where(z >= c, DECISIONS.index("efficacy"), out)
        return out, cp, zf

    def look(self, k: int, d) -> dict:
        """The look ``k`` (1-based) at the log speed-ups ``d`` of the first ``looks[k-1]`` pairs in seed order."""
        d = np.asarray(d, float)
        if not 1 <= k <= len(self.looks) or len(d) != self.looks[k - 1]:
            raise ValueError(f"k: look {k} analyses {self.looks[k - 1] if 1 <= k <= len(self.looks) else '?'} "
                             f"pairs, got {len(d)}")
        z = signed_rank_z(d)
        sigma = float(_sigma(d[None, :])[0])
        dec, cp, zf = self.decide(k, z, sigma)
        return {"look": k, "n": int(len(d)), "fraction": float(self.fractions[k - 1]), "z": z,
                "upper": float(self.boundaries[k - 1]), "lower": -float(self.boundaries[k - 1]),
                "futility_z": _num(zf), "conditional_power": _num(cp), "sigma": sigma,
                "decision": DECISIONS[int(dec)]}

    def stagewise(self, k: int, z: float, drift: float = 0.0) -> tuple[float, float]:
        """(P(≽ (k, z)), P(≼ (k, z))) under ``drift`` in the stage-wise ordering."""
        c, t = self.boundaries[:k], self.fractions[:k]
        # at look k the observed z takes the place of the boundary: P(reach k, Z_k >= |z|), P(reach k, Z_k <= -|z|)
        up, low = exit_probabilities(np.r_[c[:-1], abs(z)], t, drift)
        up0, low0 = up[:-1].sum(), low[:-1].sum()
        reach = 1.0 - up0 - low0
        if z >= 0:
            return float(up0 + up[-1]), float(low0 + reach - up[-1])
        return float(up0 + reach - low[-1]), float(low0 + low[-1])

    def final(self, k: int, d) -> dict:
        """The final analysis at look ``k`` (the stopping look): adjusted and naive p and median reduction."""
        lk = self.look(k, d)
        z, sigma = lk["z"], lk["sigma"]
        p_up, p_low = self.stagewise(k, z)

        def excess(eta: float, target: float) -> float:
            return self.stagewise(k, z, eta)[0] - target

        d = np.asarray(d, float)
        informative = d[np.isfinite(d) & (d != 0)]
        # the fixed-n analysis' median reduction: 1 - median of T_m / T_v over the informative pairs
        naive_reduction = float(1 - np.median(np.exp(-informative))) if len(informative) else float("nan")
        delta_naive = -math.log1p(-naive_reduction) if naive_reduction < 1 else float("nan")
        eta_naive = z / math.sqrt(self.fractions[k - 1])
        if eta_naive != 0 and delta_naive * eta_naive > 0:
            scale = delta_naive / eta_naive  # log speed-up per unit of drift, as the naive estimates relate them
        else:
            scale = float(shift_for_drift(1.0, sigma, self.max_pairs)) if math.isfinite(sigma) else float("nan")
        est = {}
        for name, target in (("median_unbiased", 0.5), ("ci_low", self.alpha / 2), ("ci_high", 1 - self.alpha / 2)):
            reach = (abs(z) + 10.0) / math.sqrt(self.fractions[k - 1])  # E[Z_k] = ±(|z| + 10): P(≽) is 0 or 1
            eta = optimize.brentq(excess, -reach, reach, args=(target,), xtol=1e-8)
            est[name] = float(1 - math.exp(-eta * scale))
            est[f"{name}_drift"] = float(eta)
        naive = wilcoxon_paired(d, np.zeros(len(d)))
        return {
            "stopping_look": k, "n": lk["n"], "decision": lk["decision"], "z": z,
            "p_adjusted": float(min(1.0, 2 * min(p_up, p_low))),
            "median_reduction_adjusted": est["median_unbiased"],
            "median_reduction_ci": [est["ci_low"], est["ci_high"]], "drift_adjusted": est["median_unbiased_drift"],
            "method": "stage-wise ordering (Tsiatis, Rosner & Mehta 1984; Jennison & Turnbull 2000, sec. 8.4)",
            "naive_p": naive["p"], "naive_median_reduction": naive_reduction,
        }


def _num(x) -> float:
    v = float(np.asarray(x))
    return v if math.isfinite(v) else float("nan")


def check_design(max_pairs: int, look_every: int, alpha: float, target_reduction: float,
                 futility_power: float = SETTINGS["futility_power"]) -> None:
    """One ValueError naming the flag for each bad design setting."""
    if not isinstance(max_pairs, int) or max_pairs < 2:
        raise ValueError(f"--max-seeds: must be an integer >= 2, got {max_pairs}")
    if not isinstance(look_every, int) or not 2 <= look_every <= max_pairs:
        raise ValueError(f"--look-every: must be between 2 and --max-seeds ({max_pairs}), got {look_every}")
    if not 0 < alpha < 0.5:
        raise ValueError(f"--alpha: must be in (0, 0.5), got {alpha}")
    if not 0 < target_reduction < 1:
        raise ValueError(f"--target-reduction: must be in (0, 1), got {target_reduction}")
    if not 0 < futility_power < 1:
        raise ValueError(f"futility_power: must be in (0, 1), got {futility_power}")


LOOKS_FILE = "sequential.json"  # in the results directory: the design, every look, the final analysis


def seed_log_speedups(res, method: str, partner: str, tau: float, clock: str = "compute") -> dict[int, float]:
    """{seed: log(T_partner / T_method)} over the seeds that have both studies in ``res`` (a loaded Results).

    T@τ on ``clock`` (:mod:`.ttt`), ``tau`` in the metric's own direction; both-censored pairs are 0.
    """
    from . import ttt

    T, reached = ttt.time_to_target(ttt.curves(res, clock), res.sign * tau)
    st = res.studies[["method", "seed"]].assign(T=T, reached=reached)
    m = st[st["method"] == method].set_index("seed")
    v = st[st["method"] == partner].set_index("seed")
    seeds = sorted(set(m.index) & set(v.index))
    d = log_speedups(m.loc[seeds, "T"].to_numpy(float), m.loc[seeds, "reached"].to_numpy(bool),
                     v.loc[seeds, "T"].to_numpy(float), v.loc[seeds, "reached"].to_numpy(bool))
    return {int(s): float(x) for s, x in zip(seeds, d, strict=True)}


def read_looks(results_dir) -> dict:
    """The sequential study's record in ``results_dir`` ({} when the experiment ran a fixed number of seeds)."""
    import json
    from pathlib import Path

    path = Path(results_dir) / LOOKS_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def decision_sentence(record: dict) -> str:
    """The sequential study's decision in one sentence.

    >>> decision_sentence({"method": "a+o", "partner": "a", "design": {"target_reduction": 0.15,
    ...     "futility_power": 0.1, "max_pairs": 16}, "looks": [{"look": 2, "n": 8, "decision": "efficacy"}],
    ...     "final": {"p_adjusted": 0.01, "median_reduction_adjusted": 0.3}})
    'Stopped at look 2 (8 of 16 pairs): a+o is faster than a: the efficacy boundary was crossed (adjusted p = 0.01, median T@tau reduction 30.0 %).'
    """
    looks, design = record.get("looks", []), record.get("design", {})
    if not looks:
        return "No look yet: fewer pairs are complete than the first look needs."
    last = looks[-1]
    text = SENTENCES[last["decision"]].format(m=record["method"], v=record["partner"],
                                              r=design["target_reduction"], fp=design["futility_power"])
    where = f"look {last['look']} ({last['n']} of {design['max_pairs']} pairs)"
    final = record.get("final")
    tail = (f" (adjusted p = {final['p_adjusted']:.3g}, median T@tau reduction "
            f"{100 * final['median_reduction_adjusted']:.1f} %)" if final else "")
    lead = f"Stopped at {where}" if last["decision"] != "continue" else f"Last {where}"
    return f"{lead}: {text}{tail}."


def _signed_rank_z_rows(d: np.ndarray) -> np.ndarray:
    """:func:`signed_rank_z` of every row of ``d`` (zeros dropped, mid-ranks), vectorised."""
    nz = d != 0
    a = np.where(nz, np.abs(d), np.inf)  # zeros rank last and are masked out
    r = np.where(nz, sps.rankdata(a, axis=1), 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = np.sum(np.sign(d) * r, axis=1) / np.sqrt(np.sum(r**2, axis=1))
    return np.where(nz.any(axis=1), z, 0.0)


def simulate(design: SequentialDesign, delta: float, sigma: float, n_sequences: int, seed: int = 0,
             futility: bool = True, chunk: int = 5000) -> dict:
    """Run ``design`` on ``n_sequences`` sequences of paired log speed-ups d ~ N(delta, sigma²).

    Every look uses the same :meth:`SequentialDesign.decide` as a real study (without the futility
    rule when ``futility`` is false: the efficacy boundaries alone). Returns per sequence
    the stopping look (1-based), its decision (index into :data:`DECISIONS`) and the pairs used.

    >>> r = simulate(SequentialDesign(8, 4), 0.0, 1.0, 200)
    >>> r["look"].shape, set(r["pairs"]) <= {4, 8}
    ((200,), True)
    """
    rng = np.random.default_rng(seed)
    looks = design.looks
    out_look, out_dec = [], []
    for start in range(0, n_sequences, chunk):
        m = min(chunk, n_sequences - start)
        d = rng.normal(delta, sigma, (m, design.max_pairs))
        look = np.full(m, len(looks))
        dec = np.full(m, DECISIONS.index("final"))
        active = np.ones(m, bool)
        for k, n in enumerate(looks, 1):
            idx = np.flatnonzero(active)
            if not len(idx):
                break
            part = d[idx, :n]
            sd = _sigma(part) if futility else np.full(len(idx), np.nan)  # no sigma: no futility stop
            kd, _, _ = design.decide(k, _signed_rank_z_rows(part), sd)
            stop = kd != DECISIONS.index("continue")
            look[idx[stop]], dec[idx[stop]] = k, kd[stop]
            active[idx[stop]] = False
        out_look.append(look)
        out_dec.append(dec)
    look, dec = np.concatenate(out_look), np.concatenate(out_dec)
    return {"look": look, "decision": dec, "pairs": np.array(looks)[look - 1]}


def rejection_rate(sim: dict, alpha: float = 0.05) -> tuple[float, tuple[float, float]]:
    """Share of simulated sequences whose efficacy boundary was crossed (either side), with its 95 %
    Clopper–Pearson interval (scipy's ``binomtest``)."""
    hits = np.isin(sim["decision"], [DECISIONS.index("efficacy"), DECISIONS.index("harm")])
    ci = sps.binomtest(int(hits.sum()), len(hits)).proportion_ci(0.95, method="exact")
    return float(hits.mean()), (float(ci.low), float(ci.high))


def summary(results_dir) -> dict:
    """What summary.json carries of a sequential run: its record (design, every look's statistic, boundaries
    and decision, the final analysis) and the decision in one sentence; {} for a fixed number of seeds."""
    record = read_looks(results_dir)
    return {**record, "statement": decision_sentence(record)} if record else {}
