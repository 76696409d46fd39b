"""The continuous search space that OHGW warm-starts.

Each continuous hyper-parameter ψ has bounds and a transform to *search
coordinates* u: ``log10`` for scale parameters (learning rate, weight decay),
identity for the rest. Hyper-gradients and warm-start steps live in u;
trainables see natural values x.

>>> space = SearchSpace.default()
>>> u = space.to_u({"lr": 0.1, "wd": 5e-4, "momentum": 0.9,
...                 "aug_magnitude": 0.2, "label_smoothing": 0.1})
>>> round(float(u[0]), 6), round(float(u[1]), 4)
(-1.0, -3.301)
>>> space.to_x(u)["lr"]
0.1
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

TRANSFORMS = ("log10", "identity")


@dataclass(frozen=True)
class Continuous:
    """One continuous hyper-parameter: natural bounds [low, high] and a transform to u."""

    name: str
    low: float
    high: float
    transform: str = "identity"

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"hyper-parameter name must be a non-empty string, got {self.name!r}")
        if self.transform not in TRANSFORMS:
            raise ValueError(
                f"hyper-parameter {self.name!r}: transform must be one of {TRANSFORMS}, "
                f"got {self.transform!r}"
            )
        if not (math.isfinite(self.low) and math.isfinite(self.high)):
            raise ValueError(f"hyper-parameter {self.name!r}: bounds must be finite")
        if self.low >= self.high:
            raise ValueError(
                f"hyper-parameter {self.name!r}: bounds need low < high, got [{self.low}, {self.high}]"
            )
        if self.transform == "log10" and self.low <= 0:
            raise ValueError(
                f"hyper-parameter {self.name!r}: a log10 transform needs positive bounds, "
                f"got low={self.low}"
            )

    @property
    def is_log(self) -> bool:
        return self.transform == "log10"

    @property
    def u_low(self) -> float:
        return math.log10(self.low) if self.is_log else float(self.low)

    @property
    def u_high(self) -> float:
        return math.log10(self.high) if self.is_log else float(self.high)

    @property
    def u_range(self) -> float:
        return self.u_high - self.u_low

    def to_u(self, x: float) -> float:
        if self.is_log:
            if x <= 0:
                raise ValueError(f"hyper-parameter {self.name!r}: value {x} is not positive (log10)")
            return math.log10(x)
        return float(x)

    def to_x(self, u: float) -> float:
        return float(10.0**u) if self.is_log else float(u)

    def to_dict(self) -> dict:
        return {"name": self.name, "low": self.low, "high": self.high, "transform": self.transform}


class SearchSpace:
    """An ordered set of continuous hyper-parameters, plus optional discrete ones.

    Discrete parameters (``discrete={"batch_size": [64, 128]}``) are sampled by
    Tune but never touched by a warm-start; :meth:`split` reports them.
    """

    def __init__(
        self,
        params: Sequence[Continuous],
        discrete: Mapping[str, Sequence] | None = None,
    ) -> None:
        params = list(params)
        if not params:
            raise ValueError("search space needs at least one continuous hyper-parameter")
        names = [p.name for p in params]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"search space: duplicate hyper-parameter names {dupes}")
        discrete = {k: list(v) for k, v in (discrete or {}).items()}
        clash = sorted(set(discrete) & set(names))
        if clash:
            raise ValueError(f"search space: {clash} declared both continuous and discrete")
        for k, v in discrete.items():
            if not v:
                raise ValueError(f"discrete hyper-parameter {k!r}: needs at least one choice")
        self.params: tuple[Continuous, ...] = tuple(params)
        self.discrete: dict[str, list] = discrete

    # ---- construction -------------------------------------------------------------
    @classmethod
    def from_bounds(
        cls,
        bounds: Mapping[str, tuple],
        discrete: Mapping[str, Sequence] | None = None,
        transforms: Mapping[str, str] | None = None,
    ) -> SearchSpace:
        """Build from ``{name: (low, high, transform)}`` or ``{name: (low, high)}`` plus ``transforms``.

        Every parameter names its transform (``"log10"`` or ``"identity"``): the core knows no
        parameter by name, so nothing is guessed from it.

        >>> SearchSpace.from_bounds({"lr": (1e-3, 1.0, "log10"), "tau": (0.0, 1.0)}, transforms={"tau": "identity"})
        SearchSpace(lr[0.001,1](log), tau[0,1])
        """
        transforms = dict(transforms or {})
        unknown = sorted(set(transforms) - set(bounds))
        if unknown:
            raise ValueError(f"transforms: {unknown} are not in bounds")
        params = []
        for name, b in bounds.items():
            if not isinstance(b, (tuple, list)) or len(b) not in (2, 3):
                raise ValueError(f"bounds[{name!r}] must be (low, high) or (low, high, transform), got {b!r}")
            transform = b[2] if len(b) == 3 else transforms.get(name)
            if transform is None:
                raise ValueError(
                    f"hyper-parameter {name!r}: give its transform, 'log10' or 'identity' "
                    f"(bounds[{name!r}] = (low, high, transform) or transforms={{{name!r}: ...}})"
                )
            params.append(Continuous(name, float(b[0]), float(b[1]), transform))
        return cls(params, discrete)

    @classmethod
    def from_param_space(cls, param_space: Mapping) -> SearchSpace:
        """The continuous part of a Ray Tune ``param_space``: ``tune.loguniform`` → log10, ``tune.uniform`` → identity.

        Only top-level keys are taken (the warm-start reads and writes top-level config keys).
        Everything else that Tune samples (:func:`param_space_parts` lists it) is left to Tune
        and named in a warning: quantized or integer domains, ``tune.choice``, ``tune.grid_search``,
        ``tune.sample_from``, ``tune.randn``, and any domain inside a nested dict (named
        ``"outer/inner"``). Constants are not hyper-parameters and are passed over silently.
        A space with no continuous parameter raises a ValueError naming what was skipped.

        >>> from ray import tune
        >>> SearchSpace.from_param_space({"lr": tune.loguniform(1e-4, 0.1), "mu": tune.uniform(0.0, 0.9), "epochs": 5})
        SearchSpace(lr[0.0001,0.1](log), mu[0,0.9])
        """
        params, skipped = param_space_parts(param_space)
        if not params:
            raise ValueError(f"param_space: no continuous hyper-parameter to warm-start ({describe_skipped(skipped)})")
        if skipped:
            import warnings

            warnings.warn(f"param_space: cannot warm-start {describe_skipped(skipped)}; Tune samples them as usual",
                          UserWarning, stacklevel=2)
        return cls(params)

    @classmethod
    def default(cls) -> SearchSpace:
        """The study's 5-dim space for ResNet-20 (CIFAR-10 and digits): lr and wd on log10 scales."""
        return cls.from_bounds(
            {
                "lr": (1e-3, 1.0, "log10"),
                "wd": (1e-6, 1e-2, "log10"),
                "momentum": (0.0, 0.99, "identity"),
                "aug_magnitude": (0.0, 1.0, "identity"),
                "label_smoothing": (0.0, 0.3, "identity"),
            }
        )

    @classmethod
    def from_dict(cls, d: Mapping) -> SearchSpace:
        return cls([Continuous(**p) for p in d["params"]], d.get("discrete"))

    def to_dict(self) -> dict:
        return {"params": [p.to_dict() for p in self.params], "discrete": dict(self.discrete)}

    # ---- views --------------------------------------------------------------------
    @property
    def names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params)

    def __len__(self) -> int:
        return len(self.params)

    def __getitem__(self, name: str) -> Continuous:
        for p in self.params:
            if p.name == name:
                return p
        raise KeyError(name)

    def __repr__(self) -> str:
        inner = ", ".join(f"{p.name}[{p.low:g},{p.high:g}]{'(log)' if p.is_log else ''}" for p in self.params)
        return f"SearchSpace({inner})"

    @property
    def u_low(self) -> np.ndarray:
        return np.array([p.u_low for p in self.params])

    @property
    def u_high(self) -> np.ndarray:
        return np.array([p.u_high for p in self.params])

    @property
    def u_range(self) -> np.ndarray:
        return self.u_high - self.u_low

    # ---- Ray Tune -----------------------------------------------------------------
    def param_space(self) -> dict:
        """A Ray Tune ``param_space``: loguniform for log10 params, uniform otherwise."""
        from ray import tune

        out: dict = {}
        for p in self.params:
            out[p.name] = tune.loguniform(p.low, p.high) if p.is_log else tune.uniform(p.low, p.high)
        for k, v in self.discrete.items():
            out[k] = tune.choice(v)
        return out

    # ---- mapping ------------------------------------------------------------------
    def split(self, config: Mapping) -> tuple[dict, dict]:
        """(continuous values, everything else) of a config; missing continuous names raise."""
        missing = [n for n in self.names if n not in config]
        if missing:
            raise ValueError(f"config lacks continuous hyper-parameters {missing}")
        cont = {n: float(config[n]) for n in self.names}
        rest = {k: v for k, v in config.items() if k not in cont}
        return cont, rest

    def to_u(self, config: Mapping) -> np.ndarray:
        cont, _ = self.split(config)
        return np.array([p.to_u(cont[p.name]) for p in self.params], dtype=np.float64)

    def to_x(self, u: Iterable[float]) -> dict[str, float]:
        u = list(u)
        if len(u) != len(self.params):
            raise ValueError(f"expected {len(self.params)} coordinates, got {len(u)}")
        return {p.name: p.to_x(float(ui)) for p, ui in zip(self.params, u)}

    def clip_u(self, u: np.ndarray) -> np.ndarray:
        return np.clip(np.asarray(u, dtype=np.float64), self.u_low, self.u_high)

    def with_values(self, config: Mapping, values: Mapping[str, float]) -> dict:
        """A copy of ``config`` with the continuous values replaced."""
        out = dict(config)
        out.update(values)
        return out


# ---- a Ray Tune param_space ----------------------------------------------------------------------
def _why_not(domain) -> str | None:
    """None if ``domain`` (a Tune search domain) is warm-startable, else why not, in a few words."""
    from ray.tune.search.sample import Categorical, Float, Function, Integer, LogUniform, Normal, Quantized, Uniform

    if isinstance(domain, Float):
        sampler = domain.get_sampler()
        if isinstance(sampler, Quantized):
            return "quantized"
        if isinstance(sampler, (LogUniform, Uniform)):
            return None
        if isinstance(sampler, Normal):
            return "normal, unbounded"
        return f"{type(sampler).__name__} sampler"
    if isinstance(domain, Integer):
        return "integer"
    if isinstance(domain, Categorical):
        return "choice"
    if isinstance(domain, Function):
        return "sample_from"
    return type(domain).__name__


def _is_grid(value) -> bool:
    return isinstance(value, Mapping) and len(value) == 1 and "grid_search" in value


def param_space_parts(param_space: Mapping) -> tuple[list[Continuous], dict[str, str]]:
    """(the warm-startable :class:`Continuous` parameters, {name: why not} for every other search domain).

    Warm-startable: a top-level ``tune.loguniform`` (log10 coordinates) or ``tune.uniform``
    (identity). Names of domains inside nested dicts are joined with ``"/"``; constants are
    neither.

    >>> from ray import tune
    >>> params, skipped = param_space_parts({"lr": tune.loguniform(1e-3, 1.0), "bs": tune.choice([32, 64]),
    ...                                      "opt": {"eps": tune.uniform(0, 1)}, "epochs": 3})
    >>> [p.name for p in params], skipped
    (['lr'], {'bs': 'choice', 'opt/eps': 'nested: only top-level keys are warm-started'})
    """
    from ray.tune.search.sample import Domain, Float, LogUniform

    if not isinstance(param_space, Mapping):
        raise ValueError(f"param_space must be a dict, got {type(param_space).__name__}")
    params: list[Continuous] = []
    skipped: dict[str, str] = {}

    def nested(prefix: str, d: Mapping) -> None:
        for k, v in d.items():
            name = f"{prefix}/{k}"
            if isinstance(v, Domain) or _is_grid(v):
                skipped[name] = "nested: only top-level keys are warm-started"
            elif isinstance(v, Mapping):
                nested(name, v)

    for name, value in param_space.items():
        name = str(name)
        if _is_grid(value):
            skipped[name] = "grid_search"
        elif isinstance(value, Domain):
            why = _why_not(value)
            if why is None:
                transform = "log10" if isinstance(value.get_sampler(), LogUniform) else "identity"
                assert isinstance(value, Float)
                try:
                    params.append(Continuous(name, float(value.lower), float(value.upper), transform))
                except ValueError as e:
                    why = str(e)
            if why is not None:
                skipped[name] = why
        elif isinstance(value, Mapping):
            nested(name, value)
    return params, skipped


def describe_skipped(skipped: Mapping[str, str]) -> str:
    """``'bs' (choice), 'opt/eps' (nested: ...)``: the names, quoted, with the reason each was skipped."""
    return ", ".join(f"{name!r} ({why})" for name, why in skipped.items()) or "it holds no search domain"
