"""A torch-free warm-start for test trainables: the exact hyper-gradient of a quadratic in the search coordinates.

Tests of scheduling, resuming and wrapping need a trainable whose trial processes start fast (no torch) but
whose warm-start is the real one: :func:`ohgw.warmstart.warm_start_with` given a gradient. Here the
"hyper-loss" is ``|u - u*|^2``, with u the config in the search space's coordinates (``space.to_u``) and
u* the same config with the ``target`` values put in, so its gradient is ``2 (u - u*)``, exact, and a
normalized step moves u straight towards u*.

>>> from ohgw.space import SearchSpace
>>> space = SearchSpace.from_bounds({"lr": (1e-3, 1.0, "log10")})
>>> gradient = toward(space, {"lr": 0.1})
>>> g, loss = gradient({"lr": 0.001}, 0)
>>> [round(float(v), 6) for v in g], round(loss, 6)
([-4.0], 4.0)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["toward", "warm_start_toward"]


def toward(space, target: dict[str, Any]) -> Callable[[dict, int], tuple[np.ndarray, float]]:
    """The ``gradient(current, step) -> (dL/du, L)`` of ``L = |u - u*|^2``, u* = u with ``target`` put in."""
    if not target:
        raise ValueError("target: name at least one hyper-parameter and the value it pulls towards")

    def gradient(current: dict, step: int) -> tuple[np.ndarray, float]:
        d = np.asarray(space.to_u(current), dtype=float) - np.asarray(space.to_u({**current, **target}), dtype=float)
        return 2.0 * d, float(d @ d)

    return gradient


def warm_start_toward(config: dict, target: dict[str, Any]):
    """The warm-start a trainable does at its start, if the OHGW wrapper asked for one in ``config``.

    Returns ``(config, record)``: the adjusted config x′ and the :class:`ohgw.warmstart.WarmStartRecord`;
    or ``(config, None)`` unchanged when the config carries no instruction (not wrapped, or resumed).
    """
    from ohgw.warmstart import instruction, warm_start_with

    found = instruction(config)
    if found is None:
        return config, None
    settings, space = found
    return warm_start_with(toward(space, target), space, config, settings)
