"""``python -m trainables.linear_byol``: Parquet per run, the sweep and its heatmaps, divergence, bad input."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pyarrow.dataset as ds
import pytest
import torch

from trainables.linear_byol.cli import main
from trainables.linear_byol.records import HP_COLUMNS

TINY = ["--d_obs", "12", "--d_latent", "3", "--samples_per_epoch", "128"]


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)  # the CLI sets 1 thread


def test_train_writes_one_row_per_log_step_with_every_hp(tmp_path, capsys):
    rc = main(["train", *TINY, "--epochs", "6", "--log_every", "2", "--batch_size", "32", "--lr_pred", "0.1",
               "--ema_m", "0.9", "--pred_update_every", "2", "--out_dir", str(tmp_path), "--run_name", "one run"])
    assert rc == 0, capsys.readouterr().err
    files = list(tmp_path.glob("*.parquet"))
    assert [f.name for f in files] == ["one_run.parquet"]
    df = pd.read_parquet(files[0])
    table = ds.dataset(str(tmp_path), format="parquet").to_table().to_pandas()
    assert df.equals(table)
    assert df["epoch"].tolist() == [2, 4, 6] and df["step"].tolist() == [8, 16, 24]  # 128 / 32 = 4 steps per epoch
    assert set(HP_COLUMNS) <= set(df.columns)
    row = df.iloc[0]
    assert (row["lr_pred"], row["batch_size"], row["pred_update_every"], row["d_obs"]) == (0.1, 32, 2, 12)
    assert row["ema_m"] == pytest.approx(0.9) and row["tau"] == pytest.approx(0.1) and row["enc"] == "linear"
    assert not df["diverged"].any() and np.isfinite(df["W_Fro_aligned"]).all()


def test_local_sweep_records_divergence_and_the_heatmap_has_the_grid(tmp_path, capsys):
    runs, figs = tmp_path / "runs", tmp_path / "figs"
    # α = 10^1.5 diverges; the grid is 2 α × 2 τ × 1 seed
    rc = main(["sweep", *TINY, "--backend", "local", "--epochs", "6", "--log_every", "2",
               "--lr_pred_logspace", "1e-2", "31.622776601683793", "2", "--tau_logspace", "0.1", "1", "2", "--out_dir", str(runs)])
    assert rc == 0, capsys.readouterr().err
    df = pd.read_parquet(runs)
    assert df["run_name"].nunique() == 4
    div = df[df["diverged"]]
    assert len(div) == 2 and (div["lr_pred"] > 3).all() and div["W_Fro_aligned"].isna().all()  # recorded, not dropped
    assert main(["analyze", "--runs_dir", str(runs), "--out", str(figs), "--epoch", "6", "--no_static"]) == 0
    from trainables.linear_byol.analyze import analyze

    plain = analyze(runs, tmp_path / "plain", epoch=6, static=False)
    marked = analyze(runs, tmp_path / "marked", epoch=6, use_last_valid=True, static=False)
    for figs_ in (plain, marked):
        hm = figs_["heatmap_W_Fro_aligned_bs128"].data[0]
        np.testing.assert_allclose(hm.x, [-1, 0])
        np.testing.assert_allclose(hm.y, [-2, 1.5])
    z_plain = np.array(plain["heatmap_W_Fro_aligned_bs128"].data[0].z, dtype=float)
    z_marked = np.array(marked["heatmap_W_Fro_aligned_bs128"].data[0].z, dtype=float)
    assert np.isfinite(z_plain[0]).all() and np.isnan(z_plain[1]).all()
    diverged_at = {r: int(g["epoch"].max()) for r, g in div.groupby("run_name")}
    if all(e > 2 for e in diverged_at.values()):  # a finite row logged before the divergence stands in
        assert np.isfinite(z_marked[1]).all()
    assert [t.name for t in marked["heatmap_W_Fro_aligned_bs128"].data].count("diverged") == 1  # the × markers
    assert {p.name for p in figs.iterdir()} == {"heatmap_W_Fro_aligned_bs128.html", "heatmap_BA_err_aligned_bs128.html",
                                                "slices_loss_bs128.html"}
    # each cell shows its value; the dashed line is α·H = c·τ at the median logged H_t of epoch 6 (c = 1)
    hm = plain["heatmap_W_Fro_aligned_bs128"].data[0]
    assert hm.texttemplate == "%{text}"
    assert [list(r) for r in hm.text] == [[f"{v:.3g}" if np.isfinite(v) else "" for v in r] for r in z_plain]
    h = float(df[(df["epoch"] == 6) & ~df["diverged"]]["H_t"].median())
    (line,) = [t for t in plain["heatmap_W_Fro_aligned_bs128"].data if t.name and t.name.startswith("α·H = c·τ")]
    np.testing.assert_allclose(np.array(line.y) - np.array(line.x), [np.log10(1.0 / h)] * 2, rtol=1e-12)
    np.testing.assert_allclose(line.x, [-1, 0])
    wide = analyze(runs, tmp_path / "wide", epoch=6, static=False, regime_c=0.4)
    (line,) = [t for t in wide["heatmap_BA_err_aligned_bs128"].data if t.name and t.name.startswith("α·H")]
    np.testing.assert_allclose(line.y[0] - line.x[0], np.log10(0.4 / h), rtol=1e-12)
    # an epoch beyond the runs' length, or one no run logged, is refused in one line (blank heatmaps before)
    for epoch, needle in (("50", "--epoch 50 is beyond the runs' length: the longest run logged up to epoch 6"),
                          ("5", "--epoch 5: no run logged that epoch (logged: 2, ")):
        capsys.readouterr()
        assert main(["analyze", "--runs_dir", str(runs), "--out", str(tmp_path / "late"), "--epoch", epoch]) == 2
        err = capsys.readouterr().err.strip()
        assert needle in err and len(err.splitlines()) == 1 and not (tmp_path / "late").exists()


@pytest.mark.slow
def test_ray_tune_sweep_2_seeds_3_alpha_3_tau(tmp_path, capsys):
    """The issue's sweep through Ray Tune (its wall time is printed, not asserted: no timed tests)."""
    runs = tmp_path / "runs"
    t0 = time.perf_counter()
    rc = main(["sweep", "--epochs", "20", "--log_every", "5", "--lr_pred_logspace", "1e-3", "1", "3",
               "--tau_logspace", "1e-2", "1", "3", "--seeds", "0", "1", "--out_dir", str(runs)])
    rc = rc or main(["analyze", "--runs_dir", str(runs), "--out", str(tmp_path / "figs"), "--use_last_valid"])
    elapsed = time.perf_counter() - t0
    assert rc == 0, capsys.readouterr().err
    df = pd.read_parquet(runs)
    assert df["run_name"].nunique() == 18 and set(df["seed"]) == {0, 1}
    assert (df.groupby("run_name")["epoch"].max() <= 20).all()
    html = (tmp_path / "figs" / "heatmap_W_Fro_aligned_bs128.html").read_text()
    assert "heatmap" in html
    print(f"sweep + analyze: {elapsed:.1f} s")


def test_logspace_flags_take_values_as_in_seed_002():
    """Seed 002: ``--lr_pred_logspace 1e-5 1e-2 4`` is 1e-5 … 1e-2 in 4 points (once read as exponents: α ≈ 1.00–1.02)."""
    from trainables.linear_byol.cli import _sweep_configs, build_parser

    args = build_parser().parse_args(["sweep", "--lr_pred_logspace", "1e-5", "1e-2", "4", "--tau_logspace", "1e-4",
                                      "1e-1", "4", "--lr_enc_mode", "logspace", "--lr_enc_logspace", "1e-5", "1e-2",
                                      "6"])
    configs = _sweep_configs(args)
    np.testing.assert_allclose(sorted({c["lr_pred"] for c in configs}), [1e-5, 1e-4, 1e-3, 1e-2], rtol=1e-12)
    np.testing.assert_allclose(sorted({c["tau"] for c in configs}), [1e-4, 1e-3, 1e-2, 1e-1], rtol=1e-12)
    np.testing.assert_allclose(sorted({c["lr_enc"] for c in configs}), 10 ** np.linspace(-5, -2, 6), rtol=1e-12)
    assert len(configs) == 4 * 4 * 6


@pytest.mark.parametrize("argv, needle", [
    (["train", "--d_latent", "20", "--d_obs", "10"], "d_latent (20) must be <= d_obs (10)"),
    (["train", "--ema_m", "1.0"], "ema_m must be in [0, 1)"),
    (["train", "--ema_m", "-0.5"], "ema_m must be in [0, 1)"),
    (["train", "--lr_pred", "0"], "lr_pred must be > 0"),
    (["train", "--lr_enc", "-0.1"], "lr_enc must be > 0"),
    (["sweep", "--lr_enc_mode", "fancy"], "--lr_enc_mode must be one of"),
    (["sweep", "--lr_pred_logspace", "1", "0.1", "3"], "--lr_pred_logspace: need start < stop"),
    (["sweep", "--tau_logspace", "1e-2", "1", "0"], "--tau_logspace: steps must be an integer >= 1"),
    (["sweep", "--lr_enc_mode", "logspace", "--lr_enc_logspace", "0.1", "0.1", "2"], "--lr_enc_logspace: need start"),
    (["sweep", "--lr_pred_logspace", "-5", "-2", "4"], "--lr_pred_logspace: start and stop are the values themselves"),
    (["sweep", "--tau_logspace", "1e-2", "2", "3"], "--tau_logspace: tau = 1 - m must be <= 1"),
    (["train", "--log_wandb"], "--log_wandb needs the wandb package"),
])  # fmt: skip
def test_bad_input_gives_one_line_and_writes_nothing(tmp_path, capsys, argv, needle):
    out = tmp_path / "out"
    assert main([*argv, "--out_dir", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1
    assert not out.exists()


def test_analyze_without_parquet_files(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["analyze", "--runs_dir", str(tmp_path / "empty"), "--out", str(tmp_path / "figs")]) == 2
    err = capsys.readouterr().err.strip()
    assert "holds no Parquet files" in err and len(err.splitlines()) == 1 and not (tmp_path / "figs").exists()


def test_seed_presets_take_seed_002s_defaults_and_run_one_epoch(tmp_path, capsys):
    """--preset seed: seed 002's defaults per command (flags given still win); each command runs one tiny epoch."""
    from trainables.linear_byol.cli import _preset_of, _single_config, _sweep_configs, build_parser

    tiny = ["--d_obs", "12", "--d_latent", "3", "--samples_per_epoch", "64", "--epochs", "1", "--log_every", "1"]
    train = build_parser("seed").parse_args(["train", "--preset", "seed", *tiny])
    cfg = _single_config(train)
    assert (cfg["seed"], cfg["batch_size"], cfg["lr_pred"], cfg["lr_enc"], cfg["mom_pred"], cfg["mom_enc"]) == \
        (42, 64, 1e-3, 1e-3, 0.95, 0.95)
    assert cfg["tau"] == pytest.approx(1e-3) and (cfg["auto_alpha_c"], cfg["auto_beta_c"]) == (0.4, 0.4)
    assert cfg["d_obs"] == 12 and train.out_dir == "runs_parquet"  # given flags win; the seed's output folder
    sweep = build_parser("seed").parse_args(["sweep", "--preset", "seed", *tiny])
    configs = _sweep_configs(sweep)
    assert len(configs) == 4 * 4 * 2 * 2  # α × τ × batch sizes × seeds
    np.testing.assert_allclose(sorted({c["lr_pred"] for c in configs}), [1e-5, 1e-4, 1e-3, 1e-2], rtol=1e-12)
    np.testing.assert_allclose(sorted({c["tau"] for c in configs}), [1e-4, 1e-3, 1e-2, 1e-1], rtol=1e-12)
    assert {c["batch_size"] for c in configs} == {32, 64} and {c["seed"] for c in configs} == {42, 43}
    assert {(c["mom_pred"], c["mom_enc"], c["auto_beta_c"]) for c in configs} == {(0.9, 0.9, 0.4)}
    assert _preset_of(["analyze", "--preset", "seed"]) == "seed" and _preset_of(["train"]) is None
    runs, single = tmp_path / "runs", tmp_path / "single"
    assert main(["train", "--preset", "seed", *tiny, "--out_dir", str(single)]) == 0
    assert pd.read_parquet(single)["seed"].tolist() == [42]
    assert main(["sweep", "--preset", "seed", "--backend", "local", *tiny, "--seeds", "42", "--batch_sizes", "32",
                 "--out_dir", str(runs)]) == 0
    assert pd.read_parquet(runs)["run_name"].nunique() == 16
    capsys.readouterr()
    # the seed's analysis epoch (2000) is beyond these one-epoch runs: refused in one line
    assert main(["analyze", "--preset", "seed", "--runs_dir", str(runs), "--out", str(tmp_path / "figs")]) == 2
    assert "--epoch 2000 is beyond the runs' length" in capsys.readouterr().err
    assert main(["analyze", "--preset", "seed", "--runs_dir", str(runs), "--out", str(tmp_path / "figs"),
                 "--epoch", "1", "--no_static"]) == 0
    assert (tmp_path / "figs" / "heatmap_W_Fro_aligned_bs32.html").is_file()


@pytest.mark.parametrize("command", ["train", "sweep", "analyze", "all"])
def test_help_gives_every_flag_a_meaning_and_its_default(command, capsys):
    """Each flag: one line of meaning, its default, and its choices where it has some (most had none)."""
    from trainables.linear_byol.cli import build_parser

    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    sub = next(a for a in build_parser()._actions if a.dest == "command").choices[command]
    for action in sub._actions:
        if action.dest == "help" or action.help == "==SUPPRESS==":
            continue
        assert action.help, action.option_strings
        assert " ".join(action.help.replace("%(default)s", "").split())[:30] in text, action.option_strings
        if not action.required:
            assert f"(default: {action.default})" in text or f"(default: {action.default!r})" in text, action.dest
        if action.choices:
            assert "{" + ",".join(action.choices) + "}" in text
