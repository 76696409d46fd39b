"""From a finished study's records to the three Parquet tables (:mod:`ohgw.results`), plus provenance.

:func:`study_tables` turns :class:`~ohgw.studies.ledger.StudyRecorder`'s rows and the
:class:`~ohgw.studies.ledger.StudyLedger` into the ``iterations``, ``trials`` and
``studies`` tables of :data:`ohgw.results.REQUIRED_COLUMNS` (schema
:data:`ohgw.results.SCHEMA_VERSION`). A trial's warm-start settings (``ws_step_rule``,
``ws_eta_h``, ``ws_hyper_steps``, ``ws_lookahead``, ``ws_step_norm``) are the ones its
trainable reported using, not the experiment's defaults; :data:`VANILLA_WS` holds a
vanilla trial's values.

Trial statuses in the ``trials`` table:

- ``COMPLETED``: reached max_t;
- ``PRUNED``: the scheduler stopped it early;
- ``STOPPED_BY_BUDGET``: still running or paused when the study's budget ran out;
- ``DIVERGED``: a non-finite loss ended it (the trainable reported ``diverged``);
- ``ERROR``: it failed beyond its retries;
- ``TERMINATED``: ended otherwise (e.g. the searcher ran out of configs).
"""

from __future__ import annotations

import functools
import json
import os
import platform
import subprocess
import sys
from importlib import metadata

import numpy as np
import pandas as pd

from ohgw.results import REQUIRED_COLUMNS, SCHEMA_VERSION

PACKAGES = ("ohgw-tune", "ray", "torch", "torchvision", "optuna", "pandas", "pyarrow", "plotly", "numpy", "scipy")


@functools.cache
def package_versions() -> str:
    out = {}
    for p in PACKAGES:
        try:
            out[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            out[p] = ""
    return json.dumps(out, sort_keys=True)


@functools.cache
def git_commit() -> str:
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo, else the platform's word for it)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


# device files without which no CUDA (NVIDIA, WSL2's /dev/dxg) or ROCm (/dev/kfd) GPU can be opened
GPU_DEVICE_FILES = ("/dev/nvidiactl", "/dev/dxg", "/dev/kfd")


@functools.cache
def hardware_info() -> dict:
    """The CPU, and the GPUs torch sees; on a machine with no GPU device file torch is not imported (a study
    task on a CPU node pays no ~3 s torch import for a count that is 0)."""
    if "torch" not in sys.modules and not any(os.path.exists(p) for p in GPU_DEVICE_FILES):
        return {"cpu_model": cpu_model(), "gpu_model": "", "n_cpus": os.cpu_count() or 0, "n_gpus": 0}
    import torch

    n_gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return {
        "cpu_model": cpu_model(),
        "gpu_model": torch.cuda.get_device_name(0) if n_gpus else "",
        "n_cpus": os.cpu_count() or 0,
        "n_gpus": n_gpus,
    }


def _num(row: pd.Series, key: str) -> float:
    v = row.get(key, 0.0)
    return float(v) if pd.notna(v) else 0.0


# trials columns of the warm-start a trial ran → (type, value of a vanilla trial)
VANILLA_WS: dict[str, tuple[type, object]] = {
    "ws_mode": (str, "none"),
    "ws_step_rule": (str, ""),
    "ws_eta_h": (float, float("nan")),
    "ws_hyper_steps": (int, 0),
    "ws_lookahead": (int, 0),
    "ws_step_norm": (float, 0.0),
    "ws_wall_s": (float, 0.0),
    "ws_peak_rss_mib": (float, 0.0),
}


def _warm_start_columns(rows: pd.DataFrame) -> dict:
    """A trial's warm-start columns: from the report that carried them (its first), else vanilla values."""
    out = {}
    for col, (kind, vanilla) in VANILLA_WS.items():
        values = rows[col].dropna() if col in rows else ()
        out[col] = kind(values.iloc[0]) if len(values) else vanilla
    return out


def _status(rows: pd.DataFrame, tune_status: str, last_decision: str, max_t: int, budget_hit: bool) -> str:
    if bool(rows.get("diverged", pd.Series([False])).fillna(False).astype(bool).any()):
        return "DIVERGED"
    if tune_status == "ERROR":
        return "ERROR"
    if int(rows["epoch"].max()) >= max_t:
        return "COMPLETED"
    if last_decision == "STOP":
        return "PRUNED"
    if budget_hit:
        return "STOPPED_BY_BUDGET"
    return "TERMINATED"


def study_tables(meta: dict, recorder, ledger, cfg) -> dict[str, pd.DataFrame]:
    """DataFrames for ``iterations``, ``trials`` and ``studies`` of one finished study."""
    sid = meta["study_id"]
    psi = list(cfg.space.names)
    it = pd.DataFrame(recorder.rows)
    if it.empty:
        it = pd.DataFrame(columns=list(REQUIRED_COLUMNS["iterations"]))
    it.insert(0, "study_id", sid)
    for c in REQUIRED_COLUMNS["iterations"]:
        if c not in it.columns:
            it[c] = np.nan
    it["decision"] = it["decision"].fillna("").astype(str)
    it["ws_compute_s"] = it["ws_compute_s"].fillna(0.0).astype(float)
    for c in ("node_id", "device"):
        if c in it.columns:
            it[c] = it[c].astype(str)
    if "diverged" in it.columns:
        it["diverged"] = it["diverged"].fillna(False).astype(bool)
    if "deterministic" in it.columns:  # the scaffold reports it; a trainable that does not is taken as deterministic
        it["deterministic"] = it["deterministic"].fillna(True).astype(bool)
    for col in it.columns:
        if col.startswith(("x.", "x_prime.", "g.")):
            it[col] = pd.to_numeric(it[col], errors="coerce").astype(float)
    sign = 1.0 if cfg.mode == "max" else -1.0
    trial_rows = []
    for tid, rows in it.groupby("trial_id", sort=False):
        rows = rows.sort_values("epoch")
        first, last = rows.iloc[0], rows.iloc[-1]
        end = recorder.trials.get(tid, {})
        scores = rows["val_score"].astype(float)
        best = scores.max() if sign > 0 else scores.min()
        ws = _warm_start_columns(rows)
        trial_rows.append(
            {
                "study_id": sid,
                "trial_id": tid,
                "trial_index": int(first["trial_index"]),
                "status": _status(rows, end.get("tune_status", ""), ledger.last_decision.get(tid, ""), cfg.max_t,
                                  ledger.exhausted_at is not None),
                "last_epoch": int(last["epoch"]),
                "best_val_score": float(best),
                "final_val_score": float(last["val_score"]),
                "final_test_score": float(last["test_score"]) if pd.notna(last["test_score"]) else np.nan,
                "diverged": bool(rows["diverged"].any()) if "diverged" in rows else False,
                "deterministic": bool(rows["deterministic"].all()) if "deterministic" in rows else True,
                **ws,
                "ws_compute_s": float(rows["ws_compute_s"].sum()),
                "trial_compute_s": float(last["trial_compute_s"]),
                "trial_epoch_equiv": float(last["trial_epoch_equiv"]),
                "peak_rss_mib": float(rows["peak_rss_mib"].max()) if "peak_rss_mib" in rows else np.nan,
                "node_id": str(last.get("node_id", "")),
                # when the trial's actor was busy: from its first epoch's (and warm-start's) start to its last report
                "start_wall_s": float(first["wall_s"] - _num(first, "epoch_s") - ws["ws_wall_s"]),
                "end_wall_s": float(last["wall_s"]),
                **{f"{p}.{n}": float(first[f"{p}.{n}"]) if pd.notna(first[f"{p}.{n}"]) else np.nan
                   for p in ("x", "x_prime", "g") for n in psi},
            }
        )
    trials = pd.DataFrame(trial_rows, columns=list(REQUIRED_COLUMNS["trials"]) if not trial_rows else None)
    if len(trials):
        trials["start_ts"] = meta["start_ts"] + trials["start_wall_s"]
        trials["end_ts"] = meta["start_ts"] + trials["end_wall_s"]
    study = {
        "schema_version": int(SCHEMA_VERSION),
        **meta,
        "compute_s": ledger.compute_s,
        "epoch_equiv": ledger.epoch_equiv,
        "n_trials": len(trial_rows),
        "peak_rss_mib": float(it["peak_rss_mib"].max()) if len(it) and "peak_rss_mib" in it else np.nan,
    }
    return {"iterations": it, "trials": trials, "studies": pd.DataFrame([study])}
