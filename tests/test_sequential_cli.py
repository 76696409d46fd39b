"""``--seeds auto``: bad input gets one line, exit 2 and nothing written; the design reaches the runner."""

from __future__ import annotations

import pytest

from ohgw.studies.cli import build_parser, config_from_args, main, sequential_from_args
from trainables.classification import workload

METHODS = ["asha", "asha+ohgw"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--seeds", "auto", "--look-every", "1"], "--look-every: must be between 2 and --max-seeds (16), got 1"),
        (["--seeds", "auto", "--max-seeds", "8", "--look-every", "9"], "--look-every: must be between 2 and"),
        (["--seeds", "auto", "--alpha", "0.5"], "--alpha: must be in (0, 0.5), got 0.5"),
        (["--seeds", "auto", "--alpha", "0"], "--alpha: must be in (0, 0.5)"),
        (["--seeds", "auto", "--target-reduction", "1"], "--target-reduction: must be in (0, 1), got 1.0"),
        (["--seeds", "auto", "--target-reduction", "-0.1"], "--target-reduction: must be in (0, 1)"),
        (["--seeds", "16", "--max-seeds", "16"], "--max-seeds needs --seeds auto (--seeds 16 fix the seeds)"),
        (["--look-every", "4"], "--look-every needs --seeds auto (the preset's 16 seeds fix the seeds)"),
        (["--seeds", "0,1,2"], "--seeds: an integer or 'auto', got '0,1,2'"),
        (["--seeds", "auto", "--max-seeds", "1"], "--max-seeds: must be an integer >= 2, got 1"),
        (["--seeds", "auto", "--methods", "asha,asha+ohgw,hyperband,hyperband+ohgw"],
         "exactly one method and its vanilla partner"),
    ],
)
def test_bad_sequential_input_one_line_exit_2_nothing_written(argv, message, tmp_path, capsys):
    out = tmp_path / "out"
    code = main("asha_vs_ohgw", workload(), METHODS, "doc", [*argv, "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and err.startswith("asha_vs_ohgw.py: error:"), err
    assert message in err
    assert not out.exists()


def test_the_design_from_the_flags_and_its_defaults(tmp_path):
    wl = workload()
    parser = build_parser("x.py", wl, METHODS, "doc")
    args = parser.parse_args(["--seeds", "auto", "--max-seeds", "10", "--out", str(tmp_path)])
    cfg, methods, seeds, out = config_from_args(args, "x", wl)
    design = sequential_from_args(args, len(seeds))
    assert seeds == list(range(10)) and design.looks == [4, 8, 10]
    assert (design.alpha, design.target_reduction, design.futility_power) == (0.05, 0.15, 0.10)
    # the help's stated defaults are the design's
    assert "(default 0.15)" in parser.format_help() and "(default 0.05)" in parser.format_help()
    fixed = parser.parse_args(["--seeds", "3"])
    assert sequential_from_args(fixed, 3) is None and config_from_args(fixed, "x", wl)[2] == [0, 1, 2]
