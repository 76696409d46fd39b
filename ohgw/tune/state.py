"""Snapshot and reload a Tune scheduler's state, so that ``Tuner.restore`` keeps it.

Tune pickles the scheduler once, at ``Tuner()`` construction, and never saves it
again: after ``Tuner.restore`` every rung is empty (ray-project/ray#30838).
:func:`snapshot` turns a scheduler's bookkeeping into a picklable dict keyed by
trial *ids*; :func:`reload` puts it back into a freshly unpickled scheduler and
returns a :class:`Reattach` that gives each restored :class:`~ray.tune.experiment.Trial`
object its place again when Tune re-adds it (trial ids survive a restore,
trial objects do not).

What is restored, by kind:

- ``protocol``: any scheduler with ``get_state()`` / ``set_state(state)`` (our
  PASHA, :class:`ohgw.tune.wrapper.OHGW`): exactly what those methods save. Tune's
  ``on_trial_add`` for each re-added trial still reaches such a scheduler, which
  must recognise a restored trial id itself (PASHA does).
- ``asha`` (``ASHAScheduler``/``AsyncHyperBandScheduler``): every rung's recorded
  values, each live trial's bracket, the stop counter. Exact.
- ``hyperband`` (``HyperBandScheduler``): bands, brackets (n, r, halvings,
  progress), each bracket's live trials with their last time/metric values, the
  trials waiting to be unpaused, the current bracket. Restored trials map back by
  id. Not restorable: a trial that was PAUSED at a milestone comes back PENDING
  (Tune's own restore does that) and may run one extra iteration before the
  bracket pauses it again.
- ``median`` (``MedianStoppingRule``): each trial's (time, metric) history, the
  stopped set and the last pause times. Exact for the decision rule.
- ``stateless`` (``FIFOScheduler``): nothing to restore.

**Configuration too (Ray's contract).** Ray's own ``save``/``restore`` bring back a scheduler's
whole configuration, so that ``ASHAScheduler().restore(path)`` decides like the scheduler that
saved. A snapshot of an ``asha``, ``hyperband`` or ``median`` scheduler therefore also holds
its configuration (:data:`CONFIG_ATTRS`: metric, mode, time attribute, max_t, reduction
factor, grace period, ...; for ASHA each bracket's rungs and reduction factor), and
:func:`reload` puts it back first: a snapshot loads into a default-built scheduler of the
same type. A HyperBand is rebuilt with its public constructor from the saved arguments (its
bracket sizes are closures over ``max_t``); a *subclass* of ``HyperBandScheduler`` with another
configuration is refused with a ValueError naming the differences, as is any other type.
``protocol`` schedulers restore their own configuration: PASHA's ``set_state`` takes the saved
metric, mode, max_t, grace period, reduction factor, progressiveness and ``max_concurrent``, so a
snapshot loads into a default-built ``PASHA()`` too.
Version-1 snapshots (no configuration) still load, bookkeeping only.
- ``unsupported`` (anything else, e.g. PBT): nothing is restored; the restored
  run starts that scheduler empty, exactly as plain Tune does.

**Ray versions.** The ``asha``, ``hyperband`` and ``median`` strategies read and write
Ray's private attributes (:data:`PRIVATE_ATTRS`, about 30 of them), which Ray may rename
in any release. They are checked against the installed Ray 2.60 and allowed only for
:data:`SUPPORTED_RAY`; outside it, or if an attribute is missing, :func:`snapshot`,
:func:`reload` and :func:`check_supported` raise :class:`UnsupportedRayVersion` (a
``RuntimeError`` naming the version and the range) instead of saving or restoring a
wrong state. ``protocol``, ``stateless`` and ``unsupported`` schedulers need no check.
Widen the range only after ``tests/test_tune_state_version.py`` and the restore tests
of ``tests/test_scheduler_wrapper.py`` pass on the new Ray.
"""

from __future__ import annotations

import copy
import pickle
from collections.abc import Callable
from typing import Any

import ray
from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version
from ray.tune.schedulers import (
    AsyncHyperBandScheduler,
    FIFOScheduler,
    HyperBandScheduler,
    MedianStoppingRule,
    TrialScheduler,
)

STATE_VERSION = 2
READABLE_VERSIONS = (1, 2)  # version 1: no configuration in the snapshot

# the Ray releases whose private scheduler attributes this module was checked against
SUPPORTED_RAY = (">=2.60", "<2.61")
# what the asha / hyperband / median strategies read and write, per object
PRIVATE_ATTRS = {
    "asha": {"scheduler": ("_brackets", "_trial_info", "_counter", "_num_stopped"), "bracket": ("_rungs",)},
    "hyperband": {
        "scheduler": ("_hyperbands", "_trial_info", "_state", "_num_stopped", "_time_attr", "_metric",
                      "_create_bracket"),
        "bracket": ("_n", "_n0", "_r", "_r0", "_cumul_r", "_halves", "_total_work", "_completed_progress",
                    "stop_last_trials", "is_being_processed", "_live_trials", "_all_trials", "trials_to_unpause"),
    },
    "median": {"scheduler": ("_results", "_stopped_trials", "_last_pause", "_time_attr", "_metric"), "bracket": ()},
}
# the configuration a snapshot keeps, per kind: scheduler attributes (and ASHA bracket attributes)
CONFIG_ATTRS = {
    "asha": {"scheduler": ("_time_attr", "_metric", "_mode", "_metric_op", "_max_t", "_reduction_factor",
                           "_stop_last_trials"), "bracket": ("rf", "_stop_last_trials")},
    "hyperband": {"scheduler": ("_time_attr", "_metric", "_mode", "_metric_op", "_max_t_attr", "_eta",
                                "_stop_last_trials"), "bracket": ()},
    "median": {"scheduler": ("_time_attr", "_metric", "_mode", "_worst", "_compare_op", "_grace_period",
                             "_min_samples_required", "_min_time_slice", "_hard_stop"), "bracket": ()},
}
for _kind, _attrs in CONFIG_ATTRS.items():  # check_supported checks these as well
    PRIVATE_ATTRS[_kind] = {
        part: PRIVATE_ATTRS[_kind][part] + tuple(a for a in _attrs[part] if a not in PRIVATE_ATTRS[_kind][part])
        for part in ("scheduler", "bracket")
    }


class UnsupportedRayVersion(RuntimeError):
    """The installed Ray is outside :data:`SUPPORTED_RAY`, or lacks a private attribute the state needs."""


def ray_version_supported(version: str | None = None) -> bool:
    """Whether ``version`` (default: the installed ``ray.__version__``) is in :data:`SUPPORTED_RAY`."""
    try:
        v = Version(ray.__version__ if version is None else version)
    except InvalidVersion:
        return False
    return SpecifierSet(",".join(SUPPORTED_RAY)).contains(v, prereleases=True)


def _brackets_of(scheduler: TrialScheduler, kind: str) -> list:
    if kind == "asha":
        return list(getattr(scheduler, "_brackets", []))[:1]
    if kind == "hyperband" and callable(getattr(scheduler, "_create_bracket", None)):
        return [scheduler._create_bracket(0)]  # a throw-away bracket: the scheduler is not changed
    return []


def check_supported(scheduler: TrialScheduler) -> None:
    """Raise :class:`UnsupportedRayVersion` if ``scheduler``'s state cannot be saved and restored exactly here.

    Only the strategies that use Ray's private attributes (asha, hyperband, median) are checked.
    """
    kind = kind_of(scheduler)
    if kind not in PRIVATE_ATTRS:
        return
    name = type(scheduler).__name__
    if not ray_version_supported():
        raise UnsupportedRayVersion(
            f"state: saving/restoring a {name} reads Ray's private scheduler attributes, checked only for "
            f"ray {','.join(SUPPORTED_RAY)}; this is ray {ray.__version__}. Use a supported Ray, or pass "
            "OHGW.callbacks(restore_state=False) (Tuner.restore then starts the scheduler empty, as plain Tune does)"
        )
    need = PRIVATE_ATTRS[kind]
    missing = [a for a in need["scheduler"] if not hasattr(scheduler, a)]
    for b in _brackets_of(scheduler, kind):
        missing += [f"bracket.{a}" for a in need["bracket"] if not hasattr(b, a)]
    if missing:
        raise UnsupportedRayVersion(
            f"state: this ray {ray.__version__} {name} lacks the attributes {missing} that its saved state needs; "
            "pass OHGW.callbacks(restore_state=False) to run without restoring it"
        )


def has_state_protocol(scheduler: Any) -> bool:
    """True if ``scheduler`` has callable ``get_state`` and ``set_state``."""
    return callable(getattr(scheduler, "get_state", None)) and callable(getattr(scheduler, "set_state", None))


def kind_of(scheduler: TrialScheduler) -> str:
    """Which restore strategy applies: protocol, asha, hyperband, median, stateless or unsupported."""
    if has_state_protocol(scheduler):
        return "protocol"
    if isinstance(scheduler, AsyncHyperBandScheduler):
        return "asha"
    if isinstance(scheduler, HyperBandScheduler):
        return "hyperband"
    if isinstance(scheduler, MedianStoppingRule):
        return "median"
    if type(scheduler) is FIFOScheduler:
        return "stateless"
    return "unsupported"


class Reattach:
    """Puts restored Trial objects back into a reloaded scheduler, one at a time, by id."""

    def __init__(self, pending: set[str] | None = None, attach: Callable[[Any], None] | None = None) -> None:
        self.pending: set[str] = set(pending or ())
        self._attach = attach

    def __contains__(self, trial_id: str) -> bool:
        return trial_id in self.pending

    def __call__(self, trial) -> None:
        self.pending.discard(trial.trial_id)
        if self._attach is not None:
            self._attach(trial)


# ---- ASHA ----------------------------------------------------------------------------
def _asha_get(s: AsyncHyperBandScheduler) -> dict:
    index = {id(b): i for i, b in enumerate(s._brackets)}
    return {
        "trial_info": {tid: index[id(b)] for tid, b in s._trial_info.items()},
        "rungs": [[(m, dict(rec)) for m, rec in b._rungs] for b in s._brackets],
        "counter": s._counter,
        "num_stopped": s._num_stopped,
    }


def _asha_set(s: AsyncHyperBandScheduler, st: dict) -> Reattach:
    if len(st["rungs"]) != len(s._brackets):
        raise ValueError(f"state: ASHA snapshot has {len(st['rungs'])} brackets, the scheduler {len(s._brackets)}")
    for b, rungs in zip(s._brackets, st["rungs"]):
        b._rungs = [(m, dict(rec)) for m, rec in rungs]
    s._trial_info = {tid: s._brackets[i] for tid, i in st["trial_info"].items()}
    s._counter = st["counter"]
    s._num_stopped = st["num_stopped"]
    return Reattach()


# ---- HyperBand -----------------------------------------------------------------------
_BRACKET_FIELDS = ("_n", "_n0", "_r", "_r0", "_cumul_r", "_halves", "_total_work", "_completed_progress")


def _slim(result: dict | None, keys: tuple[str, ...]) -> dict | None:
    if result is None:
        return None
    return {k: result[k] for k in keys if k in result}


def _hyperband_get(s: HyperBandScheduler) -> dict:
    keys = tuple(k for k in (s._time_attr, s._metric) if k)
    where: dict[int, tuple[int, int]] = {}
    bands = []
    for bi, band in enumerate(s._hyperbands):
        out = []
        for k, b in enumerate(band):
            if b is None:
                out.append(None)
                continue
            where[id(b)] = (bi, k)
            out.append(
                {
                    **{f: getattr(b, f) for f in _BRACKET_FIELDS},
                    "stop_last_trials": b.stop_last_trials,
                    "is_being_processed": b.is_being_processed,
                    "live": [(t.trial_id, _slim(r, keys)) for t, r in b._live_trials.items()],
                    "all": [t.trial_id for t in b._all_trials],
                    "to_unpause": sorted(t.trial_id for t in b.trials_to_unpause),
                }
            )
        bands.append(out)
    current = s._state["bracket"]
    return {
        "bands": bands,
        "trial_info": {t.trial_id: where[id(b)] for t, (b, _band) in s._trial_info.items() if id(b) in where},
        "current": where.get(id(current)) if current is not None else None,
        "band_idx": s._state["band_idx"],
        "num_stopped": s._num_stopped,
    }


def _hyperband_set(s: HyperBandScheduler, st: dict) -> Reattach:
    brackets: dict[tuple[int, int], Any] = {}
    s._hyperbands = []
    for bi, band in enumerate(st["bands"]):
        out = []
        for k, spec in enumerate(band):
            if spec is None:
                out.append(None)
                continue
            b = s._create_bracket(k)
            for f in _BRACKET_FIELDS:
                setattr(b, f, spec[f])
            b.stop_last_trials = spec["stop_last_trials"]
            b.is_being_processed = spec["is_being_processed"]
            b._live_trials, b._all_trials, b.trials_to_unpause = {}, [], set()
            brackets[(bi, k)] = b
            out.append(b)
        s._hyperbands.append(out)
    s._state = {"bracket": brackets[tuple(st["current"])] if st["current"] is not None else None,
                "band_idx": st["band_idx"]}
    s._num_stopped = st["num_stopped"]
    s._trial_info = {}
    resolved: dict[str, Any] = {}

    def attach(trial) -> None:
        tid = trial.trial_id
        resolved[tid] = trial
        pos = st["trial_info"].get(tid)
        if pos is None:
            return
        pos = tuple(pos)
        b, spec = brackets[pos], st["bands"][pos[0]][pos[1]]
        # rebuild in the snapshot's order, with the trials re-added so far
        b._live_trials = {resolved[t]: r for t, r in spec["live"] if t in resolved}
        b._all_trials = [resolved[t] for t in spec["all"] if t in resolved]
        b.trials_to_unpause = {resolved[t] for t in spec["to_unpause"] if t in resolved}
        s._trial_info[trial] = (b, pos[0])

    return Reattach(set(st["trial_info"]), attach)


# ---- MedianStoppingRule --------------------------------------------------------------
def _median_get(s: MedianStoppingRule) -> dict:
    keys = tuple(k for k in (s._time_attr, s._metric) if k)
    return {
        "results": {t.trial_id: [_slim(r, keys) for r in rs] for t, rs in s._results.items()},
        "stopped": sorted(t.trial_id for t in s._stopped_trials),
        "last_pause": {t.trial_id: v for t, v in s._last_pause.items()},
    }


def _median_set(s: MedianStoppingRule, st: dict) -> Reattach:
    s._results.clear()
    s._stopped_trials.clear()
    s._last_pause.clear()
    stopped = set(st["stopped"])

    def attach(trial) -> None:
        tid = trial.trial_id
        if tid in st["results"]:
            s._results[trial] = [dict(r) for r in st["results"][tid]]
        if tid in stopped:
            s._stopped_trials.add(trial)
        if tid in st["last_pause"]:
            s._last_pause[trial] = st["last_pause"][tid]

    ids = set(st["results"]) | stopped | set(st["last_pause"])
    return Reattach(ids, attach)


# ---- configuration (module doc) ----------------------------------------------------------------------
def _config_get(s: TrialScheduler, kind: str) -> dict | None:
    attrs = CONFIG_ATTRS.get(kind)
    if attrs is None:
        return None
    out: dict[str, Any] = {"scheduler": {a: getattr(s, a) for a in attrs["scheduler"]}}
    if kind == "asha":
        out["brackets"] = [{a: getattr(b, a) for a in attrs["bracket"]} for b in s._brackets]
    return out


def _config_set(s: TrialScheduler, kind: str, config: dict) -> None:
    """Give ``s`` the saved configuration (before its bookkeeping is loaded)."""
    saved = config["scheduler"]
    if kind == "hyperband":
        if _config_get(s, kind) == config:
            return
        if type(s) is not HyperBandScheduler:
            now = _config_get(s, kind)["scheduler"]
            diff = {a: (saved[a], now[a]) for a in saved if saved[a] != now[a]}
            raise ValueError(
                f"state: this {type(s).__name__} is configured unlike the one saved ({{attribute: (saved, here)}} "
                f"{diff}); build it with the same arguments before restoring"
            )
        # its bracket sizes are closures over max_t: re-run the public constructor on it
        HyperBandScheduler.__init__(s, time_attr=saved["_time_attr"], metric=saved["_metric"], mode=saved["_mode"],
                                    max_t=saved["_max_t_attr"], reduction_factor=saved["_eta"],
                                    stop_last_trials=saved["_stop_last_trials"])
        s._metric_op = saved["_metric_op"]
        return
    for a, v in saved.items():
        setattr(s, a, v)
    if kind == "asha":
        template = s._brackets[0]
        brackets = []
        for spec in config["brackets"]:
            b = copy.copy(template)
            for a, v in spec.items():
                setattr(b, a, v)
            b._rungs = [(m, {}) for m, _ in template._rungs]  # replaced by the snapshot's rungs
            brackets.append(b)
        s._brackets = brackets


# ---- public --------------------------------------------------------------------------
def snapshot(scheduler: TrialScheduler) -> dict:
    """A picklable snapshot of ``scheduler``'s state and configuration (see the module doc)."""
    check_supported(scheduler)
    kind = kind_of(scheduler)
    if kind == "protocol":
        state: Any = scheduler.get_state()
    elif kind == "asha":
        state = _asha_get(scheduler)
    elif kind == "hyperband":
        state = _hyperband_get(scheduler)
    elif kind == "median":
        state = _median_get(scheduler)
    else:
        state = None
    return {"version": STATE_VERSION, "kind": kind, "type": type(scheduler).__name__, "state": state,
            "config": _config_get(scheduler, kind)}


def reload(scheduler: TrialScheduler, snap: dict) -> Reattach:
    """Load a :func:`snapshot` into ``scheduler``: a fresh one of the same type, default-built or not
    (its configuration becomes the saved one; see the module doc)."""
    if not isinstance(snap, dict) or snap.get("version") not in READABLE_VERSIONS:
        raise ValueError(f"state: not a scheduler snapshot of version {'/'.join(map(str, READABLE_VERSIONS))}")
    kind = kind_of(scheduler)
    if snap["kind"] != kind or snap["type"] != type(scheduler).__name__:
        raise ValueError(
            f"state: snapshot of a {snap['type']} ({snap['kind']}) cannot load into "
            f"a {type(scheduler).__name__} ({kind})"
        )
    check_supported(scheduler)
    if snap.get("config") is not None:
        _config_set(scheduler, kind, snap["config"])
    if kind == "protocol":
        scheduler.set_state(snap["state"])
        return Reattach()
    if kind == "asha":
        return _asha_set(scheduler, snap["state"])
    if kind == "hyperband":
        return _hyperband_set(scheduler, snap["state"])
    if kind == "median":
        return _median_set(scheduler, snap["state"])
    return Reattach()


class StateFile:
    """``save``/``restore`` to a file through the class's own ``get_state``/``set_state``."""

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as f:
            pickle.dump(self.get_state(), f)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as f:
            self.set_state(pickle.load(f))
