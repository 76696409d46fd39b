"""A trained SSL encoder on disk: ``encoder.pt`` (its ``state_dict``) and ``encoder.json`` (how to rebuild it).

The JSON holds everything :func:`load_encoder` needs and a reader wants to know: the architecture
(``kind`` conv or resnet20, input channels, width, activation), the input size, the normalisation
(frames as uint8 0–255 → ÷ 255 → minus the per-channel ``mean``, divided by ``std``: the training
split's statistics) and the config the encoder trained with, plus the epoch and the metrics of that
epoch's report. :func:`load_encoder` returns an :class:`ExportedEncoder` in eval mode that applies
that normalisation itself: give it uint8 frames [N, C, H, W] (or floats already in [0, 1]) and it
returns the features the run's metrics evaluated, bit for bit.

Written by ``python -m trainables.ssl.train --save-dir`` (``best/`` and ``last/``) and, for studies,
by :func:`export_checkpoint` (the workload's ``export_best`` hook, :mod:`ohgw.studies.export`) from a
trial's checkpoint.

>>> import tempfile, torch
>>> from trainables.ssl.models import build_encoder
>>> spec = {"architecture": {"kind": "conv", "in_channels": 1, "width": 1, "activation": "relu", "conv_base": 8},
...         "input": {"channels": 1, "height": 16, "width": 16},
...         "normalisation": {"scale": 1 / 255, "mean": [0.5], "std": [0.25]}}
>>> d = tempfile.mkdtemp()
>>> enc = build_encoder("conv", 1, conv_base=8)
>>> write_encoder(d, enc.state_dict(), spec)
>>> tuple(load_encoder(d)(torch.zeros(2, 1, 16, 16, dtype=torch.uint8)).shape)
(2, 32)
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ohgw.results import atomic_path

from .models import build_encoder

ENCODER_FILE = "encoder.pt"
SPEC_FILE = "encoder.json"
FORMAT = "ohgw-tune/ssl-encoder/1"
CHECKPOINT_FILE = "ssl_state.pt"  # the run's checkpoint (trainables.ssl.run): net, optimizer, the encoder's spec


class ExportedEncoder(nn.Module):
    """A trained encoder with its input normalisation; ``spec`` is the JSON it was rebuilt from."""

    def __init__(self, encoder: nn.Module, mean: torch.Tensor, std: torch.Tensor, spec: Mapping[str, Any]) -> None:
        super().__init__()
        self.encoder = encoder
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32).view(1, -1, 1, 1))
        self.spec = dict(spec)
        self.out_dim = encoder.out_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 frames (0–255) or floats in [0, 1], [N, C, H, W] → features [N, out_dim]."""
        x = x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()
        return self.encoder((x - self.mean) / self.std)


def write_encoder(dest: str | os.PathLike, encoder_state: Mapping[str, torch.Tensor], spec: Mapping[str, Any]) -> None:
    """``dest/encoder.pt`` (the state on the CPU) and ``dest/encoder.json`` (``spec`` plus the format), each
    written atomically."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    with atomic_path(dest / ENCODER_FILE) as tmp:
        torch.save({k: v.detach().cpu() for k, v in encoder_state.items()}, tmp)
    with atomic_path(dest / SPEC_FILE) as tmp:
        tmp.write_text(json.dumps({"format": FORMAT, **spec}, indent=1, sort_keys=True, default=str) + "\n")


def encoder_state(net_state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The online encoder's entries of an :class:`~trainables.ssl.models.SSLNet` state (prefix removed)."""
    return {k[len("encoder."):]: v for k, v in net_state.items() if k.startswith("encoder.")}


def export_checkpoint(checkpoint_dir: str, dest_dir: str) -> None:
    """The ``export_best`` hook of the SSL workloads: a trial checkpoint's encoder → ``dest_dir``."""
    path = os.path.join(checkpoint_dir, CHECKPOINT_FILE)
    if not os.path.isfile(path):
        raise ValueError(f"checkpoint directory {checkpoint_dir!r} has no {CHECKPOINT_FILE}")
    state = torch.load(path, map_location="cpu", weights_only=False)
    write_encoder(dest_dir, encoder_state(state["net"]), state["encoder_spec"])


def load_encoder(path: str | os.PathLike) -> ExportedEncoder:
    """The encoder saved in folder ``path`` (or by its ``encoder.pt`` / ``encoder.json``), on the CPU, in eval mode."""
    folder = Path(path)
    if folder.is_file():
        folder = folder.parent
    files = folder / ENCODER_FILE, folder / SPEC_FILE
    missing = [f.name for f in files if not f.is_file()]
    if missing:
        raise ValueError(f"path {os.fspath(path)!r} holds no saved encoder (missing {', '.join(missing)})")
    spec = json.loads(files[1].read_text())
    if spec.get("format") != FORMAT:
        raise ValueError(f"path {os.fspath(path)!r}: {SPEC_FILE} is not a {FORMAT} file (format {spec.get('format')!r})")
    arch, norm = spec["architecture"], spec["normalisation"]
    encoder = build_encoder(arch["kind"], arch["in_channels"], arch["width"], arch["activation"], arch["conv_base"])
    encoder.load_state_dict(torch.load(files[0], map_location="cpu", weights_only=True))
    return ExportedEncoder(encoder, norm["mean"], norm["std"], spec).eval()
