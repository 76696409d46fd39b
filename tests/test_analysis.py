"""T@tau analysis on a hand-computed fixture: clocks, censoring, quantiles, pairing, Wilcoxon, bad input."""

from __future__ import annotations

import doctest
import importlib.util
import json
import math
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import scipy.stats

from ohgw.analysis import AnalysisError, AnalysisWarning, analyze, compute, format_tables, load_results
from ohgw.results import study_dir, write_study
from ohgw.testing.synthetic_results import SPACE, study_frames

NAN = float("nan")
TAU = 0.8
ROOT = Path(__file__).resolve().parents[1]

# (val_score, wall_s, compute_s, epoch_equiv) per report, and the study's end on the three clocks.
VANILLA = {
    0: ([(0.5, 10, 15, 1), (0.7, 20, 30, 2), (0.8, 30, 45, 3), (0.9, 40, 60, 4)], (50, 75, 5)),
    1: ([(0.6, 12, 20, 1), (NAN, 24, 40, 2), (0.79, 36, 60, 3), (0.85, 48, 80, 4)], (60, 100, 5)),
    2: ([(0.5, 10, 11, 1), (0.6, 20, 22, 2), (0.7, 30, 33, 3)], (40, 44, 4)),
    3: ([(0.81, 5, 9, 1), (0.5, 15, 19, 2)], (50, 59, 5)),
    4: ([(0.3, 10, 14, 1), (0.75, 25, 35, 2), (0.95, 45, 60, 3)], (70, 90, 6)),
    5: ([(0.4, 8, 8, 1), (0.9, 28, 30, 2)], (40, 44, 4)),
}
OHGW = {
    0: ([(0.6, 10, 16, 1.1), (0.85, 20, 31, 2.1)], (50, 76, 5.1)),
    # the 0.81 report comes later on the wall clock but earlier on the compute clock than 0.82
    1: ([(0.7, 15, 26, 1.1), (0.82, 30, 52, 3.1), (0.81, 35, 50, 3.5), (0.99, 45, 70, 4.1)], (60, 101, 5.1)),
    2: ([(0.5, 10, 12, 1.1), (0.6, 20, 23, 2.1)], (42, 45, 4.1)),
    3: ([(0.4, 5, 9, 1.1), (0.8, 12, 20, 2.1)], (50, 60, 5.1)),
    4: ([(0.9, 20, 28, 1.1)], (70, 91, 6.1)),
    5: ([(0.5, 8, 9, 1.1), (0.7, 20, 21, 2.1)], (45, 50, 5.1)),
}
# Hand-computed T@tau (censored studies at their end) and reached flags, per clock.
T_V = {"wall": [30, 48, 40, 5, 45, 28], "compute": [45, 80, 44, 9, 60, 30], "epochs": [3, 4, 4, 1, 3, 2]}
T_O = {"wall": [20, 30, 42, 12, 20, 45], "compute": [31, 50, 45, 20, 28, 50], "epochs": [2.1, 3.1, 4.1, 2.1, 1.1, 5.1]}
R_V = [True, True, False, True, True, True]
R_O = [True, True, False, True, True, False]


def _write(root: Path, method: str, seed: int, spec, *, vanilla: str = "", experiment: str = "hand",
           mode: str = "max", tau: float = TAU, peak: float = 1000.0, ws: float = 0.0) -> None:
    rows, end = spec
    rep = pd.DataFrame(rows, columns=["val_score", "wall_s", "compute_s", "epoch_equiv"])
    rep["trial_index"] = np.arange(len(rep)) % 2
    rep["epoch"] = np.arange(len(rep)) // 2 + 1
    rep["ws_compute_s"] = np.where(rep["epoch"] == 1, ws, 0.0)
    rep = rep.iloc[::-1]  # files need not be in time order
    it, tr, st = study_frames(rep, tau=tau, mode=mode, vanilla_method=vanilla, peak_rss_mib=peak,
                              end=dict(zip(["wall_s", "compute_s", "epoch_equiv"], map(float, end))))
    write_study(root, experiment, method, seed, it, tr, st)


def _hand(root: Path, skip_ohgw_seed: int | None = None) -> Path:
    for s, spec in VANILLA.items():
        _write(root, "asha", s, spec, peak=1000.0)
    for s, spec in OHGW.items():
        if s != skip_ohgw_seed:
            _write(root, "asha+ohgw", s, spec, vanilla="asha", peak=1050.0, ws=0.5)
    return root


@pytest.fixture(scope="module")
def hand(tmp_path_factory):
    root = _hand(tmp_path_factory.mktemp("hand"))
    with warnings.catch_warnings():
        warnings.simplefilter("error", AnalysisWarning)  # the complete fixture needs no workaround
        return compute(load_results(root))


def test_t_at_tau_on_three_clocks_with_censoring(hand):
    ps = hand.per_study.set_index(["method", "seed"])
    for c in ("wall", "compute", "epochs"):
        assert ps.loc["asha", f"T_{c}"].tolist() == pytest.approx(T_V[c])
        assert ps.loc["asha+ohgw", f"T_{c}"].tolist() == pytest.approx(T_O[c])
    assert ps.loc["asha", "reached"].tolist() == R_V
    assert ps.loc["asha+ohgw", "reached"].tolist() == R_O
    assert hand.per_method["asha"]["fraction_reached"] == pytest.approx(5 / 6)
    assert hand.per_method["asha+ohgw"]["fraction_reached"] == pytest.approx(4 / 6)
    assert hand.tau == TAU and hand.tau_source == "studies"


def test_median_and_iqr_rank_censored_studies_last(hand):
    v, o = hand.per_method["asha"]["ttt"], hand.per_method["asha+ohgw"]["ttt"]
    assert (v["wall"]["q25"], v["wall"]["median"], v["wall"]["q75"]) == pytest.approx((28.5, 37.5, 47.25))
    assert (o["wall"]["q25"], o["wall"]["median"]) == pytest.approx((20.0, 25.0))
    assert math.isinf(o["wall"]["q75"]) and o["wall"]["q75_censored"]
    assert (v["compute"]["q25"], v["compute"]["median"], v["compute"]["q75"]) == pytest.approx((33.75, 52.5, 75.0))
    assert (o["compute"]["q25"], o["compute"]["median"]) == pytest.approx((28.75, 40.5))
    assert (v["epochs"]["q25"], v["epochs"]["median"], v["epochs"]["q75"]) == pytest.approx((2.25, 3.0, 3.75))
    assert v["wall"]["std"] == pytest.approx(np.std(T_V["wall"], ddof=1))


def test_paired_wilcoxon_and_speedup_match_hand_and_scipy(hand):
    t = hand.pairs["asha+ohgw"]["ttt"]["wall"]
    assert hand.pairs["asha+ohgw"]["n_pairs"] == 6 and t["n_both_censored"] == 1
    # both-censored seed 2 (ends 42 and 40) is a tie by the documented rule; scipy drops zero differences
    x = [20, 30, 40, 12, 20, 45]
    y = [30, 48, 40, 5, 45, 28]
    ref = scipy.stats.wilcoxon(x, y)
    assert t["n"] == 5
    assert t["statistic"] == pytest.approx(ref.statistic) == pytest.approx(4.0)
    assert t["p"] == pytest.approx(ref.pvalue) == pytest.approx(14 / 32)
    # effect sizes over the 5 informative pairs: seed 2 has no ratio (counted in n_both_censored)
    assert t["speedups"] == pytest.approx([1.5, 1.6, math.nan, 5 / 12, 2.25, 28 / 45], nan_ok=True)
    assert t["median_speedup"] == pytest.approx(1.5)  # of 5/12, 28/45, 1.5, 1.6, 2.25
    assert t["median_reduction"] == pytest.approx(1 - 2 / 3)  # ratios 4/9, 0.625, 2/3, 45/28, 2.4
    tc = hand.pairs["asha+ohgw"]["ttt"]["compute"]
    assert tc["median_speedup"] == pytest.approx(45 / 31)  # of 0.45, 0.6, 45/31, 1.6, 60/28
    te = hand.pairs["asha+ohgw"]["ttt"]["epochs"]
    xe, ye = list(T_O["epochs"]), list(T_V["epochs"])
    xe[2] = ye[2]
    assert te["p"] == pytest.approx(scipy.stats.wilcoxon(xe, ye).pvalue)


def test_final_scores_auc_overhead_and_criteria(hand):
    ps = hand.per_study.set_index(["method", "seed"])
    assert ps.loc["asha", "best_val"].tolist() == pytest.approx([0.9, 0.85, 0.7, 0.81, 0.95, 0.9])
    # vanilla seed 3 on wall: floor 0.3 (lowest score seen) until t=5, then 0.81; horizon 40 (earliest end)
    assert ps.loc[("asha", 3), "auc_wall"] == pytest.approx((0.3 * 5 + 0.81 * 35) / 40)
    ov = hand.overhead["asha+ohgw"]
    ws_total = 0.5 * sum(1 for s in OHGW.values() for i in range(min(len(s[0]), 2)))
    assert ov["ws_compute"] == pytest.approx(ws_total)
    assert ov["ws_share"] == pytest.approx(ws_total / sum(s[1][1] for s in OHGW.values()))
    assert ov["peak_memory_increase"] == pytest.approx(0.05)
    crit = {(r["criterion"][:2], r["clock"]): r for r in hand.criteria}
    assert crit[("C1", "wall")]["result"] == "FAIL"  # 33.3 % reduction but p = 0.44: never assumed
    assert crit[("C1", "wall")]["measured"] == pytest.approx(1 / 3)
    drop = np.median([(v - o) / v for v, o in zip([0.9, 0.85, 0.7, 0.81, 0.95, 0.9], [0.85, 0.99, 0.6, 0.8, 0.9, 0.7])])
    assert crit[("C2", "")]["measured"] == pytest.approx(drop) and crit[("C2", "")]["result"] == "FAIL"
    assert crit[("C3", "")]["result"] == "PASS"
    # C4 on wall, by hand over the 6 paired seeds (censored studies at their end):
    #   ohgw    T = 20, 30, 42, 12, 20, 45: sum 169, sum of squares 5633, SS = 5633 - 169^2/6 = 5237/6
    #   vanilla T = 30, 48, 40, 5, 45, 28:  sum 196, sum of squares 7638, SS = 7638 - 196^2/6 = 7412/6
    #   std ratio - 1 = sqrt(5237/7412) - 1 = 0.8406 - 1 = -0.159 <= +10 %: PASS
    assert crit[("C4", "wall")]["measured"] == pytest.approx(math.sqrt(5237 / 7412) - 1) == pytest.approx(-0.1594, abs=1e-4)
    assert crit[("C4", "wall")]["result"] == "PASS"
    assert hand.verdict("asha+ohgw") == "FAIL"
    text = format_tables(hand)
    for needle in ("T@tau per method", "37.5 [28.5, 47.25]", "25 [20, >budget]", "Success criteria", "FAIL"):
        assert needle in text


def test_unpaired_seed_drops_only_that_pair(tmp_path):
    root = _hand(tmp_path, skip_ohgw_seed=4)
    with pytest.warns(AnalysisWarning, match="seed 4 has no asha\\+ohgw study; pair dropped"):
        s = compute(load_results(root))
    t = s.pairs["asha+ohgw"]["ttt"]["wall"]
    assert s.pairs["asha+ohgw"]["seeds"] == [0, 1, 2, 3, 5]
    assert t["speedups"] == pytest.approx([1.5, 1.6, math.nan, 5 / 12, 28 / 45], nan_ok=True)
    ref = scipy.stats.wilcoxon([20, 30, 40, 12, 45], [30, 48, 40, 5, 28])
    assert (t["statistic"], t["p"]) == pytest.approx((ref.statistic, ref.pvalue))
    assert any("seed 4" in w for w in s.warnings)


def test_min_mode_metric_is_negated(tmp_path):
    # a loss: lower is better; tau 0.2 is reached when val_score <= 0.2
    _write(tmp_path, "asha", 0, ([(0.5, 1, 1, 1), (0.25, 2, 2, 2), (0.2, 3, 3, 3), (0.1, 4, 4, 4)], (5, 5, 5)),
           mode="min", tau=0.2)
    _write(tmp_path, "asha+ohgw", 0, ([(0.3, 1, 1, 1), (0.15, 2, 2, 2)], (5, 5, 5)), mode="min", tau=0.2,
           vanilla="asha")
    s = compute(load_results(tmp_path))
    ps = s.per_study.set_index("method")
    assert ps.loc["asha", "T_wall"] == 3 and ps.loc["asha+ohgw", "T_wall"] == 2
    assert ps.loc["asha", "best_val"] == pytest.approx(0.1)
    assert s.per_method["asha"]["final_val"]["best"] == pytest.approx(0.1)
    assert s.pairs["asha+ohgw"]["final_val"]["median_relative_drop"] == pytest.approx((-0.1 + 0.15) / 0.1)


def test_tau_never_reached_warns_with_best_score(tmp_path):
    _hand(tmp_path)
    with pytest.warns(AnalysisWarning, match=r"tau 0.999 was reached by no study \(best val_acc seen: 0.99\)"):
        s = compute(load_results(tmp_path), tau=0.999)
    assert not s.per_study["reached"].any()
    assert s.per_method["asha"]["fraction_reached"] == 0
    assert math.isinf(s.per_method["asha"]["ttt"]["wall"]["median"])
    assert s.pairs["asha+ohgw"]["ttt"]["wall"]["n"] == 0 and math.isnan(s.pairs["asha+ohgw"]["ttt"]["wall"]["p"])


def test_bad_inputs_raise_one_line(tmp_path):
    with pytest.raises(AnalysisError, match="no studies found"):
        load_results(tmp_path)
    with pytest.raises(AnalysisError, match="not a directory"):
        load_results(tmp_path / "nope")
    _write(tmp_path, "asha", 0, VANILLA[0])
    _write(tmp_path, "asha", 0, VANILLA[1], experiment="other")
    with pytest.raises(AnalysisError, match=r"mixes experiments \['hand', 'other'\]"):
        load_results(tmp_path)
    assert load_results(tmp_path, experiment="other").experiment == "other"
    with pytest.raises(AnalysisError, match="experiment 'x': not in results_dir"):
        load_results(tmp_path, experiment="x")
    path = study_dir(tmp_path, "iterations", "hand", "asha", 0) / "part-0.parquet"
    pq.write_table(pq.read_table(path).drop_columns(["wall_s", "decision"]), path)
    with pytest.raises(AnalysisError, match=r"part-0.parquet is missing required columns: wall_s, decision"):
        load_results(tmp_path, experiment="hand")
    with pytest.raises(AnalysisError, match="tau: must be a finite number"):
        compute(load_results(tmp_path, experiment="other"), tau=float("nan"))
    with pytest.raises(AnalysisError, match="clock: must be one of"):
        compute(load_results(tmp_path, experiment="other"), primary_clock="gpu")


def test_studies_disagreeing_on_tau_need_an_explicit_tau(tmp_path):
    _write(tmp_path, "asha", 0, VANILLA[0], tau=0.8)
    _write(tmp_path, "asha", 1, VANILLA[1], tau=0.9)
    with pytest.raises(AnalysisError, match="disagree on tau"):
        compute(load_results(tmp_path))
    assert compute(load_results(tmp_path), tau=0.85).per_study["reached"].tolist() == [True, True]


def test_analyze_writes_report_and_json(tmp_path, capsys, caplog):
    root = _hand(tmp_path / "r")
    with caplog.at_level("INFO", logger="ohgw.analysis.report"):  # static export: tests/test_analysis_report.py
        s = analyze(root, out_html=tmp_path / "out" / "report.html", static=False)
    assert s.static_figures == []
    printed = capsys.readouterr().out
    assert "Paired T@tau" in printed and "report:" in printed
    data = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert data["tau"] == TAU and data["methods"] == ["asha", "asha+ohgw"]
    assert data["per_method"]["asha+ohgw"]["ttt"]["wall"]["q75"] is None  # censored quantile
    assert data["per_method"]["asha+ohgw"]["ttt"]["wall"]["q75_censored"] is True
    assert data["pairs"]["asha+ohgw"]["ttt"]["wall"]["p"] == pytest.approx(14 / 32)
    assert data["verdicts"] == {"asha+ohgw": "FAIL"}
    assert len(data["studies"]) == 12
    html = (tmp_path / "out" / "report.html").read_text()
    assert html.count('class="plotly-graph-div"') == 6 and "Success criteria" in html
    assert s.json_path == str(tmp_path / "out" / "summary.json")


def test_cli_exit_codes(tmp_path):
    cli = [sys.executable, str(ROOT / "experiments" / "analyze.py")]
    r = subprocess.run([*cli, str(tmp_path)], capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [f"analyze: error: results_dir {str(tmp_path)!r}: no studies found "
                                             "(expected studies/experiment=*/method=*/seed=*/part-0.parquet)"]


def test_cli_warns_and_exits_zero_when_tau_is_never_reached(tmp_path, capsys, monkeypatch):
    # no PDF/PNG: Chromium's static export is 11 s of this test (figures: tests/test_analysis_report.py)
    monkeypatch.setenv("BROWSER_PATH", str(tmp_path / "no-chromium"))
    spec = importlib.util.spec_from_file_location("analyze_cli", ROOT / "experiments" / "analyze.py")
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    _hand(tmp_path / "r")
    rc = cli.main([str(tmp_path / "r"), "--tau", "0.999", "--quiet", "--out", str(tmp_path / "o.html")])
    err = capsys.readouterr().err
    assert rc == 0, err
    assert "analyze: warning: tau 0.999 was reached by no study (best val_acc seen: 0.99)" in err
    assert (tmp_path / "o" / "summary.json").exists()  # --out x.html: the analysis folder x/
    assert cli.main([str(tmp_path / "r"), "--experiment", "nope"]) == 2
    assert "analyze: error: experiment 'nope': not in results_dir" in capsys.readouterr().err


def test_cli_console_is_the_headline_tables_and_verbose_prints_every_table(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("BROWSER_PATH", str(tmp_path / "no-chromium"))  # no PDF/PNG: seconds, not a minute
    spec = importlib.util.spec_from_file_location("analyze_cli", ROOT / "experiments" / "analyze.py")
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    _hand(tmp_path / "r")
    assert cli.main([str(tmp_path / "r"), "--out", str(tmp_path / "a")]) == 0
    brief = capsys.readouterr().out
    tables = (tmp_path / "a" / "tables.txt").read_text()
    assert "Paired T@tau" in brief and "Final scores" not in brief  # a non-headline table: only in the file
    assert "Final scores" in tables and "tables.txt" in brief and f"report: {tmp_path / 'a' / 'report.html'}" in brief
    assert len(brief.splitlines()) < len(tables.splitlines()) and len(brief.splitlines()) <= 80
    assert cli.main([str(tmp_path / "r"), "--out", str(tmp_path / "b"), "--verbose"]) == 0
    verbose = capsys.readouterr().out
    assert verbose.startswith(tables) and "Final scores" in verbose
    with pytest.raises(SystemExit):  # one or the other
        cli.main([str(tmp_path / "r"), "--quiet", "--verbose"])


def test_module_doctests():
    import ohgw.analysis.configs as m1
    import ohgw.analysis.load as m2
    import ohgw.analysis.stats as m3
    import ohgw.analysis.text as m5
    import ohgw.analysis.ttt as m6
    import ohgw.testing.synthetic_results as m4

    for mod in (m1, m2, m3, m4, m5, m6):
        r = doctest.testmod(mod)
        assert r.failed == 0 and r.attempted > 0, mod.__name__


def test_study_without_reports_is_censored_not_dropped(tmp_path):
    _write(tmp_path, "asha", 0, VANILLA[0])
    it, tr, st = study_frames(pd.DataFrame(columns=["trial_index", "epoch", "val_score", "wall_s", "compute_s",
                                                    "epoch_equiv"]), tau=TAU,
                              end={"wall_s": 9.0, "compute_s": 9.0, "epoch_equiv": 9.0})
    write_study(tmp_path, "hand", "asha", 1, it, tr, st)
    with pytest.warns(AnalysisWarning, match="asha seed 1 has no iteration reports"):
        s = compute(load_results(tmp_path))
    ps = s.per_study.set_index("seed")
    assert ps.loc[1, "reached"] == False and ps.loc[1, "T_wall"] == 9.0  # noqa: E712
    assert s.per_method["asha"]["fraction_reached"] == 0.5


def test_compute_clock_in_gpu_hours(tmp_path):
    rows, end = VANILLA[0]
    rep = pd.DataFrame(rows, columns=["val_score", "wall_s", "compute_s", "epoch_equiv"])
    rep["trial_index"], rep["epoch"] = 0, np.arange(1, len(rep) + 1)
    rep["ws_compute_s"] = [36.0, 0.0, 0.0, 0.0]
    it, tr, st = study_frames(rep, tau=TAU, end={"wall_s": 50.0, "compute_s": 72.0, "epoch_equiv": 5.0})
    st["n_gpus"], st["gpus_per_trial"] = 4, 0.5
    write_study(tmp_path, "hand", "asha", 0, it, tr, st)
    s = compute(load_results(tmp_path))
    assert s.compute_unit == "GPU-h"
    assert s.per_study["T_compute"].iloc[0] == pytest.approx(45 * 0.5 / 3600)
    assert s.per_study["end_compute"].iloc[0] == pytest.approx(72 * 0.5 / 3600)
    assert s.overhead["asha"]["ws_share"] == pytest.approx(0.5)
    assert s.overhead["asha"]["extra_compute"] == pytest.approx(1.0)


def test_rung_levels_and_survival_follow_scheduler_decisions(tmp_path):
    # trial: (last epoch, status); STOP decisions at the last epoch of each trial
    spec = {0: (1, "PRUNED"), 1: (3, "PRUNED"), 2: (9, "COMPLETED"), 3: (2, "STOPPED_BY_BUDGET")}
    rows = []
    clock = 0.0
    for t, (last, _) in spec.items():
        for e in range(1, last + 1):
            clock += 1
            rows.append((t, e, 0.1 * e, clock, clock, clock, "STOP" if e == last else "CONTINUE"))
    rep = pd.DataFrame(rows, columns=["trial_index", "epoch", "val_score", "wall_s", "compute_s", "epoch_equiv",
                                      "decision"])
    for seed in (0, 1):
        it, tr, st = study_frames(rep, tau=0.5, max_t=9)
        tr["status"] = [spec[t][1] for t in tr["trial_index"]]
        write_study(tmp_path, "hand", "asha", seed, it, tr, st)
    s = compute(load_results(tmp_path))
    assert s.rungs["asha"] == [1.0, 3.0, 9.0]  # epoch 2 (budget stop) is no rung
    assert s.survival["asha"]["share"] == pytest.approx([1.0, 0.5, 0.25])
    assert s.survival["asha"]["count"] == pytest.approx([4.0, 2.0, 1.0])
    assert s.per_study["T_epochs"].tolist() == [9.0, 9.0]  # 0.5 first reached at trial 2's epoch 5


def test_shift_and_divergence_measures():
    from ohgw.analysis.configs import kl_gauss, kl_hist, to_u

    assert to_u(np.array([1e-4, 0.0]), "log10").tolist()[0] == pytest.approx(-4.0)
    assert math.isnan(to_u(np.array([0.0]), "log10")[0])
    assert to_u(np.array([1e-4, 0.0]), "identity").tolist() == [1e-4, 0.0]
    with pytest.raises(AnalysisError, match="transform: must be 'log10' or 'identity'"):
        to_u(np.array([1.0]), "log2")
    a = np.linspace(-3, 3, 2001)
    assert kl_hist(a, a.copy()) == 0.0
    assert kl_hist(a, a + 1.0) > 0.1
    rng = np.random.default_rng(0)
    p = rng.normal(0.0, 1.0, (20000, 2))
    q = rng.normal([1.0, 0.0], 1.0, (20000, 2))
    assert kl_gauss(p, q) == pytest.approx(0.5, abs=0.03)  # KL(N(0, I) || N(e1, I)) = |mu|^2 / 2


def test_hyperparameter_shift_on_synthetic_pairs(tmp_path):
    from ohgw.testing.synthetic_results import generate

    generate(tmp_path, n_seeds=3, n_trials=9, max_t=9)
    s = compute(load_results(tmp_path))
    assert set(s.shift) == {"asha+ohgw", "asha+random"}  # the baseline never moves
    res = load_results(tmp_path)
    tr = res.trials[res.trials["method"] == "asha+ohgw"]
    du = np.log10(tr["x_prime.lr"]) - np.log10(tr["x.lr"])
    assert s.shift["asha+ohgw"]["lr"]["mean"] == pytest.approx(du.mean())
    assert s.shift["asha+ohgw"]["lr"]["n"] == 27
    d = s.divergence["asha+ohgw"]
    assert d["first_rung"] == 1.0 and d["n_method"] == d["n_vanilla"] == 9  # 3 of 9 per study pass rung 1
    assert set(s.gradient_benefit) == {"asha+ohgw"}  # asha+random records no hyper-gradient
    assert sum(s.gradient_benefit["asha+ohgw"]["count"][0]) == 27


# A custom scale parameter the library has no default for: its shift must be measured in log10 coordinates.
TEMPERATURE_SPACE = {"params": [{"name": "temperature", "low": 0.01, "high": 1.0, "transform": "log10"},
                                {"name": "dropout", "low": 0.0, "high": 0.5, "transform": "identity"}],
                     "discrete": {"batch_size": [64, 128]}}


def _custom_space_study(root: Path, method: str, seed: int, space: dict, vanilla: str = "") -> None:
    rep = pd.DataFrame({"trial_index": [0, 1, 0, 1], "epoch": [1, 1, 2, 2], "val_score": [0.5, 0.6, 0.7, 0.9],
                        "wall_s": [1.0, 2.0, 3.0, 4.0], "compute_s": [1.0, 2.0, 3.0, 4.0],
                        "epoch_equiv": [1.0, 2.0, 3.0, 4.0]})
    moved = method != "asha"
    configs = pd.DataFrame({"x.temperature": [0.01, 0.1], "x_prime.temperature": [0.1, 1.0] if moved else [0.01, 0.1],
                            "x.dropout": [0.1, 0.2], "x_prime.dropout": [0.2, 0.4] if moved else [0.1, 0.2]},
                           index=pd.Index([0, 1], name="trial_index"))
    it, tr, st = study_frames(rep, tau=0.8, vanilla_method=vanilla, configs=configs, space=space)
    write_study(root, "custom", method, seed, it, tr, st)


def test_shift_uses_the_runs_search_space_not_library_defaults(tmp_path):
    for seed in (0, 1):
        _custom_space_study(tmp_path, "asha", seed, TEMPERATURE_SPACE)
        _custom_space_study(tmp_path, "asha+ohgw", seed, TEMPERATURE_SPACE, vanilla="asha")
    res = load_results(tmp_path)
    assert res.transforms == {"temperature": "log10", "dropout": "identity"}
    s = compute(res)
    sh = s.shift["asha+ohgw"]
    # temperature 0.01 -> 0.1 and 0.1 -> 1.0: one decade each, du = +1 in log10 (in natural units 0.09 and 0.9)
    assert sh["temperature"]["mean"] == pytest.approx(1.0) and sh["temperature"]["n"] == 4
    assert sh["temperature"]["q05"] == pytest.approx(1.0) and sh["temperature"]["q95"] == pytest.approx(1.0)
    # dropout is identity: 0.1 -> 0.2 and 0.2 -> 0.4, du = 0.1 and 0.2
    assert sh["dropout"]["mean"] == pytest.approx(0.15)
    assert set(s.shift) == {"asha+ohgw"}


def test_studies_disagreeing_on_the_search_space_are_refused(tmp_path):
    linear = {"params": [{**TEMPERATURE_SPACE["params"][0], "transform": "identity"}, TEMPERATURE_SPACE["params"][1]],
              "discrete": {}}
    _custom_space_study(tmp_path, "asha", 0, TEMPERATURE_SPACE)
    _custom_space_study(tmp_path, "asha+ohgw", 0, linear, vanilla="asha")
    with pytest.raises(AnalysisError, match=r"^studies.space: the studies disagree on the search space \(method "
                                            r"'asha' seed 0 vs method 'asha\+ohgw' seed 0\); one experiment needs one "
                                            r"space$"):
        load_results(tmp_path)


def test_parameters_missing_from_the_space_and_bad_spaces_are_refused(tmp_path):
    _custom_space_study(tmp_path / "a", "asha", 0, {"params": [TEMPERATURE_SPACE["params"][0]], "discrete": {}})
    with pytest.raises(AnalysisError, match=r"^trials.x.dropout: hyper-parameter 'dropout' is not in the studies' "
                                            r"search space \(has \['temperature'\]\)$"):
        load_results(tmp_path / "a")
    bad = {"params": [{**TEMPERATURE_SPACE["params"][0], "transform": "log2"}], "discrete": {}}
    _custom_space_study(tmp_path / "b", "asha", 0, bad)
    with pytest.raises(AnalysisError, match=r"^studies.space: transform must be one of .*'log2'.*\(method 'asha' seed 0\)$"):
        load_results(tmp_path / "b")


def test_schema_version_1_dataset_is_refused_with_one_line(tmp_path):
    _hand(tmp_path)
    v2_only = {"studies": ["schema_version", "space"],
               "trials": ["ws_step_rule", "ws_eta_h", "ws_hyper_steps", "ws_lookahead", "ws_step_norm"]}
    for table, cols in v2_only.items():  # rewrite every file as the version-1 writer did
        for f in (tmp_path / table).rglob("part-0.parquet"):
            pq.write_table(pq.read_table(f).drop_columns(cols), f)
    with pytest.raises(AnalysisError) as e:
        load_results(tmp_path)
    msg = str(e.value)
    assert "\n" not in msg
    assert msg.startswith("results_dir: studies/experiment=hand/method=asha/seed=0/part-0.parquet is schema "
                          "version 1 (no schema_version column); this ohgw reads schema version 2")
    assert "re-run the studies" in msg


def test_synthetic_generator_writes_schema_version_2(tmp_path):
    from ohgw.results import SCHEMA_VERSION, read_table
    from ohgw.testing.synthetic_results import generate

    generate(tmp_path, n_seeds=1, n_trials=3, max_t=3)
    st, tr = read_table(tmp_path, "studies"), read_table(tmp_path, "trials")
    assert (st["schema_version"] == SCHEMA_VERSION).all()
    assert all(json.loads(v) == SPACE for v in st["space"])
    ohgw_rows = tr[tr["method"] == "asha+ohgw"]
    assert (ohgw_rows["ws_step_rule"] == "normalized").all() and (ohgw_rows["ws_hyper_steps"] == 1).all()
    assert (ohgw_rows["ws_step_norm"] > 0).all() and (ohgw_rows["ws_eta_h"] == 0.05).all()
    plain = tr[tr["method"] != "asha+ohgw"]
    assert (plain["ws_step_rule"] == "").all() and plain["ws_eta_h"].isna().all()
    assert (plain[["ws_hyper_steps", "ws_lookahead"]] == 0).all().all() and (plain["ws_step_norm"] == 0.0).all()


def test_analysis_imports_only_the_results_module():
    code = ("import sys, ohgw.analysis; "
            "print(sorted(m for m in sys.modules if m.startswith('ohgw') and not m.startswith('ohgw.analysis')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT).stdout
    assert out.strip() == "['ohgw', 'ohgw.results']"
