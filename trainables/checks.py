"""Config value checks every family's ``resolve_config`` uses: one ValueError naming the key and the value.

>>> number({"lr": 0.1}, "lr", low=0, strict=True)
0.1
>>> integer({"epochs": 4.0}, "epochs", low=1)   # an integer-valued float (YAML, a Tune sample) is accepted
4
>>> choice({"enc": "mlp"}, "enc", ("linear", "mlp"))
'mlp'
>>> integer({"batch_size": 0}, "batch_size", low=1)
Traceback (most recent call last):
ValueError: batch_size must be an integer >= 1, got 0
>>> deterministic({}), deterministic({"deterministic": False})   # absent: on
(True, False)
>>> deterministic({"deterministic": "yes"})
Traceback (most recent call last):
ValueError: deterministic must be True or False, got 'yes'
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ohgw import protocol

if TYPE_CHECKING:  # torch is imported by the checks that use it: the value checks need none
    import torch

# what PyTorch requires for deterministic cuBLAS (CUDA >= 10.2); ":16:8" is the other accepted value
CUBLAS_WORKSPACE = ":4096:8"
_CUBLAS_DETERMINISTIC = (":4096:8", ":16:8")


def number(cfg: Mapping, name: str, low: float | None = None, strict: bool = False) -> float:
    """``cfg[name]`` as a finite float, ≥ ``low`` (> ``low`` when ``strict``) when given."""
    v = cfg[name]
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or not math.isfinite(float(v)):
        raise ValueError(f"{name} must be a finite number, got {v!r}")
    v = float(v)
    if low is not None and (v <= low if strict else v < low):
        raise ValueError(f"{name} must be {'>' if strict else '>='} {low}, got {v}")
    return v


def integer(cfg: Mapping, name: str, low: int, high: int | None = None) -> int:
    """``cfg[name]`` as an int in [low, high] (no upper bound when ``high`` is None)."""
    v = cfg[name]
    if isinstance(v, (float, np.floating)) and float(v).is_integer():
        v = int(v)
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < low or (high is not None and v > high):
        rule = f"in [{low}, {high}]" if high is not None else f">= {low}"
        raise ValueError(f"{name} must be an integer {rule}, got {v!r}")
    return int(v)


def choice(cfg: Mapping, name: str, choices: Sequence[str]) -> str:
    """``cfg[name]``, which must be one of ``choices``."""
    if cfg[name] not in choices:
        raise ValueError(f"{name} must be one of {tuple(choices)}, got {cfg[name]!r}")
    return cfg[name]


def flag(cfg: Mapping, name: str) -> bool:
    """``cfg[name]``, which must be True or False (numpy's bool too)."""
    if not isinstance(cfg[name], (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False, got {cfg[name]!r}")
    return bool(cfg[name])


def true_or_false(text: str) -> bool:
    """A command-line boolean ("true" / "false", any case), for argparse's ``type``.

    >>> true_or_false("False")
    False
    """
    if text.lower() not in ("true", "false"):
        raise ValueError(f"expected true or false, got {text!r}")
    return text.lower() == "true"


def deterministic(cfg: Mapping) -> bool:
    """The config's ``protocol.DETERMINISTIC_KEY`` setting (True when absent), checked by :func:`flag`."""
    return flag(cfg, protocol.DETERMINISTIC_KEY) if protocol.DETERMINISTIC_KEY in cfg else True


def _visible_devices() -> str:
    return os.environ.get("CUDA_VISIBLE_DEVICES", "unset")


def resolve_device(name: str) -> torch.device:
    """The torch device of a config's ``device`` ("auto": CUDA if visible, else the CPU).

    CUDA where there is none, or ``cuda:N`` beyond the visible devices, is a ValueError. A trial
    that Ray gives a (fractional) GPU sees only that GPU (Ray sets ``CUDA_VISIBLE_DEVICES``), as
    ``cuda`` = ``cuda:0``.
    """
    import torch

    if not isinstance(name, str):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda[:N]', got {name!r}")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} asked for, but CUDA is not available here "
                         f"(CUDA_VISIBLE_DEVICES={_visible_devices()})")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda[:N]', got {name!r}") from None
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ValueError(f"device {name!r} asked for, but {torch.cuda.device_count()} CUDA device(s) are visible "
                         f"(CUDA_VISIBLE_DEVICES={_visible_devices()})")
    return device


def pin_cublas_workspace() -> None:
    """Set ``CUBLAS_WORKSPACE_CONFIG`` for deterministic cuBLAS, which must happen before this process first
    uses CUDA; a process that already did without it is a RuntimeError (no silent nondeterminism)."""
    import torch

    if os.environ.get("CUBLAS_WORKSPACE_CONFIG") in _CUBLAS_DETERMINISTIC:
        return
    if torch.cuda.is_initialized():
        raise RuntimeError("deterministic: CUDA was initialised in this process before CUBLAS_WORKSPACE_CONFIG "
                           f"was set; set CUBLAS_WORKSPACE_CONFIG={CUBLAS_WORKSPACE} before it starts")
    os.environ["CUBLAS_WORKSPACE_CONFIG"] = CUBLAS_WORKSPACE


def set_determinism(on: bool, device: torch.device | str) -> None:
    """This process's CUDA determinism for a run on ``device`` (nothing changes for a CPU run).

    On: ``CUBLAS_WORKSPACE_CONFIG`` (:func:`pin_cublas_workspace`), ``torch.use_deterministic_algorithms(True)``
    (an operation without a deterministic CUDA kernel raises RuntimeError: no ``warn_only``) and
    ``torch.backends.cudnn.benchmark = False``. Off: torch's default, nondeterministic algorithms.
    """
    import torch

    if torch.device(device).type != "cuda":
        return
    if on:
        pin_cublas_workspace()
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
    else:
        torch.use_deterministic_algorithms(False)


def build_deterministic(factory: Callable[[dict], Any], config: Mapping) -> tuple[Any, bool]:
    """``(factory(config), on)`` with the config's :func:`deterministic` setting ``on`` applied in this process.

    Before the run is built: on a machine with CUDA, deterministic kernels and cuBLAS's workspace, before the
    run can first use CUDA. After: the run's own device decides (:func:`set_determinism`; this also undoes a
    family's ``cudnn.benchmark = True``; a CPU run gets torch's CPU default back). A non-boolean is a ValueError.
    """
    import torch

    on = deterministic(config)
    if on and torch.cuda.is_available():
        set_determinism(True, "cuda")
    run = factory(dict(config))
    if on and torch.device(run.device).type != "cuda" and torch.cuda.is_available():
        torch.use_deterministic_algorithms(False)
    set_determinism(on, run.device)
    return run, on
