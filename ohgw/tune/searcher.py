"""Searcher feedback: let a Tune searcher learn from the warm-started x′ instead of x.

A searcher such as ``OptunaSearch`` only knows the x it suggested; after an OHGW
warm-start the trial trained with x′, so the searcher's model would attach the
trial's score to the wrong point. :class:`OHGWSearcher` wraps any Tune
``Searcher``, watches results for x′ (reported by the trainable with its first
result, parsed by :func:`ohgw.protocol.adjusted_from_result`) and, when such a trial
completes with a finite score:

1. adds the evaluated point x′ (the suggestion with its continuous values
   replaced) with the trial's score and intermediate values through the
   searcher's own ``add_evaluated_point``;
2. closes the suggestion x as errored (``on_trial_complete(error=True)``).

For ``OptunaSearch`` this records a COMPLETE Optuna trial whose params are x′,
and marks the suggested one FAIL, which TPE ignores. The searcher's own Optuna user
attributes: the new trial holds :data:`RAY_TRIAL_ID_ATTR` (the Tune trial id),
:data:`REPLACES_ATTR` (the number of the Optuna trial it replaces) and
:data:`X_ATTR_PREFIX` ``+ ψ`` (the suggested values); the superseded one gets
:data:`SUPERSEDED_ATTR` = True. Trials without x′ (mode
``"none"``, x′ == x, errors, no score) are passed through unchanged. A searcher
without ``add_evaluated_point`` is passed through unchanged too (with a warning).

x′ values outside an Optuna distribution's bounds are clipped into it. With an
OptunaSearch the COMPLETE trial is added with ``study.add_trial`` directly (to carry
the user attributes and intermediate values); other searchers get
``add_evaluated_point``.

>>> from ray.tune.search.optuna import OptunaSearch
>>> searcher = OHGWSearcher(OptunaSearch())
>>> searcher.replaced
{}
"""

from __future__ import annotations

import logging
import math
from typing import Any

from ray.tune.search import Searcher
from ray.tune.utils import flatten_dict

from ohgw.protocol import adjusted_from_result
from ohgw.tune.state import StateFile

logger = logging.getLogger(__name__)

# Optuna user attributes written by this searcher (read back from the Optuna study, not exchanged
# with the trainable or the wrapper)
RAY_TRIAL_ID_ATTR = "ray_trial_id"  # on the COMPLETE trial at x': the Tune trial id
REPLACES_ATTR = "ohgw_replaces"  # on the COMPLETE trial at x': the number of the superseded Optuna trial
X_ATTR_PREFIX = "ohgw_x/"  # on the COMPLETE trial at x': X_ATTR_PREFIX + name -> the suggested value x
SUPERSEDED_ATTR = "ohgw_superseded"  # on the suggested (FAIL) trial: True


def _optuna_of(searcher: Searcher):
    """The OptunaSearch inside ``searcher`` (through ConcurrencyLimiter/Repeater wrappers), or None."""
    try:
        from ray.tune.search.optuna import OptunaSearch
    except ImportError:  # pragma: no cover - optuna is a dependency
        return None
    seen = 0
    while searcher is not None and seen < 8:
        if isinstance(searcher, OptunaSearch):
            return searcher
        searcher = getattr(searcher, "searcher", None)
        seen += 1
    return None


class OHGWSearcher(StateFile, Searcher):
    """Wrap ``searcher`` so that warm-started trials are reported to it at x′.

    Args:
        searcher: any Tune ``Searcher`` (``OptunaSearch``, possibly inside a ``ConcurrencyLimiter``;
            ``ConcurrencyLimiter(OHGWSearcher(...))`` works as well).
    """

    def __init__(self, searcher: Searcher) -> None:
        if not isinstance(searcher, Searcher):
            raise ValueError(f"searcher must be a ray.tune Searcher instance, got {type(searcher).__name__}")
        if isinstance(searcher, OHGWSearcher):
            raise ValueError("searcher is already wrapped by OHGWSearcher; wrap a searcher once")
        self.searcher = searcher
        self._suggested: dict[str, dict] = {}  # trial id -> flat suggested config (live trials)
        self._adjusted: dict[str, dict] = {}  # trial id -> {"x", "x_prime", "g"}
        self._intermediate: dict[str, list[float]] = {}  # trial id -> reported metric values
        self.replaced: dict[str, dict] = {}  # trial id -> the x' params recorded in the searcher
        super().__init__(metric=searcher.metric, mode=searcher.mode)

    # ---- delegated ------------------------------------------------------------------
    @property
    def metric(self) -> str | None:
        return _first_set(self.searcher, "metric")

    @property
    def mode(self) -> str | None:
        return _first_set(self.searcher, "mode")

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict, **spec) -> bool:
        return self.searcher.set_search_properties(metric, mode, config, **spec)

    def set_max_concurrency(self, max_concurrent: int) -> bool:
        return self.searcher.set_max_concurrency(max_concurrent)

    def suggest(self, trial_id: str) -> dict | None:
        config = self.searcher.suggest(trial_id)
        if isinstance(config, dict):
            self._suggested[trial_id] = flatten_dict(config)
        return config

    def on_pause(self, trial_id: str) -> None:
        self.searcher.on_pause(trial_id)

    def on_unpause(self, trial_id: str) -> None:
        self.searcher.on_unpause(trial_id)

    def add_evaluated_point(self, parameters: dict, value: float, error: bool = False, pruned: bool = False,
                            intermediate_values: list[float] | None = None) -> None:
        self.searcher.add_evaluated_point(parameters, value, error, pruned, intermediate_values)

    # ---- feedback -------------------------------------------------------------------
    def _watch(self, trial_id: str, result: dict | None) -> None:
        if not result:
            return
        if trial_id not in self._adjusted:
            adjusted = adjusted_from_result(result)
            if adjusted is not None:
                self._adjusted[trial_id] = adjusted

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        self._watch(trial_id, result)
        value = result.get(self.metric) if self.metric else None
        if isinstance(value, (int, float)) and math.isfinite(value):
            self._intermediate.setdefault(trial_id, []).append(float(value))
        self.searcher.on_trial_result(trial_id, result)

    def _params_at_x_prime(self, trial_id: str) -> dict | None:
        suggested = self._suggested.get(trial_id)
        adjusted = self._adjusted.get(trial_id)
        if suggested is None or adjusted is None:
            return None
        moved = {k: v for k, v in adjusted["x_prime"].items() if k in suggested and v != suggested[k]}
        if not moved:
            return None
        params = {**suggested, **moved}
        optuna = _optuna_of(self.searcher)
        if optuna is not None and isinstance(optuna._space, dict):
            params = {k: _clip_to(optuna._space.get(k), v) for k, v in params.items()}
        return params

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        self._watch(trial_id, result)
        value = result.get(self.metric) if (result and self.metric) else None
        params = None
        if not error and isinstance(value, (int, float)) and math.isfinite(value):
            params = self._params_at_x_prime(trial_id)
        if params is None:
            self.searcher.on_trial_complete(trial_id, result=result, error=error)
        else:
            self._report_at_x_prime(trial_id, params, float(value))
        self._suggested.pop(trial_id, None)
        self._intermediate.pop(trial_id, None)

    def _report_at_x_prime(self, trial_id: str, params: dict, value: float) -> None:
        optuna_search = _optuna_of(self.searcher)
        try:
            if optuna_search is not None:
                _add_optuna_trial(optuna_search, trial_id, params, value, self._adjusted[trial_id]["x"])
            elif _has_add_evaluated_point(self.searcher):
                self.searcher.add_evaluated_point(params, value, intermediate_values=self._intermediate.get(trial_id))
            else:
                raise TypeError(f"{type(self.searcher).__name__} cannot add evaluated points")
        except (ValueError, TypeError, RuntimeError, KeyError) as exc:
            logger.warning("OHGWSearcher: could not record x' for trial %s (%s); the searcher learns x", trial_id, exc)
            self.searcher.on_trial_complete(trial_id, result={self.metric: value}, error=False)
            return
        self.searcher.on_trial_complete(trial_id, result=None, error=True)
        self.replaced[trial_id] = dict(params)

    # ---- state ----------------------------------------------------------------------
    def get_state(self) -> dict:
        return {
            "searcher": self.searcher,
            "suggested": self._suggested,
            "adjusted": self._adjusted,
            "intermediate": self._intermediate,
            "replaced": self.replaced,
        }

    def set_state(self, state: dict) -> None:
        self.searcher = state["searcher"]
        self._suggested = state["suggested"]
        self._adjusted = state["adjusted"]
        self._intermediate = state["intermediate"]
        self.replaced = state["replaced"]


def _first_set(searcher: Searcher, attr: str) -> Any:
    """``searcher.<attr>``, or that of the searcher it wraps (ConcurrencyLimiter keeps none of its own)."""
    for _ in range(8):
        value = getattr(searcher, attr, None)
        if value is not None:
            return value
        searcher = getattr(searcher, "searcher", None)
        if searcher is None:
            return None
    return None


def _has_add_evaluated_point(searcher: Searcher) -> bool:
    inner = searcher
    for _ in range(8):
        if type(inner).add_evaluated_point is not Searcher.add_evaluated_point:
            return True
        inner = getattr(inner, "searcher", None)
        if inner is None:
            return False
    return False


def _add_optuna_trial(optuna_search, trial_id: str, params: dict, value: float, x: dict[str, float]) -> None:
    """Add a COMPLETE trial at x′ to the Optuna study; tag the suggested (RUNNING) one as superseded."""
    import optuna

    ot_trial = optuna_search._ot_trials[trial_id]
    study = optuna_search._ot_study
    frozen = study.trials[ot_trial.number]
    distributions = frozen.distributions
    if set(distributions) != set(params):
        raise KeyError(f"suggested params {sorted(distributions)} differ from the trial's {sorted(params)}")
    params = {k: _clip_to(distributions[k], v) for k, v in params.items()}
    ot_trial.set_user_attr(SUPERSEDED_ATTR, True)
    study.add_trial(
        optuna.trial.create_trial(
            state=optuna.trial.TrialState.COMPLETE,
            value=value,
            params=params,
            distributions=distributions,
            intermediate_values=dict(frozen.intermediate_values),
            user_attrs={RAY_TRIAL_ID_ATTR: trial_id, REPLACES_ATTR: ot_trial.number,
                        **{X_ATTR_PREFIX + k: float(v) for k, v in x.items()}},
        )
    )


def _clip_to(distribution: Any, value: Any) -> Any:
    low, high = getattr(distribution, "low", None), getattr(distribution, "high", None)
    if low is None or high is None or not isinstance(value, (int, float)):
        return value
    return min(max(value, low), high)
