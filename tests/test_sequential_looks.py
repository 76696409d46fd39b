"""The looks of a sequential study on hand-made results (no Ray): seed order, persistence, resume, refusal."""

from __future__ import annotations

import io
import json
import math

import numpy as np
import pandas as pd
import pytest

from ohgw.analysis.sequential import LOOKS_FILE, SequentialDesign, signed_rank_z
from ohgw.results import write_study
from ohgw.space import SearchSpace
from ohgw.studies.looks import SequentialLooks
from ohgw.studies.study import ExperimentConfig
from ohgw.testing.synthetic_results import study_frames

TAU = 0.9
# T@tau on the compute clock per seed (vanilla, method): the method is 2-3x slower, so after 2 pairs the
# 15 % target reduction is out of reach (conditional power < 10 %): futility at look 1
T = {0: (10.0, 25.0), 1: (12.0, 24.0), 2: (10.0, 5.0), 3: (10.0, 5.0)}
METHODS = ["asha", "asha+ohgw"]


def _study(root, method, seed, t_reach, vanilla=""):
    """One trial of two reports: 0.5 at t/2, tau at t (compute = wall = t; epochs 1, 2)."""
    rep = pd.DataFrame({"trial_index": 0, "epoch": [1, 2], "val_score": [0.5, TAU], "wall_s": [t_reach / 2, t_reach],
                        "compute_s": [t_reach / 2, t_reach], "epoch_equiv": [1.0, 2.0]})
    it, tr, st = study_frames(rep, tau=TAU, vanilla_method=vanilla, max_t=2)
    write_study(root, "seq", method, seed, it, tr, st)


def _results(root, seeds):
    for s in seeds:
        _study(root, "asha", s, T[s][0])
        _study(root, "asha+ohgw", s, T[s][1], vanilla="asha")


def _cfg():
    return ExperimentConfig(experiment="seq", space=SearchSpace.from_bounds({"lr": (1e-3, 1.0, "log10")}),
                            base_config={}, max_t=2, budget=4.0, tau=TAU)


DESIGN = SequentialDesign(max_pairs=4, look_every=2)


def test_a_look_waits_for_the_first_n_pairs_in_seed_order(tmp_path):
    _results(tmp_path, [1, 2, 3])  # seeds 1-3 complete, seed 0 not: no look, however many pairs are done
    looks = SequentialLooks(DESIGN, _cfg(), tmp_path, METHODS)
    assert looks.update() == [] and not (tmp_path / LOOKS_FILE).exists()
    _study(tmp_path, "asha", 0, T[0][0])  # half a pair: still none
    assert looks.update() == []
    _study(tmp_path, "asha+ohgw", 0, T[0][1], vanilla="asha")
    (look,) = looks.update()  # look 1 uses seeds 0 and 1 only (seeds 2, 3 favour the method)
    d = [math.log(T[s][0] / T[s][1]) for s in (0, 1)]
    assert look["seeds"] == [0, 1] and look["z"] == pytest.approx(signed_rank_z(d)) and look["z"] < 0
    assert look["decision"] == "futility" and look["conditional_power"] < 0.10
    assert looks.stopped and looks.pairs_needed == 2
    assert looks.update() == []  # stopped: seeds 2 and 3 change nothing
    record = json.loads((tmp_path / LOOKS_FILE).read_text())
    assert record["final"]["stopping_look"] == 1 and record["final"]["n"] == 2
    assert record["final"]["naive_median_reduction"] == pytest.approx(1 - np.median([25 / 10, 24 / 12]))


def test_the_runner_resumes_at_the_recorded_look_without_starting_anything(tmp_path, monkeypatch):
    from ohgw.studies import runner

    def no_ray(*args, **kwargs):
        raise AssertionError("a stopped sequential study must start nothing")

    monkeypatch.setattr(runner, "init_ray", no_ray)
    _results(tmp_path, [0, 1])  # the first look's pairs are in, its look was never written (a kill)
    console = io.StringIO()
    run = lambda: runner.run_experiment(_cfg(), lambda c: None, METHODS, list(range(4)), tmp_path,  # noqa: E731
                                        stream=console, sequential=DESIGN)
    summary = run()
    assert summary.ran == 0 and summary.skipped == 4  # stopped at look 1: seeds 2, 3 never start
    assert summary.decision.startswith("Stopped at look 1 (2 of 4 pairs): asha+ohgw cannot reach the 15%")
    assert "look 1/2 at 2 pairs: z = -1.34" in console.getvalue()
    first = (tmp_path / LOOKS_FILE).read_bytes()
    again = run()
    assert again.decision == summary.decision and (tmp_path / LOOKS_FILE).read_bytes() == first
    with pytest.raises(ValueError, match="another design .*differs in design"):
        SequentialLooks(SequentialDesign(max_pairs=4, look_every=4), _cfg(), tmp_path, METHODS)
    with pytest.raises(ValueError, match="exactly one method and its vanilla partner"):
        SequentialLooks(DESIGN, _cfg(), tmp_path, ["asha", "hyperband"])


def test_summary_json_and_the_report_carry_the_looks(tmp_path):
    from ohgw.analysis import analyze

    _results(tmp_path, [0, 1, 2])
    SequentialLooks(DESIGN, _cfg(), tmp_path, METHODS).update()
    s = analyze(tmp_path, tau=TAU, out_html=tmp_path / "report.html", quiet=True, static=False)
    saved = json.loads((tmp_path / "summary.json").read_text())["sequential"]
    (look,) = saved["looks"]
    assert (look["n"], look["decision"], look["upper"], look["lower"]) == (2, "futility", DESIGN.boundaries[0],
                                                                           -DESIGN.boundaries[0])
    assert look["z"] == pytest.approx(-3 / math.sqrt(5)) and look["futility_z"] > look["z"]
    assert saved["statement"] == s.sequential["statement"] and saved["statement"].startswith("Stopped at look 1")
    page = (tmp_path / "report.html").read_text()
    assert "<h2>Sequential design</h2>" in page and "fig-sequential" in page and "naive (fixed n = 2" in page
