"""The results directory's manifest: one experiment per directory, and which studies are done.

``experiment.json`` holds the experiment's fingerprint
(:meth:`~ohgw.studies.study.ExperimentConfig.fingerprint`: the run settings only, so another τ
is no other experiment); a directory holding another experiment is refused before anything is
written, naming the settings that differ. A study whose ``studies`` Parquet file exists is done.
"""

from __future__ import annotations

import json
from pathlib import Path

from ohgw.results import atomic_path, partition_value, study_dir
from ohgw.studies.study import ANALYSIS_FIELDS, ExperimentConfig

MANIFEST = "experiment.json"


def check_manifest(out_dir: Path, cfg: ExperimentConfig) -> None:
    """Refuse a directory that holds another experiment; writes nothing.

    The analysis settings (τ, the metric's range) are not compared: re-analysing at any τ,
    or re-running the same studies with another ``--tau``, is always allowed.
    """
    path = Path(out_dir) / MANIFEST
    mine = cfg.fingerprint()  # JSON-normal, as the manifest was written
    if path.exists():
        # manifests written before τ moved to the analysis still hold it: ignore it there too
        theirs = {k: v for k, v in json.loads(path.read_text()).items() if k not in ANALYSIS_FIELDS}
        if theirs != mine:
            name = theirs.get("experiment", "?")
            diff = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))
            raise ValueError(f"output directory {out_dir} holds experiment {name!r} with other settings "
                             f"(differs in {', '.join(diff)}); use another --out")
    studies = Path(out_dir) / "studies"
    if studies.is_dir():
        names = {partition_value(p.name, "experiment") for p in studies.glob("experiment=*")}
        others = sorted(names - {cfg.experiment})
        if others:
            raise ValueError(f"output directory {out_dir} holds studies of other experiments {others}; use another --out")


def write_manifest(out_dir: Path, cfg: ExperimentConfig) -> None:
    with atomic_path(out_dir / MANIFEST) as tmp:
        tmp.write_text(json.dumps(cfg.fingerprint(), indent=2, sort_keys=True))


def is_done(out_dir: Path, experiment: str, method: str, seed: int) -> bool:
    return (study_dir(out_dir, "studies", experiment, method, seed) / "part-0.parquet").exists()


def is_results_dir(out_dir: Path) -> bool:
    """A directory the runner may write into: absent, empty, or holding an experiment's manifest."""
    out = Path(out_dir)
    if not out.exists():
        return True
    return out.is_dir() and ((out / MANIFEST).is_file() or not any(out.iterdir()))


def check_keep_tune_dirs(out_dir: Path) -> None:
    """``--keep-tune-dirs`` keeps Tune's trees (large) in ``out_dir``: only in a results directory."""
    if not is_results_dir(out_dir):
        raise ValueError(f"--keep-tune-dirs: {out_dir} is not a results directory (not empty and no {MANIFEST}); "
                         "use another --out")


__all__ = ["MANIFEST", "check_keep_tune_dirs", "check_manifest", "is_done", "is_results_dir", "write_manifest"]
