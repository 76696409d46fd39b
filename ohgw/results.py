"""The Parquet results dataset: its tables and columns, the partition codec, one reader, one atomic writer.

Everything that writes or reads results goes through this module: the studies harness writes with
:func:`write_study`; the analysis, the tests and the benchmarks read with :func:`read_table`; code
that needs a study's identity from a path uses :func:`study_key` / :func:`partition_value`.

Layout (hive-partitioned, one directory per study)::

    RESULTS_DIR/<table>/experiment=<e>/method=<m>/seed=<s>/part-0.parquet

for the tables ``iterations``, ``trials`` and ``studies``. The partition columns (experiment,
method, seed) live in the path, not in the files. Folder names are built by
:func:`partition_folder` (values percent-encoded, ``+ - _ .`` kept) and read back by
:func:`partition_value`; nothing else parses them.

>>> partition_folder("method", "asha+ohgw/k=2")
'method=asha+ohgw%2Fk%3D2'
>>> partition_value("method=asha+ohgw%2Fk%3D2")
'asha+ohgw/k=2'
>>> study_key("results/trials/experiment=cifar/method=asha%20x/seed=3/part-0.parquet")
('cifar', 'asha x', 3)

A study's three files are each written to a temporary name (``.tmp-*``, hidden from readers) and
renamed into place, ``studies`` last: a study exists for readers only once its ``studies`` file
does, so :func:`read_table` never returns rows of a half-written study.

Per-ψ columns of ``trials`` are named ``x.<ψ>`` (sampled), ``x_prime.<ψ>`` (after warm-start) and
``g.<ψ>`` (hyper-gradient in search coordinates u). ``studies.space`` says which coordinates: the
JSON of the run's ``SearchSpace.to_dict()``, ``{"params": [{"name", "low", "high", "transform"},
...], "discrete": {...}}`` with transform ``"log10"`` or ``"identity"`` (:func:`space_transforms`).

Scores: ``val_score`` / ``test_score`` are the tuned metric in the study's ``mode``; the analysis
converts "min" metrics so that higher is better.

Schema versions (``studies.schema_version``; :data:`SCHEMA_VERSION` is the one written and read):

* 1: the original tables, without a ``schema_version`` column.
* 2: adds ``studies.schema_version`` (int) and ``studies.space`` (str, JSON as above), and the
  warm-start settings per trial: ``trials.ws_step_rule`` (str, "" for vanilla), ``ws_eta_h``
  (float, NaN for vanilla), ``ws_hyper_steps`` and ``ws_lookahead`` (int, 0 for vanilla),
  ``ws_step_norm`` (float, 0.0 for vanilla).

:func:`read_table` with ``check=True`` refuses a dataset of another version with one
:class:`ResultsError` line (version 1 lacks the search space, so its log-scale parameters cannot
be placed in search coordinates: re-run such studies, or read them with the release that wrote them).
"""

from __future__ import annotations

import json
import os
import urllib.parse
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

SCHEMA_VERSION = 2
TABLES = ("iterations", "trials", "studies")
PARTITION_COLUMNS = ("experiment", "method", "seed")
TRANSFORMS = ("log10", "identity")

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
        "status",  # TERMINATED, COMPLETED, PRUNED, ERROR, STOPPED_BY_BUDGET, DIVERGED
        "last_epoch",
        "best_val_score",
        "final_val_score",
        "final_test_score",
        "diverged",
        "ws_mode",
        "ws_step_rule",  # v2: "raw" / "normalized"; "" for vanilla
        "ws_eta_h",  # v2: hyper step size; NaN for vanilla
        "ws_hyper_steps",  # v2: hyper-gradient steps; 0 for vanilla
        "ws_lookahead",  # v2: unrolled optimizer steps per hyper-gradient; 0 for vanilla
        "ws_step_norm",  # v2: norm of the first step in normalized coordinates; 0.0 for vanilla
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
        "schema_version",  # v2: SCHEMA_VERSION of the writer
        "space",  # v2: JSON of the run's SearchSpace.to_dict()
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

StudyKey = tuple[str, str, int]


class ResultsError(ValueError):
    """A results dataset that cannot be read as asked; the message is one line naming the file and the rule."""


def psi_names(columns: Iterable[str]) -> list[str]:
    """The hyper-parameter names that have ``x.<ψ>`` columns, in column order."""
    return [c[2:] for c in columns if c.startswith("x.")]


# ---- the partition codec -------------------------------------------------------------------------


def partition_folder(column: str, value: str | int) -> str:
    """The folder name ``<column>=<value>`` of one partition level (the one encoder)."""
    if column not in PARTITION_COLUMNS:
        raise ValueError(f"column must be one of {PARTITION_COLUMNS}, got {column!r}")
    text = str(int(value)) if column == "seed" else str(value)
    return f"{column}={urllib.parse.quote(text, safe='+-_.')}"


def partition_value(folder_name: str, column: str | None = None) -> str:
    """The decoded value of a ``<column>=<value>`` folder name (the one decoder).

    With ``column``, the folder must be of that partition level.
    """
    key, sep, value = str(folder_name).partition("=")
    if not sep or key not in PARTITION_COLUMNS or (column is not None and key != column):
        want = f"{column}=" if column is not None else "one of " + ", ".join(f"{c}=" for c in PARTITION_COLUMNS)
        raise ValueError(f"folder name {folder_name!r} is not a partition folder ({want}...)")
    return urllib.parse.unquote(value)


def study_key(path: str | os.PathLike) -> StudyKey:
    """(experiment, method, seed) of a study from any path inside or at its ``seed=`` folder."""
    parts = Path(path).parts
    for i in range(len(parts) - 1, 1, -1):
        if parts[i].startswith("seed="):
            return (
                partition_value(parts[i - 2], "experiment"),
                partition_value(parts[i - 1], "method"),
                int(partition_value(parts[i], "seed")),
            )
    raise ValueError(f"path {str(path)!r} holds no experiment=/method=/seed= folders")


def study_dir(results_dir: str | os.PathLike, table: str, experiment: str, method: str, seed: int) -> Path:
    """The folder of one study's file in ``table``."""
    return (
        Path(results_dir)
        / table
        / partition_folder("experiment", experiment)
        / partition_folder("method", method)
        / partition_folder("seed", seed)
    )


# ---- the search space column ---------------------------------------------------------------------


def space_transforms(space_json: str) -> dict[str, str]:
    """``{name: transform}`` of the continuous parameters of a ``studies.space`` value.

    >>> space_transforms('{"params": [{"name": "t", "low": 0.01, "high": 1, "transform": "log10"}], "discrete": {}}')
    {'t': 'log10'}
    """
    try:
        space = json.loads(space_json)
        out = {str(p["name"]): str(p.get("transform", "identity")) for p in space["params"]}
    except (TypeError, ValueError, KeyError) as e:
        raise ResultsError(f"studies.space: not the JSON of a search space ({type(e).__name__}: {e})") from e
    bad = sorted(f"{n}: {t!r}" for n, t in out.items() if t not in TRANSFORMS)
    if bad:
        raise ResultsError(f"studies.space: transform must be one of {TRANSFORMS}, got {', '.join(bad)}")
    return out


# ---- the writer ----------------------------------------------------------------------------------


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path beside ``path`` to write to; on success it replaces ``path`` in one rename.

    Every file the project writes for others to read goes through this (tables, manifests, the
    resume state, reports, figures): a reader, or a run killed mid-write, sees the old file or the
    new one, never half of one. On failure the temporary file is removed and ``path`` is untouched.
    The parent folder is created; the temporary name is hidden (``.tmp-*``) and keeps the suffix,
    so writers that infer a format from it still do.

    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> with atomic_path(d / "a.txt") as tmp:
    ...     _ = tmp.write_text("new")
    >>> (d / "a.txt").read_text(), sorted(p.name for p in d.iterdir())
    ('new', ['a.txt'])
    >>> try:
    ...     with atomic_path(d / "a.txt") as tmp:
    ...         _ = tmp.write_text("half")
    ...         raise RuntimeError("killed")
    ... except RuntimeError:
    ...     pass
    >>> (d / "a.txt").read_text(), sorted(p.name for p in d.iterdir())
    ('new', ['a.txt'])
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # a fresh name, not a file made by mkstemp: the writer creates it with the user's umask (mkstemp's 0600
    # would make every result unreadable to the group)
    tmp = path.with_name(f".tmp-{path.stem}-{os.getpid()}-{uuid.uuid4().hex[:8]}{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _atomic_write(df: pd.DataFrame, path: Path) -> None:
    table = pa.Table.from_pandas(df.reset_index(drop=True), preserve_index=False)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def write_study(
    results_dir: str | os.PathLike,
    experiment: str,
    method: str,
    seed: int,
    iterations: pd.DataFrame,
    trials: pd.DataFrame,
    study: pd.DataFrame,
) -> None:
    """Write one study's three tables atomically, ``studies`` last (the one writer).

    Every table needs its :data:`REQUIRED_COLUMNS` and no partition column; ``studies`` must say
    ``schema_version`` = :data:`SCHEMA_VERSION`.
    """
    frames = {"iterations": iterations, "trials": trials, "studies": study}
    for name, df in frames.items():
        missing = [c for c in REQUIRED_COLUMNS[name] if c not in df.columns]
        if missing:
            raise ValueError(f"{name} table lacks required columns {missing}")
        clash = [c for c in PARTITION_COLUMNS if c in df.columns]
        if clash:
            raise ValueError(f"{name} table must not hold partition columns {clash}; they live in the path")
    versions = sorted({str(v) for v in study["schema_version"]})
    if versions != [str(SCHEMA_VERSION)]:
        raise ValueError(f"studies table: schema_version must be {SCHEMA_VERSION}, got {versions}")
    for name in TABLES:
        _atomic_write(frames[name], study_dir(results_dir, name, experiment, method, seed) / "part-0.parquet")


# ---- the reader ----------------------------------------------------------------------------------


def table_files(
    results_dir: str | os.PathLike, table: str, experiment: str | None = None, *, complete: bool = True
) -> list[Path]:
    """The Parquet files of ``table`` (temporary files excluded), sorted; ``experiment`` filters.

    ``complete``: only files of studies whose ``studies`` file exists (an interrupted write leaves
    ``iterations``/``trials`` without one).
    """
    if table not in TABLES:
        raise ValueError(f"table must be one of {TABLES}, got {table!r}")
    root = Path(results_dir)
    files = sorted(
        p for p in (root / table).glob("experiment=*/method=*/seed=*/*.parquet") if not p.name.startswith(".")
    )
    if experiment is not None:
        files = [f for f in files if study_key(f)[0] == experiment]
    if complete and table != "studies":
        present = {study_key(f) for f in table_files(root, "studies", experiment)}
        files = [f for f in files if study_key(f) in present]
    return files


def _relative(root: Path, f: Path) -> str:
    try:
        return str(f.relative_to(root))
    except ValueError:
        return str(f)


def _schemas(root: Path, table: str, files: Sequence[Path], check: bool) -> tuple[pa.Schema, list[int]]:
    """Unified schema (partition columns left out) and row count of each file."""
    schemas, rows = [], []
    missing_by_file: list[tuple[Path, list[str]]] = []
    for f in files:
        try:
            meta = pq.read_metadata(f)
            schema = meta.schema.to_arrow_schema()
        except (OSError, pa.ArrowException) as e:
            raise ResultsError(f"results_dir: {_relative(root, f)} is not a readable Parquet file ({e})") from e
        rows.append(meta.num_rows)
        if check:
            if table == "studies" and "schema_version" not in schema.names:
                raise ResultsError(
                    f"results_dir: {_relative(root, f)} is schema version 1 (no schema_version column); this ohgw "
                    f"reads schema version {SCHEMA_VERSION}: re-run the studies, or read them with the ohgw release "
                    "that wrote them"
                )
            missing = [c for c in REQUIRED_COLUMNS[table] if c not in schema.names]
            if missing:
                missing_by_file.append((f, missing))
        schemas.append(pa.schema([fld for fld in schema if fld.name not in PARTITION_COLUMNS]))
    if missing_by_file:
        f, missing = missing_by_file[0]
        more = f" (and {len(missing_by_file) - 1} more {table} files)" if len(missing_by_file) > 1 else ""
        raise ResultsError(
            f"results_dir: {_relative(root, f)} is missing required columns: {', '.join(missing)}{more}"
        )
    if not schemas:
        return pa.schema([]), rows
    try:
        return pa.unify_schemas(schemas, promote_options="permissive"), rows
    except (pa.ArrowTypeError, pa.ArrowInvalid) as e:
        raise ResultsError(f"results_dir: the {table} files disagree on column types ({e})") from e


def read_table(
    results_dir: str | os.PathLike,
    table: str,
    *,
    experiment: str | None = None,
    columns: Sequence[str] | None = None,
    check: bool = True,
) -> pd.DataFrame:
    """One table of the dataset as a DataFrame, with ``experiment``/``method`` (str) and ``seed`` (int64).

    Only complete studies (those with a ``studies`` file) are read; ``experiment`` selects one
    experiment; ``columns`` selects columns (partition columns included; absent ones are skipped).
    Columns that only some files hold are kept, null elsewhere (the files' schemas are unified).
    ``check``: every file must hold the table's :data:`REQUIRED_COLUMNS` and studies must be of
    schema version :data:`SCHEMA_VERSION`, else :class:`ResultsError` with one line. A table
    without files gives an empty frame with the required (or selected) columns.
    """
    root = Path(results_dir)
    files = table_files(root, table, experiment)
    schema, rows = _schemas(root, table, files, check)
    names = [*schema.names, *PARTITION_COLUMNS] if files else [*REQUIRED_COLUMNS[table], *PARTITION_COLUMNS]
    wanted = names if columns is None else [c for c in columns if c in names]
    if not files:
        return pd.DataFrame({c: pd.Series(dtype="int64" if c == "seed" else object) for c in wanted})
    file_cols = [c for c in wanted if c not in PARTITION_COLUMNS]
    versioned = check and table == "studies"
    if versioned and "schema_version" not in file_cols:
        file_cols.append("schema_version")
    # to_table keeps the files' order, so each file's rows are one contiguous block of len rows[i]
    df = ds.dataset([str(f) for f in files], schema=schema, format="parquet").to_table(columns=file_cols).to_pandas()
    if versioned:
        version = pd.to_numeric(df["schema_version"], errors="coerce").to_numpy(float)
        bad = np.flatnonzero(version != SCHEMA_VERSION)
        if len(bad):
            f = files[int(np.repeat(np.arange(len(files)), rows)[bad[0]])]
            raise ResultsError(
                f"results_dir: {_relative(root, f)} is schema version {df['schema_version'].iloc[bad[0]]}; "
                f"this ohgw reads schema version {SCHEMA_VERSION} only"
            )
    keys = [study_key(f) for f in files]
    for j, c in enumerate(PARTITION_COLUMNS):
        if c in wanted:
            df[c] = np.repeat(np.array([k[j] for k in keys], dtype="int64" if c == "seed" else object), rows)
    return df[wanted]
