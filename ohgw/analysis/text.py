"""The key tables of a :class:`~ohgw.analysis.summary.Summary` as plain text for terminals and logs.

>>> print(table(["a", "b"], [["x", 1.5], ["yy", float("inf")]]))
a   b
--  ---------
x   1.5
yy  >budget
"""

from __future__ import annotations

import math

from .load import CLOCKS

CLOCKS_FIRST = next(iter(CLOCKS))


def num(x, digits: int = 4) -> str:
    """A number for a table: NaN -> "n/a", +inf (a censored quantile) -> ">budget"."""
    if x is None:
        return "n/a"
    if isinstance(x, str):
        return x
    x = float(x)
    if math.isnan(x):
        return "n/a"
    if math.isinf(x):
        return ">budget" if x > 0 else "-inf"
    return f"{x:.{digits}g}"


def pct(x) -> str:
    return "n/a" if x is None or not math.isfinite(float(x)) else f"{100 * float(x):+.1f}%"


def table(header: list[str], rows: list[list]) -> str:
    cells = [[str(h) for h in header]] + [[num(c) if not isinstance(c, str) else c for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    widths[-1] = max(widths[-1], 9)
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _finite(x) -> bool:
    return x is not None and math.isfinite(float(x))


def _share(x) -> str:
    """A share in [0, 1] as an unsigned percentage ("n/a" for NaN / None)."""
    return f"{100 * float(x):.1f}%" if _finite(x) else "n/a"


def _iqr(d: dict) -> str:
    return f"{num(d['median'])} [{num(d['q25'])}, {num(d['q75'])}]"


def sections(s) -> list[tuple[str, str]]:
    """(title, text table) pairs, shared by the terminal output and the HTML report."""
    unit = {"wall": "s", "compute": s.compute_unit, "epochs": "epochs"}
    out: list[tuple[str, str]] = []
    rows = []
    for m in s.methods:
        pm = s.per_method[m]
        rows.append([m, str(pm["n_studies"]), pct(pm["fraction_reached"]).lstrip("+"),
                     *[_iqr(pm["ttt"][c]) for c in CLOCKS], *[num(pm["ttt"][c]["std"]) for c in CLOCKS]])
    out.append((f"T@tau per method (tau = {num(s.tau, 6)}; median [IQR]; >budget = not reached within budget)",
                table(["method", "n", "reached", *[f"T {c} ({unit[c]})" for c in CLOCKS],
                       *[f"std {c}" for c in CLOCKS]], rows)))
    rows = []
    for m in s.methods:
        pm = s.per_method[m]
        rows.append([m, _iqr(pm["final_val"]), num(pm["final_val"]["best"]), num(pm["final_val"]["std"]),
                     _iqr(pm["final_test"]), num(pm["auc"][s.primary_clock]["median"])])
    out.append((f"Final scores ({s.metric}, {s.mode}) and AUC of best-so-far on the {s.primary_clock} clock",
                table(["method", "best val median [IQR]", "best val", "std val", "test median [IQR]", "AUC median"],
                      rows)))
    if s.pairs:
        rows = []
        for m, pe in s.pairs.items():
            for c in CLOCKS:
                t = pe["ttt"][c]
                rows.append([f"{m} vs {pe['partner']}", c, str(pe["n_pairs"]), str(t["n_both_censored"]),
                             num(t["median_speedup"]), pct(t["median_reduction"]), str(t["n"]), num(t["statistic"]),
                             num(t["p"]), pct(pe["std_ratio"][c]["inflation"])])
        out.append(("Paired T@tau (by seed; Wilcoxon signed-rank, two-sided; both-censored pairs are ties: counted, without a ratio)",
                    table(["pair", "clock", "pairs", "both cens.", "speed-up", "reduction", "n", "W", "p",
                           "std infl."], rows)))
        rows = []
        for m, pe in s.pairs.items():
            for c in CLOCKS:
                pw = pe.get("power", {}).get(c)
                if pw is None:
                    continue
                status = (f"no p < {pw['alpha']:g} possible" if pw["critical_w"] < 0
                          else "underpowered" if pw["underpowered"] else "ok")
                rows.append([f"{m} vs {pe['partner']}", c, str(pw["n"]), num(pw["smallest_p"]),
                             str(pw["critical_w"]) if pw["critical_w"] >= 0 else "-", num(pw["sigma_log_speedup"]),
                             _share(pw["mde_reduction"]) if pw["critical_w"] >= 0 else "none",
                             _share(pw["mde_reduction_asymptotic"]),
                             _share(pw["power_at_target"]), num(pw["n_for_target"]),
                             pct(pe["ttt"][c]["median_reduction"]), status])
        if rows:
            pw0 = next(iter(s.pairs.values()))["power"][CLOCKS_FIRST]
            out.append((f"Power of the paired T@tau test (exact two-sided signed-rank, alpha = {pw0['alpha']:g}; "
                        f"p < {pw0['alpha']:g} needs n >= {pw0['n_min']} informative pairs; MDE = smallest median "
                        f"reduction found with {100 * pw0['power']:.0f}% power given the sd of log speed-ups)",
                        table(["pair", "clock", "n", "min p", "max W-", "sd log", "MDE", "MDE (ARE)",
                               f"power@{100 * pw0['target_reduction']:.0f}%",
                               f"n for {100 * pw0['target_reduction']:.0f}%", "observed", "status"], rows)))
        rows = []
        for m, pe in s.pairs.items():
            f = pe["final_val"]
            rows.append([f"{m} vs {pe['partner']}", str(f["n_pairs"]), num(f["median_difference"]),
                         pct(f["median_relative_drop"]), str(f["n"]), num(f["statistic"]), num(f["p"]),
                         num(pe["auc"][s.primary_clock]["p"])])
        out.append(("Paired final validation score (difference higher-is-better; drop relative to vanilla)",
                    table(["pair", "pairs", "median diff", "median drop", "n", "W", "p", "AUC p"], rows)))
    rows = []
    for m in s.methods:
        o = s.overhead[m]
        rows.append([m, pct(o["ws_share"]), pct(o["extra_compute"]), num(o["peak_rss_mib_median"]),
                     pct(o.get("peak_memory_increase")), pct(o.get("total_compute_ratio_minus_1"))])
    out.append((f"Overhead (warm-start compute / total compute; compute in {s.compute_unit})",
                table(["method", "ws share", "extra compute", "peak RSS MiB", "peak vs partner",
                       "total compute vs partner"], rows)))
    tgt = getattr(s, "epoch_target", None) or {}
    rows = [[m, _share(s.overhead[m].get("ws_epoch_share")), num(s.overhead[m].get("epoch_steps"), 3),
             _share(s.overhead[m].get("projected_ws_epoch_share")), pct(s.overhead[m].get("projected_extra_compute"))]
            for m in s.methods if _finite(s.overhead[m].get("ws_epoch_share"))]
    if rows and tgt:
        out.append((f"Warm-start vs epoch length (epoch in steps of {tgt['step_batch']} images, "
                    f"{'given' if tgt['steps_source'] == 'argument' else 'measured'}); projected to a "
                    f"{num(tgt['target_steps_per_epoch'])}-step epoch (CIFAR-10 ResNet-20: 390), same schedule",
                    table(["method", "ws / epoch", "epoch steps", f"ws / {num(tgt['target_steps_per_epoch'])}-step "
                           "epoch", "projected extra compute"], rows)))
    rows = []
    for m in s.methods:
        sv = s.survival[m]
        rows.append([m, num(sv["n_trials"]),
                     "  ".join(f"{num(lv)}:{100 * sh:.1f}%" for lv, sh in zip(sv["levels"], sv["share"]))])
    out.append(("Survival of configs per rung (rung level: mean share of a study's trials reaching it)",
                table(["method", "trials/study", "rungs"], rows)))
    if s.shift:
        rows = []
        for m, per in s.shift.items():
            for p, d in per.items():
                rows.append([m, p, str(d["n"]), num(d["mean"]), num(d["median"]), num(d["q05"]), num(d["q95"]),
                             pct(d["share_moved"]).lstrip("+")])
        out.append(("Hyper-parameter shift u(x') - u(x) (search coordinates: log10 for lr, wd)",
                    table(["method", "psi", "n", "mean", "median", "q05", "q95", "moved"], rows)))
    if s.divergence:
        rows = []
        psi = sorted({p for d in s.divergence.values() for p in d["kl_hist"]})
        for m, d in s.divergence.items():
            rows.append([f"{m} vs {s.partners[m]}", num(d["first_rung"]), str(d["n_method"]), str(d["n_vanilla"]),
                         num(d["kl_gauss"]), *[num(d["kl_hist"].get(p)) for p in psi]])
        out.append(("Promoted configs (past the first rung): KL(method || vanilla); kl_gauss joint, kl_hist per psi",
                    table(["pair", "rung", "n m", "n v", "kl_gauss", *[f"kl_hist {p}" for p in psi]], rows)))
    if s.gradient_benefit:
        rows = []
        for m, g in s.gradient_benefit.items():
            for p in g["psi"]:
                r = g["spearman"].get(p)
                rows.append([m, p, num(r["rho"]) if r else "n/a", num(r["p"]) if r else "n/a",
                             " ".join(num(v, 3) for v in g["mean_pct"][g["psi"].index(p)])])
        out.append(("|g| vs eventual benefit: Spearman(|g|, final rank percentile; 1 = best) and mean percentile "
                    "per |g| quintile", table(["method", "psi", "rho", "p", "q1..q5 mean pct"], rows)))
    if s.criteria:
        rows = [[r["method"], r["criterion"], r["clock"] or "-", r["measured_text"], r["threshold"],
                 r["result"] + "".join(f" ({x})" for x in (r["reason"], r.get("note", "")) if x)]
                for r in s.criteria]
        out.append((f"Success criteria (RESEARCH.md); verdict on the {s.primary_clock} clock",
                    table(["method", "criterion", "clock", "measured", "threshold", "result"], rows)))
        out.append(("Verdicts", table(["method", "partner", "verdict", "notes"],
                                      [[m, v, s.verdict(m), "; ".join(s.verdict_notes(m)) or "-"]
                                       for m, v in s.partners.items()])))
    return out


def format_tables(summary) -> str:
    """All key tables of ``summary`` as one string."""
    s = summary
    head = (f"OHGW analysis: experiment {s.experiment!r}, {len(s.per_study)} studies, metric {s.metric} ({s.mode}), "
            f"tau = {num(s.tau, 6)} (from {s.tau_source}), clocks: wall s, {s.compute_unit}, epoch-equivalents")
    parts = [head]
    for title, text in sections(s):
        parts.append(f"\n== {title}\n{text}")
    if s.warnings:
        parts.append("\n== Warnings\n" + "\n".join(f"- {w}" for w in s.warnings))
    return "\n".join(parts) + "\n"
