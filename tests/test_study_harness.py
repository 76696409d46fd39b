"""The study harness on real Ray: a small ASHA vs ASHA+OHGW experiment, seed 0 with the digits trainable.

Seed 1 of the same experiment runs the light deterministic trainable of the resume tests
(:func:`harness_trainables.resume_trainable`, a real warm-start through :mod:`ohgw.warmstart`) through a second
``run_experiment`` into the same directory, its OHGW study with the method's own η_h (``asha+ohgw@eta=0.1``):
the pairing across methods, different seeds' configs, the budget, the exports, the η_h plumbing (method name ->
wrapper -> the trainable's warm-start record -> trials table) and the resume of a directory are the harness's,
whatever the trainable; a digits study per method (seed 0) keeps the real trainable in every table. A digits
trial process costs about 18 CPU-s, the light one about 4. The experiment's name needs encoding in the paths.
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

from ohgw.results import REQUIRED_COLUMNS, SCHEMA_VERSION, read_table, study_key
from ohgw.space import SearchSpace
from ohgw.studies.runner import run_experiment
from ohgw.studies.study import ExperimentConfig
from ohgw.warmstart import WarmStartSettings

import harness_trainables

pytestmark = pytest.mark.ray

EXPERIMENT = "harness test"  # a name that needs encoding in the paths
SEEDS = [0, 1]  # seed 0: digits; seed 1: harness_trainables.resume_trainable (module doc)
VANILLA, OWN_ETA = "asha", 0.1
OHGW = {0: "asha+ohgw", 1: f"asha+ohgw@eta={OWN_ETA}"}  # each seed's OHGW method; seed 1: the method's own η_h
METHODS = {seed: [VANILLA, OHGW[seed]] for seed in SEEDS}
STUDIES = sorted((m, s) for s in SEEDS for m in METHODS[s])
CHECKPOINT_FILE = {0: "scaffold_ledger.json", 1: "state.json"}  # a file of each trainable's checkpoint


def small_config(**kw) -> ExperimentConfig:
    base = dict(
        experiment=EXPERIMENT,
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
    digits = run_experiment(cfg, train_classifier, METHODS[0], [0], out, quiet=True)
    ray_local.cloudpickle.register_pickle_by_value(harness_trainables)  # the workers cannot import tests/
    try:
        light = run_experiment(cfg, harness_trainables.resume_trainable, METHODS[1], [1], out, quiet=True)
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
        assert sorted(df[["method", "seed"]].drop_duplicates().itertuples(index=False)) == STUDIES, table
        assert set(df["experiment"]) == {EXPERIMENT}, table
        # the same files read with plain pandas and pyarrow.dataset
        assert len(pd.read_parquet(out / table)) == len(df)
        assert pads.dataset(out / table, partitioning="hive").count_rows() == len(df)
    it = read_table(out, "iterations")
    for psi in cfg.space.names:
        assert {f"x.{psi}", f"x_prime.{psi}", f"g.{psi}"} <= set(it.columns)
    st = read_table(out, "studies")
    assert st["completed"].all()
    assert (st["schema_version"] == SCHEMA_VERSION).all()
    assert all(json.loads(s) == cfg.space.to_dict() for s in st["space"])  # the run's own search space
    assert set(st.loc[st["method"] != VANILLA, "vanilla_method"]) == {VANILLA}
    assert json.loads(st["versions"].iloc[0])["ray"].startswith("2.")


def test_each_study_exports_the_checkpoint_of_its_best_report(experiment):
    cfg, out, _ = experiment
    it = read_table(out, "iterations")
    exports = sorted((out / "exports").glob("experiment=*/method=*/seed=*"))
    assert len(exports) == len(STUDIES)
    for folder in exports:
        experiment, method, seed = study_key(folder)  # the folder names are encoded
        assert experiment == EXPERIMENT
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
        a = tr[(tr.method == VANILLA) & (tr.seed == seed)].sort_values("trial_index")
        b = tr[(tr.method == OHGW[seed]) & (tr.seed == seed)].sort_values("trial_index")
        n = min(len(a), len(b))
        assert n >= 2
        for psi in cfg.space.names:
            np.testing.assert_array_equal(a[f"x.{psi}"].to_numpy()[:n], b[f"x.{psi}"].to_numpy()[:n])
    # and different seeds sample different configs
    s0 = tr[(tr.method == VANILLA) & (tr.seed == 0)].sort_values("trial_index")["x.lr"].iloc[0]
    s1 = tr[(tr.method == VANILLA) & (tr.seed == 1)].sort_values("trial_index")["x.lr"].iloc[0]
    assert s0 != s1


def test_warm_start_moves_configs_only_in_ohgw_studies(experiment):
    cfg, out, _ = experiment
    tr = read_table(out, "trials")
    van, ohgw = tr[tr.method == VANILLA], tr[tr.method != VANILLA]
    shift = lambda df: np.abs(df[[f"x_prime.{p}" for p in cfg.space.names]].to_numpy()  # noqa: E731
                              - df[[f"x.{p}" for p in cfg.space.names]].to_numpy()).max(axis=1)
    assert (shift(van) == 0).all()
    assert (shift(ohgw) > 0).all()
    assert (ohgw["ws_compute_s"] > 0).all() and (van["ws_compute_s"] == 0).all()


def test_trials_record_the_warm_start_settings_they_ran_with(experiment):
    cfg, out, _ = experiment
    tr = read_table(out, "trials")
    van, ohgw = tr[tr.method == VANILLA], tr[tr.method != VANILLA]
    # vanilla trials: no warm-start
    assert set(van["ws_mode"]) == {"none"} and set(van["ws_step_rule"]) == {""}
    assert van["ws_eta_h"].isna().all() and (van["ws_step_norm"] == 0.0).all()
    assert (van["ws_hyper_steps"] == 0).all() and (van["ws_lookahead"] == 0).all()
    # warm-started trials: the experiment's settings (normalized rule, its default η_h, or the method's own
    # η_h: ``asha+ohgw@eta=0.1``), one step taken
    assert set(ohgw["ws_mode"]) == {"hypergrad"} and set(ohgw["ws_step_rule"]) == {"normalized"}
    assert (ohgw.loc[ohgw.seed == 0, "ws_eta_h"] == cfg.warm_start.eta).all() and cfg.warm_start.eta != OWN_ETA
    assert len(ohgw[ohgw.seed == 1]) >= 1 and (ohgw.loc[ohgw.seed == 1, "ws_eta_h"] == OWN_ETA).all()
    assert (ohgw["ws_hyper_steps"] == 1).all() and (ohgw["ws_lookahead"] >= 1).all()
    assert (ohgw["ws_step_norm"] > 0).all()
    assert tr["ws_hyper_steps"].dtype.kind == "i" and tr["ws_eta_h"].dtype.kind == "f"


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
        if s.method != VANILLA:
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


def _rerun(cfg: ExperimentConfig, out: Path) -> list:
    """The experiment's two commands again (seed 0 with digits, seed 1 with the light trainable)."""
    from trainables.classification import train_classifier

    return [run_experiment(cfg, trainable, METHODS[seed], [seed], out, quiet=True)
            for seed, trainable in ((0, train_classifier), (1, harness_trainables.resume_trainable))]


def test_rerun_skips_completed_studies_bit_identically(experiment):
    # (the experiment's name needs encoding in the paths: its studies are found again)
    cfg, out, _ = experiment
    before = _hashes(out)
    assert [(s.ran, s.skipped) for s in _rerun(cfg, out)] == [(0, 2), (0, 2)]
    assert _hashes(out) == before


def test_rerun_at_another_tau_keeps_the_studies(experiment):
    cfg, out, _ = experiment
    before = _hashes(out)
    assert [(s.ran, s.skipped) for s in _rerun(small_config(tau=0.8), out)] == [(0, 2), (0, 2)]
    assert _hashes(out) == before


def test_directory_of_another_experiment_is_refused(experiment):
    from trainables.classification import train_classifier

    cfg, out, _ = experiment
    before = sorted(p for p in out.rglob("*"))
    other = small_config(budget=7.0)
    with pytest.raises(ValueError, match=rf"holds experiment '{EXPERIMENT}' with other settings \(differs in budget\)"):
        run_experiment(other, train_classifier, METHODS[0], SEEDS, out, quiet=True)
    assert sorted(p for p in out.rglob("*")) == before
