"""The Parquet results dataset: its tables, columns, and atomic per-study files.

Layout (hive-partitioned, one directory per study)::

    RESULTS_DIR/<table>/experiment=<e>/method=<m>/seed=<s>/part-0.parquet

for the tables ``iterations``, ``trials`` and ``studies``. The partition columns
(experiment, method, seed) live in the path, not in the files. A study's three
files are each written to a temporary name and renamed into place, ``studies``
last: a study exists for readers only once its ``studies`` file does, so a crash
never leaves a half-written study that readers pick up.

Per-ψ columns are named ``x.<ψ>`` (sampled), ``x_prime.<ψ>`` (after warm-start)
and ``g.<ψ>`` (hyper-gradient in search coordinates).

Scores: ``val_score`` / ``test_score`` are the tuned metric in the study's
``mode``; the analysis converts "min" metrics so that higher is better.
"""

from __future__ import annotations

import os
import tempfile
import urllib.parse
from collections.abc import Iterable
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

TABLES = ("iterations", "trials", "studies")
PARTITION_COLUMNS = ("experiment", "method", "seed")

# Columns every file of a table must hold (per-ψ columns come on top).
REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    "iterations": (
        "study_id",
        "trial_id",
        "trial_index",
        "epoch",  # the trial's training_iteration (1-based)
        "val_score",
        "test_score",
        "val_loss",
        "train_loss",
        "wall_s",  # seconds since the study started, at this report
        "compute_s",  # cumulative compute seconds of the whole study at this report
        "epoch_equiv",  # cumulative epoch-equivalents of the whole study (warm-starts included)
        "trial_compute_s",
        "trial_epoch_equiv",
        "ws_compute_s",  # warm-start compute seconds charged at this report (first report only)
        "decision",  # scheduler decision after this report: CONTINUE / PAUSE / STOP / "" if unknown
    ),
    "trials": (
        "study_id",
        "trial_id",
        "trial_index",
        "status",  # TERMINATED, ERROR, STOPPED_BY_BUDGET, DIVERGED
        "last_epoch",
        "best_val_score",
        "final_val_score",
        "final_test_score",
        "diverged",
        "ws_mode",
        "ws_compute_s",
        "ws_wall_s",
        "ws_peak_rss_mib",
        "trial_compute_s",
        "trial_epoch_equiv",
        "peak_rss_mib",
        "node_id",
    ),
    "studies": (
        "study_id",
        "vanilla_method",  # the paired baseline's method name ("" for a baseline itself)
        "metric",
        "mode",  # "max" or "min"
        "budget_kind",  # "epochs" or "seconds"
        "budget",
        "tau",
        "max_t",
        "start_time",  # ISO-8601 UTC
        "end_time",
        "completed",
        "wall_s",
        "compute_s",
        "epoch_equiv",
        "n_trials",
        "peak_rss_mib",
        "cpu_model",
        "gpu_model",
        "n_cpus",
        "n_gpus",
        "versions",  # JSON {package: version}
        "git_commit",
    ),
}

PSI_PREFIXES = ("x.", "x_prime.", "g.")


def psi_names(columns: Iterable[str]) -> list[str]:
    """The hyper-parameter names that have ``x.<ψ>`` columns, in column order."""
    return [c[2:] for c in columns if c.startswith("x.")]


def study_dir(results_dir: str | os.PathLike, table: str, experiment: str, method: str, seed: int) -> Path:
    enc = lambda s: urllib.parse.quote(str(s), safe="+-_.")  # noqa: E731
    return Path(results_dir) / table / f"experiment={enc(experiment)}" / f"method={enc(method)}" / f"seed={int(seed)}"


def _atomic_write(df: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pandas(df.reset_index(drop=True), preserve_index=False)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".parquet", dir=path.parent)
    os.close(fd)
    try:
        pq.write_table(table, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_study(
    results_dir: str | os.PathLike,
    experiment: str,
    method: str,
    seed: int,
    iterations: pd.DataFrame,
    trials: pd.DataFrame,
    study: pd.DataFrame,
) -> None:
    """Write one study's three tables atomically, ``studies`` last."""
    frames = {"iterations": iterations, "trials": trials, "studies": study}
    for name, df in frames.items():
        missing = [c for c in REQUIRED_COLUMNS[name] if c not in df.columns]
        if missing:
            raise ValueError(f"{name} table lacks required columns {missing}")
        clash = [c for c in PARTITION_COLUMNS if c in df.columns]
        if clash:
            raise ValueError(f"{name} table must not hold partition columns {clash}; they live in the path")
    for name in TABLES:
        _atomic_write(frames[name], study_dir(results_dir, name, experiment, method, seed) / "part-0.parquet")


def read_table(results_dir: str | os.PathLike, table: str) -> pd.DataFrame:
    """One table of the dataset as a DataFrame, with experiment/method (str) and seed (int).

    Rows of studies whose ``studies`` file is absent (interrupted writes) are dropped.
    """
    if table not in TABLES:
        raise ValueError(f"table must be one of {TABLES}, got {table!r}")
    root = Path(results_dir) / table
    if not root.is_dir():
        return pd.DataFrame()
    files = [str(p) for p in sorted(root.glob("experiment=*/method=*/seed=*/part-0.parquet"))]
    if not files:
        return pd.DataFrame()
    partitioning = ds.partitioning(
        pa.schema([("experiment", pa.string()), ("method", pa.string()), ("seed", pa.int64())]), flavor="hive"
    )
    # columns that only some studies have (e.g. warm-start keys) are kept: unify all files' schemas
    file_schema = pa.unify_schemas([pq.read_schema(f) for f in files], promote_options="permissive")
    dataset = ds.dataset(
        files,
        schema=pa.unify_schemas([file_schema, partitioning.schema]),
        partition_base_dir=str(root),
        format="parquet",
        partitioning=partitioning,
    )
    df = dataset.to_table().to_pandas()
    if df.empty:
        return df
    for c in ("experiment", "method"):
        df[c] = df[c].astype(str)
    df["seed"] = df["seed"].astype("int64")
    if table != "studies":
        studies_root = Path(results_dir) / "studies"
        present = {
            (urllib.parse.unquote(p.parent.parent.parent.name.split("=", 1)[1]),
             urllib.parse.unquote(p.parent.parent.name.split("=", 1)[1]),
             int(p.parent.name.split("=", 1)[1]))
            for p in studies_root.glob("experiment=*/method=*/seed=*/part-0.parquet")
        }
        keep = [(e, m, int(s)) in present for e, m, s in zip(df["experiment"], df["method"], df["seed"])]
        df = df[keep].reset_index(drop=True)
    return df
