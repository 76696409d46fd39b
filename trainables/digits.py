"""scikit-learn's handwritten digits and their stratified splits, without importing scikit-learn.

A digits trial process used to import scikit-learn (~2-3 s of CPU on 2 cores, once per trial
actor) only for :func:`sklearn.datasets.load_digits` and two stratified
:func:`sklearn.model_selection.train_test_split` calls. Here:

- :func:`read_digits` parses the data file that ships inside the scikit-learn package
  (``sklearn/datasets/data/digits.csv.gz``, found with :func:`importlib.util.find_spec`, which
  imports nothing) exactly as ``load_digits`` does: the same ``np.loadtxt`` call on the same
  bytes, so the same float64 images and targets;
- :func:`stratified_split` returns the (train, val, test) indices of ``train_test_split``'s
  stratified shuffle, computed with scikit-learn once per machine and kept in a small JSON file in
  the cache folder (``$OHGW_CACHE_DIR``, else ``$XDG_CACHE_HOME/ohgw-tune``, else
  ``~/.cache/ohgw-tune``; then ``digits/``). The file is named and checked by everything the
  indices depend on (:data:`FORMAT`, scikit-learn's version, the data file's SHA-256, the
  fractions and the seed), carries a SHA-256 of its indices, and must hold a partition of the
  samples; a file that fails any check (a partial write, a flipped byte, another version's) is
  rebuilt with a warning. It is written atomically (:func:`ohgw.results.atomic_path`), so a
  reader never sees half of one.

Both are shared by the families that use the digits (beside the scaffold, like
:mod:`trainables.nets`).

>>> images, target = read_digits()
>>> images.shape, images.dtype, float(images.max()), target.dtype, np.bincount(target).tolist()
((1797, 8, 8), dtype('float64'), 16.0, dtype('int64'), [178, 182, 177, 183, 181, 182, 181, 179, 174, 180])
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import warnings
from pathlib import Path

import numpy as np

FORMAT = 1  # bump when the cache file's layout or meaning changes
SPLITS = ("train", "val", "test")


def data_file() -> Path:
    """The digits file inside the installed scikit-learn package (found without importing it)."""
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("the digits data ship with scikit-learn, which is not installed "
                                  "(pip install scikit-learn)")
    return Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data" / "digits.csv.gz"


def read_digits() -> tuple[np.ndarray, np.ndarray]:
    """(images (1797, 8, 8) float64 in 0..16, target (1797,) int64): ``load_digits()``'s ``images`` and ``target``."""
    with gzip.open(data_file(), mode="rt", encoding="utf-8") as f:  # as sklearn.datasets.load_digits reads it
        data = np.loadtxt(f, delimiter=",")
    return data[:, :-1].reshape(-1, 8, 8), data[:, -1].astype(int, copy=False)


def default_cache_dir() -> Path:
    """``$OHGW_CACHE_DIR/digits``, else ``$XDG_CACHE_HOME/ohgw-tune/digits``, else ``~/.cache/ohgw-tune/digits``."""
    base = os.environ.get("OHGW_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "ohgw-tune")
    return Path(base) / "digits"


def split_key(test_fraction: float, val_fraction: float, seed: int) -> dict:
    """Everything the split's indices depend on; a cache file answers only for its own key."""
    for name, v in (("test_fraction", test_fraction), ("val_fraction", val_fraction)):
        if not 0 < v < 1:
            raise ValueError(f"{name} must be in (0, 1), got {v!r}")
    if test_fraction + val_fraction >= 1:
        raise ValueError(f"test_fraction + val_fraction must be < 1, got {test_fraction} + {val_fraction}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    return {"format": FORMAT, "sklearn": importlib.metadata.version("scikit-learn"),
            "data_sha256": hashlib.sha256(data_file().read_bytes()).hexdigest(),
            "test_fraction": float(test_fraction), "val_fraction": float(val_fraction), "seed": int(seed)}


def cache_path(key: dict, cache_dir: str | os.PathLike | None = None) -> Path:
    """The cache file of ``key``: readable parameters plus a digest of the whole key."""
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return Path(cache_dir if cache_dir is not None else default_cache_dir()) / (
        f"split-v{key['format']}-sklearn{key['sklearn']}-s{key['seed']}-{digest}.json")


def _indices_digest(parts: dict[str, list[int]]) -> str:
    return hashlib.sha256(json.dumps([parts[s] for s in SPLITS]).encode()).hexdigest()


def _read_cached(path: Path, key: dict, n: int) -> tuple[dict[str, np.ndarray] | None, str]:
    """(the cached indices, "") or (None, why the file cannot be used; "" if it is absent)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None, ""
    try:
        stored = json.loads(text)
        parts = {s: stored[s] for s in SPLITS}
        ok_types = all(isinstance(v, list) and all(type(i) is int for i in v) for v in parts.values())
    except (ValueError, TypeError, KeyError) as e:
        return None, f"unreadable ({type(e).__name__})"
    if not ok_types:
        return None, "not lists of indices"
    if stored.get("key") != key:
        return None, "written for another key"
    if stored.get("sha256") != _indices_digest(parts):
        return None, "its indices do not match their SHA-256"
    if sorted(i for s in SPLITS for i in parts[s]) != list(range(n)):
        return None, f"its indices are not a partition of the {n} samples"
    return {s: np.asarray(parts[s], dtype=np.int64) for s in SPLITS}, ""


def _compute(target: np.ndarray, key: dict) -> dict[str, np.ndarray]:
    """Two stratified ``train_test_split`` calls: test off the whole, then val off the rest."""
    from sklearn.model_selection import train_test_split

    seed, test_fraction, val_fraction = key["seed"], key["test_fraction"], key["val_fraction"]
    idx = np.arange(len(target))
    rest, test = train_test_split(idx, test_size=test_fraction, random_state=seed, stratify=target)
    val_share = val_fraction / (1 - test_fraction)
    train, val = train_test_split(rest, test_size=val_share, random_state=seed, stratify=target[rest])
    return {"train": train, "val": val, "test": test}


def stratified_split(target: np.ndarray, test_fraction: float, val_fraction: float, seed: int,
                     cache_dir: str | os.PathLike | None = None) -> dict[str, np.ndarray]:
    """``{"train", "val", "test"}`` int64 indices into :func:`read_digits`' samples, stratified by ``target``.

    Exactly ``rest, test = train_test_split(idx, test_size=test_fraction, random_state=seed,
    stratify=target)`` then ``train, val = train_test_split(rest, test_size=val_fraction /
    (1 - test_fraction), random_state=seed, stratify=target[rest])``, in their order; scikit-learn is
    imported only when the cache has no valid file for these parameters.
    """
    key = split_key(test_fraction, val_fraction, seed)
    path = cache_path(key, cache_dir)
    cached, problem = _read_cached(path, key, len(target))
    if cached is not None:
        return cached
    if problem:
        warnings.warn(f"digits split cache {path} is {problem}; rebuilding it", RuntimeWarning, stacklevel=2)
    parts = _compute(np.asarray(target), key)
    lists = {s: [int(i) for i in parts[s]] for s in SPLITS}
    try:
        from ohgw.results import atomic_path

        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps({"key": key, **lists, "sha256": _indices_digest(lists)}), encoding="utf-8")
    except OSError as e:
        warnings.warn(f"could not write the digits split cache {path} ({e}); each process will import "
                      "scikit-learn to compute it", RuntimeWarning, stacklevel=2)
    return {s: np.asarray(parts[s], dtype=np.int64) for s in SPLITS}


__all__ = ["FORMAT", "cache_path", "data_file", "default_cache_dir", "read_digits", "split_key", "stratified_split"]
