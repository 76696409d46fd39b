"""How many trials can run at once: for schedulers that hold trials and pick what runs (PASHA, DyHPO).

Such a scheduler hands a trial out only when a worker is free, so it must know the number of
workers: an explicit ``max_concurrent``, or else how many copies of a trial's resource request fit
into the Ray cluster, re-read at most every :data:`REFRESH_S` seconds (nodes may join or leave).
"""

from __future__ import annotations

import math
import time

from ray.tune.experiment import Trial

REFRESH_S = 10.0


def cluster_capacity(trials: list[Trial]) -> int:
    """How many trials of the first trial's resource request fit into the Ray cluster at once (≥ 1)."""
    import ray

    if not trials or not ray.is_initialized():
        return 1
    request = trials[0].placement_group_factory.required_resources
    total = ray.cluster_resources()
    fits = [math.floor(total.get(k, 0.0) / v + 1e-9) for k, v in request.items() if v > 0]
    return max(1, min(fits)) if fits else 1


class Workers:
    """The worker count: ``max_concurrent`` when given, else :func:`cluster_capacity`, cached for REFRESH_S."""

    def __init__(self):
        self._cached: tuple[float, int] | None = None

    def count(self, trials: list[Trial], max_concurrent: int | None) -> int:
        if max_concurrent is not None:
            return max_concurrent
        now = time.monotonic()
        if self._cached is None or now - self._cached[0] > REFRESH_S:
            self._cached = (now, cluster_capacity(trials))
        return self._cached[1]
