"""The processes the harness starts again and again import only what they use.

A study's planner (the CLI), its runner and every study task (a Ray task that unpickles
:func:`ohgw.studies.study.run_study`) never compute a hyper-gradient, so importing them must not
import torch (~3 s of CPU per process on 2 cores), nor scipy's statistics (the runner needs them
only for a sequential study). Each check runs in a fresh interpreter: this process has long
imported both.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from ohgw.studies import tables

# torch-free at import: what the harness' driver and its study tasks load, and what they load the settings from
TORCH_FREE = ("ohgw.studies.cli", "ohgw.studies.runner", "ohgw.studies.study", "ohgw.studies.methods",
              "ohgw.warmstart_settings", "ohgw.warmstart", "ohgw.cost", "ohgw.tune")
HEAVY = ("torch", "scipy.stats", "sklearn")
GPU_FREE = not any(os.path.exists(p) for p in tables.GPU_DEVICE_FILES)  # else torch counts the GPUs


def _run(code: str, env: dict | None = None) -> tuple[list[str], dict]:
    """(the lines ``code`` printed, which of :data:`HEAVY` were imported) in a fresh interpreter."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps({{m: m in sys.modules for m in {HEAVY!r}}}))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True,
                         env=env).stdout.strip().splitlines()
    return out[:-1], json.loads(out[-1])


def test_the_harness_modules_import_neither_torch_nor_scipy_stats():
    from ohgw.studies.tables import hardware_info

    # and a study task's last step, the studies table's hardware columns, needs no torch on a machine without GPUs
    code = "\n".join(f"import {m}" for m in TORCH_FREE) + (
        "\nfrom ohgw.studies.tables import hardware_info\nprint(json.dumps(hardware_info()))")
    printed, loaded = _run(f"import json\n{code}")
    assert loaded == {"torch": not GPU_FREE, "scipy.stats": False, "sklearn": False}
    assert json.loads(printed[-1]) == hardware_info.__wrapped__()  # what torch (imported here) says


def _study_task(cfg, trainable, storage: str) -> dict:
    """A study as the runner runs one (:func:`ohgw.studies.study.run_study` in a Ray task), and what it imported."""
    from ohgw.studies.study import AUTO_LOGGERS_ENV, run_study

    before = {m: m in sys.modules for m in HEAVY}
    tables = run_study(cfg, trainable, "asha+ohgw", 0, storage)
    files = sorted(p.name for p in Path(storage).rglob("*") if p.is_file())
    return {"before": before, "after": {m: m in sys.modules for m in HEAVY}, "rows": {k: len(v) for k, v in tables.items()},
            "env": os.environ.get(AUTO_LOGGERS_ENV), "files": files}


@pytest.mark.ray
def test_a_study_task_imports_no_torch_when_its_trainable_does_not(ray_local, tmp_path):
    from ohgw.space import SearchSpace
    from ohgw.studies.study import ExperimentConfig

    import harness_trainables

    cfg = ExperimentConfig(experiment="import-cost", space=SearchSpace.from_bounds({"lr": (1e-3, 1.0, "log10")}),
                           base_config={"epoch_s": 0.01}, max_t=2, budget=2.0, tau=0.5)
    ray_local.cloudpickle.register_pickle_by_value(harness_trainables)  # the workers cannot import tests/
    try:  # a runtime env of its own: a fresh worker process, which no earlier task has made import torch
        task = ray_local.remote(num_cpus=0, runtime_env={"env_vars": {"OHGW_TEST_FRESH_WORKER": "import-cost"}})
        got = ray_local.get(task(_study_task).remote(cfg, harness_trainables.curve_trainable, str(tmp_path)))
    finally:
        ray_local.cloudpickle.unregister_pickle_by_value(harness_trainables)
    assert got["before"] == dict.fromkeys(HEAVY, False)  # the precondition: a fresh worker
    assert got["rows"]["studies"] == 1 and got["rows"]["iterations"] >= 2
    assert got["after"] == {"torch": not GPU_FREE, "scipy.stats": False, "sklearn": False}
    # Tune's CSV and JSON logs are still written, TensorBoard's (tensorboardX imports torch) not
    assert {"progress.csv", "result.json"} <= set(got["files"])
    assert not [f for f in got["files"] if f.startswith("events.out.tfevents")]
    assert got["env"] is None  # the switch is unset again once the study has run


def test_the_digits_experiment_s_driver_and_what_it_ships_import_no_torch(monkeypatch):
    """``experiments/asha_vs_ohgw.py``: its ``--help``, its workload (base-config check included) and the trainable
    it ships to study tasks, unpickled in a fresh process, import no torch; the trial's own process does."""
    import ray.cloudpickle

    from trainables.classification import train_classifier_in_trial

    script = Path(__file__).resolve().parent.parent / "experiments" / "asha_vs_ohgw.py"
    printed, loaded = _run(f"import contextlib, io, runpy, sys\nsys.argv = [{str(script)!r}, '--help']\n"
                           "with contextlib.redirect_stdout(io.StringIO()) as out, contextlib.suppress(SystemExit):\n"
                           f"    runpy.run_path({str(script)!r}, run_name='__main__')\n"
                           "print('--budget-kind' in out.getvalue())\n"
                           "from trainables.classification import workload\n"
                           "w = workload()\nw.check_base_config(w.presets['digits']['base_config'])")
    assert printed == ["True"] and loaded == dict.fromkeys(HEAVY, False)
    shipped = ray.cloudpickle.dumps(train_classifier_in_trial)
    printed, loaded = _run(f"import pickle\nf = pickle.loads({shipped!r})\nprint(f.__name__)")
    assert printed == ["train_classifier_in_trial"] and loaded == dict.fromkeys(HEAVY, False)

    # and in the trial it is the family's trainable, called with the trial's config
    from trainables.classification import run

    seen = []
    monkeypatch.setattr(run, "train_classifier", seen.append)
    train_classifier_in_trial({"lr": 0.1})
    assert seen == [{"lr": 0.1}]


def test_the_settings_re_exported_by_warmstart_are_the_torch_free_ones():
    import ohgw
    from ohgw import warmstart, warmstart_settings

    for name in warmstart_settings.__all__:
        assert getattr(warmstart, name) is getattr(warmstart_settings, name), name
    assert ohgw.WarmStartSettings is warmstart_settings.WarmStartSettings


# ---- a digits trial reads the data and its split without scikit-learn ------------------------------------------

def _sklearn_split(seed: int):
    """The split as the data module made it before :mod:`trainables.digits`: sklearn itself, in this process."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    from trainables.classification.data import DIGITS_TEST_FRACTION, DIGITS_VAL_FRACTION

    d = load_digits()
    y = d.target.astype(np.int64)
    rest, test = train_test_split(np.arange(len(y)), test_size=DIGITS_TEST_FRACTION, random_state=seed, stratify=y)
    val_share = DIGITS_VAL_FRACTION / (1 - DIGITS_TEST_FRACTION)
    train, val = train_test_split(rest, test_size=val_share, random_state=seed, stratify=y[rest])
    return d, {"train": train, "val": val, "test": test}


@pytest.fixture
def cache_home(tmp_path, monkeypatch):
    """The cache folder of this test alone (``$XDG_CACHE_HOME``), and the data module's per-process cache emptied."""
    from trainables.classification import data

    monkeypatch.delenv("OHGW_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    data.clear_cache()
    yield tmp_path / "ohgw-tune" / "digits"
    data.clear_cache()


def _split(seed: int) -> dict:
    from trainables import digits
    from trainables.classification.data import DIGITS_TEST_FRACTION, DIGITS_VAL_FRACTION

    return digits.stratified_split(digits.read_digits()[1], DIGITS_TEST_FRACTION, DIGITS_VAL_FRACTION, seed)


@pytest.mark.parametrize("seed", [0, 1])
def test_digits_and_their_split_are_sklearns_exactly_computed_and_cached(cache_home, seed):
    import torch

    from trainables import digits
    from trainables.classification.data import _standardise, load_dataset

    d, ref = _sklearn_split(seed)
    images, target = digits.read_digits()
    assert images.dtype == d.images.dtype and np.array_equal(images, d.images)
    assert target.dtype == d.target.dtype and np.array_equal(target, d.target)
    for cached in (False, True):  # computed (and written), then read back from the file
        assert [p.exists() for p in cache_home.glob("split-*.json")] == ([True] if cached else [])
        got = _split(seed)
        for part in ("train", "val", "test"):
            assert got[part].dtype == np.int64 and np.array_equal(got[part], ref[part]), (cached, part)
    # the data module's tensors are those of the old code path, bit for bit
    s = load_dataset("digits", split_seed=seed)
    x = torch.from_numpy(d.images.astype(np.float32) / 16.0).unsqueeze(1)
    y = torch.from_numpy(d.target.astype(np.int64))
    want_x = _standardise(x[ref["train"]], x[ref["val"]], x[ref["test"]])
    for got_x, want, got_y, idx in zip((s.train_x, s.val_x, s.test_x), want_x, (s.train_y, s.val_y, s.test_y),
                                       (ref["train"], ref["val"], ref["test"])):
        assert torch.equal(got_x, want) and torch.equal(got_y, y[idx])


def _swap_two_train_indices(path):
    stored = json.loads(path.read_text())
    stored["train"][0], stored["train"][1] = stored["train"][1], stored["train"][0]  # still a partition
    path.write_text(json.dumps(stored))


@pytest.mark.parametrize("damage", [
    lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]),  # a partial write
    lambda p: p.write_bytes(b"\x00garbage"),
    _swap_two_train_indices,  # readable, a partition, but not the split: its SHA-256 tells
    lambda p: p.write_text(p.read_text().replace('"seed": 0', '"seed": 3')),  # another key's file under this name
], ids=["truncated", "garbage", "swapped-indices", "another-key"])
def test_a_damaged_split_cache_is_detected_and_rebuilt(cache_home, damage):
    _, ref = _sklearn_split(0)
    _split(0)
    (path,) = cache_home.glob("split-*.json")
    damage(path)
    with pytest.warns(RuntimeWarning, match="digits split cache .* rebuilding it"):
        got = _split(0)
    assert all(np.array_equal(got[p], ref[p]) for p in ref)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the rebuilt file is whole: read back without a warning
        again = _split(0)
    assert all(np.array_equal(again[p], ref[p]) for p in ref)
    assert [p.name for p in cache_home.iterdir()] == [path.name]  # no temporary file left


def test_a_second_digits_process_does_not_import_sklearn(cache_home):
    import hashlib

    from trainables.classification.data import load_dataset

    s = load_dataset("digits", split_seed=0)  # fills the cache in $XDG_CACHE_HOME
    want = hashlib.sha256(s.train_x.numpy().tobytes() + s.test_y.numpy().tobytes()).hexdigest()
    code = ("import hashlib\nfrom trainables.classification.data import load_dataset\n"
            "s = load_dataset('digits', split_seed=0)\n"
            "print(hashlib.sha256(s.train_x.numpy().tobytes() + s.test_y.numpy().tobytes()).hexdigest())")
    printed, loaded = _run(code, env={**os.environ, "XDG_CACHE_HOME": str(cache_home.parent.parent)})
    assert printed[-1] == want  # the same tensors in the second process
    assert loaded["sklearn"] is False
