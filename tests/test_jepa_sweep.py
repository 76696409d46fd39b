"""experiments/jepa_noise_sweep.py: its bad-input lines, its figure, and (slow) a real smoke sweep."""

import importlib.util
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _sweep():
    spec = importlib.util.spec_from_file_location("jepa_noise_sweep", ROOT / "experiments" / "jepa_noise_sweep.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("argv, needle", [
    (["--models", "VICReg,BYOL"], "unknown model_type 'BYOL'"),
    (["--noise-types", "pink"], "unknown noise type 'pink'"),
    (["--coeffs", "0.5,-1"], "a noise coefficient must be >= 0, got -1.0"),
    (["--coeffs", "a,b"], "--coeffs must be comma-separated numbers"),
    (["--values", "var_coef=2"], "did you mean 'var_coeff'"),
])  # fmt: skip
def test_bad_input_is_one_line_and_nothing_is_written(tmp_path, capsys, argv, needle):
    out = tmp_path / "sweep"
    assert _sweep().main([*argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and needle in err[0], err
    assert not out.exists()


def test_the_slow_features_figure_has_a_panel_per_noise_type_and_the_reference_lines():
    rows = [{"model": m, "noise_type": k, "coeff": c, "method": "asha", "best_val_rmse": 1.0 + c,
             "ref_random_init_rmse": 5.0, "ref_mean_rmse": 9.0}
            for m in ("VICReg", "RSSM") for k in ("changing", "static") for c in (0.0, 1.0)]
    fig = _sweep().figure(pd.DataFrame(rows))
    names = [t.name for t in fig.data]
    assert names.count("VICReg (asha)") == 2 and names.count("random-init encoder") == 2
    assert [a.text for a in fig.layout.annotations] == ["changing", "static"]
    vic = next(t for t in fig.data if t.name == "VICReg (asha)")
    assert list(vic.x) == [0.0, 1.0] and list(vic.y) == [1.0, 2.0]


@pytest.mark.slow
def test_smoke_sweep_writes_cells_trials_and_the_figure(tmp_path):
    out = tmp_path / "sweep"
    assert _sweep().main(["--smoke", "--out", str(out)]) == 0
    cells = pd.read_parquet(out / "cells.parquet")
    assert len(cells) == 4 and cells["best_val_rmse"].notna().all() and (cells["errors"] == 0).all()
    assert (out / "slow_features.html").stat().st_size > 1000
