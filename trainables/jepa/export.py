"""A trained JEPA / RSSM encoder on disk: its ``state_dict`` and a small JSON with everything to rebuild it.

:func:`save_encoder` writes into a folder:

- ``encoder.pt``: the MeNet5 frame encoder's ``state_dict`` (CPU tensors; ``torch.load(weights_only=True)``
  reads it);
- ``encoder.json``: the architecture (``MeNet5``, ``embedding_dim``, ``width``), the input (one 28×28
  grey frame, float32, in peak units: the world renders a dot's centre as 1 and adds the noise overlays
  on that scale; no mean/std normalisation), the output, the epoch, its metrics and the resolved config
  the run trained with.

:func:`load_encoder` rebuilds the module from the JSON, loads the weights and returns it in eval mode
(BatchNorm on its running statistics), so the same frames give bit-identical embeddings. For the RSSM
it is the frame encoder e_t; its probe features are the posterior state, which needs the whole model.

A study exports its best trial's encoder: :func:`best_checkpoint` picks, among the checkpoints Tune kept
for every trial (a Tune ``ResultGrid``), the one whose report has the best tuned metric, and
:func:`export_checkpoint` turns that run checkpoint (``jepa_state.pt``) into ``encoder.pt`` + ``encoder.json``.
:func:`export_best_hook` is the same for the harness (:attr:`ohgw.studies.workload.Workload.export_best`):
the checkpoint's own config (the run's resolved one, x′ included) rebuilds the model.

>>> import tempfile, torch
>>> from trainables.jepa.models import MeNet5
>>> enc = MeNet5(16).eval()
>>> with tempfile.TemporaryDirectory() as d:
...     _ = save_encoder(enc, {"model_type": "VICReg", "embedding_dim": 16, "width": 1}, d, epoch=1)
...     again = load_encoder(d)
>>> x = torch.rand(3, 1, 28, 28)
>>> bool(torch.equal(enc(x), again(x))), again.training
(True, False)
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch

from ohgw.results import atomic_path

from .models import MeNet5

ENCODER_FILE = "encoder.pt"
META_FILE = "encoder.json"
FORMAT = 1
FRAME_SIZE = 28
INPUT = {"shape": [1, FRAME_SIZE, FRAME_SIZE], "dtype": "float32", "layout": "[N, 1, 28, 28] grey frames",
         "normalisation": "peak units: a dot's centre renders as 1, noise overlays on that scale; no mean/std "
                          "normalisation (trainables.jepa.world)"}


def _encoder_of(model: torch.nn.Module) -> torch.nn.Module:
    """The MeNet5 frame encoder of a JEPA / RSSM (or ``model`` itself if it is one)."""
    if isinstance(model, MeNet5):
        return model
    encoder = getattr(model, "encoder", None)
    if not isinstance(encoder, MeNet5):
        raise ValueError(f"model must be a MeNet5 or have a MeNet5 .encoder, got {type(model).__name__}")
    return encoder


def save_encoder(model: torch.nn.Module, config: Mapping[str, Any], directory: str | os.PathLike, *, epoch: int,
                 metrics: Mapping[str, float] | None = None) -> Path:
    """Write ``encoder.pt`` and ``encoder.json`` into ``directory`` (created; each file atomically); returns it."""
    encoder = _encoder_of(model)
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu").clone() for k, v in encoder.state_dict().items()}
    meta = {
        "format": FORMAT,
        "architecture": {"name": "MeNet5", "module": "trainables.jepa.models.MeNet5",
                         "embedding_dim": int(encoder.fc.out_features),
                         "width": int(encoder.features[0].out_channels // 16)},
        "input": INPUT,
        "output": {"shape": [int(encoder.fc.out_features)], "meaning": "the frame's embedding z_t"},
        "model_type": config.get("model_type"),
        "epoch": int(epoch),
        "metrics": {k: float(v) for k, v in (metrics or {}).items()},
        "config": {k: (os.fspath(v) if isinstance(v, os.PathLike) else v) for k, v in config.items()},
    }
    with atomic_path(out / ENCODER_FILE) as tmp:
        torch.save(state, tmp)
    with atomic_path(out / META_FILE) as tmp:
        Path(tmp).write_text(json.dumps(meta, indent=1, sort_keys=True, default=str) + "\n")
    return out


def read_meta(path: str | os.PathLike) -> dict[str, Any]:
    """The ``encoder.json`` of a saved encoder (``path``: its folder, ``encoder.pt`` or ``encoder.json``)."""
    folder = Path(path)
    if folder.name in (ENCODER_FILE, META_FILE):
        folder = folder.parent
    meta_path = folder / META_FILE
    if not meta_path.is_file() or not (folder / ENCODER_FILE).is_file():
        raise ValueError(f"{os.fspath(path)!r} holds no saved encoder ({ENCODER_FILE} and {META_FILE})")
    return json.loads(meta_path.read_text())


def load_encoder(path: str | os.PathLike, device: str | torch.device = "cpu") -> torch.nn.Module:
    """The saved MeNet5 encoder at ``path`` (folder, ``encoder.pt`` or ``encoder.json``), on ``device``, in eval mode."""
    meta = read_meta(path)
    arch = meta["architecture"]
    if arch.get("name") != "MeNet5":
        raise ValueError(f"{os.fspath(path)!r}: unknown architecture {arch.get('name')!r}")
    folder = Path(path).parent if Path(path).name in (ENCODER_FILE, META_FILE) else Path(path)
    encoder = MeNet5(int(arch["embedding_dim"]), int(arch["width"]))
    encoder.load_state_dict(torch.load(folder / ENCODER_FILE, map_location="cpu", weights_only=True))
    return encoder.to(device).eval()


def export_checkpoint(checkpoint_dir: str | os.PathLike, config: Mapping[str, Any], directory: str | os.PathLike,
                      *, epoch: int, metrics: Mapping[str, float] | None = None) -> Path:
    """The encoder of a :class:`~trainables.jepa.run.JepaRun` checkpoint folder, saved by :func:`save_encoder`."""
    from trainables.state_io import load_state

    from .config import resolve_config
    from .run import CHECKPOINT_FILE, build_model

    cfg = resolve_config(config)
    model = build_model(cfg)
    model.load_state_dict(load_state(checkpoint_dir, CHECKPOINT_FILE)["model"])
    return save_encoder(model.eval(), cfg, directory, epoch=epoch, metrics=metrics)


def export_best_hook(checkpoint_dir: str, dest_dir: str) -> Path:
    """The harness's ``export_best(checkpoint_dir, dest_dir)``: the encoder of a JEPA trial checkpoint."""
    from trainables.state_io import load_state

    from .run import CHECKPOINT_FILE

    state = load_state(checkpoint_dir, CHECKPOINT_FILE)
    if "config" not in state:
        raise ValueError(f"checkpoint {checkpoint_dir!r} predates the config in jepa checkpoints: it cannot be exported")
    return export_checkpoint(checkpoint_dir, {**state["config"], **state["hp"]}, dest_dir, epoch=int(state["epoch"]))


def best_checkpoint(results: Iterable[Any], metric: str, mode: str = "min"):
    """(checkpoint, its report, the trial's config) of the best finite ``metric`` among every trial's kept
    checkpoints (Tune ``Result.best_checkpoints``), or None when no checkpoint has a finite one."""
    if mode not in ("min", "max"):
        raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
    sign = 1.0 if mode == "min" else -1.0
    best = None
    for result in results:
        for ckpt, report in result.best_checkpoints or ():
            value = report.get(metric)
            if value is None or not math.isfinite(float(value)):
                continue
            if best is None or sign * float(value) < sign * float(best[1][metric]):
                best = (ckpt, report, result.config)
    return best


def export_best_trial(results: Iterable[Any], directory: str | os.PathLike, metric: str,
                      mode: str = "min") -> Path | None:
    """The best checkpoint of a study (:func:`best_checkpoint`) exported into ``directory``; None if there is none."""
    found = best_checkpoint(results, metric, mode)
    if found is None:
        return None
    ckpt, report, config = found
    keep = {k: float(v) for k, v in report.items() if k in (metric, "test_rmse", "rankme", "val_loss")}
    with ckpt.as_directory() as local:
        return export_checkpoint(local, config, directory, epoch=int(report["training_iteration"]), metrics=keep)


__all__ = ["ENCODER_FILE", "META_FILE", "best_checkpoint", "export_best_hook", "export_best_trial", "export_checkpoint",
           "load_encoder", "read_meta", "save_encoder"]
