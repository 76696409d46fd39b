"""One Parquet file per run: one row per log step, every hyper-parameter a column.

Columns: ``run_name``, ``epoch``, ``step`` (optimiser steps done), ``diverged``, ``wall_s``, the metrics
(:data:`ROW_METRICS`) and every key of the run's resolved config (:data:`HP_COLUMNS`, ``ema_m`` included;
``data_seed`` None is written as the run's seed, which is what it means). Files are written
atomically (a temporary file, then ``os.replace``): a reader never sees half a file.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from ohgw import protocol
from ohgw.results import atomic_path

from .config import DEFAULT_CONFIG
from .metrics import METRIC_KEYS

HP_COLUMNS = (*DEFAULT_CONFIG, "ema_m")
ROW_METRICS = (*METRIC_KEYS, "loss", protocol.VAL_LOSS, "H_t", "alpha_t", "beta_t")
ID_COLUMNS = ("run_name", "epoch", "step", "diverged", "wall_s")
COLUMNS = (*ID_COLUMNS, *ROW_METRICS, *HP_COLUMNS)


class NoRunsError(ValueError):
    """A runs directory holds no Parquet file."""


def safe_name(name: str) -> str:
    """A file-name-safe version of a run name (letters, digits, ``._-=``)."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"run_name must be a non-empty string, got {name!r}")
    return re.sub(r"[^A-Za-z0-9._=-]+", "_", name.strip())


def hp_values(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The hyper-parameter columns of a resolved config."""
    out = {k: cfg[k] for k in HP_COLUMNS}
    if out["data_seed"] is None:
        out["data_seed"] = int(cfg[protocol.SEED_KEY])
    return out


def make_row(run_name: str, epoch: int, step: int, diverged: bool, wall_s: float, metrics: Mapping[str, Any],
             cfg: Mapping[str, Any]) -> dict[str, Any]:
    row = {"run_name": run_name, "epoch": int(epoch), "step": int(step), "diverged": bool(diverged),
           "wall_s": float(wall_s)}
    row.update({k: float(metrics.get(k, math.nan)) for k in ROW_METRICS})
    row.update(hp_values(cfg))
    return row


def write_rows(rows: Sequence[Mapping[str, Any]], out_dir: str | os.PathLike, run_name: str) -> Path:
    """Write ``rows`` to ``out_dir/<run_name>.parquet`` atomically; returns the path."""
    if not rows:
        raise ValueError(f"run {run_name!r} has no rows to write")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{safe_name(run_name)}.parquet"
    df = pd.DataFrame([{c: r.get(c) for c in COLUMNS} for r in rows], columns=list(COLUMNS))
    with atomic_path(path) as tmp:
        df.to_parquet(tmp, index=False)
    return path


def read_runs(runs_dir: str | os.PathLike) -> pd.DataFrame:
    """Every run file of ``runs_dir`` (read with ``pyarrow.dataset``); :class:`NoRunsError` if there is none."""
    import pyarrow.dataset as ds

    root = Path(runs_dir)
    if not root.is_dir():
        raise NoRunsError(f"runs_dir {str(root)!r} is not a directory")
    files = sorted(str(p) for p in root.rglob("*.parquet"))
    if not files:
        raise NoRunsError(f"runs_dir {str(root)!r} holds no Parquet files")
    return ds.dataset(files, format="parquet").to_table().to_pandas()
