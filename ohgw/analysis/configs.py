"""What happens to configs: rung survival, x -> x' shift, promoted-config divergence, |g| vs benefit.

Rung levels (documented rule), per method: the distinct epochs at which the scheduler issued a
STOP or PAUSE decision (``iterations.decision``) to a trial, plus the studies' ``max_t``. When a
method has no decisions recorded (all ""), the distinct ``last_epoch`` values of its trials plus
``max_t`` are used instead. Trials with status STOPPED_BY_BUDGET, ERROR or DIVERGED never define
a rung (their last epoch is not a scheduler decision). Survival at rung r = share of a study's trials whose
``last_epoch`` >= r, averaged over the method's studies.

Shift x -> x' is measured in search coordinates u, the coordinates the warm-start step is taken
in: each hyper-parameter's transform ("log10" or "identity") comes from the search space the run
recorded (``studies.space``, :attr:`Results.transforms`), never from library defaults.

Promoted configs = trials whose ``last_epoch`` exceeds the method's first rung; the config of a
trial is x' where recorded, else x. Divergence between the promoted configs of a method and of its
vanilla partner (pooled over seeds): per psi, KL(method || vanilla) of 20-bin histograms over the
pooled range with 0.5 added to each bin count (named ``kl_hist``); jointly, the closed-form KL of
the two fitted multivariate Gaussians (named ``kl_gauss``).

>>> to_u(np.array([0.1, 0.01]), "log10")
array([-1., -2.])
>>> to_u(np.array([0.1, 0.01]), "identity")
array([0.1 , 0.01])
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy import stats as sps

from .load import AnalysisError, Results

KL_BINS = 20
# Trials that ended for reasons other than a scheduler decision never define a rung level.
NOT_RUNG_STATUSES = ("STOPPED_BY_BUDGET", "ERROR", "DIVERGED")


def to_u(x: np.ndarray, transform: str) -> np.ndarray:
    """Natural values ``x`` in search coordinates of ``transform`` (non-positive values under log10 -> NaN)."""
    x = np.asarray(x, float)
    if transform == "log10":
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(x > 0, np.log10(np.where(x > 0, x, 1.0)), np.nan)
    if transform == "identity":
        return x
    raise AnalysisError(f"transform: must be 'log10' or 'identity', got {transform!r}")


def rung_levels(res: Results) -> dict[str, list[float]]:
    """Rung levels per method by the rule in the module docstring."""
    it, tr, st = res.iterations, res.trials, res.studies
    out: dict[str, list[float]] = {}
    max_t = st.groupby("method")["max_t"].apply(lambda s: set(pd.to_numeric(s, errors="coerce").dropna()))
    ended = ~tr["status"].astype(str).isin(NOT_RUNG_STATUSES)
    term = tr.loc[ended, ["method", "seed", "trial_index"]]
    cut = it.loc[it["decision"].isin(["STOP", "PAUSE"]), ["method", "seed", "trial_index", "epoch"]]
    cut = cut.merge(term, on=["method", "seed", "trial_index"], how="inner")
    with_decisions = set(it.loc[it["decision"] != "", "method"])
    for m in res.methods:
        if m in with_decisions:
            levels = set(cut.loc[cut["method"] == m, "epoch"].dropna())
        else:
            terminated = tr.loc[(tr["method"] == m) & ended, "last_epoch"]
            levels = set(terminated.dropna())
        levels |= max_t.get(m, set())
        out[m] = sorted(float(v) for v in levels if v > 0)
    return out


def survival(res: Results, levels: dict[str, list[float]]) -> dict[str, dict]:
    """Per method: rung levels, mean share and mean count of a study's trials reaching each rung."""
    out = {}
    tr = res.trials
    for m in res.methods:
        lv = np.asarray(levels.get(m, []), float)
        sub = tr.loc[tr["method"] == m, ["sid", "last_epoch"]]
        shares, counts = [], []
        for _, g in sub.groupby("sid"):
            e = g["last_epoch"].to_numpy(float)
            c = (e[:, None] >= lv[None, :]).sum(axis=0)
            counts.append(c)
            shares.append(c / max(len(e), 1))
        out[m] = {
            "levels": lv.tolist(),
            "share": np.mean(shares, axis=0).tolist() if shares else [float("nan")] * len(lv),
            "count": np.mean(counts, axis=0).tolist() if counts else [float("nan")] * len(lv),
            "n_trials": float(sub.groupby("sid").size().mean()) if len(sub) else 0.0,
        }
    return out


# below this many values per group a box plot misleads: figures draw the values themselves
FEW_POINTS = 5

def shifts(res: Results) -> dict[str, dict[str, dict]]:
    """Per method whose x' differs from x somewhere, per psi: summary of du = u(x') - u(x) over its trials.

    With fewer than :data:`FEW_POINTS` trials the summary also keeps the values themselves (``values``),
    so a figure draws them instead of a box.
    """
    out: dict[str, dict[str, dict]] = {}
    tr = res.trials
    for m in res.methods:
        sub = tr.loc[tr["method"] == m]
        per: dict[str, dict] = {}
        for p in res.psi:
            if f"x_prime.{p}" not in sub.columns:
                continue
            tf = res.transforms[p]
            du = to_u(sub[f"x_prime.{p}"], tf) - to_u(sub[f"x.{p}"], tf)
            du = du[np.isfinite(du)]
            if len(du) == 0:
                continue
            q = np.quantile(du, [0.05, 0.25, 0.5, 0.75, 0.95])
            per[p] = {
                "n": int(len(du)), "mean": float(du.mean()), "std": float(du.std(ddof=1)) if len(du) > 1 else 0.0,
                "q05": float(q[0]), "q25": float(q[1]), "median": float(q[2]), "q75": float(q[3]), "q95": float(q[4]),
                "share_moved": float(np.mean(du != 0)),
            }
            if len(du) < FEW_POINTS:
                per[p]["values"] = [float(v) for v in du]
        if per and any(d["share_moved"] > 0 for d in per.values()):
            out[m] = per
    return out


def promoted_configs(res: Results, method: str, first_rung: float) -> pd.DataFrame:
    """u-coordinates (x' where recorded, else x) of the method's trials promoted past ``first_rung``."""
    tr = res.trials
    sub = tr.loc[(tr["method"] == method) & (tr["last_epoch"] > first_rung)]
    cols = {}
    for p in res.psi:
        x = sub[f"x.{p}"].to_numpy(float)
        if f"x_prime.{p}" in sub.columns:
            xp = sub[f"x_prime.{p}"].to_numpy(float)
            x = np.where(np.isfinite(xp), xp, x)
        cols[p] = to_u(x, res.transforms[p])
    return pd.DataFrame(cols, index=sub.index)


def kl_hist(p_samples: np.ndarray, q_samples: np.ndarray, bins: int = KL_BINS) -> float:
    """KL(P || Q) of histograms on common bins over the pooled range, 0.5 added to every bin."""
    p_samples = p_samples[np.isfinite(p_samples)]
    q_samples = q_samples[np.isfinite(q_samples)]
    if len(p_samples) < 2 or len(q_samples) < 2:
        return float("nan")
    lo, hi = min(p_samples.min(), q_samples.min()), max(p_samples.max(), q_samples.max())
    if hi <= lo:
        return 0.0
    edges = np.linspace(lo, hi, bins + 1)
    p = np.histogram(p_samples, edges)[0] + 0.5
    q = np.histogram(q_samples, edges)[0] + 0.5
    p, q = p / p.sum(), q / q.sum()
    return float(np.sum(p * np.log(p / q)))


def kl_gauss(p: np.ndarray, q: np.ndarray) -> float:
    """Closed-form KL(N_p || N_q) of Gaussians fitted to the rows of p and q (constant columns dropped)."""
    p = p[np.all(np.isfinite(p), axis=1)]
    q = q[np.all(np.isfinite(q), axis=1)]
    keep = (np.std(np.vstack([p, q]), axis=0) > 0) if len(p) and len(q) else np.array([], bool)
    p, q = p[:, keep], q[:, keep]
    k = p.shape[1]
    if k == 0 or len(p) <= k or len(q) <= k:
        return float("nan")
    mp, mq = p.mean(0), q.mean(0)
    sp = np.cov(p, rowvar=False).reshape(k, k) + 1e-12 * np.eye(k)
    sq = np.cov(q, rowvar=False).reshape(k, k) + 1e-12 * np.eye(k)
    sq_inv = np.linalg.inv(sq)
    d = mq - mp
    _, ldp = np.linalg.slogdet(sp)
    _, ldq = np.linalg.slogdet(sq)
    return float(0.5 * (np.trace(sq_inv @ sp) + d @ sq_inv @ d - k + ldq - ldp))


def promoted_divergence(res: Results, method: str, vanilla: str, levels: dict[str, list[float]]) -> dict:
    """kl_hist per psi and kl_gauss jointly between promoted configs of method and vanilla."""
    first = min((levels.get(method) or [np.inf])[0], (levels.get(vanilla) or [np.inf])[0])
    pm = promoted_configs(res, method, first)
    pv = promoted_configs(res, vanilla, first)
    return {
        "first_rung": float(first),
        "n_method": int(len(pm)),
        "n_vanilla": int(len(pv)),
        "kl_hist": {p: kl_hist(pm[p].to_numpy(), pv[p].to_numpy()) for p in res.psi},
        "kl_gauss": kl_gauss(pm.to_numpy(float), pv.to_numpy(float)) if res.psi else float("nan"),
        "mean_u_method": {p: _nanmean(pm[p]) for p in res.psi},
        "mean_u_vanilla": {p: _nanmean(pv[p]) for p in res.psi},
    }


def _nanmean(s: pd.Series) -> float:
    v = s.to_numpy(float)
    v = v[np.isfinite(v)]
    return float(v.mean()) if len(v) else float("nan")


def gradient_benefit(res: Results, method: str, n_bins: int = 5) -> dict | None:
    """|g| quantile bins per psi vs mean final-rank percentile (1 = best trial of its study).

    Returns None when the method recorded no non-zero hyper-gradient.
    """
    tr = res.trials.loc[res.trials["method"] == method].copy()
    gcols = [p for p in res.psi if f"g.{p}" in tr.columns]
    if not gcols or len(tr) == 0:
        return None
    g = np.abs(tr[[f"g.{p}" for p in gcols]].to_numpy(float))
    if not np.any(np.isfinite(g) & (g > 0)):
        return None
    tr["pct"] = tr.groupby("sid")["best_score"].rank(pct=True, method="average")
    rows, counts, rho, edges_out = [], [], {}, {}
    for j, p in enumerate(gcols):
        gj = g[:, j]
        ok = np.isfinite(gj) & np.isfinite(tr["pct"].to_numpy(float))
        row = [float("nan")] * n_bins
        cnt = [0] * n_bins
        if ok.sum() >= n_bins:
            ranks = pd.Series(gj[ok]).rank(method="first").to_numpy()
            b = np.minimum(((ranks - 1) * n_bins / ok.sum()).astype(int), n_bins - 1)
            pct = tr["pct"].to_numpy(float)[ok]
            for k in range(n_bins):
                sel = b == k
                cnt[k] = int(sel.sum())
                row[k] = float(pct[sel].mean()) if sel.any() else float("nan")
            edges_out[p] = np.quantile(gj[ok], np.linspace(0, 1, n_bins + 1)).tolist()
            with warnings.catch_warnings():  # constant |g| or ranks: rho is NaN, which the table shows
                warnings.simplefilter("ignore")
                r = sps.spearmanr(gj[ok], pct)
            rho[p] = {"rho": float(r.statistic), "p": float(r.pvalue), "n": int(ok.sum())}
        rows.append(row)
        counts.append(cnt)
    return {"psi": gcols, "bins": [f"q{k + 1}" for k in range(n_bins)], "mean_pct": rows, "count": counts,
            "edges": edges_out, "spearman": rho}
