"""The SSL run object: restore exactness (EMA target included), collapse ending, warm-start record, bad input, CLIs."""

import json
import math
import os

import numpy as np
import pandas as pd
import pytest
import torch

from ohgw import protocol
from ohgw.warmstart import WarmStartSettings, make_instruction
from trainables.scaffold import Run
from trainables.ssl import DEFAULT_CONFIG, METRIC, SSLRun, resolve_config, search_space, train_epochs

THREADS = 1
TINY = {"video_clips": 8, "video_frames": 40, "batch_size": 16, "steps_per_epoch": 3, "bank_frames": 64,
        "eval_frames": 32, "max_t": 4}


@pytest.fixture(autouse=True)
def _restore_torch_threads():
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return str(tmp_path_factory.mktemp("ssl_cache"))


def _cfg(cache, **over):
    # temporal SimCLR's batch_size counts windows (seed 003): 4 windows of 4 frames = TINY's 16 frames per step
    simclr = {"batch_size": 4} if over.get("method") == "simclr-temporal" else {}
    return {**TINY, "cache_dir": cache, **simclr, **over}


def _ohgw(method):
    return make_instruction(search_space(method), WarmStartSettings(batch_size=16))


EXACT = (METRIC, "val_probe_f1", "val_spearman", "val_mrr", "val_rankme", protocol.VAL_LOSS, protocol.TRAIN_LOSS,
         protocol.test_metric(METRIC), "ema_momentum", "learning_rate")


@pytest.mark.parametrize("method", ["tw-byol", "simclr-temporal"])
def test_two_epochs_restore_two_epochs_equals_four_straight(cache, tmp_path, method):
    cfg = _cfg(cache, method=method, **{protocol.INSTRUCTION_KEY: _ohgw(method)})
    straight = train_epochs(cfg, 4, num_threads=THREADS, save_to=tmp_path / "end")
    first = train_epochs(cfg, 2, num_threads=THREADS, save_to=tmp_path / "half")
    rest = train_epochs(cfg, 2, num_threads=THREADS, restore_from=tmp_path / "half", save_to=tmp_path / "end2")
    keys = [k for k in EXACT if k in straight[0]]
    assert [[r[k] for k in keys] for r in first + rest] == [[r[k] for k in keys] for r in straight]
    assert rest[0][protocol.hp_key("lr")] == straight[0][protocol.hp_key("lr")]  # x′ kept, no second warm-start
    a = torch.load(tmp_path / "end" / "ssl_state.pt", weights_only=False)
    b = torch.load(tmp_path / "end2" / "ssl_state.pt", weights_only=False)
    assert a["step"] == b["step"] == 12
    assert all(torch.equal(a["net"][k], b["net"][k]) for k in a["net"])  # online and EMA target weights
    if method == "tw-byol":
        assert any(k.startswith("target_") for k in a["net"])
        assert straight[1]["ema_momentum"] > straight[0]["ema_momentum"]  # the cosine schedule moves on


def test_warm_start_moves_lr_and_ssl_hyperparameters_and_builds_the_optimizer_with_x_prime(cache):
    run = SSLRun(_cfg(cache, method="tw-byol", **{protocol.INSTRUCTION_KEY: _ohgw("tw-byol")}), num_threads=THREADS)
    assert isinstance(run, Run)
    target_before = [p.clone() for p in run.net.target_parameters()]
    record = run.warm_start()
    assert record is not None and set(record.g) == {"lr", "wd", "ema_gap", "tau", "aug_strength"}
    assert all(math.isfinite(v) and v != 0.0 for v in record.g.values())
    assert record.x_prime["lr"] != record.x["lr"] and record.x_prime["tau"] != record.x["tau"]
    assert run.hp == record.x_prime and run.optimizer.param_groups[0]["weight_decay"] == record.x_prime["wd"]
    assert all(torch.equal(a, b) for a, b in zip(target_before, run.net.target_parameters()))
    (r,) = train_epochs(_cfg(cache, method="tw-byol", max_t=1, **{protocol.INSTRUCTION_KEY: _ohgw("tw-byol")}), 1,
                        num_threads=THREADS)
    assert r[protocol.WS_COMPUTE_S] > 0 and 0 <= r["eval_share"] < 1


def test_a_collapsing_configuration_is_flagged_and_ends_cleanly(cache):
    # BYOL without predictor and with EMA momentum 0: the target is the online net, so a constant output wins
    cfg = _cfg(cache, method="byol", predictor=False, ema_momentum=0.0, ema_schedule="constant", lr=2.0, max_t=6,
               steps_per_epoch=6)
    rows = train_epochs(cfg, 6, num_threads=THREADS)
    last = rows[-1]
    assert last[protocol.COLLAPSED] is True and last[protocol.DIVERGED] is False
    assert last["val_rankme_proj"] < resolve_config({})["collapse_rank"] and len(rows) < 6
    assert all(r[protocol.COLLAPSED] is False for r in rows[:-1])


def test_a_non_finite_loss_ends_as_diverged(cache):
    rows = train_epochs(_cfg(cache, method="simclr-temporal", lr=1e30, max_t=3), 3, num_threads=THREADS)
    assert rows[-1][protocol.DIVERGED] is True and rows[-1][METRIC] == 0.0 and len(rows) <= 3


@pytest.mark.parametrize("override, match", [
    ({"window_size": 1}, "window_size must be an integer >= 2"),
    ({"frame_step": 0}, "frame_step must be an integer >= 1"),
    ({"window_stride": 0}, "window_stride must be an integer >= 1"),
    ({"tau": 0.0}, "tau must be > 0"),
    ({"tau": -3}, "tau must be > 0"),
    ({"temperature": 0}, "temperature must be > 0"),
    ({"ema_momentum": 1.0}, r"ema_momentum must be in \[0, 1\)"),
    ({"ema_momentum": -0.1}, r"ema_momentum must be in \[0, 1\)"),
    ({"ema_gap": 0.0}, r"ema_gap \(1 − EMA momentum\) must be in \(0, 1\]"),
    ({"method": "dino"}, "method must be one of"),
    ({"weighting": "gauss"}, "weighting must be one of"),
    ({"weight_norm": "sum"}, "weight_norm must be one of"),
    ({"lr": 0}, "lr must be > 0"),
    ({"colour": 1}, r"unknown config key\(s\) \['colour'\]"),
])  # fmt: skip
def test_bad_config_names_the_value(override, match):
    with pytest.raises(ValueError, match=match):
        resolve_config(override)


def test_bad_roots_are_rejected_before_training(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        SSLRun({"root_dir": str(tmp_path / "nope")})
    with pytest.raises(ValueError, match="holds no clip folder"):
        SSLRun({"root_dir": str(tmp_path)})


def test_defaults_are_documented_choices():
    assert DEFAULT_CONFIG["weight_norm"] == "mean" and DEFAULT_CONFIG["ema_schedule"] == "cosine"
    cfg = resolve_config({"ema_gap": 0.004})
    assert cfg["ema_momentum"] == pytest.approx(0.996)


# ---- command lines ------------------------------------------------------------------------------------


def test_train_cli_writes_parquet_and_both_csv_logs(cache, tmp_path, capsys):
    from trainables.ssl.train import main

    out = tmp_path / "run" / "byol.parquet"
    argv = ["--method", "byol", "--epochs", "2", "--batch-size", "16", "--steps-per-epoch", "2", "--cache-dir", cache,
            "--out", str(out), "--csv-log", "--threads", "1", "--window-size", "3", "--frame-step", "2",
            "--window-stride", "2", "--save-dir", str(tmp_path / "enc")]
    import trainables.ssl.config as c

    old = dict(c.DEFAULT_CONFIG)
    c.DEFAULT_CONFIG.update(video_clips=8, video_frames=40, bank_frames=64, eval_frames=32)
    try:
        assert main(argv) == 0
    finally:
        c.DEFAULT_CONFIG.clear()
        c.DEFAULT_CONFIG.update(old)
    df = pd.read_parquet(out)
    assert df[protocol.ITERATION].tolist() == [1, 2] and (df["config_method"] == "byol").all()
    assert (df["config_window_size"] == 3).all() and np.isfinite(df[METRIC]).all()
    loss = pd.read_csv(tmp_path / "run" / "byol_loss.csv")
    acc = pd.read_csv(tmp_path / "run" / "byol_acc.csv")
    assert list(loss.columns) == ["epoch", "loss", "learning_rate", "decay_rate", "ema_momentum"]
    assert list(acc.columns) == ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc"]
    assert acc["val_acc"].tolist() == df[METRIC].tolist() and (loss["ema_momentum"] > 0.9).all()
    # decay_rate is seed 003's learning_rate / initial_lr (cosine: 0.5 halfway, 0 at the end), not the EMA momentum
    assert loss["decay_rate"].tolist() == pytest.approx([0.5, 0.0], abs=1e-12)
    assert loss["decay_rate"].tolist() == pytest.approx((loss["learning_rate"] / 0.1).tolist(), rel=1e-12)
    assert sorted(os.listdir(tmp_path / "run")) == ["byol.parquet", "byol_acc.csv", "byol_learning_curve.pdf",
                                                    "byol_learning_curve.png", "byol_loss.csv"]
    saved = tmp_path / "enc"
    assert sorted(os.listdir(saved)) == ["best", "last"]
    assert {p.name for p in (saved / "last").iterdir()} == {"encoder.pt", "encoder.json"}
    spec = json.loads((saved / "last" / "encoder.json").read_text())
    assert spec["epoch"] == 2 and spec["config"]["method"] == "byol" and spec["input"]["height"] == 32
    best_epoch = int(df.loc[df["val_probe_f1"].idxmax(), protocol.ITERATION])
    assert json.loads((saved / "best" / "encoder.json").read_text())["epoch"] == best_epoch


@pytest.mark.parametrize("argv, match", [
    (["--window-size", "1"], "window_size must be an integer >= 2"),
    (["--time-constant", "0"], "tau must be > 0"),
    (["--ema-momentum", "1.5"], r"ema_momentum must be in \[0, 1\)"),
    (["--method", "moco"], "method must be one of"),
    (["--epochs", "0"], "--epochs must be >= 1"),
])  # fmt: skip
def test_train_cli_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys, argv, match):
    from trainables.ssl.train import main

    out = tmp_path / "x.parquet"
    assert main([*argv, "--out", str(out), "--root-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("train: error:")
    import re

    assert re.search(match, err[0]) and not out.exists()


@pytest.mark.parametrize("mode, sampling", [("sample", "contiguous"), ("batch", "contiguous"), ("batch", "random")])
def test_visualize_writes_a_png_grid(cache, tmp_path, mode, sampling):
    from PIL import Image

    from trainables.ssl.behaviour import ensure_video
    from trainables.ssl.visualize import main

    root = ensure_video(cache, 8, 40, 0)
    out = tmp_path / f"{mode}-{sampling}.png"
    assert main(["--mode", mode, "--batch-sampling", sampling, "--root-dir", root, "--batch-size", "3",
                 "--out", str(out), "--scale", "2", "--augment"]) == 0
    img = Image.open(out)
    rows = 1 if mode == "sample" else 3
    assert img.size == (4 * (32 * 2 + 2), rows * (32 * 2 + 12 + 2))


def test_visualize_contiguous_windows_are_consecutive_windows_of_one_clip():
    from trainables.ssl.visualize import choose_windows

    windows = np.array([[0, 2], [1, 3], [2, 4], [10, 12], [11, 13], [12, 14]])
    clip_of = np.array([0] * 10 + [1] * 10)
    pick = choose_windows(windows, clip_of, "batch", "contiguous", 2, 0, seed=4)
    assert len({clip_of[r[0]] for r in pick}) == 1 and pick[1][0] - pick[0][0] == 1
    with pytest.raises(ValueError, match="--index must be in"):
        choose_windows(windows, clip_of, "sample", "contiguous", 1, 9, 0)


def test_larger_frames_get_the_resnet20_trunk_and_small_ones_the_conv_encoder():
    from trainables.ssl.models import ConvEncoder, SSLNet

    big = SSLNet(3, 40, "simclr-temporal")
    assert not isinstance(big.encoder, ConvEncoder) and tuple(big.embed(torch.zeros(2, 3, 40, 40)).shape) == (2, 64)
    assert isinstance(SSLNet(1, 28, "byol").encoder, ConvEncoder)
    with pytest.raises(ValueError, match="encoder must be one of"):
        SSLNet(1, 32, "byol", encoder="vit")


def test_a_saved_encoder_reloads_to_bit_identical_embeddings(cache, tmp_path):
    from trainables.ssl import export_checkpoint, load_encoder
    from trainables.ssl.train import _save

    run = SSLRun(_cfg(cache, method="tw-byol", max_t=1), num_threads=THREADS)
    run.warm_start()
    run.train_epoch()
    _save(run, tmp_path / "cli", run.evaluate_epoch(), best=True)
    (tmp_path / "ckpt").mkdir()
    run.save(tmp_path / "ckpt")
    export_checkpoint(str(tmp_path / "ckpt"), str(tmp_path / "study"))  # the studies' export_best hook
    ids = run.data.ids["val"][:40]
    run.net.eval()
    with torch.no_grad():
        want = run.net.embed(run.data.frames(ids))
        raw = run.data.store.get(torch.as_tensor(ids))  # uint8 frames, as a user has them
        for folder in (tmp_path / "cli" / "last", tmp_path / "cli" / "best", tmp_path / "study"):
            enc = load_encoder(folder)
            assert not enc.training and torch.equal(enc(raw), want), folder
        assert torch.equal(load_encoder(tmp_path / "study" / "encoder.pt")(raw.float() / 255), want)
    with pytest.raises(ValueError, match="holds no saved encoder"):
        load_encoder(tmp_path)


def test_train_help_gives_every_flag_a_default_and_tau_points_to_the_time_constant(capsys):
    from trainables.ssl.train import FLAGS, build_parser, main

    text = build_parser().format_help()
    assert "config 'lr'" not in text
    for action in build_parser()._actions:
        if action.option_strings and action.help != "==SUPPRESS==" and action.dest != "help":
            assert "default" in action.help and len(action.help.split()) >= 4, action.option_strings
    assert FLAGS["--time-constant"][0] == "tau" and "--tau " not in text
    assert main(["--tau", "20"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--time-constant" in err[0] and "target score" in err[0]
    for flag, instead in (("--checkpoint-dir", "--save-dir"), ("--csv-log-path", "--csv-log"),
                          ("--results-dir", "--out")):  # the seeds' flags name what to use here
        assert main([flag, "x"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and instead in err[0], err


@pytest.mark.parametrize("preset", ["seed000", "seed003"])
def test_each_seed_preset_runs_one_epoch_with_the_seeds_definitions(cache, tmp_path, preset):
    from trainables.ssl.config import SEED_PRESETS
    from trainables.ssl.train import main

    out = tmp_path / "run.parquet"
    import trainables.ssl.config as c

    old = dict(c.DEFAULT_CONFIG)
    c.DEFAULT_CONFIG.update(video_clips=8, video_frames=40, bank_frames=64, eval_frames=32)
    try:
        assert main(["--preset", preset, "--epochs", "1", "--steps-per-epoch", "1", "--cache-dir", cache,
                     "--out", str(out), "--threads", "1", "--no-curves"]) == 0
    finally:
        c.DEFAULT_CONFIG.clear()
        c.DEFAULT_CONFIG.update(old)
    df = pd.read_parquet(out)
    assert len(df) == 1 and np.isfinite(df[protocol.TRAIN_LOSS]).all() and np.isfinite(df["val_probe_f1"]).all()
    for key, value in SEED_PRESETS[preset].items():
        if key != "max_t":
            assert df[f"config_{key}"].iloc[0] == value, key
    if preset == "seed000":  # Adam at the seed's rate, the seed's logistic probe
        assert df["config_optimizer"].iloc[0] == "adam" and df["learning_rate"].iloc[0] == pytest.approx(0.0)
