"""How DyHPO turns a trial's config into a point of [0, 1]^d for its surrogate.

Three sources, in this order:

1. an explicit ``space`` (an :class:`ohgw.space.SearchSpace`, or a Tune ``param_space`` whose
   ``tune.loguniform`` / ``tune.uniform`` entries are taken as in :class:`ohgw.OHGW`): each
   parameter in its search coordinate u (log10 or identity), scaled by its bounds to [0, 1];
2. the space the OHGW wrapper put into the trial's warm-start instruction
   (``OHGW(DyHPO(...), space)`` needs no second copy);
3. otherwise inferred from the configs themselves, as the reference code does with a
   ``MinMaxScaler`` over its candidate set: every numeric top-level key that is not one of the
   protocol's bookkeeping keys (trial index, seed, max_t, the warm-start records), scaled by the
   minimum and maximum over every config seen so far, in log10 where all values are positive and
   span at least a factor :data:`LOG_SPAN`. Such an encoding moves as new configs arrive; the
   surrogate is refitted on the moved points.

>>> from ohgw.space import SearchSpace
>>> enc = ConfigEncoder(SearchSpace.from_bounds({"lr": (1e-3, 1e-1, "log10"), "m": (0.0, 1.0, "identity")}))
>>> enc.raw({"lr": 0.01, "m": 0.25, "batch": 64}), enc.encode([{"lr": 0.01, "m": 0.25}]).tolist()
({'lr': 0.01, 'm': 0.25}, [[0.5, 0.25]])
>>> inf = ConfigEncoder(None)
>>> inf.encode([inf.raw({"a": 1.0, "b": 5, "seed": 7}), inf.raw({"a": 100.0, "b": 7, "seed": 9})]).tolist()
[[0.0, 0.0], [1.0, 1.0]]
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ohgw import protocol
from ohgw.space import SearchSpace, param_space_parts

LOG_SPAN = 100.0
_BOOKKEEPING = (protocol.SEED_KEY, protocol.MAX_T_KEY)


def space_from(space: Any) -> SearchSpace | None:
    """A SearchSpace from DyHPO's ``space`` argument (None, a SearchSpace or a Tune param_space)."""
    if space is None or isinstance(space, SearchSpace):
        return space
    if isinstance(space, Mapping):
        params, _ = param_space_parts(space)
        if params:
            return SearchSpace(params)
        raise ValueError("space: the param_space has no tune.loguniform / tune.uniform parameter to encode")
    raise ValueError(f"space must be an ohgw.SearchSpace, a Tune param_space dict or None, got {type(space).__name__}")


def _is_number(v: Any) -> bool:
    return not isinstance(v, bool) and isinstance(v, (int, float, np.integer, np.floating)) and math.isfinite(float(v))


class ConfigEncoder:
    """Config → [0, 1]^d (module doc). ``raw`` keeps what :meth:`encode` needs of a config."""

    def __init__(self, space: SearchSpace | None) -> None:
        self.space = space
        self.keys: list[str] | None = list(space.names) if space is not None else None

    @property
    def dim(self) -> int | None:
        return None if self.keys is None else max(len(self.keys), 1)

    def adopt(self, config: Mapping[str, Any]) -> None:
        """Fix the keys from the first config: the wrapper's instruction space, or its numeric keys."""
        if self.keys is not None:
            return
        spec = config.get(protocol.INSTRUCTION_KEY)
        if isinstance(spec, Mapping) and isinstance(spec.get(protocol.SPACE_FIELD), Mapping):
            try:
                self.space = SearchSpace.from_dict(spec[protocol.SPACE_FIELD])
                self.keys = list(self.space.names)
                return
            except (ValueError, KeyError, TypeError):
                self.space = None
        self.keys = sorted(k for k, v in config.items()
                           if _is_number(v) and not protocol.is_protocol_key(k) and k not in _BOOKKEEPING)

    def raw(self, config: Mapping[str, Any]) -> dict[str, float]:
        """The encoded keys' values of ``config`` (adopting keys from it if none are fixed yet)."""
        self.adopt(config)
        return {k: float(config[k]) for k in self.keys if k in config and _is_number(config[k])}

    def encode(self, raws: Sequence[Mapping[str, float]]) -> np.ndarray:
        """(n, d) points in [0, 1]; inferred encodings scale over ``raws`` (pass every config seen)."""
        keys = self.keys or []
        if not keys:
            return np.full((len(raws), 1), 0.5)
        if self.space is not None:
            u = np.array([[self.space[k].to_u(r.get(k, self.space[k].low)) for k in keys] for r in raws], dtype=float)
            u = (u - self.space.u_low) / self.space.u_range
            return np.clip(u, 0.0, 1.0).reshape(len(raws), len(keys))
        values = np.array([[r.get(k, np.nan) for k in keys] for r in raws], dtype=float).reshape(len(raws), len(keys))
        out = np.full_like(values, 0.5)
        for j in range(len(keys)):
            col = values[:, j]
            seen = col[np.isfinite(col)]
            if len(seen) == 0:
                continue
            lo, hi = seen.min(), seen.max()
            if lo > 0 and hi / lo >= LOG_SPAN:
                col, lo, hi = np.log10(np.where(np.isfinite(col), col, lo)), math.log10(lo), math.log10(hi)
            if hi > lo:
                out[:, j] = np.where(np.isfinite(col), (col - lo) / (hi - lo), 0.5)
        return out

    def get_state(self) -> dict:
        return {"space": None if self.space is None else self.space.to_dict(), "keys": self.keys}

    def set_state(self, state: dict) -> None:
        self.space = None if state["space"] is None else SearchSpace.from_dict(state["space"])
        self.keys = None if state["keys"] is None else list(state["keys"])
