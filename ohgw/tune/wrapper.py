"""OHGW: a Tune scheduler that adds one-shot hyper-gradient warm-starts to any other.

``scheduler=OHGW(ASHAScheduler(...), param_space)`` in an ordinary ``tune.Tuner`` is the
whole change on the driver side (``param_space``: the dict the Tuner gets)::

    param_space = {"lr": tune.loguniform(1e-4, 1e-1), "wd": tune.loguniform(1e-6, 1e-2),
                   "batch_size": tune.choice([64, 128]), "epochs": 50}
    sched = OHGW(ASHAScheduler(max_t=50), param_space)
    tune.Tuner(train, param_space=param_space,
               tune_config=tune.TuneConfig(metric="val_acc", mode="max", scheduler=sched),
               run_config=tune.RunConfig(callbacks=sched.callbacks()))  # optional: x′ in result.config, restore

**Where the search space comes from.** ``space`` is either an explicit
:class:`~ohgw.space.SearchSpace` (used as given, nothing inferred) or the Tuner's
``param_space`` dict, from which the continuous hyper-parameters and their bounds are taken
(:meth:`SearchSpace.from_param_space <ohgw.space.SearchSpace.from_param_space>`: top-level
``tune.loguniform`` → log10 coordinates, ``tune.uniform`` → identity). One warning names
every search domain it cannot warm-start (quantized, integer, ``choice``, ``grid_search``,
``sample_from``, ``randn``, nested); Tune samples those as usual.

Why the param_space has to be handed over: in Ray 2.60 no public hook gives a scheduler (or
a ``tune.Callback``) the Tuner's ``param_space``. ``TrialScheduler.set_search_properties``
and ``Callback.setup`` receive only ``stop``, ``num_samples``, ``time_budget_s`` (and
``total_num_samples``); only the *search algorithm*'s ``set_search_properties`` receives
the config, and a trial's config holds sampled values, not domains, bounds or scales.
Reaching into Tune's private state for it would break silently in any release. Passing the
dict the user already holds costs one argument and works with every searcher; the
alternative public route, a search algorithm that forwards its config to the scheduler,
would need a second argument (``search_alg=...``) and would clash with a user's own searcher.
``OHGW(scheduler)`` with no space at all therefore warm-starts nothing: it warns once,
at the first trial, and passes every trial and decision through unchanged, as does a
param_space without a continuous parameter. ``mode="none"`` never raises on a trial's
config either: a trial whose config lacks the space's parameters is passed through, with
one warning.

Every key the wrapper exchanges with the trainable is :mod:`ohgw.protocol`'s. The wrapper

1. **injects** the warm-start instruction into every new trial's config, under
   :data:`~ohgw.protocol.INSTRUCTION_KEY` (:func:`ohgw.protocol.make_instruction`, with the
   trial's creation index). Each trial gets its own seed,
   derived from the settings' ``seed`` and the creation order (not the random
   trial id, so paired studies reproduce). Idempotent: a config that already holds an
   instruction is left alone (retries, ``Tuner.restore``);
2. **records x′**: when a result carries x′ (the first report of a warm-started trainable,
   parsed by :func:`ohgw.protocol.adjusted_from_result`), it writes x′ into ``trial.config``
   with :func:`ohgw.protocol.apply_adjusted`: x under :data:`~ohgw.protocol.ORIGINAL_KEY`, g
   under :data:`~ohgw.protocol.GRADIENT_KEY`, and the instruction consumed (its mode set to
   ``"none"``, the mode that ran kept as applied) so that no trial is warm-started twice.
   ``get_dataframe()`` and the progress table then show x′; add the callbacks
   of :meth:`OHGW.callbacks` for ``result.config`` and for restore;
3. **delegates** every decision to the wrapped scheduler, untouched
   (:class:`~ohgw.tune.delegating.DelegatingScheduler`, which also stops a HyperBand trial
   that Ray would leave PAUSED forever; see :mod:`ohgw.tune.delegating`), and is
   transparent: attribute reads it does not define go to the wrapped scheduler
   (``OHGW(asha)._brackets``, ``._max_t``);
4. **saves its state** and the wrapped scheduler's (:meth:`get_state` /
   :meth:`set_state`, see :mod:`ohgw.tune.state`), which
   :class:`ohgw.tune.callbacks.SchedulerStateCallback` checkpoints with the experiment.
   As with Ray's schedulers, the state holds the configuration too (the settings, the
   space, the wrapped scheduler's metric, mode, max_t, ...), so ``save(path)`` then
   ``OHGW(ASHAScheduler()).restore(path)`` decides like the scheduler that saved.

Defaults: :class:`~ohgw.warmstart.WarmStartSettings`' — ``step_rule="normalized"`` with
η_h = 0.05 of the range (the reason is in :mod:`ohgw.warmstart`); ``step_rule="raw"`` with
η_h = 1e-3 is the original proposal. Any settings field may also be given as a keyword,
which overrides ``settings``.

>>> from ray.tune.schedulers import ASHAScheduler
>>> from ohgw.space import SearchSpace
>>> from ohgw.warmstart import WarmStartSettings
>>> sched = OHGW(ASHAScheduler(max_t=9, grace_period=1), SearchSpace.default(), WarmStartSettings(seed=3))
>>> sched.set_search_properties("val_acc", "max")
True
>>> sched.metric, sched.settings.step_rule, sched.settings.seed
('val_acc', 'normalized', 3)
>>> OHGW(ASHAScheduler(), SearchSpace.default(), WarmStartSettings(seed=3), mode="random").settings.mode
'random'
>>> from ray import tune
>>> OHGW(ASHAScheduler(), {"lr": tune.loguniform(1e-4, 0.1), "mu": tune.uniform(0.0, 0.9), "epochs": 9}).space
SearchSpace(lr[0.0001,0.1](log), mu[0,0.9])
"""
from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
from ray.tune.experiment import Trial
from ray.tune.schedulers import TrialScheduler

from ohgw import protocol
from ohgw.space import SearchSpace, describe_skipped, param_space_parts
from ohgw.tune.delegating import DelegatingScheduler
from ohgw.tune.state import Reattach, StateFile, reload, snapshot
from ohgw.warmstart import WarmStartSettings, make_instruction

if TYPE_CHECKING:
    from ray.tune.callback import Callback

logger = logging.getLogger(__name__)


def warm_start_seed(seed: int, index: int) -> int:
    """The seed of the warm-start's random draws (batches, random direction) for the ``index``-th
    trial created under wrapper seed ``seed``. Not the trial's model-init seed (the harness sets that)."""
    return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1)[0])


class OHGWWarning(UserWarning):
    """OHGW cannot warm-start some (or all) hyper-parameters; it passes them through to Tune unchanged."""


def _space_from(space: Any) -> tuple[SearchSpace | None, dict[str, str]]:
    """(the space, {name: why not warm-started}) from an OHGW ``space`` argument."""
    if space is None or isinstance(space, SearchSpace):
        return space, {}
    if isinstance(space, Mapping):
        params, skipped = param_space_parts(space)
        if params or skipped:
            return (SearchSpace(params) if params else None), skipped
        raise ValueError(
            "space must be an ohgw.SearchSpace or a Tune param_space with search domains (tune.loguniform, "
            f"tune.uniform, ...); got a dict without any: {sorted(map(str, space))}. For bounds, use "
            "SearchSpace.from_bounds({name: (low, high, transform)})"
        )
    raise ValueError(f"space must be an ohgw.SearchSpace or a Tune param_space dict, got {type(space).__name__}")


class OHGW(StateFile, DelegatingScheduler):
    """Wrap ``scheduler`` so that every trial is warm-started once, then scheduled as before.

    Args:
        scheduler: any Tune ``TrialScheduler`` (ASHA, HyperBand, PASHA, FIFO, MedianStoppingRule, ...).
        space: what to warm-start: the Tuner's ``param_space`` dict (its top-level
            ``tune.loguniform`` / ``tune.uniform`` parameters, with their bounds; one
            :class:`OHGWWarning` names the search domains left to Tune), or an explicit
            :class:`~ohgw.space.SearchSpace` (used as given; each name must be a top-level
            key of every trial's config). ``None``: nothing is warm-started, every trial and
            decision passes through unchanged, with one warning (module doc: why Ray gives a
            scheduler no way to find the param_space itself).
        settings: the :class:`~ohgw.warmstart.WarmStartSettings` (mode ``"hypergrad"``,
            ``"random"`` or ``"none"``; step rule, η_h, hyper-steps, lookahead, batch size, seed);
            default ``WarmStartSettings()``. Trial i warm-starts with seed
            :func:`warm_start_seed` (settings.seed, i).
        **overrides: any field of the settings as a keyword (``OHGW(asha, space, mode="random")``),
            a convenience that overrides ``settings``.
    """

    def __init__(
        self,
        scheduler: TrialScheduler,
        space: SearchSpace | Mapping[str, Any] | None = None,
        settings: WarmStartSettings | None = None,
        **overrides: Any,
    ) -> None:
        if not isinstance(scheduler, TrialScheduler):
            raise ValueError(
                f"scheduler must be a ray.tune TrialScheduler instance, got {type(scheduler).__name__}"
            )
        if isinstance(scheduler, OHGW):
            raise ValueError("scheduler is already wrapped by OHGW; wrap a scheduler once")
        space, skipped = _space_from(space)
        if settings is not None and not isinstance(settings, WarmStartSettings):
            raise ValueError(f"settings must be an ohgw.WarmStartSettings, got {type(settings).__name__}")
        unknown = sorted(set(overrides) - set(WarmStartSettings.__dataclass_fields__))
        if unknown:
            raise ValueError(f"unknown keyword arguments {unknown}; the warm-start settings are "
                             f"{sorted(WarmStartSettings.__dataclass_fields__)}")
        seed = overrides.get("seed", settings.seed if settings is not None else 0)
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
        # WarmStartSettings raises a ValueError naming mode / step_rule / eta_h / hyper_steps / ...
        base = (settings or WarmStartSettings()).to_dict()
        self._settings = WarmStartSettings(**{**base, **overrides, "seed": int(seed)})
        super().__init__(scheduler)
        self.space: SearchSpace | None = space
        self.skipped: dict[str, str] = skipped  # param_space domains not warm-started -> why
        self._n_added = 0  # trials injected so far: the next trial's creation index
        self._seen: set[str] = set()  # every trial id passed to on_trial_add
        self._records: dict[str, dict] = {}  # trial id -> {"x", "x_prime", "g"}
        self._reattach = Reattach()  # restored trials waiting to be re-added
        self._warned = False  # the one pass-through warning has been given
        if skipped and space is not None:
            self._warn(f"OHGW cannot warm-start {describe_skipped(skipped)}; it warm-starts {list(space.names)} "
                       "and leaves the others to Tune")
        elif skipped:
            self._warn(f"OHGW found no continuous hyper-parameter (tune.loguniform / tune.uniform) to warm-start "
                       f"in param_space, only {describe_skipped(skipped)}: it passes every trial and decision "
                       "through unchanged")

    def _warn(self, message: str) -> None:
        if not self._warned:
            self._warned = True
            warnings.warn(message, OHGWWarning, stacklevel=3)

    # ---- configuration ------------------------------------------------------------
    @property
    def settings(self) -> WarmStartSettings:
        return self._settings

    @property
    def records(self) -> dict[str, dict]:
        """Warm-start records seen so far: trial id → {"x", "x_prime", "g"} dicts."""
        return {k: {kk: dict(vv) for kk, vv in v.items()} for k, v in self._records.items()}

    def callbacks(self, record_adjusted: bool = True, restore_state: bool = True) -> list[Callback]:
        """The ``tune.Callback`` s to pass to ``RunConfig(callbacks=...)``.

        ``record_adjusted`` makes ``result.config`` (and the result logs) show x′;
        ``restore_state`` checkpoints this scheduler's state with the experiment so
        that ``Tuner.restore`` brings it back. Pass the same list on every run.
        """
        from ohgw.tune.callbacks import AdjustedConfigCallback, SchedulerStateCallback

        out: list[Callback] = []
        if record_adjusted:
            out.append(AdjustedConfigCallback())
        if restore_state:
            out.append(SchedulerStateCallback(self))
        return out

    # ---- hooks (the others are delegated by DelegatingScheduler) --------------------------------------------------------------------
    def _instruction(self, index: int) -> dict:
        settings = WarmStartSettings.from_dict({**self._settings.to_dict(), "seed": warm_start_seed(self._settings.seed, index)})
        return make_instruction(self.space, settings, index)

    def _inject(self, trial: Trial) -> None:
        config = trial.config
        if protocol.has_instruction(config):
            return
        if self.space is None:
            self._warn("OHGW was given no search space, so it warm-starts nothing and passes every trial and "
                       "decision through unchanged. Ray Tune gives a scheduler no access to the Tuner's "
                       "param_space: pass it, OHGW(scheduler, param_space), or an ohgw.SearchSpace")
            return
        missing = [n for n in self.space.names if n not in config]
        if missing and self._settings.mode == "none":
            self._warn(f"OHGW (mode='none'): trial {trial.trial_id}'s config lacks {missing} of its space; "
                       "such trials are passed through unchanged")
            return
        if missing:
            raise ValueError(
                f"space: trial {trial.trial_id}'s config lacks the continuous hyper-parameters {missing} "
                f"(it has {sorted(config)}); every name in space must be a top-level key of param_space"
            )
        trial.set_config({**config, protocol.INSTRUCTION_KEY: self._instruction(self._n_added)})
        self._n_added += 1

    def _record(self, trial: Trial, result: dict | None) -> None:
        if not result or self.space is None or protocol.is_recorded(trial.config):
            return
        adjusted = protocol.adjusted_from_result(result, self.space.names)
        if adjusted is None:
            return
        trial.set_config(protocol.apply_adjusted(trial.config, adjusted))
        self._records[trial.trial_id] = adjusted

    def on_trial_add(self, tune_controller, trial: Trial) -> None:
        if trial.trial_id in self._reattach:
            # a trial restored with this scheduler's state: the wrapped scheduler knows it already
            self._reattach(trial)
            return
        self._inject(trial)
        self._seen.add(trial.trial_id)
        self.scheduler.on_trial_add(tune_controller, trial)

    def on_trial_result(self, tune_controller, trial: Trial, result: dict) -> str:
        self._record(trial, result)
        return super().on_trial_result(tune_controller, trial, result)

    def on_trial_complete(self, tune_controller, trial: Trial, result: dict) -> None:
        self._record(trial, result)
        self.scheduler.on_trial_complete(tune_controller, trial, result)

    def debug_string(self) -> str:
        s = self._settings
        if self.space is None:
            return f"OHGW(no space: pass-through) around {self.scheduler.debug_string()}"
        head = f"OHGW(mode={s.mode}, step_rule={s.step_rule}, eta_h={s.eta:g}, warm-started={len(self._records)})"
        return f"{head} around {self.scheduler.debug_string()}"

    # ---- state --------------------------------------------------------------------
    def get_state(self) -> dict[str, Any]:
        """Picklable state: counters, seen trial ids, warm-start records, the wrapped scheduler's snapshot
        (its bookkeeping and configuration), and this wrapper's configuration (settings, space)."""
        return {
            "n_added": self._n_added,
            "seen": sorted(self._seen),
            "records": self.records,
            "inner": snapshot(self.scheduler),
            "settings": self._settings.to_dict(),
            "space": None if self.space is None else self.space.to_dict(),
            "skipped": dict(self.skipped),
        }

    def set_state(self, state: dict[str, Any]) -> None:
        """Reload :meth:`get_state` into a fresh wrapper: the construction-time pickle, or one built with
        defaults (``OHGW(ASHAScheduler())``), which takes the saved configuration, as Ray's ``restore`` does.

        Trials that Tune re-adds afterwards are not injected again. For Ray's
        schedulers (ASHA, HyperBand, MedianStoppingRule) they are re-attached by id
        instead of being added to the wrapped scheduler a second time; a wrapped
        scheduler with its own ``get_state``/``set_state`` gets ``on_trial_add`` as
        usual and must recognise restored trial ids itself (PASHA does).
        """
        for key in ("n_added", "seen", "records", "inner"):
            if key not in state:
                raise ValueError(f"state: missing key {key!r}")
        inner = reload(self.scheduler, state["inner"])
        self._n_added = int(state["n_added"])
        self._seen = set(state["seen"])
        self._records = {k: {kk: dict(vv) for kk, vv in v.items()} for k, v in state["records"].items()}
        if "settings" in state:  # absent from states saved before the configuration was
            self._settings = WarmStartSettings.from_dict(state["settings"])
            self.space = None if state["space"] is None else SearchSpace.from_dict(state["space"])
            self.skipped = dict(state.get("skipped", {}))
        if state["inner"]["kind"] == "protocol":
            # such a scheduler (e.g. PASHA) recognises restored trial ids in its own on_trial_add
            self._reattach = Reattach()
        else:
            self._reattach = Reattach(self._seen, inner)
