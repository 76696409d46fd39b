"""Live OHGW metrics on Ray's metrics pipeline (``ray.util.metrics``): Prometheus, Grafana, the dashboard.

Every process records into Ray's own metrics agent; Prometheus scrapes each node's metrics export
port (Ray's service-discovery file lists them), and Ray prefixes every name with ``ray_``:
``ohgw_studies_done_total`` is queried as ``ray_ohgw_studies_done_total``. Ray adds its own
labels (``WorkerId``, ``NodeAddress``, ``SessionName``, ...): sum over them in PromQL, e.g.
``sum by (method) (ray_ohgw_studies_done_total)``. Names follow Prometheus' conventions
(counters end in ``_total``, durations in ``_seconds``; https://prometheus.io/docs/practices/naming/).

==============================================  =========  ====================================================
metric                                          kind       recorded by, when
==============================================  =========  ====================================================
``ohgw_studies_started_total``                  counter    the runner (driver), a study task submitted
``ohgw_studies_done_total``                     counter    the runner, a study's tables written
``ohgw_studies_failed_total``                   counter    the runner, a study task failed
``ohgw_warmstarts_total``                       counter    the trainable scaffold, a warm-start applied
``ohgw_warmstart_wall_seconds``                 histogram  the scaffold, that warm-start's wall time
``ohgw_warmstart_abs_hypergradient``            histogram  the study (Tune callback): |g_ψ| per ψ, search coords
``ohgw_warmstart_abs_step``                     histogram  the study: |Δu_ψ| = |u′_ψ − u_ψ| per ψ, search coords
``ohgw_trials_stopped_total``                   counter    the study: a scheduler STOP, per rung
``ohgw_trials_paused_total``                    counter    the study: a scheduler PAUSE, per rung
``ohgw_pasha_max_resource_epochs``              gauge      the study: PASHA's current max resource
``ohgw_pasha_epsilon``                          gauge      the study: PASHA's ε (its noise estimate)
``ohgw_study_time_to_target_wall_seconds``      gauge      the study: T@τ on the wall clock, once reached
``ohgw_study_time_to_target_compute_seconds``   gauge      the study: T@τ in compute seconds (warm-starts incl.)
``ohgw_study_time_to_target_epoch_equivalents`` gauge      the study: T@τ in epoch-equivalents
==============================================  =========  ====================================================

**Labels.** Every metric carries exactly the study's identity: ``experiment``, ``method`` and
``seed`` (:data:`STUDY_TAGS`). Two metrics add one *bounded* dimension that their meaning needs:
``psi`` (a hyper-parameter of the search space, a handful) and ``rung`` (a rung level in epochs,
at most ``max_t``). Nothing with unbounded cardinality is accepted: :func:`check_tags` rejects
unknown label keys (``trial_id``), values that look like ids (Tune trial ids, UUIDs, Ray's hex
ids), seeds that are not small non-negative integers (a trial's derived seed is an id in
disguise), and more than :data:`MAX_VALUES` distinct values of one label in one process
(Prometheus' guidance on cardinality: https://prometheus.io/docs/practices/instrumentation/#do-not-overuse-labels).

Outside Ray (``ray.is_initialized()`` false: the scaffold's ``run_epochs``, unit tests) every
``record_*`` call is a no-op. A study's tags reach its trials through :func:`tagged`, which wraps
the study's trainable so that the scaffold's warm-start record is labelled with the study that ran
it; a trainable run outside a study is labelled ``experiment="", method="", seed=""``.

>>> check_tags({"experiment": "asha_vs_ohgw-digits", "method": "asha+ohgw", "seed": 3})
{'experiment': 'asha_vs_ohgw-digits', 'method': 'asha+ohgw', 'seed': '3'}
>>> check_tags({"experiment": "e", "method": "asha", "seed": 0, "trial_id": "3f2a1_00004"})
Traceback (most recent call last):
ValueError: metric tag 'trial_id' is not allowed (allowed: experiment, method, seed, psi, rung): an unbounded label explodes Prometheus' series
"""

from __future__ import annotations

import functools
import logging
import math
import re
import threading
from collections.abc import Callable, Mapping
from typing import Any

logger = logging.getLogger(__name__)

STUDY_TAGS = ("experiment", "method", "seed")
PSI_TAG, RUNG_TAG = "psi", "rung"
ALLOWED_TAGS = (*STUDY_TAGS, PSI_TAG, RUNG_TAG)
MAX_VALUES = 1000  # distinct values of one label in one process
MAX_SEED = 100_000  # study seeds are 0..N-1; anything larger is an id, not a study seed
MAX_RUNG = 100_000
MAX_LEN = 120
# what an id looks like: Tune's trial ids (5 hex + _ + 5 digits), UUIDs, long hex runs (Ray ids, hashes)
_ID_PATTERNS = (
    re.compile(r"(?<![0-9a-f])[0-9a-f]{5}_\d{5}(?!\d)"),
    re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.I),
    re.compile(r"(?=[0-9a-f]*[a-f])(?=[0-9a-f]*\d)[0-9a-f]{12,}", re.I),
)
_PSI = re.compile(r"[A-Za-z_][A-Za-z0-9_.]{0,63}")

WALL_BUCKETS_S = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0)
ABS_BUCKETS = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 100.0)

# name → (kind, description, extra tag, histogram boundaries)
METRICS: dict[str, tuple[str, str, str | None, tuple[float, ...] | None]] = {
    "ohgw_studies_started_total": ("counter", "Studies (method, seed) submitted to the cluster", None, None),
    "ohgw_studies_done_total": ("counter", "Studies finished and exported to Parquet", None, None),
    "ohgw_studies_failed_total": ("counter", "Studies whose Ray task failed", None, None),
    "ohgw_warmstarts_total": ("counter", "OHGW warm-starts applied by trainables", None, None),
    "ohgw_warmstart_wall_seconds": ("histogram", "Wall time of one warm-start", None, WALL_BUCKETS_S),
    "ohgw_warmstart_abs_hypergradient": (
        "histogram", "|g| of one warm-start per hyper-parameter, search coordinates", PSI_TAG, ABS_BUCKETS),
    "ohgw_warmstart_abs_step": (
        "histogram", "|u' - u| of one warm-start per hyper-parameter, search coordinates", PSI_TAG, ABS_BUCKETS),
    "ohgw_trials_stopped_total": ("counter", "Trials the scheduler stopped, per rung (epochs)", RUNG_TAG, None),
    "ohgw_trials_paused_total": ("counter", "Trials the scheduler paused, per rung (epochs)", RUNG_TAG, None),
    "ohgw_pasha_max_resource_epochs": ("gauge", "PASHA's current maximum resource", None, None),
    "ohgw_pasha_epsilon": ("gauge", "PASHA's ranking-noise estimate epsilon", None, None),
    "ohgw_study_time_to_target_wall_seconds": ("gauge", "T@tau of the study, wall clock", None, None),
    "ohgw_study_time_to_target_compute_seconds": (
        "gauge", "T@tau of the study, compute seconds incl. warm-starts", None, None),
    "ohgw_study_time_to_target_epoch_equivalents": ("gauge", "T@tau of the study, epoch-equivalents", None, None),
}  # fmt: skip

_lock = threading.Lock()
_seen: dict[str, set[str]] = {}
_objects: dict[str, Any] = {}
_current: dict[str, str] = {"experiment": "", "method": "", "seed": ""}
_warned: set[str] = set()


def _looks_like_id(value: str) -> bool:
    return any(p.search(value) for p in _ID_PATTERNS)


def _check_value(key: str, value: Any) -> str:
    if key == "seed":
        if value == "":
            return ""
        try:
            seed = int(value)
        except (TypeError, ValueError):
            raise ValueError(f"metric tag 'seed' must be a study seed (an integer), got {value!r}") from None
        if isinstance(value, bool) or seed != float(value) or not 0 <= seed < MAX_SEED:
            raise ValueError(f"metric tag 'seed' must be a study seed in [0, {MAX_SEED}), got {value!r}: "
                             "a trial's derived seed or an id has unbounded cardinality")
        return str(seed)
    if key == RUNG_TAG:
        if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value) \
                or not 0 < int(value) <= MAX_RUNG:
            raise ValueError(f"metric tag 'rung' must be a rung level in epochs (1..{MAX_RUNG}), got {value!r}")
        return str(int(value))
    if not isinstance(value, str):
        raise ValueError(f"metric tag {key!r} must be a string, got {type(value).__name__} {value!r}")
    if key == PSI_TAG and not _PSI.fullmatch(value):
        raise ValueError(f"metric tag 'psi' must be a hyper-parameter name, got {value!r}")
    if len(value) > MAX_LEN:
        raise ValueError(f"metric tag {key!r} is longer than {MAX_LEN} characters: {value[:40]!r}...")
    if _looks_like_id(value):
        raise ValueError(f"metric tag {key!r} = {value!r} looks like an id (trial id, UUID, hex): "
                         "an unbounded label explodes Prometheus' series")
    return value


def check_tags(tags: Mapping[str, Any], extra: str | None = None) -> dict[str, str]:
    """The tags as Ray wants them (strings), or a ValueError naming the label that is not bounded.

    ``tags`` must hold :data:`STUDY_TAGS` (``extra`` too, when given: ``psi`` or ``rung``); a label
    outside :data:`ALLOWED_TAGS`, an id-like value, or a label past :data:`MAX_VALUES` distinct
    values in this process is refused.
    """
    for key in tags:
        if key not in ALLOWED_TAGS:
            raise ValueError(f"metric tag {key!r} is not allowed (allowed: {', '.join(ALLOWED_TAGS)}): "
                             "an unbounded label explodes Prometheus' series")
    need = (*STUDY_TAGS, extra) if extra else STUDY_TAGS
    missing = [k for k in need if k not in tags]
    unexpected = [k for k in tags if k not in need]
    if missing or unexpected:
        raise ValueError(f"metric tags must be exactly {', '.join(need)}; missing {missing}, unexpected {unexpected}")
    out = {k: _check_value(k, tags[k]) for k in need}
    with _lock:
        for k, v in out.items():
            seen = _seen.setdefault(k, set())
            if v not in seen and len(seen) >= MAX_VALUES:
                raise ValueError(f"metric tag {k!r} has reached {MAX_VALUES} distinct values in this process: "
                                 "its cardinality is unbounded")
        for k, v in out.items():
            _seen[k].add(v)
    return out


def study_tags(experiment: str, method: str, seed: int) -> dict[str, str]:
    """The checked tags of one study (the runner calls this for every study before running any)."""
    return check_tags({"experiment": experiment, "method": method, "seed": seed})


def _metric(name: str):
    kind, description, extra, bounds = METRICS[name]
    with _lock:
        obj = _objects.get(name)
        if obj is None:
            from ray.util import metrics as rm

            keys = (*STUDY_TAGS, extra) if extra else STUDY_TAGS
            if kind == "counter":
                obj = rm.Counter(name, description, tag_keys=keys)
            elif kind == "gauge":
                obj = rm.Gauge(name, description, tag_keys=keys)
            else:
                obj = rm.Histogram(name, description, boundaries=list(bounds), tag_keys=keys)
            _objects[name] = obj
    return obj


def _enabled() -> bool:
    try:
        import ray
    except ImportError:  # pragma: no cover - ray is a dependency
        return False
    return ray.is_initialized()


def record(name: str, value: float, tags: Mapping[str, Any]) -> bool:
    """Add ``value`` to a counter, set a gauge or observe into a histogram; False when not recorded.

    Tags are checked first (a ValueError names the offending label). Not recorded: outside Ray,
    or a non-finite value.
    """
    if name not in METRICS:
        raise ValueError(f"unknown metric {name!r}; known: {', '.join(METRICS)}")
    kind, _, extra, _ = METRICS[name]
    checked = check_tags(tags, extra)
    value = float(value)
    if not math.isfinite(value) or (kind == "counter" and value < 0):
        return False
    if not _enabled():
        return False
    obj = _metric(name)
    if kind == "counter":
        obj.inc(value, tags=checked)
    elif kind == "gauge":
        obj.set(value, tags=checked)
    else:
        obj.observe(value, tags=checked)
    return True


def safely(name: str, value: float, tags: Mapping[str, Any]) -> bool:
    """:func:`record` for call sites that must never fail (a trial, a study): a problem is logged once."""
    try:
        return record(name, value, tags)
    except Exception as e:  # noqa: BLE001 - telemetry must not end a trial or a study
        if name not in _warned:
            _warned.add(name)
            logger.warning("metric %s not recorded: %s", name, e)
        return False


# ---- the study's tags inside its trials ---------------------------------------------------------------
def current_tags() -> dict[str, str]:
    """The study tags of the trainable running in this process ('' outside a study)."""
    with _lock:
        return dict(_current)


class _Tagged:
    """A trainable run with a study's tags (a module-level class: pickled by reference, no lock inside)."""

    def __init__(self, fn: Callable[[dict], Any], tags: dict[str, str]) -> None:
        self.fn, self.tags = fn, tags
        functools.update_wrapper(self, fn)

    def __call__(self, config: dict) -> Any:
        with _lock:
            saved = dict(_current)
            _current.update(self.tags)
        try:
            return self.fn(config)
        finally:
            with _lock:
                _current.clear()
                _current.update(saved)


def tagged(fn: Callable[[dict], Any], experiment: str, method: str, seed: int) -> Callable[[dict], Any]:
    """``fn`` (a Tune function trainable) run with this study's tags as :func:`current_tags`.

    >>> run = tagged(lambda config: current_tags(), "exp", "asha+ohgw", 2)
    >>> run({}), current_tags()["method"]
    ({'experiment': 'exp', 'method': 'asha+ohgw', 'seed': '2'}, '')
    """
    return _Tagged(fn, study_tags(experiment, method, seed))


def record_warm_start(record_: Any) -> None:
    """The scaffold's one call after a warm-start: count it and observe its wall time (no-op if None)."""
    if record_ is None:
        return
    tags = current_tags()
    safely("ohgw_warmstarts_total", 1.0, tags)
    safely("ohgw_warmstart_wall_seconds", float(getattr(record_, "wall_s", float("nan"))), tags)


__all__ = ["METRICS", "STUDY_TAGS", "check_tags", "current_tags", "record", "record_warm_start", "safely",
           "study_tags", "tagged"]
