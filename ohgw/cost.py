"""Measuring what a piece of trainable work costs: wall seconds, compute seconds, peak memory.

Compute seconds are the process's CPU seconds on CPU (all threads; noise-free
on a shared machine) and synchronised wall seconds on CUDA (device-seconds, so
GPU-hours = compute_s × GPUs held / 3600).
"""

from __future__ import annotations

import resource
import sys
import time
from dataclasses import dataclass

import torch


def peak_rss_mib() -> float:
    """The process's peak resident set size so far, in MiB (``ru_maxrss``)."""
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / 2**20 if sys.platform == "darwin" else r / 2**10


@dataclass
class Cost:
    wall_s: float = 0.0
    compute_s: float = 0.0
    peak_rss_mib: float = 0.0
    cuda_peak_mib: float = 0.0


class Stopwatch:
    """``with Stopwatch(device) as sw: ...`` then read ``sw.cost``."""

    def __init__(self, device: torch.device | str | None = None) -> None:
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.cost = Cost()

    @property
    def _cuda(self) -> bool:
        return self.device.type == "cuda"

    def __enter__(self) -> Stopwatch:
        if self._cuda:
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        self._w0 = time.perf_counter()
        self._c0 = time.process_time()
        return self

    def __exit__(self, *exc) -> None:
        if self._cuda:
            torch.cuda.synchronize(self.device)
        wall = time.perf_counter() - self._w0
        self.cost = Cost(
            wall_s=wall,
            compute_s=wall if self._cuda else time.process_time() - self._c0,
            peak_rss_mib=peak_rss_mib(),
            cuda_peak_mib=torch.cuda.max_memory_allocated(self.device) / 2**20 if self._cuda else 0.0,
        )
