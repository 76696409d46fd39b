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
    # each cell exports its best trial's encoder at its best epoch, and keeps no other checkpoint
    import json

    for cell in cells.itertuples():
        meta = json.loads((out / cell.encoder_dir / "encoder.json").read_text())
        assert meta["metrics"]["val_rmse"] == pytest.approx(cell.best_val_rmse, rel=1e-12)
    assert not list(out.rglob("checkpoint_*")) and not list(out.rglob("jepa_state.pt"))


def test_a_study_exports_the_encoder_of_its_best_checkpoint(tmp_path):
    """The sweep's export: the checkpoint with the best val_rmse among every trial's kept ones becomes
    encoder.pt + encoder.json, whose embeddings are those of that checkpoint's model, bit for bit."""
    import json

    import torch
    from ray.tune import Checkpoint, Result

    from trainables.jepa.export import export_best_trial, load_encoder
    from trainables.jepa.run import JepaRun, train_epochs

    tiny = {"dataset_size": 64, "probe_size": 16, "val_size": 8, "test_size": 8, "batch_size": 32,
            "embedding_dim": 16, "predictor_hidden": 16, "eval_rollout": False, "probe_ridge": 1.0, "max_t": 2}
    results = []
    for seed, lr in ((0, 1e-3), (1, 3e-3)):
        cfg = {**tiny, "seed": seed, "lr": lr}
        kept = []
        for epoch in (1, 2):
            ckpt = tmp_path / f"trial{seed}" / f"checkpoint_{epoch}"
            (report,) = train_epochs(cfg, 1, restore_from=ckpt.parent / f"checkpoint_{epoch - 1}" if epoch > 1
                                     else None, save_to=ckpt, num_threads=1)
            kept.append((Checkpoint.from_directory(str(ckpt)), report))
        results.append(Result(metrics={**kept[-1][1], "config": cfg}, checkpoint=kept[-1][0], error=None,
                              path=str(tmp_path / f"trial{seed}"), best_checkpoints=kept))
    reports = [(r.config, c, rep) for r in results for c, rep in r.best_checkpoints]
    cfg, ckpt, report = min(reports, key=lambda t: t[2]["val_rmse"])
    out = export_best_trial(results, tmp_path / "encoders" / "cell", "val_rmse")
    meta = json.loads((out / "encoder.json").read_text())
    assert meta["epoch"] == report["training_iteration"] and meta["metrics"]["val_rmse"] == report["val_rmse"]
    assert meta["config"]["lr"] == cfg["lr"] and meta["config"]["seed"] == cfg["seed"]
    run = JepaRun(cfg, num_threads=1)
    run.load(ckpt.path)
    frames = run.world.val.frames.flatten(0, 1)
    with torch.no_grad():
        assert torch.equal(load_encoder(out)(frames), run.model.eval().encoder(frames))
    assert export_best_trial([], tmp_path / "none", "val_rmse") is None and not (tmp_path / "none").exists()


def test_the_harness_hook_exports_a_checkpoints_encoder(tmp_path):
    """trainables.jepa.workload's export_best: a trial checkpoint → encoder.pt + encoder.json, rebuilt from the
    config the checkpoint carries; the embeddings are the checkpoint model's, bit for bit."""
    import json

    import torch

    from trainables.jepa import load_encoder, workload
    from trainables.jepa.run import JepaRun, train_epochs

    cfg = {"model_type": "SimCLR", "dataset_size": 64, "probe_size": 16, "val_size": 8, "test_size": 8,
           "batch_size": 32, "embedding_dim": 24, "width": 2, "predictor_hidden": 16, "eval_rollout": False,
           "probe_ridge": 1.0, "max_t": 1}
    train_epochs(cfg, 1, save_to=tmp_path / "checkpoint_000001", num_threads=1)
    hook = workload("SimCLR").export_best
    out = hook(str(tmp_path / "checkpoint_000001"), str(tmp_path / "export"))
    meta = json.loads((out / "encoder.json").read_text())
    assert meta["architecture"]["embedding_dim"] == 24 and meta["architecture"]["width"] == 2
    assert meta["model_type"] == "SimCLR" and meta["epoch"] == 1 and meta["config"]["temperature"] == 0.1
    run = JepaRun(cfg, num_threads=1)
    run.load(tmp_path / "checkpoint_000001")
    frames = run.world.val.frames.flatten(0, 1)
    with torch.no_grad():
        assert torch.equal(load_encoder(out)(frames), run.model.eval().encoder(frames))
