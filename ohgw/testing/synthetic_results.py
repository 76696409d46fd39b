"""Synthetic results datasets in the ``ohgw.results`` layout (schema version 2), for tests, benchmarks and demos.

:func:`study_frames` fills every required column around a few hand-made reports (fixtures with
known T@tau); the study's search space (``studies.space``) is :data:`SPACE` unless given.
:func:`generate` writes whole paired experiments: per seed, every method sees the same sampled
configs; an ASHA-like synchronous successive halving (rungs grace * eta^k) stops trials; "+ohgw"
methods move each config a little (recording g = -du / 1e-3 and the warm-start settings
``ws_step_rule`` = "normalized", ``ws_eta_h``, ``ws_hyper_steps`` = ``ws_lookahead`` = 1,
``ws_step_norm`` = |du / u_range|) and learn faster by ``speedup``; other perturbed methods (e.g.
"+random") move without a hyper-gradient and record the vanilla warm-start settings.

>>> it, tr, st = study_frames(pd.DataFrame({"trial_index": [0, 1], "epoch": [1, 1], "val_score": [0.5, 0.7],
...                                         "wall_s": [1.0, 2.0], "compute_s": [1.0, 2.0],
...                                         "epoch_equiv": [1.0, 2.0]}), tau=0.6)
>>> tr["last_epoch"].tolist(), float(st["wall_s"].iloc[0])
([1, 1], 2.0)
"""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd

from ohgw.results import SCHEMA_VERSION, write_study

PSI = ("lr", "wd", "momentum", "aug_magnitude", "label_smoothing")
# The search space of the synthetic studies, as ``SearchSpace.to_dict()`` writes it.
SPACE: dict = {
    "params": [
        {"name": "lr", "low": 1e-3, "high": 1.0, "transform": "log10"},
        {"name": "wd", "low": 1e-6, "high": 1e-2, "transform": "log10"},
        {"name": "momentum", "low": 0.5, "high": 0.99, "transform": "identity"},
        {"name": "aug_magnitude", "low": 0.0, "high": 1.0, "transform": "identity"},
        {"name": "label_smoothing", "low": 0.0, "high": 0.2, "transform": "identity"},
    ],
    "discrete": {},
}
# Warm-start settings of a trial without a warm-start (the ``trials.ws_*`` columns).
VANILLA_WS = {"ws_step_rule": "", "ws_eta_h": float("nan"), "ws_hyper_steps": 0, "ws_lookahead": 0,
              "ws_step_norm": 0.0}


def study_frames(
    reports: pd.DataFrame,
    *,
    tau: float,
    mode: str = "max",
    vanilla_method: str = "",
    max_t: int = 27,
    end: dict | None = None,
    configs: pd.DataFrame | None = None,
    peak_rss_mib: float = 1000.0,
    n_gpus: int = 0,
    metric: str = "val_acc",
    space: dict | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(iterations, trials, studies) frames with all required columns around ``reports``.

    ``reports`` needs trial_index, epoch, val_score, wall_s, compute_s, epoch_equiv; other
    iteration columns get defaults. ``end`` overrides the study's wall_s/compute_s/epoch_equiv
    totals (default: the largest report values). ``configs`` (index trial_index) holds
    x.<psi> / x_prime.<psi> / g.<psi> columns and optional ws_compute_s, peak_rss_mib, status and
    ``ws_*`` warm-start settings (default: :data:`VANILLA_WS`). ``space`` (default :data:`SPACE`)
    is the ``SearchSpace.to_dict()`` recorded in ``studies.space``.
    """
    it = reports.copy().reset_index(drop=True)
    it["trial_index"] = it["trial_index"].astype("int64")
    it["epoch"] = it["epoch"].astype("int64")
    defaults = {
        "study_id": "study", "trial_id": it["trial_index"].map(lambda i: f"t{i:05d}").astype(str), "test_score": it["val_score"],
        "val_loss": 1.0 - it["val_score"], "train_loss": 1.0 - it["val_score"], "trial_compute_s": 0.0,
        "trial_epoch_equiv": it["epoch"].astype(float), "ws_compute_s": 0.0, "decision": "",
    }
    for c, v in defaults.items():
        if c not in it.columns:
            it[c] = v
    sign = 1.0 if mode == "max" else -1.0
    g = it.sort_values(["trial_index", "epoch"]).groupby("trial_index")
    tr = pd.DataFrame({
        "trial_index": g["epoch"].max().index.astype("int64"),
        "last_epoch": g["epoch"].max().to_numpy().astype("int64"),
        "best_val_score": (sign * g["val_score"].apply(lambda s: (sign * s).max())).to_numpy(),
        "final_val_score": g["val_score"].last().to_numpy(),
        "final_test_score": g["test_score"].last().to_numpy(),
        "ws_compute_s": g["ws_compute_s"].sum().to_numpy(),
        "trial_compute_s": g["trial_compute_s"].max().to_numpy(),
        "trial_epoch_equiv": g["trial_epoch_equiv"].max().to_numpy(),
    })
    tr["study_id"] = "study"
    tr["trial_id"] = tr["trial_index"].map(lambda i: f"t{i:05d}").astype(str)
    tr["status"] = "TERMINATED"
    tr["diverged"] = False
    tr["ws_mode"] = ""
    for c, v in VANILLA_WS.items():
        tr[c] = v
    tr["ws_wall_s"] = tr["ws_compute_s"]
    tr["ws_peak_rss_mib"] = 0.0
    tr["peak_rss_mib"] = peak_rss_mib
    tr["node_id"] = "node0"
    if configs is not None:
        cf = configs.reindex(tr["trial_index"]).reset_index(drop=True)
        for c in cf.columns:
            tr[c] = cf[c].to_numpy()
    totals = {c: float(it[c].max()) if len(it) else 0.0 for c in ("wall_s", "compute_s", "epoch_equiv")}
    totals.update(end or {})
    st = pd.DataFrame([{
        "study_id": "study", "schema_version": SCHEMA_VERSION, "space": json.dumps(SPACE if space is None else space),
        "vanilla_method": vanilla_method, "metric": metric, "mode": mode,
        "budget_kind": "epochs", "budget": totals["epoch_equiv"], "tau": tau, "max_t": max_t,
        "start_time": "2026-01-01T00:00:00Z", "end_time": "2026-01-01T01:00:00Z", "completed": True,
        "wall_s": totals["wall_s"], "compute_s": totals["compute_s"], "epoch_equiv": totals["epoch_equiv"],
        "n_trials": int(len(tr)), "peak_rss_mib": peak_rss_mib, "cpu_model": "synthetic", "gpu_model": "",
        "n_cpus": 2, "n_gpus": n_gpus, "versions": json.dumps({"ohgw": "synthetic"}), "git_commit": "",
    }])
    return it, tr, st


def _asha(quality: np.ndarray, rate: np.ndarray, max_t: int, eta: int, noise: np.ndarray):
    """Synchronous successive halving: (trial, epoch, score, decision) rows in training order."""
    n = len(quality)
    rungs = []
    r = 1
    while r < max_t:
        rungs.append(r)
        r *= eta
    rungs.append(max_t)
    alive = np.arange(n)
    done = 0
    rows_t, rows_e, rows_d = [], [], []
    for k, r in enumerate(rungs):
        epochs = np.arange(done + 1, r + 1)
        t = np.repeat(alive, len(epochs))
        e = np.tile(epochs, len(alive))
        rows_t.append(t)
        rows_e.append(e)
        score_r = quality[alive] * (1 - np.exp(-r * rate[alive])) + noise[alive, k]
        if k + 1 < len(rungs):
            keep = max(1, len(alive) // eta)
            winners = alive[np.argsort(-score_r, kind="stable")[:keep]]
        else:
            winners = np.array([], dtype=int)
        d = np.full(len(t), "CONTINUE", dtype=object)
        last = e == r
        d[last] = np.where(np.isin(t[last], winners), "CONTINUE", "STOP")
        rows_d.append(d)
        alive = np.sort(winners)
        done = r
        if len(alive) == 0:
            break
    t = np.concatenate(rows_t)
    e = np.concatenate(rows_e)
    s = quality[t] * (1 - np.exp(-e * rate[t])) + noise[t, np.minimum(np.searchsorted(rungs, e), len(rungs) - 1)]
    return t, e, s, np.concatenate(rows_d)


def generate(
    results_dir: str | os.PathLike,
    *,
    n_seeds: int = 5,
    methods: dict[str, dict] | None = None,
    n_trials: int = 27,
    max_t: int = 27,
    eta: int = 3,
    tau: float = 0.85,
    experiment: str = "synthetic",
    epoch_s: float = 1.0,
    workers: int = 4,
    full: bool = False,
) -> None:
    """Write ``n_seeds`` x methods studies. ``methods`` maps name -> {"vanilla": name or "",
    "speedup": learning-rate factor (1 = vanilla), "shift": std of the x -> x' move in u,
    "ws_s": warm-start seconds per trial, "peak": peak RSS MiB, "eta_h": hyper step size of a
    "+ohgw" method (default 0.05)}. ``full``: no early stopping."""
    methods = methods or {
        "asha": {"vanilla": ""},
        "asha+ohgw": {"vanilla": "asha", "speedup": 1.4, "shift": 0.05, "ws_s": 0.02},
        "asha+random": {"vanilla": "asha", "speedup": 1.0, "shift": 0.05},
    }
    u_range = {
        p["name"]: (np.log10(p["high"]) - np.log10(p["low"])) if p["transform"] == "log10" else p["high"] - p["low"]
        for p in SPACE["params"]
    }
    for seed in range(n_seeds):
        rng = np.random.default_rng(seed)
        u = {
            "lr": rng.uniform(-3, 0, n_trials), "wd": rng.uniform(-6, -2, n_trials),
            "momentum": rng.uniform(0.5, 0.99, n_trials), "aug_magnitude": rng.uniform(0, 1, n_trials),
            "label_smoothing": rng.uniform(0, 0.2, n_trials),
        }
        quality = 0.95 - 0.08 * (u["lr"] + 1.2) ** 2 - 0.02 * np.abs(u["wd"] + 4) - 0.05 * u["label_smoothing"]
        base_rate = 0.25 * 10 ** (0.3 * (u["lr"] + 1.0))
        noise_base = rng.normal(0, 0.01, (n_trials, 8))
        for name, spec in methods.items():
            mrng = np.random.default_rng([seed, sum(map(ord, name))])
            speed, sh, ws_s = spec.get("speedup", 1.0), spec.get("shift", 0.0), spec.get("ws_s", 0.0)
            du = {p: mrng.normal(0, sh, n_trials) if sh > 0 else np.zeros(n_trials) for p in PSI}
            rate = base_rate * speed
            noise = noise_base + mrng.normal(0, 0.002, noise_base.shape)
            if full:
                t = np.repeat(np.arange(n_trials), max_t)
                e = np.tile(np.arange(1, max_t + 1), n_trials)
                s = quality[t] * (1 - np.exp(-e * rate[t])) + noise[t, 0]
                d = np.where(e == max_t, "STOP", "CONTINUE").astype(object)
            else:
                t, e, s, d = _asha(quality, rate, max_t, eta, noise)
            first = np.r_[True, t[1:] != t[:-1]] & (e == 1)
            ws = np.where(first, ws_s, 0.0)
            cum_epochs = np.arange(1, len(t) + 1, dtype=float) + np.cumsum(ws) / epoch_s
            x = {p: (10 ** u[p] if p in ("lr", "wd") else u[p]) for p in PSI}
            xp = {p: (10 ** (u[p] + du[p]) if p in ("lr", "wd") else u[p] + du[p]) for p in PSI}
            rep = pd.DataFrame({
                "trial_index": t, "epoch": e, "val_score": np.clip(s, 0, 1), "test_score": np.clip(s - 0.005, 0, 1),
                "wall_s": cum_epochs * epoch_s / workers, "compute_s": cum_epochs * epoch_s,
                "epoch_equiv": cum_epochs, "ws_compute_s": ws, "decision": d,
                "trial_compute_s": e * epoch_s, "trial_epoch_equiv": e.astype(float),
            })
            cfg = pd.DataFrame({**{f"x.{p}": x[p] for p in PSI}, **{f"x_prime.{p}": xp[p] for p in PSI},
                                **{f"g.{p}": (-du[p] / 1e-3 if "+ohgw" in name else np.zeros(n_trials)) for p in PSI}})
            if "+ohgw" in name:
                cfg["ws_step_rule"] = "normalized"
                cfg["ws_eta_h"] = float(spec.get("eta_h", 0.05))
                cfg["ws_hyper_steps"] = cfg["ws_lookahead"] = 1
                cfg["ws_step_norm"] = np.sqrt(sum((du[p] / u_range[p]) ** 2 for p in PSI))
            it, tr, st = study_frames(rep, tau=tau, vanilla_method=spec.get("vanilla", ""), max_t=max_t,
                                      configs=cfg, peak_rss_mib=spec.get("peak", 1000.0))
            write_study(results_dir, experiment, name, seed, it, tr, st)
