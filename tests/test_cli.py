"""Bad input to the experiment scripts: one clear line, exit != 0, nothing written."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ohgw.studies.cli import main as cli_main
from trainables.classification import workload

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--methods", "asha,asha+magic"], "unknown method 'asha+magic'"),
        (["--methods", "sha"], "unknown method 'sha'"),
        (["--tau", "1.5"], "tau 1.5 is outside the range [0.0, 1.0] of metric 'val_acc'"),
        (["--tau", "-0.1"], "tau -0.1 is outside the range"),
        (["--budget", "0"], "budget must be > 0"),
        (["--budget", "-3"], "budget must be > 0"),
        (["--seeds", "0"], "--seeds must be >= 1"),
        (["--preset", "cifar10", "--data-dir", "/nonexistent/cifar"], "cifar"),
        # a scheduler that refuses the config is refused before anything starts, not inside every study
        (["--methods", "pasha,pasha+ohgw", "--max-t", "1"], "max_t must be greater than grace_period, got max_t=1"),
    ],
)
def test_bad_arguments_one_line_nonzero_nothing_written(argv, message, tmp_path, capsys):
    out = tmp_path / "out"
    code = cli_main("asha_vs_ohgw", workload(), ["asha", "asha+ohgw"], "doc", [*argv, "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert code != 0
    assert len(err.splitlines()) == 1 and err.startswith("asha_vs_ohgw.py: error:"), err
    assert message in err
    assert not out.exists()


def test_directory_with_another_experiment_is_refused(tmp_path, capsys):
    out = tmp_path / "out"
    (out / "studies" / "experiment=other-exp").mkdir(parents=True)
    before = sorted(out.rglob("*"))
    code = cli_main("asha_vs_ohgw", workload(), ["asha"], "doc", ["--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "holds studies of other experiments ['other-exp']" in err
    assert sorted(out.rglob("*")) == before


def test_manifest_with_other_settings_is_refused(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "experiment.json").write_text(json.dumps({"experiment": "asha_vs_ohgw-digits", "budget": 1.0}))
    code = cli_main("asha_vs_ohgw", workload(), ["asha"], "doc", ["--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "holds experiment 'asha_vs_ohgw-digits' with other settings" in err
    assert [p.name for p in out.iterdir()] == ["experiment.json"]


def test_argparse_errors_are_one_line_too(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "experiments" / "asha_vs_ohgw.py"), "--budget-kind", "hours"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and "invalid choice: 'hours'" in proc.stderr


def test_keep_tune_dirs_outside_a_results_directory_is_refused(tmp_path, capsys):
    out = tmp_path / "not-results"
    out.mkdir()
    (out / "notes.txt").write_text("someone's files")
    code = cli_main("asha_vs_ohgw", workload(), ["asha"], "doc", ["--out", str(out), "--keep-tune-dirs"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and err.startswith("asha_vs_ohgw.py: error: --keep-tune-dirs:")
    assert f"{out} is not a results directory" in err
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


def test_quiet_and_verbose_exclude_each_other(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        cli_main("asha_vs_ohgw", workload(), ["asha"], "doc", ["--out", str(tmp_path / "o"), "--quiet", "--verbose"])
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and len(err.splitlines()) == 1 and "not allowed with argument" in err
    assert not (tmp_path / "o").exists()
