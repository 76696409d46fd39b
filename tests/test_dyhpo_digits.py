"""DyHPO and OHGW(DyHPO) drive the real ResNet-20 digits trainable through the study harness.

Slow (about a minute on 2 cores); the cheap-trainable Tuner runs in tests/test_dyhpo_tune.py are its
default-suite version. What it checks: both studies complete; every trial reports its epochs once and
in order (a paused trial resumes from its checkpoint, never from scratch); DyHPO really pauses and
resumes (trials interleave in time); under OHGW every trial trained with an x′ that differs from x.
"""

from __future__ import annotations

import pytest

from ohgw.results import read_table
from ohgw.space import SearchSpace
from ohgw.studies.runner import run_experiment
from ohgw.studies.study import ExperimentConfig
from ohgw.warmstart import WarmStartSettings

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def test_dyhpo_and_ohgw_dyhpo_run_resnet20_on_digits(tmp_path, ray_local):
    from trainables.classification import train_classifier

    cfg = ExperimentConfig(
        experiment="dyhpo-digits",
        space=SearchSpace.default(),
        base_config={"dataset": "digits", "batch_size": 128, "width": 1},
        max_t=4,
        budget=10.0,
        tau=0.5,
        trials_per_study=2,
        warm_start=WarmStartSettings(step_rule="normalized"),
    )
    summary = run_experiment(cfg, train_classifier, ["dyhpo", "dyhpo+ohgw"], [0], tmp_path, quiet=True)
    assert summary.ran == 2 and not summary.failed
    it = read_table(tmp_path, "iterations")
    for (method, tid), rows in it.groupby(["method", "trial_id"]):
        epochs = rows.sort_values("wall_s")["epoch"].tolist()
        assert epochs == list(range(1, len(epochs) + 1)), (method, tid, epochs)
    for method, rows in it.groupby("method"):
        order = rows.sort_values("wall_s")["trial_id"].tolist()
        runs = sum(1 for a, b in zip(order, order[1:]) if a != b) + 1
        assert runs > rows["trial_id"].nunique(), f"{method}: no trial was paused and resumed later: {order}"
    tr = read_table(tmp_path, "trials")
    warm = tr[tr["method"] == "dyhpo+ohgw"]
    assert len(warm) and (warm["ws_step_norm"] > 0).all()
    first = it[(it["method"] == "dyhpo+ohgw") & (it["epoch"] == 1)]
    lr_moved = (first["x_prime.lr"] - first["x.lr"]).abs()
    assert (lr_moved > 0).any(), first[["x.lr", "x_prime.lr"]]
