"""A workload's own flags and its step after the studies (``Workload.add_flags`` / ``after_studies``).

The two scripts that use them are driven in-process through the harness's ``main``: their flags are
listed by ``--help`` and checked by argparse before anything runs (one line, exit 2, nothing written),
and the step after the studies receives the parsed flags. That step runs here on a results directory
whose studies are all done, so the real runner starts no Ray and goes straight to it.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path

import pandas as pd
import pytest

from ohgw.results import study_dir
from ohgw.studies.cli import main

ROOT = Path(__file__).resolve().parents[1]


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "experiments" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def linear_byol():
    return _script("linear_byol_ohgw")


@pytest.fixture(scope="module")
def ssl():
    return _script("ssl_asha_vs_ohgw")


def _exit(argv, capsys, script: str, workload) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as e:
        main(script, workload, ["asha", "asha+ohgw"], "doc", argv)
    out, err = capsys.readouterr()
    return e.value.code, out, err.strip()


def test_help_lists_the_workloads_flags_with_the_harnesss(linear_byol, ssl, capsys):
    code, out, _ = _exit(["--help"], capsys, "linear_byol_ohgw", linear_byol.build_workload())
    assert code == 0
    assert "flags of the linear_byol workload:" in out
    for flag in ("--sweep_dir", "--sweep_steps", "--regime_c", "--methods", "--budget"):
        assert flag in out, flag
    code, out, _ = _exit(["--help"], capsys, "ssl_asha_vs_ohgw", ssl.build_workload("tw-byol"))
    assert code == 0 and "--method {byol,tw-byol,simclr-temporal}" in out


@pytest.mark.parametrize(("argv", "needle"), [
    (["--sweep_steps", "0"], "argument --sweep_steps: must be > 0, got 0"),
    (["--sweep_steps", "two"], "argument --sweep_steps: invalid int value: 'two'"),
    (["--regime_c", "-1"], "argument --regime_c: must be > 0, got -1"),
])
def test_a_bad_flag_of_the_workload_stops_before_any_study(linear_byol, capsys, tmp_path, argv, needle):
    out = tmp_path / "out"
    code, _, err = _exit([*argv, "--out", str(out)], capsys, "linear_byol_ohgw", linear_byol.build_workload())
    assert code == 2 and len(err.splitlines()) == 1 and err.startswith("linear_byol_ohgw.py: error:"), err
    assert needle in err and not out.exists()


def test_an_unknown_ssl_method_is_one_line(ssl, capsys, tmp_path):
    code, _, err = _exit(["--method", "moco", "--out", str(tmp_path / "o")], capsys, "ssl_asha_vs_ohgw",
                         ssl.build_workload("tw-byol"))
    assert code == 2 and len(err.splitlines()) == 1 and "argument --method: invalid choice: 'moco'" in err
    assert not (tmp_path / "o").exists()


def test_the_step_after_the_studies_gets_the_parsed_flags(linear_byol, tmp_path, capsys):
    seen = []

    def after(args, cfg, out):
        seen.append((args.sweep_steps, args.regime_c, cfg.experiment, cfg.max_t, out))
        return 7

    w = dataclasses.replace(linear_byol.build_workload(), after_studies=after)
    out = tmp_path / "res"
    for method in ("asha", "asha+ohgw"):  # every study done: the runner has nothing to run
        d = study_dir(out, "studies", "lb", method, 0)
        d.mkdir(parents=True)
        pd.DataFrame({"done": [True]}).to_parquet(d / "part-0.parquet")
    argv = ["--seeds", "1", "--experiment", "lb", "--out", str(out), "--no-report", "--sweep_steps", "3",
            "--regime_c", "0.5", "--max-t", "4"]
    assert main("linear_byol_ohgw", w, ["asha", "asha+ohgw"], "doc", argv) == 7
    assert seen == [(3, 0.5, "lb", 4, out)]
    assert "studies: 0 run, 2 resumed, 0 failed" in capsys.readouterr().err  # nothing ran: straight to the step
