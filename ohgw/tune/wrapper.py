"""OHGW: a Tune scheduler that adds one-shot hyper-gradient warm-starts to any other.

``scheduler=OHGW(ASHAScheduler(...), space, WarmStartSettings(...))`` in an ordinary
``tune.Tuner`` is the whole change on the driver side. Every key it exchanges with the
trainable is :mod:`ohgw.protocol`'s. The wrapper

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
   that Ray would leave PAUSED forever; see :mod:`ohgw.tune.delegating`);
4. **saves its state** and the wrapped scheduler's (:meth:`get_state` /
   :meth:`set_state`, see :mod:`ohgw.tune.state`), which
   :class:`ohgw.tune.callbacks.SchedulerStateCallback` checkpoints with the experiment.

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
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np
from ray.tune.experiment import Trial
from ray.tune.schedulers import TrialScheduler

from ohgw import protocol
from ohgw.space import SearchSpace
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


class OHGW(StateFile, DelegatingScheduler):
    """Wrap ``scheduler`` so that every trial is warm-started once, then scheduled as before.

    Args:
        scheduler: any Tune ``TrialScheduler`` (ASHA, HyperBand, PASHA, FIFO, MedianStoppingRule, ...).
        space: the :class:`~ohgw.space.SearchSpace` of continuous hyper-parameters to
            warm-start; each must be a top-level key of every trial's config.
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
        space: SearchSpace,
        settings: WarmStartSettings | None = None,
        **overrides: Any,
    ) -> None:
        if not isinstance(scheduler, TrialScheduler):
            raise ValueError(
                f"scheduler must be a ray.tune TrialScheduler instance, got {type(scheduler).__name__}"
            )
        if isinstance(scheduler, OHGW):
            raise ValueError("scheduler is already wrapped by OHGW; wrap a scheduler once")
        if not isinstance(space, SearchSpace):
            raise ValueError(f"space must be an ohgw.SearchSpace, got {type(space).__name__}")
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
        self.space = space
        self._n_added = 0  # trials injected so far: the next trial's creation index
        self._seen: set[str] = set()  # every trial id passed to on_trial_add
        self._records: dict[str, dict] = {}  # trial id -> {"x", "x_prime", "g"}
        self._reattach = Reattach()  # restored trials waiting to be re-added

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
        missing = [n for n in self.space.names if n not in config]
        if missing:
            raise ValueError(
                f"space: trial {trial.trial_id}'s config lacks the continuous hyper-parameters {missing} "
                f"(it has {sorted(config)}); every name in space must be a top-level key of param_space"
            )
        trial.set_config({**config, protocol.INSTRUCTION_KEY: self._instruction(self._n_added)})
        self._n_added += 1

    def _record(self, trial: Trial, result: dict | None) -> None:
        if not result or protocol.is_recorded(trial.config):
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
        head = f"OHGW(mode={s.mode}, step_rule={s.step_rule}, eta_h={s.eta:g}, warm-started={len(self._records)})"
        return f"{head} around {self.scheduler.debug_string()}"

    # ---- state --------------------------------------------------------------------
    def get_state(self) -> dict[str, Any]:
        """Picklable state: counters, seen trial ids, warm-start records, the wrapped scheduler's snapshot."""
        return {
            "n_added": self._n_added,
            "seen": sorted(self._seen),
            "records": self.records,
            "inner": snapshot(self.scheduler),
        }

    def set_state(self, state: dict[str, Any]) -> None:
        """Reload :meth:`get_state` into a fresh wrapper (the construction-time pickle).

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
        if state["inner"]["kind"] == "protocol":
            # such a scheduler (e.g. PASHA) recognises restored trial ids in its own on_trial_add
            self._reattach = Reattach()
        else:
            self._reattach = Reattach(self._seen, inner)
