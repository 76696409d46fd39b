"""The study harness on real Ray: a small ASHA vs ASHA+OHGW experiment, seed 0 with the digits trainable.

Seed 1 of the same experiment runs the light deterministic trainable of the resume tests
(:func:`harness_trainables.resume_trainable`, a real warm-start through :mod:`ohgw.warmstart`) through a second
``run_experiment`` into the same directory: the pairing across methods, different seeds' configs, the budget,
the exports and the resume of a directory are the harness's, whatever the trainable; a digits study per method
(seed 0) keeps the real trainable in every table. A digits trial process costs about 18 CPU-s, the light one
about 4.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.dataset as pads
import pytest

from ohgw.results import REQUIRED_COLUMNS, SCHEMA_VERSION, read_table
from ohgw.space import SearchSpace
from ohgw.studies.runner import run_experiment
from ohgw.studies.study import ExperimentConfig
from ohgw.warmstart import WarmStartSettings

import harness_trainables

pytestmark = pytest.mark.ray

METHODS = ["asha", "asha+ohgw"]
SEEDS = [0, 1]  # seed 0: digits; seed 1: harness_trainables.resume_trainable (module doc)
CHECKPOINT_FILE = {0: "scaffold_ledger.json", 1: "state.json"}  # a file of each trainable's checkpoint


def small_config(**kw) -> ExperimentConfig:
    base = dict(
        experiment="harness-test",
        space=SearchSpace.default(),
        base_config={"dataset": "digits", "batch_size": 128, "width": 1},
        max_t=3,
        budget=6.0,
        tau=0.5,
        warm_start=WarmStartSettings(step_rule="normalized"),
    )
    base.update(kw)
    return ExperimentConfig(**base)


def copy_checkpoint(checkpoint_dir: str, dest_dir: str) -> None:
    """An ``export_best`` hook (:mod:`ohgw.studies.export`): the checkpoint's files, as they are."""
    shutil.copytree(checkpoint_dir, dest_dir, dirs_exist_ok=True)


@pytest.fixture(scope="module")
def experiment(tmp_path_factory, ray_local):
    from trainables.classification import train_classifier

    out = tmp_path_factory.mktemp("results")
    cfg = small_config(export_best=copy_checkpoint)
    digits = run_experiment(cfg, train_classifier, METHODS, [0], out, quiet=True)
    ray_local.cloudpickle.register_pickle_by_value(harness_trainables)  # the workers cannot import tests/
    try:
        light = run_experiment(cfg, harness_trainables.resume_trainable, METHODS, [1], out, quiet=True)
    finally:
        ray_local.cloudpickle.unregister_pickle_by_value(harness_trainables)
    return cfg, out, (digits, light)


def _hashes(out: Path) -> dict[str, str]:
    return {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(out.glob("*/experiment=*/method=*/seed=*/part-0.parquet"))}


def test_all_studies_ran_and_schema(experiment):
    cfg, out, (digits, light) = experiment
    assert (digits.ran, light.ran) == (2, 2) and not digits.failed and not light.failed
    for table, required in REQUIRED_COLUMNS.items():
        df = read_table(out, table)
        assert set(required) <= set(df.columns), table
        assert sorted(df[["method", "seed"]].drop_duplicates().itertuples(index=False)) == sorted(
            (m, s) for m in METHODS for s in SEEDS), table
        # the same files read with plain pandas and pyarrow.dataset
        assert len(pd.read_parquet(out / table)) == len(df)
        assert pads.dataset(out / table, partitioning="hive").count_rows() == len(df)
    it = read_table(out, "iterations")
    for psi in cfg.space.names:
        assert {f"x.{psi}", f"x_prime.{psi}", f"g.{psi}"} <= set(it.columns)
    st = read_table(out, "studies")
    assert st["completed"].all() and (st["experiment"] == "harness-test").all()
    assert (st["schema_version"] == SCHEMA_VERSION).all()
    assert all(json.loads(s) == cfg.space.to_dict() for s in st["space"])  # the run's own search space
    assert set(st.loc[st["method"] == "asha+ohgw", "vanilla_method"]) == {"asha"}
    assert json.loads(st["versions"].iloc[0])["ray"].startswith("2.")


def test_each_study_exports_the_checkpoint_of_its_best_report(experiment):
    cfg, out, _ = experiment
    it = read_table(out, "iterations")
    exports = sorted((out / "exports").glob("experiment=*/method=*/seed=*"))
    assert len(exports) == len(METHODS) * len(SEEDS)
    for folder in exports:
        method = folder.parent.name.split("=", 1)[1]
        seed = int(folder.name.split("=", 1)[1])
        rows = it[(it["method"] == method) & (it["seed"] == seed)]
        info = json.loads((folder / "best.json").read_text())
        assert (info["metric"], info["mode"]) == ("val_acc", "max")
        assert info["value"] == rows["val_score"].max()
        at = rows[(rows["trial_id"] == info["trial_id"]) & (rows["epoch"] == info["iteration"])]
        assert list(at["val_score"]) == [info["value"]]
        assert (folder / CHECKPOINT_FILE[seed]).is_file()  # the hook's files: the trainable's checkpoint
    assert not list((out / "exports").rglob(".*.tmp")) and not list((out / "exports").rglob(".*.old"))


def test_pairing_same_configs_in_creation_order(experiment):
    cfg, out, _ = experiment
    tr = read_table(out, "trials")
    for seed in SEEDS:
        a = tr[(tr.method == "asha") & (tr.seed == seed)].sort_values("trial_index")
        b = tr[(tr.method == "asha+ohgw") & (tr.seed == seed)].sort_values("trial_index")
        n = min(len(a), len(b))
        assert n >= 2
        for psi in cfg.space.names:
            np.testing.assert_array_equal(a[f"x.{psi}"].to_numpy()[:n], b[f"x.{psi}"].to_numpy()[:n])
    # and different seeds sample different configs
    s0 = tr[(tr.method == "asha") & (tr.seed == 0)].sort_values("trial_index")["x.lr"].iloc[0]
    s1 = tr[(tr.method == "asha") & (tr.seed == 1)].sort_values("trial_index")["x.lr"].iloc[0]
    assert s0 != s1


def test_warm_start_moves_configs_only_in_ohgw_studies(experiment):
    cfg, out, _ = experiment
    tr = read_table(out, "trials")
    van, ohgw = tr[tr.method == "asha"], tr[tr.method == "asha+ohgw"]
    shift = lambda df: np.abs(df[[f"x_prime.{p}" for p in cfg.space.names]].to_numpy()  # noqa: E731
                              - df[[f"x.{p}" for p in cfg.space.names]].to_numpy()).max(axis=1)
    assert (shift(van) == 0).all()
    assert (shift(ohgw) > 0).all()
    assert (ohgw["ws_compute_s"] > 0).all() and (van["ws_compute_s"] == 0).all()


def test_trials_record_the_warm_start_settings_they_ran_with(experiment):
    cfg, out, _ = experiment
    tr = read_table(out, "trials")
    van, ohgw = tr[tr.method == "asha"], tr[tr.method == "asha+ohgw"]
    # vanilla trials: no warm-start
    assert set(van["ws_mode"]) == {"none"} and set(van["ws_step_rule"]) == {""}
    assert van["ws_eta_h"].isna().all() and (van["ws_step_norm"] == 0.0).all()
    assert (van["ws_hyper_steps"] == 0).all() and (van["ws_lookahead"] == 0).all()
    # warm-started trials: the experiment's settings (normalized rule, its default η_h), one step taken
    assert set(ohgw["ws_mode"]) == {"hypergrad"} and set(ohgw["ws_step_rule"]) == {"normalized"}
    assert (ohgw["ws_eta_h"] == cfg.warm_start.eta).all()
    assert (ohgw["ws_hyper_steps"] == 1).all() and (ohgw["ws_lookahead"] >= 1).all()
    assert (ohgw["ws_step_norm"] > 0).all()
    assert tr["ws_hyper_steps"].dtype.kind == "i" and tr["ws_eta_h"].dtype.kind == "f"


def test_a_methods_own_eta_reaches_the_trials_table(ray_local, tmp_path):
    # the plumbing of η_h (method name -> wrapper -> instruction -> the trainable's warm-start record -> trials
    # table) is the trainable's only through ohgw.warmstart, so the light deterministic trainable of the resume
    # tests shows it at a fraction of a digits study's cost
    ray_local.cloudpickle.register_pickle_by_value(harness_trainables)  # the workers cannot import tests/
    cfg = small_config(experiment="eta sweep", space=SearchSpace.from_bounds({"lr": (1e-3, 1.0, "log10")}),
                       base_config={"epoch_s": 0.01}, budget=2.0, max_t=2)
    try:
        summary = run_experiment(cfg, harness_trainables.resume_trainable, ["asha+ohgw@eta=0.1"], [0], tmp_path,
                                 quiet=True)
        assert summary.ran == 1 and not summary.failed
        tr = read_table(tmp_path, "trials")
        assert len(tr) >= 1 and (tr["ws_eta_h"] == 0.1).all() and set(tr["ws_step_rule"]) == {"normalized"}
        assert set(tr["method"]) == {"asha+ohgw@eta=0.1"} and set(tr["experiment"]) == {"eta sweep"}
        # and the same command again (an experiment name that needs encoding in the path) resumes
        again = run_experiment(cfg, harness_trainables.resume_trainable, ["asha+ohgw@eta=0.1"], [0], tmp_path,
                               quiet=True)
        assert again.ran == 0 and again.skipped == 1
    finally:
        ray_local.cloudpickle.unregister_pickle_by_value(harness_trainables)


def test_budget_accounting(experiment):
    cfg, out, _ = experiment
    st, tr, it = (read_table(out, t) for t in ("studies", "trials", "iterations"))
    for _, s in st.iterrows():
        trials = tr[(tr.method == s.method) & (tr.seed == s.seed)]
        # the study total is the sum of its trials' epoch-equivalents (warm-starts included) ...
        assert s.epoch_equiv == pytest.approx(trials["trial_epoch_equiv"].sum())
        # ... and overshoots the budget by less than one trial-epoch (its first epoch plus its warm-start)
        rows = it[(it.method == s.method) & (it.seed == s.seed)]
        first = rows[rows.epoch == 1]
        one_trial_epoch = 1.0 + float((first["trial_epoch_equiv"] - 1.0).max())
        assert cfg.budget <= s.epoch_equiv <= cfg.budget + one_trial_epoch + 1e-9
        assert s.budget_exhausted
        if s.method == "asha+ohgw":
            assert s.epoch_equiv > rows.groupby("trial_id")["epoch"].max().sum()  # warm-start cost is in it
    assert set(tr["status"]) <= {"COMPLETED", "PRUNED", "STOPPED_BY_BUDGET", "DIVERGED"}
    assert "STOPPED_BY_BUDGET" in set(tr["status"])


def test_no_oversubscription(experiment):
    """From recorded trial intervals: at no moment do running trials hold more CPUs than the machine."""
    _, out, _ = experiment
    tr = read_table(out, "trials")
    st = read_table(out, "studies").set_index(["method", "seed"])
    events = []
    for _, t in tr.iterrows():
        cpus = st.loc[(t.method, t.seed), "cpus_per_trial"]
        events += [(t.start_ts + 1e-3, cpus), (t.end_ts - 1e-3, -cpus)]
    level = peak = 0.0
    for _, d in sorted(events, key=lambda e: (e[0], e[1])):
        level += d
        peak = max(peak, level)
    assert peak <= 2.0  # the local Ray of the fixture has 2 CPUs


def test_rerun_skips_completed_studies_bit_identically(experiment):
    from trainables.classification import train_classifier

    cfg, out, _ = experiment
    before = _hashes(out)
    summary = run_experiment(cfg, train_classifier, METHODS, SEEDS, out, quiet=True)
    assert summary.ran == 0 and summary.skipped == 4
    assert _hashes(out) == before


def test_rerun_at_another_tau_keeps_the_studies(experiment):
    from trainables.classification import train_classifier

    cfg, out, _ = experiment
    before = _hashes(out)
    summary = run_experiment(small_config(tau=0.8), train_classifier, METHODS, SEEDS, out, quiet=True)
    assert summary.ran == 0 and summary.skipped == 4
    assert _hashes(out) == before


def test_directory_of_another_experiment_is_refused(experiment):
    from trainables.classification import train_classifier

    cfg, out, _ = experiment
    before = sorted(p for p in out.rglob("*"))
    other = small_config(budget=7.0)
    with pytest.raises(ValueError, match=r"holds experiment 'harness-test' with other settings \(differs in budget\)"):
        run_experiment(other, train_classifier, METHODS, SEEDS, out, quiet=True)
    assert sorted(p for p in out.rglob("*")) == before
