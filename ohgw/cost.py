"""Measuring what a piece of trainable work costs: wall seconds, compute seconds, peak memory.

Compute seconds are the process's CPU seconds on CPU (all threads; far less
affected than wall seconds by other work on a shared machine, though not free of
it) and synchronised wall seconds on CUDA (device-seconds, so
GPU-hours = compute_s × GPUs held / 3600).

torch is imported only to time a CUDA device, so a CPU stopwatch (the warm-start of a trainable
whose hyper-gradient needs no torch, e.g. a surrogate's) costs no torch import.

>>> with Stopwatch() as sw:
...     _ = sum(range(1000))
>>> sw.cost.compute_s >= 0, sw.cost.cuda_peak_mib
(True, 0.0)
"""

from __future__ import annotations

import resource
import sys
import time
from dataclasses import dataclass
from typing import Any


def peak_rss_mib() -> float:
    """The process's peak resident set size so far, in MiB (``ru_maxrss``)."""
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / 2**20 if sys.platform == "darwin" else r / 2**10


def _cuda_api():
    """``torch.cuda``, imported on first use (only a CUDA stopwatch needs it)."""
    import torch

    return torch.cuda


@dataclass
class Cost:
    wall_s: float = 0.0
    compute_s: float = 0.0
    peak_rss_mib: float = 0.0
    cuda_peak_mib: float = 0.0


class Stopwatch:
    """``with Stopwatch(device) as sw: ...`` then read ``sw.cost``; ``device``: a torch device, its name, or None (CPU)."""

    def __init__(self, device: Any = None) -> None:
        self.device = device if device is not None else "cpu"
        self._cuda = str(self.device).split(":")[0] == "cuda"
        self.cost = Cost()

    def __enter__(self) -> Stopwatch:
        if self._cuda:
            _cuda_api().synchronize(self.device)
            _cuda_api().reset_peak_memory_stats(self.device)
        self._w0 = time.perf_counter()
        self._c0 = time.process_time()
        return self

    def __exit__(self, *exc) -> None:
        if self._cuda:
            _cuda_api().synchronize(self.device)
        wall = time.perf_counter() - self._w0
        self.cost = Cost(
            wall_s=wall,
            compute_s=wall if self._cuda else time.process_time() - self._c0,
            peak_rss_mib=peak_rss_mib(),
            cuda_peak_mib=_cuda_api().max_memory_allocated(self.device) / 2**20 if self._cuda else 0.0,
        )
