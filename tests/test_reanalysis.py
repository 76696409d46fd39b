"""A re-analysis never changes the study's files; figures need no browser or say how to get one; no box of 2 points.

Issue 22, §3 (re-analysis into a folder of its own), §1 (Chromium not found: figures, or one line naming the
install command) and §5 (fewer than 5 points per group: the points, not a box). Synthetic results folders
(:mod:`ohgw.testing.synthetic_results`), so no study runs.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import subprocess
import sys
import warnings
from pathlib import Path

import plotly.graph_objects as go
import pytest

from ohgw.analysis import AnalysisError, AnalysisWarning, analyze, compute, figures, load_results, reanalysis_dir
from ohgw.analysis.configs import FEW_POINTS
from ohgw.analysis.report import INSTALL_HINT
from ohgw.testing.synthetic_results import generate

ROOT = Path(__file__).resolve().parents[1]
NO_BROWSER = "/nonexistent/chromium"


def _cli():
    spec = importlib.util.spec_from_file_location("analyze_cli", ROOT / "experiments" / "analyze.py")
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    return cli


def _checksums(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A results folder as a study leaves it: data, and its own report, summary, tables and figures."""
    root = tmp_path_factory.mktemp("study") / "results"
    generate(root, n_seeds=2, n_trials=9, max_t=9, workers=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AnalysisWarning)
        analyze(root, out_html=root / "report.html", quiet=True, static=False)  # what the runner writes
    (root / "figures").mkdir()
    for name in ("ttt", "shift"):  # the study's figures (their export is tested in test_analysis_report.py)
        for fmt in ("pdf", "png"):
            (root / "figures" / f"{name}.{fmt}").write_bytes(f"study's {name}.{fmt}".encode())
    return root


def test_reanalysis_never_changes_a_file_the_study_wrote(study, monkeypatch, capsys):
    monkeypatch.setenv("BROWSER_PATH", NO_BROWSER)  # no figure export here: quick, and not what is tested
    before = _checksums(study)
    assert {"report.html", "summary.json", "tables.txt", "figures/shift.png"} <= set(before)
    cli = _cli()
    assert cli.main([str(study), "--tau", "0.8", "--quiet"]) == 0
    assert cli.main([str(study), "--tau", "0.7", "--quiet", "--out", str(study / "report_t07.html")]) == 0
    after = _checksums(study)
    assert {k: after.get(k) for k in before} == before  # every file the study wrote, byte for byte
    for folder, tau in ((study / "analysis-tau0.8", 0.8), (study / "report_t07", 0.7)):
        assert {"report.html", "summary.json", "tables.txt"} <= {p.name for p in folder.iterdir()}
        assert f'"tau": {tau}' in (folder / "summary.json").read_text()
    assert set(after) - set(before) == {f"{d}/{f}" for d in ("analysis-tau0.8", "report_t07")
                                        for f in ("report.html", "summary.json", "tables.txt")}
    # the results folder itself, or a folder the study wrote, is refused with one line naming --out
    capsys.readouterr()
    assert cli.main([str(study), "--out", str(study)]) == 2
    assert cli.main([str(study), "--out", str(study / "figures")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("analyze: error: out: ") for line in err), err
    assert _checksums(study).keys() >= before.keys() and {k: _checksums(study)[k] for k in before} == before


def test_reanalysis_dir_names_its_folder_after_tau_clock_experiment_or_out(tmp_path):
    assert reanalysis_dir(tmp_path) == tmp_path / "analysis"
    assert reanalysis_dir(tmp_path, tau=0.85, clock="epochs") == tmp_path / "analysis-tau0.85-epochs"
    assert reanalysis_dir(tmp_path, out=tmp_path / "t09.html") == tmp_path / "t09"
    assert reanalysis_dir(tmp_path, out=tmp_path / "mine") == tmp_path / "mine"
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(AnalysisError, match="^out: .*not a folder"):
        reanalysis_dir(tmp_path, out=tmp_path / "notes.txt")
    with pytest.raises(AnalysisError, match="^out: .*results folder itself"):
        reanalysis_dir(tmp_path, out=tmp_path / ".")


def test_without_chromium_the_figures_come_out_or_one_line_names_the_install_command(study, tmp_path):
    """Chromium not found (BROWSER_PATH points nowhere, PATH holds no browser): a silently empty figures/ fails."""
    env = {**os.environ, "BROWSER_PATH": NO_BROWSER, "PATH": str(Path(sys.executable).parent) + ":/nonexistent"}
    out = tmp_path / "fresh"
    r = subprocess.run([sys.executable, str(ROOT / "experiments" / "analyze.py"), str(study), "--quiet",
                        "--out", str(out)], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    figs = sorted(p.name for p in (out / "figures").glob("*.png")) if (out / "figures").is_dir() else []
    lines = [ln for ln in r.stderr.splitlines() if INSTALL_HINT in ln]
    if not figs:
        assert len(lines) == 1, r.stderr
        assert "sudo apt-get install -y chromium" in lines[0] and "kaleido_get_chrome" in lines[0]
        assert not (out / "figures").exists() or not any((out / "figures").iterdir())
    assert (out / "report.html").is_file()


def _boxes(fig: go.Figure) -> list:
    return [t for t in fig.data if t.type == "box"]


def test_box_plots_draw_the_points_below_five_per_group(tmp_path):
    few = tmp_path / "few"
    generate(few, n_seeds=FEW_POINTS - 1, n_trials=1, max_t=3, workers=1)
    many = tmp_path / "many"
    generate(many, n_seeds=FEW_POINTS, n_trials=1, max_t=3, workers=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AnalysisWarning)
        s_few, s_many = compute(load_results(few)), compute(load_results(many))
    f_few, f_many = figures(s_few), figures(s_many)
    # T@tau: 4 studies per method -> the 4 points and no box; 5 -> a box per method and clock as well
    assert _boxes(f_few["ttt"]) == []
    pts = [t for t in f_few["ttt"].data if t.type == "scatter" and t.mode == "markers"]
    assert sum(len(t.y) for t in pts) == 3 * len(s_few.per_study)  # every study, on each of the 3 clocks
    assert len(_boxes(f_many["ttt"])) == 3 * len(s_many.methods)
    # x -> x' shift: 4 trials per method and psi -> their 4 values exactly, no box
    assert _boxes(f_few["shift"]) == []
    for t in f_few["shift"].data:
        psi = f_few["shift"].layout.annotations[int((t.xaxis or "x")[1:] or 1) - 1].text
        assert sorted(t.y) == pytest.approx(sorted(s_few.shift[t.name][psi]["values"]))
        assert len(t.y) == FEW_POINTS - 1
    assert len(_boxes(f_many["shift"])) == len(s_many.shift) * len(next(iter(s_many.shift.values())))
    assert all("values" not in d for per in s_many.shift.values() for d in per.values())

