"""The analysis itself: from a loaded experiment to a :class:`Summary` (all numbers, no pictures).

Per study: T@tau on the three clocks (censored at the study end when tau is never reached), best
final validation score (the best report's score; the test score *of that same report*), AUC of the
best-so-far curve. Per method: fraction reaching tau, median/IQR and seed-wise std of T@tau, best
final scores, AUC. Per (method, vanilla partner): paired-by-seed speed-ups and Wilcoxon tests,
overhead, memory, hyper-parameter shift and promoted-config divergence, and the four success
criteria of RESEARCH.md, each PASS/FAIL with its measured value (never assumed).

Success criteria (method m vs its vanilla partner v, pairs by seed):

* C1 time: median over pairs of 1 - T_m/T_v >= 15 % and Wilcoxon p < 0.05 (per clock);
* C2 score: median over pairs of (best_v - best_m) / |best_v| <= 0.2 % (validation score);
* C3 cost: extra compute = sum(ws_compute_s) / sum(compute_s - ws_compute_s) over m's studies
  <= 5 %, minus the same share of v (normally 0), and median over pairs of peak_m / peak_v - 1 <= 10 %
  (``studies.peak_rss_mib``);
* C4 stability: std_m / std_v - 1 of T@tau over the paired seeds <= 10 % (per clock).

A criterion that cannot be measured (too few pairs, NaN) is a FAIL with the reason.

Notes beside PASS/FAIL (they never change it):

* power (C1, per pair and clock; :func:`.stats.paired_power`): the exact two-sided signed-rank test
  needs n >= 6 informative pairs for any p < 0.05 (n = 6: only if all six agree, p = 2/64); the
  minimum detectable median T@tau reduction at 80 % power, from the observed spread of the paired
  log speed-ups. A study whose MDE exceeds the 15 % target is labelled "underpowered";
* epoch length (C3; :func:`_epoch_share`): the warm-start costs about a fixed number of training
  steps, so its share of the compute scales with 1 / (steps per epoch). The measured warm-start
  share of one epoch and the extra compute are projected to a target epoch length (default the
  CIFAR-10 ResNet-20 epoch, 390 steps of 128 images). A compute FAIL that the projection turns into
  a pass is labelled "artefact of a short epoch".
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import configs, sequential, stats, ttt
from .load import CLOCKS, AnalysisError, Results, warn

RULES = (
    "T@tau on a clock = the smallest clock value of a report whose validation score reaches tau (the first moment "
    "the study's best-so-far reaches tau); 'min' metrics are negated so that higher is better.",
    "A study that never reaches tau is right-censored at its end on that clock (studies.wall_s / compute_s / "
    "epoch_equiv, or its last report if later); it is kept, never dropped.",
    "Median and IQR rank censored studies above every observed time (type-7 interpolation); a quantile that needs "
    "a censored study is reported as '>budget' (null in summary.json, with a *_censored flag).",
    "Pairs are joined on the seed; a seed missing for one method drops that pair only, with a warning.",
    "Censored pairs: a censored study takes its budget (end) value and is ranked as such; a pair where both studies "
    "are censored is a tie (difference 0) that the two-sided Wilcoxon signed-rank test drops (zero_method='wilcox').",
    "Speed-up = median of T_vanilla / T_method; reduction = 1 - median of T_method / T_vanilla; both over the "
    "informative pairs (at least one study of the pair reached tau): a both-censored pair says nothing of which method is faster, so it "
    "is counted (both cens.) but has no ratio.",
    "Seed-wise std of T@tau uses censored studies at their budget value (ddof = 1).",
    "Best final score = the study's best validation report; its test score is that same report's test score.",
    "AUC = mean best-so-far score over [0, H], H = earliest study end on that clock; the worst score seen fills the "
    "time before a study's first report.",
    "Rung levels = epochs of scheduler STOP/PAUSE decisions (else trials' last epochs) plus max_t; trials stopped "
    "by the budget, failed or diverged never define a rung.",
    "Shift x -> x' and promoted-config divergence are in the run's search coordinates (each psi's transform as "
    "recorded in studies.space); KL(method || vanilla): kl_hist per psi (20 bins, +0.5 per bin), kl_gauss joint "
    "(fitted Gaussians).",
    "Extra compute (C3) = warm-start compute / (total compute - warm-start compute), minus the partner's; extra "
    "memory = median over pairs of studies.peak_rss_mib ratio - 1. GPU-hours = compute_s * gpus_per_trial / 3600.",
    "Power (C1 note): exact two-sided signed-rank test over the n informative pairs (both-censored ties dropped); "
    "p < 0.05 needs n >= 6. MDE = smallest median T@tau reduction 1 - exp(-delta) found (p < 0.05, in the method's "
    "favour) with 80 % power when the paired log speed-ups log(T_v / T_m) are N(delta, sd^2), sd = their observed "
    "sample std; Monte-Carlo power (fixed seed) and bisection. Underpowered = MDE > 15 % (the C1 target).",
    "Epoch length (C3 note): warm-start share of an epoch = median over warm-started trials of ws_compute_s / "
    "((trial_compute_s - ws_compute_s) / last_epoch); the epoch's length in steps of 128 images = median over "
    "reports of epoch_s x samples_per_s / 128 (both wall-clock, so load-independent; evaluation included). "
    "Projection to a target epoch of S steps: share and extra compute x (measured steps / S), same schedule.",
)
POWER = {"alpha": 0.05, "power": 0.80, "target_reduction": 0.15, "n_sim": stats.POWER_SIMULATIONS,
         "seed": stats.POWER_SEED}
TARGET_STEPS_PER_EPOCH = 390.0  # CIFAR-10 ResNet-20: 50 000 training images / batch 128
STEP_BATCH = 128  # images per step of the epoch-length unit
FAR_EPOCH_RATIO = 0.25  # an epoch shorter than this share of the target's is "far from" it
THRESHOLDS = {"C1_reduction": 0.15, "C1_alpha": 0.05, "C2_drop": 0.002, "C3_compute": 0.05, "C3_memory": 0.10,
              "C4_std": 0.10}
N_PROFILE = 21
N_GRID = 200


@dataclass
class Summary:
    """Every number of one experiment's analysis; ``to_dict()`` is summary.json."""

    results_dir: str
    experiment: str
    metric: str
    mode: str
    tau: float
    tau_source: str
    primary_clock: str
    compute_unit: str
    methods: list[str]
    partners: dict[str, str]
    per_study: pd.DataFrame
    per_method: dict[str, dict]
    pairs: dict[str, dict]
    overhead: dict[str, dict]
    rungs: dict[str, list[float]]
    survival: dict[str, dict]
    shift: dict[str, dict]
    divergence: dict[str, dict]
    gradient_benefit: dict[str, dict]
    profiles: dict[str, Any]
    curves: dict[str, dict]
    criteria: list[dict]
    best_score_seen: float
    warnings: list[str] = field(default_factory=list)
    epoch_target: dict = field(default_factory=dict)
    html_path: str | None = None
    json_path: str | None = None
    static_figures: list[str] = field(default_factory=list)
    sequential: dict = field(default_factory=dict)  # a --seeds auto run's looks (:mod:`.sequential`); {} if none

    def verdict(self, method: str) -> str:
        """PASS when every criterion row of ``method`` on the primary clock passes, else FAIL."""
        rows = [r for r in self.criteria if r["method"] == method and r["clock"] in ("", self.primary_clock)]
        return "PASS" if rows and all(r["result"] == "PASS" for r in rows) else "FAIL"

    def verdict_notes(self, method: str) -> list[str]:
        """The notes (underpowered, epoch-length artefact) of ``method``'s criteria on the primary clock."""
        return [f"{r['criterion'][:2]}: {r['note']}" for r in self.criteria
                if r["method"] == method and r["clock"] in ("", self.primary_clock) and r.get("note")]

    def to_dict(self) -> dict:
        out = {
            "results_dir": self.results_dir, "experiment": self.experiment, "metric": self.metric, "mode": self.mode,
            "tau": self.tau, "tau_source": self.tau_source, "primary_clock": self.primary_clock,
            "clocks": {"wall": "wall seconds", "compute": self.compute_unit, "epochs": "epoch-equivalents"},
            "best_score_seen": self.best_score_seen,
            "methods": self.methods, "partners": self.partners,
            "per_method": self.per_method, "pairs": self.pairs, "overhead": self.overhead,
            "criteria": self.criteria, "thresholds": THRESHOLDS, "rules": list(RULES),
            "power_settings": POWER, "epoch_target": self.epoch_target,
            "verdicts": {m: self.verdict(m) for m in self.partners},
            "verdict_notes": {m: self.verdict_notes(m) for m in self.partners},
            "rungs": self.rungs, "survival": self.survival, "shift": self.shift, "divergence": self.divergence,
            "gradient_benefit": self.gradient_benefit, "profiles": self.profiles,
            "studies": self.per_study.to_dict(orient="records"),
            "warnings": self.warnings, "html_path": self.html_path, "static_figures": self.static_figures,
            "sequential": self.sequential,
        }
        return jsonable(out)


def jsonable(obj):
    """Plain JSON types; NaN and +-inf become null (T@tau beyond the budget is recorded as censored)."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return [jsonable(v) for v in obj.tolist()]
    if isinstance(obj, bool | np.bool_):
        return bool(obj)
    if isinstance(obj, int | np.integer):
        return int(obj)
    if isinstance(obj, float | np.floating):
        return float(obj) if math.isfinite(obj) else None
    if obj is None or isinstance(obj, str):
        return obj
    if obj is pd.NA or obj is pd.NaT:
        return None
    return str(obj)


def _resolve_tau(res: Results, tau: float | None) -> tuple[float, str]:
    if tau is not None:
        if not isinstance(tau, int | float) or not math.isfinite(tau):
            raise AnalysisError(f"tau: must be a finite number, got {tau!r}")
        return float(tau), "--tau"
    values = res.studies["tau"].dropna().unique()
    if len(values) == 0:
        raise AnalysisError("tau: the studies carry no tau (all NaN); pass --tau VALUE")
    if len(values) > 1:
        raise AnalysisError(f"tau: the studies disagree on tau {sorted(values.tolist())}; pass --tau VALUE")
    return float(values[0]), "studies"


def _best_final(res: Results) -> pd.DataFrame:
    """Per sid: best validation score seen (higher-better) and the test score of that report."""
    it = res.iterations[["sid", "score", "test", "wall_s"]]
    it = it[np.isfinite(it["score"].to_numpy())]
    n = len(res.studies)
    best = np.full(n, np.nan)
    test = np.full(n, np.nan)
    if len(it):
        o = it.sort_values(["sid", "score", "wall_s"], ascending=[True, False, True], kind="stable")
        first = o.drop_duplicates("sid", keep="first")
        best[first["sid"].to_numpy()] = first["score"].to_numpy()
        test[first["sid"].to_numpy()] = first["test"].to_numpy()
    return pd.DataFrame({"best_val": best, "best_test": test})


def _describe_t(T: np.ndarray, reached: np.ndarray) -> dict:
    q25, med, q75 = ttt.quantiles(T, reached, (0.25, 0.5, 0.75))
    return {"median": float(med), "q25": float(q25), "q75": float(q75),
            "q25_censored": bool(np.isinf(q25)), "median_censored": bool(np.isinf(med)),
            "q75_censored": bool(np.isinf(q75)),
            "std": stats.seed_std(T), "n": int(len(T)), "n_reached": int(np.sum(reached))}


def compute(res: Results, tau: float | None = None, primary_clock: str = "compute", *,
            steps_per_epoch: float | None = None,
            target_steps_per_epoch: float = TARGET_STEPS_PER_EPOCH) -> Summary:
    """Run the whole analysis of one loaded experiment; no files are written.

    ``steps_per_epoch``: the studied epoch's length in steps of 128 images, for the C3 epoch-length
    projection (default: measured from ``iterations.epoch_s * samples_per_s``; none where not recorded).
    ``target_steps_per_epoch``: the epoch length to project to (default 390, CIFAR-10 ResNet-20).
    """
    if primary_clock not in CLOCKS:
        raise AnalysisError(f"clock: must be one of {tuple(CLOCKS)}, got {primary_clock!r}")
    tau_user, tau_source = _resolve_tau(res, tau)
    sign = res.sign
    tau_hb = sign * tau_user
    st = res.studies
    methods = res.methods
    partners = {m: res.partner(m) for m in methods if res.partner(m)}
    for m in methods:
        v = st.loc[st["method"] == m, "vanilla_method"].iloc[0]
        if v and v != m and v not in set(st["method"]):
            warn(res, f"method {m}: its vanilla partner {v!r} has no studies; no paired comparison")

    per_study = st[["method", "seed"]].copy()
    bf = _best_final(res)
    per_study["best_val"] = sign * bf["best_val"].to_numpy()
    per_study["best_test"] = sign * bf["best_test"].to_numpy()
    best_hb = bf["best_val"].to_numpy()
    scores = res.iterations["score"].to_numpy(float)
    finite = scores[np.isfinite(scores)]
    floor = float(finite.min()) if len(finite) else float("nan")
    best_seen = float(np.nanmax(best_hb)) if np.isfinite(best_hb).any() else float("nan")

    curve = {c: ttt.curves(res, c) for c in CLOCKS}
    reached = None
    horizons = {}
    for c, cv in curve.items():
        T, r = ttt.time_to_target(cv, tau_hb)
        reached = r
        per_study[f"T_{c}"] = T
        per_study[f"end_{c}"] = cv.end
        horizons[c] = float(np.nanmin(cv.end)) if np.isfinite(cv.end).any() else float("nan")
        per_study[f"auc_{c}"] = ttt.auc(cv, horizons[c], floor)
    per_study.insert(2, "reached", reached)
    if not reached.any():
        seen = "none" if not math.isfinite(best_seen) else f"{sign * best_seen:.6g}"
        warn(res, f"tau {tau_user:g} was reached by no study (best {res.metric} seen: {seen}); every study is censored")

    # Per method.
    per_method: dict[str, dict] = {}
    for m in methods:
        sel = (per_study["method"] == m).to_numpy()
        ps = per_study.loc[sel]
        r = ps["reached"].to_numpy(bool)
        bv = ps["best_val"].to_numpy(float)
        bt = ps["best_test"].to_numpy(float)
        per_method[m] = {
            "n_studies": int(sel.sum()),
            "fraction_reached": float(r.mean()) if len(r) else float("nan"),
            "ttt": {c: _describe_t(ps[f"T_{c}"].to_numpy(float), r) for c in CLOCKS},
            "final_val": _describe_score(bv, sign),
            "final_test": _describe_score(bt, sign),
            "auc": {c: {"median": _nanmedian(ps[f"auc_{c}"]), "horizon": horizons[c]} for c in CLOCKS},
        }

    # Pairs.
    pairs: dict[str, dict] = {}
    for m, v in partners.items():
        pm = per_study.loc[per_study["method"] == m]
        pv = per_study.loc[per_study["method"] == v]
        j = stats.pair_by_seed(pm, pv, m, v, res.warnings)
        entry: dict[str, Any] = {"partner": v, "n_pairs": int(len(j)), "seeds": j["seed"].tolist(), "ttt": {},
                                 "std_ratio": {}, "power": {}}
        for c in CLOCKS:
            rm, rv = j["reached_m"].to_numpy(bool), j["reached_v"].to_numpy(bool)
            tm, tv = j[f"T_{c}_m"].to_numpy(float), j[f"T_{c}_v"].to_numpy(float)
            entry["ttt"][c] = stats.paired_time(tm, rm, tv, rv)
            entry["power"][c] = stats.paired_power(
                _log_speedups(tm, rm, tv, rv), alpha=POWER["alpha"], power=POWER["power"],
                target_reduction=POWER["target_reduction"], n_sim=POWER["n_sim"], seed=POWER["seed"])
            sm, sv = stats.seed_std(tm), stats.seed_std(tv)
            entry["std_ratio"][c] = {"std_method": sm, "std_vanilla": sv,
                                     "inflation": (sm / sv - 1.0) if sv > 0 else (0.0 if sm == 0 else float("inf"))}
        bm, bv = j["best_val_m"].to_numpy(float) * sign, j["best_val_v"].to_numpy(float) * sign
        with np.errstate(divide="ignore", invalid="ignore"):
            drop = (bv - bm) / np.abs(bv)
        entry["final_val"] = {**stats.wilcoxon_paired(bm, bv), "median_relative_drop": _nanmedian(drop),
                              "median_difference": _nanmedian(bm - bv)}
        entry["auc"] = {c: stats.wilcoxon_paired(j[f"auc_{c}_m"].to_numpy(float), j[f"auc_{c}_v"].to_numpy(float))
                        for c in CLOCKS}
        entry["final_std"] = {"std_method": stats.seed_std(bm * sign), "std_vanilla": stats.seed_std(bv * sign)}
        pairs[m] = entry

    overhead = _overhead(res, partners)
    epoch_target = _epoch_share(res, partners, overhead, steps_per_epoch, target_steps_per_epoch)
    rungs = configs.rung_levels(res)
    survival = configs.survival(res, rungs)
    shift = configs.shifts(res)
    divergence = {m: configs.promoted_divergence(res, m, v, rungs) for m, v in partners.items()}
    gb = {}
    for m in methods:
        g = configs.gradient_benefit(res, m)
        if g is not None:
            gb[m] = g
    profiles = _profiles(res, curve, per_study, best_hb, sign)
    grids = _curve_grids(res, curve, sign)
    criteria = _criteria(partners, pairs, overhead, target_steps_per_epoch)
    return Summary(
        results_dir=str(res.results_dir), experiment=res.experiment, metric=res.metric, mode=res.mode,
        tau=tau_user, tau_source=tau_source, primary_clock=primary_clock, compute_unit=res.compute_unit,
        methods=methods, partners=partners, per_study=per_study, per_method=per_method, pairs=pairs,
        overhead=overhead, rungs=rungs, survival=survival, shift=shift, divergence=divergence,
        gradient_benefit=gb, profiles=profiles, curves=grids, criteria=criteria,
        best_score_seen=sign * best_seen if math.isfinite(best_seen) else float("nan"), warnings=res.warnings,
        epoch_target=epoch_target, sequential=sequential.summary(res.results_dir),
    )


def _log_speedups(tm, rm, tv, rv) -> np.ndarray:
    """log(T_v / T_m) of the pairs the Wilcoxon test uses (non-zero differences; both-censored pairs are ties)."""
    x, y, _ = stats.censored_pairs(tm, rm, tv, rv)
    with np.errstate(divide="ignore", invalid="ignore"):
        d = np.log(y / x)
    return d[np.isfinite(x - y) & (x != y) & np.isfinite(d)]


def _iteration_columns(res: Results, cols: list[str]) -> pd.DataFrame:
    """sid, trial_index and the optional iteration columns ``cols`` (NaN where not recorded)."""
    it = res.iterations
    out = it[["sid", "trial_index"]].copy()
    for c in cols:
        out[c] = pd.to_numeric(it[c], errors="coerce").astype(float) if c in it.columns else np.nan
    return out


def _epoch_share(res: Results, partners: dict[str, str], overhead: dict[str, dict], steps_per_epoch: float | None,
                 target_steps: float) -> dict:
    """Warm-start share of one epoch per method and its projection to an epoch of ``target_steps`` steps.

    Per warm-started trial: epoch compute = (trial_compute_s - ws_compute_s) / last_epoch, share =
    ws_compute_s / epoch compute; epoch length = median over the trial's reports of epoch_s *
    samples_per_s / 128 steps (two wall-clock measures of the same epoch, so CPU contention cancels;
    the compute clock is CPU time, which must not be mixed with the wall-clock throughput).
    Medians over the method's warm-started trials; ``steps_per_epoch`` overrides the measured length.
    Writes ``ws_epoch_share``, ``epoch_steps``, ``epoch_ratio`` (= epoch_steps / target_steps),
    ``projected_ws_epoch_share`` and ``projected_extra_compute`` into ``overhead[m]``.
    """
    if not (isinstance(target_steps, int | float) and math.isfinite(target_steps) and target_steps > 0):
        raise AnalysisError(f"target_steps_per_epoch: must be a positive number, got {target_steps!r}")
    if steps_per_epoch is not None and not (isinstance(steps_per_epoch, int | float)
                                            and math.isfinite(steps_per_epoch) and steps_per_epoch > 0):
        raise AnalysisError(f"steps_per_epoch: must be a positive number or None, got {steps_per_epoch!r}")
    tr = res.trials
    need = {"trial_compute_s", "ws_compute_s", "last_epoch"}
    sps_by_trial = None
    if steps_per_epoch is None:
        it = _iteration_columns(res, ["epoch_s", "samples_per_s"])
        it["steps"] = it["epoch_s"] * it["samples_per_s"] / STEP_BATCH
        sps_by_trial = it.groupby(["sid", "trial_index"])["steps"].median()
    for m in res.methods:
        o = overhead[m]
        o.update(ws_epoch_share=float("nan"), epoch_steps=float("nan"), epoch_ratio=float("nan"),
                 projected_ws_epoch_share=float("nan"), projected_extra_compute=float("nan"))
        if not need <= set(tr.columns):
            continue
        t = tr.loc[tr["method"] == m]
        ws = pd.to_numeric(t["ws_compute_s"], errors="coerce").to_numpy(float)
        total = pd.to_numeric(t["trial_compute_s"], errors="coerce").to_numpy(float)
        last = pd.to_numeric(t["last_epoch"], errors="coerce").to_numpy(float)
        with np.errstate(divide="ignore", invalid="ignore"):
            epoch_c = (total - ws) / last
            share = ws / epoch_c
        ok = (ws > 0) & np.isfinite(share) & (epoch_c > 0)
        if not ok.any():
            continue
        o["ws_epoch_share"] = _nanmedian(share[ok])
        if steps_per_epoch is not None:
            steps = float(steps_per_epoch)
        else:
            key = pd.MultiIndex.from_arrays([t["sid"].to_numpy(), t["trial_index"].to_numpy()])
            steps = _nanmedian(sps_by_trial.reindex(key).to_numpy(float)[ok])
        if math.isfinite(steps) and steps > 0:
            ratio = steps / target_steps
            o["epoch_steps"], o["epoch_ratio"] = steps, ratio
            o["projected_ws_epoch_share"] = o["ws_epoch_share"] * ratio
            ec = o.get("extra_compute_vs_partner", o["extra_compute"])
            o["projected_extra_compute"] = ec * ratio if math.isfinite(ec) else float("nan")
    return {"target_steps_per_epoch": float(target_steps), "step_batch": STEP_BATCH,
            "steps_per_epoch": None if steps_per_epoch is None else float(steps_per_epoch),
            "steps_source": "argument" if steps_per_epoch is not None else "iterations.epoch_s*samples_per_s",
            "far_ratio": FAR_EPOCH_RATIO}


def _nanmedian(a) -> float:
    a = np.asarray(a, float)
    a = a[np.isfinite(a)]
    return float(np.median(a)) if len(a) else float("nan")


def _describe_score(v_user: np.ndarray, sign: float) -> dict:
    """Median/IQR/std of a score in the metric's own units; "best" is the best over seeds."""
    v = v_user[np.isfinite(v_user)]
    if len(v) == 0:
        return {"median": float("nan"), "q25": float("nan"), "q75": float("nan"), "best": float("nan"),
                "std": float("nan")}
    q = np.quantile(v, [0.25, 0.5, 0.75])
    return {"median": float(q[1]), "q25": float(q[0]), "q75": float(q[2]),
            "best": float(v.max() if sign > 0 else v.min()), "std": stats.seed_std(v)}


def _overhead(res: Results, partners: dict[str, str]) -> dict[str, dict]:
    st, tr = res.studies, res.trials
    ws_by_sid = tr.groupby("sid")["ws_compute_s"].sum(min_count=1).reindex(st["sid"]).fillna(0.0).to_numpy()
    if res.compute_factor is not None:  # the studies' compute clock is in GPU-hours; convert ws alike
        ws_by_sid = ws_by_sid * res.compute_factor
    total = st["compute_s"].to_numpy(float)
    peak_trial = tr.groupby("sid")["peak_rss_mib"].max().reindex(st["sid"]).to_numpy(float)
    out: dict[str, dict] = {}
    for m in res.methods:
        sel = (st["method"] == m).to_numpy()
        ws, tot = ws_by_sid[sel].sum(), np.nansum(total[sel])
        out[m] = {
            "ws_compute": float(ws), "total_compute": float(tot),
            "ws_share": float(ws / tot) if tot > 0 else float("nan"),
            "extra_compute": float(ws / (tot - ws)) if tot - ws > 0 else float("nan"),
            "peak_rss_mib_median": _nanmedian(st.loc[sel, "peak_rss_mib"]),
            "trial_peak_rss_mib_max": float(np.nanmax(peak_trial[sel])) if np.isfinite(peak_trial[sel]).any()
            else float("nan"),
        }
    for m, v in partners.items():
        a = st.loc[st["method"] == m, ["seed", "peak_rss_mib", "compute_s"]]
        b = st.loc[st["method"] == v, ["seed", "peak_rss_mib", "compute_s"]]
        j = a.merge(b, on="seed", suffixes=("_m", "_v"))
        with np.errstate(divide="ignore", invalid="ignore"):
            mem = j["peak_rss_mib_m"].to_numpy(float) / j["peak_rss_mib_v"].to_numpy(float) - 1.0
            comp = j["compute_s_m"].to_numpy(float) / j["compute_s_v"].to_numpy(float) - 1.0
        out[m]["partner"] = v
        out[m]["extra_compute_vs_partner"] = out[m]["extra_compute"] - (out[v]["extra_compute"]
                                                                        if math.isfinite(out[v]["extra_compute"])
                                                                        else 0.0)
        out[m]["peak_memory_increase"] = _nanmedian(mem)
        out[m]["total_compute_ratio_minus_1"] = _nanmedian(comp)
    return out


def _profiles(res: Results, curve, per_study: pd.DataFrame, best_hb: np.ndarray, sign: float) -> dict:
    fin = best_hb[np.isfinite(best_hb)]
    if len(fin) == 0:
        return {"tau": [], "methods": {}}
    lo, hi = float(fin.min()), float(fin.max())
    taus_hb = np.linspace(lo, hi, N_PROFILE) if hi > lo else np.array([lo])
    out: dict[str, Any] = {"tau": (sign * taus_hb).tolist(), "methods": {}}
    T_all = {c: ttt.time_to_target(curve[c], taus_hb) for c in CLOCKS}
    for m in res.methods:
        sel = (per_study["method"] == m).to_numpy()
        entry: dict[str, Any] = {}
        for c in CLOCKS:
            T, r = T_all[c]
            entry[f"median_{c}"] = [float(ttt.quantiles(T[sel, k], r[sel, k], (0.5,))[0]) for k in range(len(taus_hb))]
        entry["fraction_reached"] = T_all["wall"][1][sel].mean(axis=0).tolist()
        out["methods"][m] = entry
    return out


def _curve_grids(res: Results, curve, sign: float) -> dict[str, dict]:
    out: dict[str, dict] = {}
    st = res.studies
    for c, cv in curve.items():
        hi = np.nanmax(cv.end) if np.isfinite(cv.end).any() else np.nan
        if not np.isfinite(hi) or hi <= 0:
            continue
        grid = np.linspace(0.0, hi, N_GRID)
        per = {}
        for m in res.methods:
            sids = st.loc[st["method"] == m, "sid"].to_numpy()
            q = ttt.grid_quantiles(cv, sids, grid)
            q = sign * q if sign > 0 else -q[::-1]  # for "min" metrics the user-unit q25 is -q75
            per[m] = {"q25": q[0].tolist(), "median": q[1].tolist(), "q75": q[2].tolist()}
        out[c] = {"grid": grid.tolist(), "methods": per}
    return out


def _row(method, partner, crit, clock, measured, text, threshold, ok, reason="", note=""):
    return {"method": method, "partner": partner, "criterion": crit, "clock": clock, "measured": measured,
            "measured_text": text, "threshold": threshold, "result": "PASS" if ok else "FAIL", "reason": reason,
            "note": note}


def power_note(pw: dict, observed: float) -> str:
    """"underpowered: ..." when the test cannot detect the C1 target with 80 % power, else ""."""
    if not pw["underpowered"]:
        return ""
    obs = f"observed {_pct(observed)}"
    if pw["critical_w"] < 0:
        return f"underpowered: {pw['statement']}; {obs}"
    if not math.isfinite(pw["mde_reduction"]):
        return f"underpowered: {pw['statement']}; spread of the paired speed-ups not measurable; {obs}"
    need = f"; ~{pw['n_for_target']:.0f} pairs needed" if math.isfinite(pw["n_for_target"]) else ""
    return (f"underpowered: n={pw['n']} pairs can detect only >= {100 * pw['mde_reduction']:.0f}% reduction "
            f"({100 * pw['power']:.0f}% power; power at {100 * pw['target_reduction']:.0f}%: "
            f"{100 * pw['power_at_target']:.0f}%{need}); {obs}")


def epoch_note(o: dict, compute_ok: bool, target_steps: float, memory_ok: bool = True) -> str:
    """C3 note when the studied epoch is far shorter than the target's (a warm-start share artefact)."""
    ratio = o.get("epoch_ratio", float("nan"))
    if not math.isfinite(ratio) or ratio >= FAR_EPOCH_RATIO or not math.isfinite(o.get("ws_epoch_share", math.nan)):
        return ""
    pe, pc = o["projected_ws_epoch_share"], o["projected_extra_compute"]
    what = (f"warm-start = {100 * o['ws_epoch_share']:.0f}% of a {o['epoch_steps']:.1f}-step epoch; at a "
            f"{target_steps:g}-step epoch ≈ {100 * pe:.1f}% of an epoch, extra compute ≈ {_pct(pc)}")
    if compute_ok:
        return f"short epoch ({what})"
    if math.isfinite(pc) and pc <= THRESHOLDS["C3_compute"]:
        tail = "" if memory_ok else "; the peak-memory part fails on its own"
        return f"compute FAIL is an artefact of a short epoch: {what}{tail}"
    return f"not only a short-epoch artefact: {what}"


def _pct(x: float) -> str:
    return "n/a" if not math.isfinite(x) else f"{100 * x:+.2f}%"


def _criteria(partners: dict[str, str], pairs: dict[str, dict], overhead: dict[str, dict],
              target_steps: float = TARGET_STEPS_PER_EPOCH) -> list[dict]:
    th = THRESHOLDS
    rows = []
    for m, v in partners.items():
        pe = pairs[m]
        for c in CLOCKS:
            t = pe["ttt"][c]
            red, p = t["median_reduction"], t["p"]
            ok = math.isfinite(red) and math.isfinite(p) and red >= th["C1_reduction"] and p < th["C1_alpha"]
            reason = "" if math.isfinite(p) else "no informative pairs for the Wilcoxon test"
            rows.append(_row(m, v, "C1 median T@tau reduction >= 15% with p < 0.05", c, red,
                             f"reduction {_pct(red)}, p={p:.3g} (n={t['n']})", ">= 15%, p < 0.05", ok, reason,
                             power_note(pe["power"][c], red)))
        drop = pe["final_val"]["median_relative_drop"]
        rows.append(_row(m, v, "C2 relative drop of best final score <= 0.2%", "", drop, f"drop {_pct(drop)}",
                         "<= 0.2%", math.isfinite(drop) and drop <= th["C2_drop"],
                         "" if math.isfinite(drop) else "no paired final scores"))
        ec = overhead[m].get("extra_compute_vs_partner", float("nan"))
        mem = overhead[m].get("peak_memory_increase", float("nan"))
        ok3 = math.isfinite(ec) and math.isfinite(mem) and ec <= th["C3_compute"] and mem <= th["C3_memory"]
        rows.append(_row(m, v, "C3 extra GPU-hours <= 5% and extra peak memory <= 10%", "", ec,
                         f"extra compute {_pct(ec)}, peak memory {_pct(mem)}", "<= 5%, <= 10%", ok3,
                         "" if math.isfinite(ec) and math.isfinite(mem) else "compute or memory not recorded",
                         epoch_note(overhead[m], math.isfinite(ec) and ec <= th["C3_compute"], target_steps,
                                    math.isfinite(mem) and mem <= th["C3_memory"])))
        for c in CLOCKS:
            infl = pe["std_ratio"][c]["inflation"]
            ok = math.isfinite(infl) and infl <= th["C4_std"]
            rows.append(_row(m, v, "C4 std of T@tau inflated by <= 10%", c, infl, f"std inflation {_pct(infl)}",
                             "<= 10%", ok, "" if math.isfinite(infl) else "std not measurable"))
    return rows


def write_json(summary: Summary, path: Path) -> None:
    import json

    path.write_text(json.dumps(summary.to_dict(), indent=1, allow_nan=False))
