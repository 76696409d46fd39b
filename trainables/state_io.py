"""Checkpoint plumbing the torch families share: every random stream a run draws from, one state file.

A run's checkpoint must restore *all* randomness for "2 epochs + restore + 2 epochs" to equal
4 epochs straight: the run's own ``torch.Generator`` (data order, augmentation draws), torch's
global CPU stream (dropout, init of late-built modules), numpy's and Python's, and CUDA's on a GPU.

>>> import tempfile
>>> g = torch.Generator().manual_seed(0)
>>> saved = rng_state(g, "cpu")
>>> a = torch.rand(2, generator=g)
>>> set_rng_state(saved, g, "cpu")
>>> bool(torch.equal(a, torch.rand(2, generator=g)))
True
>>> with tempfile.TemporaryDirectory() as d:
...     _ = save_state(d, "state.pt", {"epoch": 3})
...     load_state(d, "state.pt")["epoch"]
3
"""

from __future__ import annotations

import os
import random
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch


def _is_cuda(device: torch.device | str) -> bool:
    return torch.device(device).type == "cuda"


def rng_state(generator: torch.Generator, device: torch.device | str) -> dict[str, Any]:
    """The state of every random stream a run draws from (keys ``generator``, ``torch_rng``,
    ``numpy_rng``, ``python_rng``, and ``cuda_rng`` on a CUDA device)."""
    state = {"generator": generator.get_state(), "torch_rng": torch.get_rng_state(),
             "numpy_rng": np.random.get_state(), "python_rng": random.getstate()}
    if _is_cuda(device):
        state["cuda_rng"] = torch.cuda.get_rng_state(torch.device(device))
    return state


def set_rng_state(state: Mapping[str, Any], generator: torch.Generator, device: torch.device | str) -> None:
    """Put back what :func:`rng_state` saved (CUDA's stream only where it was saved and runs on CUDA)."""
    generator.set_state(state["generator"])
    torch.set_rng_state(state["torch_rng"])
    np.random.set_state(state["numpy_rng"])
    random.setstate(state["python_rng"])
    if _is_cuda(device) and "cuda_rng" in state:
        torch.cuda.set_rng_state(state["cuda_rng"], torch.device(device))


def save_state(directory: str | os.PathLike, name: str, state: Mapping[str, Any]) -> str:
    """``torch.save`` a run's state as ``directory/name``; returns the path."""
    path = os.path.join(os.fspath(directory), name)
    torch.save(dict(state), path)
    return path


def load_state(directory: str | os.PathLike, name: str) -> dict[str, Any]:
    """A state written by :func:`save_state`, on the CPU (RNG states must stay CPU tensors; the run moves
    model and optimizer state to its device on load). A directory without it is a ValueError naming both."""
    path = os.path.join(os.fspath(directory), name)
    if not os.path.isfile(path):
        raise ValueError(f"checkpoint directory {os.fspath(directory)!r} has no {name}")
    return torch.load(path, map_location="cpu", weights_only=False)
