"""Reading a warm-start's x′ from a Tune result and writing it into a trial's config.

A trainable that warm-starts reports, with its first result, the flat keys of
:meth:`ohgw.warmstart.WarmStartRecord.flat`: ``ohgw/x/<ψ>`` (the sampled x),
``ohgw/x_prime/<ψ>`` (the adjusted x′) and ``ohgw/g/<ψ>`` (the hyper-gradient).
:func:`apply_adjusted` turns a trial config into the *recorded* config:

- ``config[ψ]``                 ← x′[ψ]  (what the trainable trained with);
- ``config["ohgw_x"][ψ]``       = x[ψ]   (the sampled value, :data:`ORIGINAL_KEY`);
- ``config["ohgw_g"][ψ]``       = g[ψ]   (the hyper-gradient, :data:`GRADIENT_KEY`);
- ``config["ohgw"]["applied"]`` = the mode that ran, and ``config["ohgw"]["mode"]``
  becomes ``"none"``: the instruction is *consumed*, so a trial restarted from
  scratch (retry, restore) trains with x′ and never warm-starts a second time.

>>> config = {"lr": 0.1, "ohgw": {"mode": "hypergrad"}}
>>> result = {"ohgw/x/lr": 0.1, "ohgw/x_prime/lr": 0.12, "ohgw/g/lr": -0.5}
>>> adj = adjusted_from_result(result)
>>> new = apply_adjusted(config, adj)
>>> new["lr"], new["ohgw_x"], new["ohgw_g"], new["ohgw"]
(0.12, {'lr': 0.1}, {'lr': -0.5}, {'mode': 'none', 'applied': 'hypergrad'})
>>> is_recorded(new), is_recorded(config)
(True, False)
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from ray.tune.utils import flatten_dict

from .warmstart import CONFIG_KEY

ORIGINAL_KEY = "ohgw_x"  # config key of the sampled x (dict ψ → value)
GRADIENT_KEY = "ohgw_g"  # config key of the hyper-gradient (dict ψ → ∂L_val/∂u_ψ)
X_PREFIX = "ohgw/x/"
X_PRIME_PREFIX = "ohgw/x_prime/"
G_PREFIX = "ohgw/g/"


def _by_prefix(flat: Mapping[str, Any], prefix: str) -> dict[str, float]:
    return {k[len(prefix) :]: float(v) for k, v in flat.items() if isinstance(k, str) and k.startswith(prefix)}


def adjusted_from_result(result: Mapping[str, Any], names: Iterable[str] | None = None) -> dict | None:
    """``{"x", "x_prime", "g"}`` dicts from a (flat or nested) result, or None if it carries no x′.

    With ``names``, only those hyper-parameters are kept (others are ignored).
    Values that are not finite make the whole record invalid (None).
    """
    flat = result if any(isinstance(k, str) and k.startswith(X_PRIME_PREFIX) for k in result) else flatten_dict(
        dict(result)
    )
    x_prime = _by_prefix(flat, X_PRIME_PREFIX)
    if not x_prime:
        return None
    x = _by_prefix(flat, X_PREFIX)
    g = _by_prefix(flat, G_PREFIX)
    if names is not None:
        keep = set(names)
        x_prime = {k: v for k, v in x_prime.items() if k in keep}
        if not x_prime:
            return None
    if not all(math.isfinite(v) for v in x_prime.values()):
        return None
    return {
        "x": {k: x.get(k, x_prime[k]) for k in x_prime},
        "x_prime": dict(x_prime),
        "g": {k: g.get(k, 0.0) for k in x_prime},
    }


def is_recorded(config: Mapping[str, Any]) -> bool:
    """Whether x′ has already been written into this config (by :func:`apply_adjusted`)."""
    return ORIGINAL_KEY in config


def apply_adjusted(config: Mapping[str, Any], adjusted: Mapping[str, Mapping[str, float]]) -> dict:
    """A copy of ``config`` holding x′, the original x, g, and a consumed instruction."""
    out = dict(config)
    out.update(adjusted["x_prime"])
    out[ORIGINAL_KEY] = dict(adjusted["x"])
    out[GRADIENT_KEY] = dict(adjusted["g"])
    spec = out.get(CONFIG_KEY)
    if isinstance(spec, Mapping):
        spec = dict(spec)
        spec["applied"] = spec.get("applied", spec.get("mode"))
        spec["mode"] = "none"
        out[CONFIG_KEY] = spec
    return out
