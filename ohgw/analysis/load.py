"""Load and validate one experiment of the Parquet results dataset.

The analysis reads only through :mod:`ohgw.results` (its one reader, :func:`ohgw.results.read_table`,
and its codec for the partition folders); nothing here parses paths or opens Parquet files.
Everything passes through :func:`load_results`, which turns every kind of bad input into one
:class:`AnalysisError` line naming the problem: no studies, files missing required columns
(named), a dataset of another schema version (version 1 is refused: it lacks the search space),
several experiments in one directory, unknown modes, duplicate studies, studies disagreeing on the
search space.

Scores are converted to "higher is better" here (``score`` / ``test`` columns; a "min" study's
scores are negated) and the compute clock is converted to GPU-hours when the studies ran on GPUs.
The search space is the run's own (``studies.space``): :attr:`Results.transforms` maps each
hyper-parameter to the transform ("log10" or "identity") of its search coordinates.

>>> import tempfile
>>> try:
...     load_results(tempfile.mkdtemp())
... except AnalysisError as e:
...     print(str(e).split(":")[1].strip())
no studies found (expected studies/experiment=*/method=*/seed=*/part-0.parquet)
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ohgw.results import ResultsError, psi_names, read_table, space_transforms, study_key, table_files

# The three clocks of T@tau: name -> column in iterations and studies.
CLOCKS: dict[str, str] = {"wall": "wall_s", "compute": "compute_s", "epochs": "epoch_equiv"}


class AnalysisError(ValueError):
    """Bad input to the analysis; the message is one line naming the argument and the rule."""


class AnalysisWarning(UserWarning):
    """Something the analysis worked around (an unpaired seed, tau never reached, ...)."""


@dataclass
class Results:
    """One experiment's studies, trials and iterations, validated, scores higher-is-better.

    ``studies`` has one row per (method, seed) with ``sid`` (0..n-1) and ``sign`` (+1 max, -1 min);
    ``iterations`` and ``trials`` carry ``sid`` too. ``iterations.score``/``test`` and
    ``trials.best_score``/``final_score``/``final_test`` are higher-is-better.
    """

    results_dir: Path
    experiment: str
    metric: str
    mode: str
    studies: pd.DataFrame
    trials: pd.DataFrame
    iterations: pd.DataFrame
    psi: list[str]
    compute_unit: str  # "GPU-h" or "compute s"
    warnings: list[str] = field(default_factory=list)
    compute_factor: np.ndarray | None = None  # per sid: compute seconds -> GPU-hours (None on CPU)
    space: dict = field(default_factory=dict)  # the run's SearchSpace.to_dict() (studies.space)
    transforms: dict[str, str] = field(default_factory=dict)  # psi -> "log10" / "identity", from space

    @property
    def sign(self) -> float:
        return 1.0 if self.mode == "max" else -1.0

    @property
    def methods(self) -> list[str]:
        """Methods in display order: each baseline followed by the methods paired with it."""
        vm = self.studies.groupby("method")["vanilla_method"].first().to_dict()
        baselines = sorted(m for m, v in vm.items() if not v or v not in vm)
        out: list[str] = []
        for b in baselines:
            out.append(b)
            out.extend(sorted(m for m, v in vm.items() if v == b and m != b))
        return out + sorted(set(vm) - set(out))  # methods paired with a non-baseline come last

    def partner(self, method: str) -> str:
        """The vanilla partner of ``method`` ("" for a baseline or a partner absent from the data)."""
        v = self.studies.loc[self.studies["method"] == method, "vanilla_method"].iloc[0]
        return v if v and v in set(self.studies["method"]) and v != method else ""


def warn(results_or_list, message: str) -> None:
    """Record ``message`` (a list or a Results' warnings) and emit it as an AnalysisWarning."""
    target = results_or_list.warnings if isinstance(results_or_list, Results) else results_or_list
    target.append(message)
    warnings.warn(message, AnalysisWarning, stacklevel=3)


def _read(root: Path, table: str, experiment: str, columns: list[str] | None = None) -> pd.DataFrame:
    try:
        return read_table(root, table, experiment=experiment, columns=columns, check=True)
    except ResultsError as e:
        raise AnalysisError(str(e)) from e


def _space(studies: pd.DataFrame) -> tuple[dict, dict[str, str]]:
    """The experiment's search space (all studies must record the same) and its transforms."""
    parsed: dict[str, tuple[int, dict]] = {}
    for i, text in enumerate(studies["space"].astype(str)):
        if text not in parsed:
            try:
                space_transforms(text)
                parsed[text] = (i, json.loads(text))
            except ResultsError as e:
                m, s = studies.loc[i, ["method", "seed"]]
                raise AnalysisError(f"{e} (method {m!r} seed {s})") from e
    spaces = {json.dumps(d["params"], sort_keys=True): (i, d) for i, d in parsed.values()}
    if len(spaces) > 1:
        (i, _), (j, _) = list(spaces.values())[:2]
        a, b = (tuple(studies.loc[k, ["method", "seed"]]) for k in (i, j))
        raise AnalysisError(
            f"studies.space: the studies disagree on the search space (method {a[0]!r} seed {a[1]} vs method "
            f"{b[0]!r} seed {b[1]}); one experiment needs one space"
        )
    space = next(iter(spaces.values()))[1]
    return space, {str(p["name"]): str(p["transform"]) for p in space["params"]}


def _one(studies: pd.DataFrame, column: str, rule: str) -> str:
    values = sorted({str(v) for v in studies[column]})
    if len(values) != 1:
        raise AnalysisError(f"studies.{column}: {rule}, got {values}")
    return values[0]


def load_results(results_dir: str | os.PathLike, experiment: str | None = None) -> Results:
    """Read, validate and normalise one experiment under ``results_dir``.

    ``experiment`` selects one experiment when the directory holds several (otherwise that is an
    error). Raises :class:`AnalysisError` with one line for every kind of bad input.
    """
    root = Path(results_dir)
    if not root.is_dir():
        raise AnalysisError(f"results_dir {str(root)!r}: not a directory")
    experiments = sorted({study_key(f)[0] for f in table_files(root, "studies")})
    if not experiments:
        raise AnalysisError(
            f"results_dir {str(root)!r}: no studies found (expected studies/experiment=*/method=*/seed=*/part-0.parquet)"
        )
    if experiment is None:
        if len(experiments) > 1:
            raise AnalysisError(
                f"results_dir {str(root)!r} mixes experiments {experiments}; analyse one at a time (--experiment NAME)"
            )
        experiment = experiments[0]
    elif experiment not in experiments:
        raise AnalysisError(f"experiment {experiment!r}: not in results_dir {str(root)!r} (has {experiments})")

    studies = _read(root, "studies", experiment)
    dup = studies.duplicated(["method", "seed"])
    if dup.any():
        m, s = studies.loc[dup, ["method", "seed"]].iloc[0]
        raise AnalysisError(f"studies: more than one row for method {m!r} seed {s}; one study per (method, seed)")
    mode = _one(studies, "mode", "one experiment needs one mode")
    if mode not in ("max", "min"):
        raise AnalysisError(f"studies.mode: must be 'max' or 'min', got {mode!r}")
    metric = _one(studies, "metric", "one experiment needs one tuned metric")
    studies["vanilla_method"] = studies["vanilla_method"].fillna("").astype(str)
    per_method = studies.groupby("method")["vanilla_method"].nunique()
    if (per_method > 1).any():
        m = per_method[per_method > 1].index[0]
        raise AnalysisError(f"studies.vanilla_method: method {m!r} names more than one vanilla partner")
    studies = studies.sort_values(["method", "seed"]).reset_index(drop=True)
    studies["sid"] = np.arange(len(studies), dtype=np.int64)
    space, transforms = _space(studies)
    sign = 1.0 if mode == "max" else -1.0

    it_cols = [
        "trial_index", "epoch", "val_score", "test_score", "wall_s", "compute_s", "epoch_equiv",
        "ws_compute_s", "decision", "method", "seed",
        "epoch_s", "samples_per_s",  # optional (the epoch-length note of the overhead criterion)
    ]
    iterations = _read(root, "iterations", experiment, it_cols)
    trials = _read(root, "trials", experiment)
    unknown = [p for p in psi_names(trials.columns) if p not in transforms]
    if unknown:
        raise AnalysisError(
            f"trials.x.{unknown[0]}: hyper-parameter {unknown[0]!r} is not in the studies' search space "
            f"(has {sorted(transforms)})"
        )

    key = studies[["method", "seed", "sid"]]

    def attach(df: pd.DataFrame) -> pd.DataFrame:
        # read_table returns complete studies only; the join attaches each row's sid
        df = df.astype({"method": str, "seed": "int64"})
        return df.merge(key, on=["method", "seed"], how="inner", sort=False)

    iterations = attach(iterations)
    trials = attach(trials)
    for c in ("val_score", "test_score", "wall_s", "compute_s", "epoch_equiv", "ws_compute_s", "epoch"):
        iterations[c] = pd.to_numeric(iterations[c], errors="coerce").astype("float64")
    iterations["score"] = sign * iterations["val_score"].to_numpy()
    iterations["test"] = sign * iterations["test_score"].to_numpy()
    iterations["decision"] = iterations["decision"].fillna("").astype(str).str.upper()
    for c in ("best_val_score", "final_val_score", "final_test_score", "last_epoch", "ws_compute_s", "peak_rss_mib"):
        trials[c] = pd.to_numeric(trials[c], errors="coerce").astype("float64")
    trials["best_score"] = sign * trials["best_val_score"].to_numpy()
    trials["final_score"] = sign * trials["final_val_score"].to_numpy()
    trials["final_test"] = sign * trials["final_test_score"].to_numpy()

    # Trials used GPUs when gpus_per_trial > 0 (or, without that column, when the node had GPUs).
    n_gpus = pd.to_numeric(studies["n_gpus"], errors="coerce").fillna(0)
    if "gpus_per_trial" in studies.columns:
        per_trial = pd.to_numeric(studies["gpus_per_trial"], errors="coerce").fillna(0.0)
        uses_gpu = (per_trial > 0) & (n_gpus > 0)
    else:
        per_trial = pd.Series(1.0, index=studies.index)
        uses_gpu = n_gpus > 0
    on_gpu = bool(uses_gpu.all())
    res = Results(
        results_dir=root, experiment=experiment, metric=metric, mode=mode, studies=studies, trials=trials,
        iterations=iterations, psi=psi_names(trials.columns), compute_unit="GPU-h" if on_gpu else "compute s",
        space=space, transforms=transforms,
    )
    if uses_gpu.any() and not on_gpu:
        warn(res, "studies: some studies' trials used GPUs and some did not; the compute clock stays in compute seconds")
    if on_gpu:  # GPU-hours = compute_s * GPUs per trial / 3600
        res.compute_factor = per_trial.to_numpy(float) / 3600.0
        studies["compute_s"] = pd.to_numeric(studies["compute_s"], errors="coerce") * res.compute_factor
        iterations["compute_s"] = iterations["compute_s"].to_numpy() * res.compute_factor[iterations["sid"].to_numpy()]
    if "deterministic" in trials.columns:  # results written before the setting existed lack the column
        loose = trials["deterministic"].eq(False).to_numpy() & uses_gpu.to_numpy()[trials["sid"].to_numpy()]
        if loose.any():
            warn(res, f"pairs are approximate: {int(loose.sum())} trials ran on GPUs with deterministic false, so "
                      "a trial and its twin may differ from the first step, not only after the warm-start")
    for col in CLOCKS.values():
        studies[col] = pd.to_numeric(studies[col], errors="coerce").astype("float64")
    for c in ("peak_rss_mib", "tau"):
        studies[c] = pd.to_numeric(studies[c], errors="coerce").astype("float64")
    n_reports = np.bincount(iterations["sid"].to_numpy(), minlength=len(studies))
    for sid in np.flatnonzero(n_reports == 0):
        m, s = studies.loc[sid, ["method", "seed"]]
        warn(res, f"study {m} seed {s} has no iteration reports; it counts as never reaching tau")
    return res
