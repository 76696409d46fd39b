"""The SSL trainable under a real Ray Tune ``Tuner`` with the OHGW wrapper: x′ ≠ x in the first report."""

import pytest

from ohgw import protocol
from ohgw.warmstart import WarmStartSettings

TINY = {"video_clips": 8, "video_frames": 40, "batch_size": 16, "steps_per_epoch": 2, "bank_frames": 64,
        "eval_frames": 32}


@pytest.mark.ray
def test_tuner_with_asha_and_ohgw_warm_starts_the_ssl_trainable(ray_local, tmp_path):
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    from ohgw.tune.wrapper import OHGW
    from trainables.ssl import METRIC, search_space, train_ssl

    space = search_space("tw-byol")
    sched = OHGW(ASHAScheduler(max_t=2, grace_period=1, reduction_factor=2), space,
                 WarmStartSettings(seed=0, batch_size=16))
    results = tune.Tuner(
        tune.with_resources(train_ssl, {"cpu": 1}),
        param_space={**space.param_space(), **TINY, "method": "tw-byol", "max_t": 2, "cache_dir": str(tmp_path / "c")},
        # one trial at a time in one reused worker: one process imports torch, not two
        tune_config=tune.TuneConfig(metric=METRIC, mode="max", scheduler=sched, num_samples=2, reuse_actors=True,
                                    max_concurrent_trials=1),
        run_config=tune.RunConfig(storage_path=str(tmp_path), name="ssl", verbose=0, callbacks=sched.callbacks()),
    ).fit()
    assert not results.errors and len(results) == 2
    for r in results:
        first = r.metrics_dataframe.iloc[0].to_dict()
        adjusted = protocol.adjusted_from_result(first)
        assert protocol.warm_start_fields(first) and adjusted is not None and r.checkpoint is not None
        x, x_prime = adjusted["x"], adjusted["x_prime"]
        assert x_prime == {k: first[protocol.hp_key(k)] for k in space.names}  # trained with x′
        assert x_prime["lr"] != x["lr"]  # lr moved
        assert any(x_prime[k] != x[k] for k in ("ema_gap", "tau", "aug_strength"))  # and an SSL-specific ψ
        assert first[protocol.WS_COMPUTE_S] > 0 and METRIC in first


def _unlabelled_clips(root, clips: int = 6, frames: int = 24, size: int = 16):
    """Clip folders of PNG frames without any labels.csv: a bright square drifting across a noisy background."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in range(clips):
        folder = root / f"clip_{c}"
        folder.mkdir(parents=True)
        for t in range(frames):
            img = rng.integers(0, 60, (size, size), dtype=np.uint8)
            x = (c * 3 + t) % (size - 4)
            img[4:8, x:x + 4] = 230
            Image.fromarray(img, mode="L").save(folder / f"{t:03d}.png")


def _script():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "experiments" / "ssl_asha_vs_ohgw.py"
    spec = importlib.util.spec_from_file_location("ssl_asha_vs_ohgw", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    return script


def test_unlabelled_frames_switch_the_workload_to_the_label_free_metric_and_null_label_columns(tmp_path, capsys):
    import math

    from trainables.ssl import LABEL_FREE_METRIC, LABEL_FREE_TAU, STUDY_METRIC, train_epochs

    root = tmp_path / "frames"
    _unlabelled_clips(root)
    method, frames = _script().read_flags(["--root-dir", str(root), "--window-size", "2", "--method", "byol"])
    assert method == "byol" and frames == {"root_dir": str(root), "window_size": 2}
    wl = _script().build_workload(method, frames)
    assert wl.metric == LABEL_FREE_METRIC and {p["tau"] for p in wl.presets.values()} == {LABEL_FREE_TAU}
    assert all(p["base_config"]["root_dir"] == str(root) for p in wl.presets.values())
    assert _script().build_workload("byol", {}).metric == STUDY_METRIC  # the behaviour video has labels
    with pytest.raises(ValueError, match="root_dir .* is not a folder"):
        wl.check_base_config({"root_dir": str(tmp_path / "missing")})
    out = tmp_path / "out"
    assert _script().run(["--root-dir", str(tmp_path / "missing"), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is not a folder" in err[0] and not out.exists()  # one line, nothing written
    (r,) = train_epochs({"root_dir": str(root), "window_size": 2, "frame_step": 1, "batch_size": 16,
                         "steps_per_epoch": 1, "max_t": 1}, 1, num_threads=1)
    assert math.isfinite(r[LABEL_FREE_METRIC]) and 0 < r[LABEL_FREE_METRIC] <= 1
    assert not any(k.startswith(("val_knn", "val_probe", "val_rare", "train_knn")) for k in r)  # absent, not NaN


@pytest.mark.slow
@pytest.mark.ray
def test_a_study_on_unlabelled_frames_tunes_a_label_free_metric_and_exports_its_encoder(ray_local, tmp_path, capsys):
    import json
    import math

    import torch

    from ohgw.results import read_table
    from trainables.ssl import LABEL_FREE_METRIC, load_encoder

    root, out = tmp_path / "frames", tmp_path / "out"
    _unlabelled_clips(root)
    code = _script().run(["--root-dir", str(root), "--window-size", "2", "--frame-step", "1", "--steps-per-epoch", "2",
                       "--max-t", "2", "--budget", "2", "--seeds", "1", "--methods", "asha", "--out", str(out),
                       "--quiet", "--no-report"])
    err = capsys.readouterr().err
    assert code == 0, err
    said = [line for line in err.splitlines() if "has no labels.csv" in line]
    assert len(said) == 1 and f"the tuned metric is {LABEL_FREE_METRIC}" in said[0]
    studies, it = read_table(out, "studies"), read_table(out, "iterations")
    assert set(studies["metric"]) == {LABEL_FREE_METRIC}
    assert len(it) >= 2 and all(math.isfinite(v) and 0 < v <= 1 for v in it["val_score"])  # never NaN
    (export,) = (out / "exports").glob("experiment=*/method=*/seed=*")
    best = json.loads((export / "best.json").read_text())
    assert best["metric"] == LABEL_FREE_METRIC and best["value"] == it["val_score"].max()
    enc = load_encoder(export)
    assert enc.spec["config"]["root_dir"] == str(root) and enc.spec["input"]["height"] == 16
    assert enc(torch.zeros(3, 1, 16, 16, dtype=torch.uint8)).shape == (3, enc.out_dim)
    assert not (out / "_tune").exists()  # no other checkpoint is kept
