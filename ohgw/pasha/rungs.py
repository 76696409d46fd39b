"""Promotion-type successive-halving bookkeeping with PASHA's progressive max resource.

Pure Python (no Ray): :class:`PashaRungs` takes a stream of ``(trial_id, resource, value)``
reports and "a worker is free" events and returns the decisions of syne-tune 0.13.0's
``PASHARungSystem`` (``progressive=True``) or ``PromotionRungSystem`` (``progressive=False``),
with one bracket. :mod:`ohgw.pasha` maps it onto Ray Tune.

>>> r = PashaRungs(max_t=27, grace_period=1, reduction_factor=3, mode="max")
>>> r.levels, r.current_max_t
([1, 3, 9], 3)
>>> r.start("a"); r.report("a", 1, 0.5)
'pause'
>>> r.start("b"); r.report("b", 1, 0.7)
'pause'
>>> r.schedule()  # best entry of rung 1 beats the cut: promote b from 1 to 3
('b', 1, 3)
>>> r.report("b", 2, 0.8), r.report("b", 3, 0.9)
('continue', 'pause')

Where the reference and the plain-language description of PASHA differ, this follows the
reference (syne-tune 0.13.0, ``hyperband_pasha.py`` / ``hyperband_promotion.py``):

- The initial max resource is the second rung level only with >= 3 rung levels. With exactly
  two rung levels the reference starts at the *first* level and compares the lowest rung with
  the highest one, so it never promotes and never grows; this class does the same (and
  :mod:`ohgw.pasha` warns). With a single rung level the reference crashes, so PASHA with
  ``progressive=True`` rejects it.
- The ranking check and the eps update run on every report below ``max_t``, not only at rung
  entries; after the last rung the max resource becomes ``max_t`` and the two rungs compared
  stay the two highest ones.
- eps pairs: each unordered pair of trials counts once, at the highest epoch of the window
  where both have a result, oriented by the order in which the trials started (which only
  matters for tied values). The reference means the same (it keeps a ``seen_pairs`` set), but
  it iterates a Python ``set`` of string ids per epoch and remembers *ordered* pairs, so a pair
  whose hash order differs between two epochs is counted twice; its eps, and on some result
  streams its decisions, change with PYTHONHASHSEED. The golden trace
  (``scripts/make_pasha_golden.py``) runs the reference with start-ordered sets, which makes
  it count exactly as we do.
"""

from __future__ import annotations

import bisect
import math
from typing import Any

import numpy as np

MODES = ("min", "max")
EPS_PERCENTILE = 90


def rung_levels(max_t: int, grace_period: int, reduction_factor: float) -> list[int]:
    """``round(grace_period * reduction_factor**k) < max_t`` for k = 0, 1, ... (syne-tune's rule).

    >>> rung_levels(27, 1, 3)
    [1, 3, 9]
    >>> rung_levels(100, 1, 4)
    [1, 4, 16, 64]
    """
    validate(max_t, grace_period, reduction_factor)
    k = 0
    while grace_period * np.power(reduction_factor, k) < max_t:
        k += 1
    levels = sorted({int(round(grace_period * np.power(reduction_factor, j))) for j in range(k)})
    return [x for x in levels if x < max_t]


def promotion_quantiles(levels: list[int], max_t: int) -> list[float]:
    """q_j = r_j / r_{j+1}, with ``max_t`` as the last r."""
    return [x / y for x, y in zip(levels, levels[1:] + [max_t])]


def validate(max_t: Any, grace_period: Any, reduction_factor: Any, mode: Any = "max") -> None:
    """A ValueError naming the argument for each bad input."""
    if not _is_positive_int(grace_period):
        raise ValueError(f"grace_period must be a positive integer, got {grace_period!r}")
    if not _is_positive_int(max_t):
        raise ValueError(f"max_t must be a positive integer, got {max_t!r}")
    if max_t <= grace_period:
        raise ValueError(f"max_t must be greater than grace_period, got max_t={max_t}, grace_period={grace_period}")
    if isinstance(reduction_factor, bool) or not isinstance(reduction_factor, (int, float)) or not reduction_factor > 1:
        raise ValueError(f"reduction_factor must be a number > 1, got {reduction_factor!r}")
    if mode not in MODES:
        raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")


def _is_positive_int(x: Any) -> bool:
    return not isinstance(x, bool) and isinstance(x, (int, np.integer)) and x >= 1


class _Rung:
    """Entries ``[trial_id, value, promoted]`` sorted best first; ties keep insertion order."""

    __slots__ = ("level", "prom_quant", "sign", "keys", "entries", "ids")

    def __init__(self, level: int, prom_quant: float, mode: str):
        self.level = level
        self.prom_quant = prom_quant
        self.sign = 1.0 if mode == "min" else -1.0
        self.keys: list[float] = []
        self.entries: list[list[Any]] = []
        self.ids: set[str] = set()

    def add(self, trial_id: str, value: float, promoted: bool = False) -> None:
        key = self.sign * value
        pos = bisect.bisect_right(self.keys, key)  # behind equal values, like SortedList.add
        self.keys.insert(pos, key)
        self.entries.insert(pos, [trial_id, value, promoted])
        self.ids.add(trial_id)

    def pop(self, pos: int) -> list[Any]:
        self.keys.pop(pos)
        entry = self.entries.pop(pos)
        self.ids.discard(entry[0])
        return entry

    def quantile(self) -> float | None:
        """numpy's linear quantile at q (min mode) or 1 - q (max mode); None below 2 entries.

        Same arithmetic as syne-tune's ``Rung.quantile`` so that cuts are bit-identical.
        """
        n = len(self.entries)
        if n < 2:
            return None
        is_min = self.sign > 0
        q = self.prom_quant if is_min else 1 - self.prom_quant
        virt_index = (n - 1) * q + 1
        index = int(virt_index)
        frac = virt_index - index
        if is_min:
            left, g = index - 1, frac
        else:
            left, g = n - index - 1, 1 - frac
        v0, v1 = self.entries[left][1], self.entries[left + 1][1]
        return g * v1 + (1 - g) * v0


def _crisscross(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Row-wise: did the pair's order at the last column reverse at an earlier column and, still
    earlier, return to the same order? ``first``/``second`` are (pairs, epochs 1..h) arrays."""
    cond = first[:, -1] > second[:, -1]
    if first.shape[1] < 3:
        return np.zeros(first.shape[0], dtype=bool)
    earlier = first[:, :-1] > second[:, :-1]
    diff = earlier != cond[:, None]
    same_at_or_below = np.cumsum(~diff, axis=1) > 0
    return np.any(diff[:, 1:] & same_at_or_below[:, :-1], axis=1)


class PashaRungs:
    """Rung bookkeeping of promotion-type ASHA, plus PASHA's progressive max resource.

    Args:
        max_t: Largest resource (epochs). Not a rung level; a report at ``>= max_t`` stops.
        grace_period: Lowest rung level r_min.
        reduction_factor: eta; rung levels are ``round(r_min * eta**k) < max_t``.
        mode: "min" or "max".
        progressive: PASHA if True; promotion-type ASHA (max resource fixed at ``max_t``) if False.
    """

    def __init__(
        self,
        max_t: int,
        grace_period: int = 1,
        reduction_factor: float = 3,
        mode: str = "max",
        progressive: bool = True,
    ):
        validate(max_t, grace_period, reduction_factor, mode)
        self.max_t = int(max_t)
        self.mode = mode
        self.progressive = bool(progressive)
        self.levels = rung_levels(max_t, grace_period, reduction_factor)
        if self.progressive and len(self.levels) < 2:
            raise ValueError(
                "max_t must be greater than grace_period * reduction_factor for PASHA (it needs at least two "
                f"rung levels below max_t; got levels {self.levels} for max_t={max_t})"
            )
        self.quantiles = promotion_quantiles(self.levels, self.max_t)
        self._rungs = [_Rung(x, q, mode) for x, q in zip(self.levels, self.quantiles)]  # lowest first
        self._level_pos = {x: i for i, x in enumerate(self.levels)}
        self._running: dict[str, dict[str, int | None]] = {}
        # PASHA state (reference names: current_rung_idx, current_max_t, epsilon, ...)
        self._rung_idx = min(len(self.levels) - 1, 2) if self.progressive else len(self.levels)
        self._current_max_t = self.levels[self._rung_idx - 1] if self.progressive else self.max_t
        self._eps = 0.0
        self._results: dict[str, list[float | None]] = {}  # trial -> values, index = epoch (0 unused)
        self._epoch_trials: dict[int, dict[str, None]] = {}  # epoch -> trials that reported it
        self._order: dict[str, int] = {}  # trial -> start order (orients eps pairs)
        self._max_epoch = -1
        self._cache_window: tuple[int, int] | None = None
        self._cache: dict[tuple[str, str], tuple[int, float | None]] = {}
        self._eps_dirty = True  # the counted distances changed since eps was last computed

    # ------------------------------------------------------------------ read-only views
    @property
    def current_max_t(self) -> int:
        """The current max resource: trials pause at rungs of this level or above until it grows."""
        return self._current_max_t

    @property
    def eps(self) -> float:
        """PASHA's noise estimate used by the soft ranking."""
        return float(self._eps)

    @property
    def rungs(self) -> dict[int, list[tuple[str, float, bool]]]:
        """``{level: [(trial_id, value, promoted), ...]}``, each rung best first."""
        return {r.level: [tuple(e) for e in r.entries] for r in self._rungs}

    @property
    def running(self) -> dict[str, dict[str, int | None]]:
        """``{trial_id: {"milestone": m, "resume_from": r}}`` for trials holding a worker."""
        return {k: dict(v) for k, v in self._running.items()}

    def running_ids(self) -> list[str]:
        """Trials holding a worker, in the order they got it."""
        return list(self._running)

    def is_running(self, trial_id: str) -> bool:
        return trial_id in self._running

    def is_started(self, trial_id: str) -> bool:
        return trial_id in self._order

    # ------------------------------------------------------------------ decisions
    def start(self, trial_id: str) -> None:
        """A new trial takes a free worker; it runs to the lowest rung level."""
        if trial_id in self._order:
            raise ValueError(f"trial_id {trial_id!r} was already started")
        self._running[trial_id] = {"milestone": self.levels[0], "resume_from": None}
        self._order[trial_id] = len(self._order)

    def schedule(self) -> tuple[str, int, int] | None:
        """A worker is free: promote a paused trial if one qualifies.

        Scans rungs with level < current max resource from the highest down; in each, the best
        not-yet-promoted entry is promoted if it is at least as good as the rung's quantile cut.
        Returns ``(trial_id, resume_from, milestone)`` and marks the trial running, or None (then
        a new trial should start).
        """
        scan = self._scan()
        if scan is None:
            return None
        rung, found, next_milestone = scan
        entry = rung.pop(found)
        rung.add(entry[0], entry[1], promoted=True)
        self._running[entry[0]] = {"milestone": next_milestone, "resume_from": rung.level}
        return entry[0], rung.level, next_milestone

    def promotable(self) -> tuple[str, int, int] | None:
        """What :meth:`schedule` would return, without changing anything."""
        scan = self._scan()
        if scan is None:
            return None
        rung, found, next_milestone = scan
        return rung.entries[found][0], rung.level, next_milestone

    def _scan(self):
        """(rung, entry position, next milestone) of the promotion to make now, or None."""
        next_milestone = self.max_t
        for pos in range(len(self._rungs) - 1, -1, -1):
            rung = self._rungs[pos]
            if rung.level < self._current_max_t:
                found = self._promotable(rung)
                if found is not None:
                    return rung, found, next_milestone
            next_milestone = rung.level
        return None

    def _promotable(self, rung: _Rung) -> int | None:
        cutoff = rung.quantile()
        if cutoff is None:
            return None
        for pos, entry in enumerate(rung.entries):
            if not entry[2]:
                sign = 1 - 2 * (self.mode == "min")
                return None if sign * (entry[1] - cutoff) < 0 else pos
        return None

    def report(self, trial_id: str, resource: int, value: float) -> str:
        """A running trial reports ``value`` at ``resource``; returns "continue", "pause" or "stop".

        A report at ``resource >= max_t`` stops the trial and is not entered into the bookkeeping.
        """
        if trial_id not in self._running:
            raise ValueError(f"trial_id {trial_id!r} is not running (start or promote it first)")
        if not _is_positive_int(resource):
            raise ValueError(f"resource must be a positive integer, got {resource!r}")
        value = float(value)
        if not math.isfinite(value):
            raise ValueError(f"value must be finite, got {value!r} for trial {trial_id!r} at resource {resource}")
        if resource >= self.max_t:
            del self._running[trial_id]
            return "stop"
        milestone = self._running[trial_id]["milestone"]
        decision = "continue"
        if resource >= milestone:
            if resource != milestone:
                raise ValueError(
                    f"trial {trial_id!r} reported resource {resource} beyond its milestone {milestone}; "
                    "report every integer resource level"
                )
            self._rungs[self._level_pos[milestone]].add(trial_id, value)
            decision = "pause"
        if self.progressive:
            self._record(trial_id, resource, value)
            self._update_eps()
            if self._ranking_inconsistent():
                if self._rung_idx < len(self._rungs):
                    self._rung_idx += 1
                    self._current_max_t = self.levels[self._rung_idx - 1]
                else:
                    self._current_max_t = self.max_t
        if decision == "pause":
            del self._running[trial_id]
        return decision

    def remove(self, trial_id: str) -> dict[str, int | None] | None:
        """The trial no longer holds a worker (stopped, errored, or paused from outside).

        Returns its running entry (milestone, resume_from), or None if it was not running.
        """
        return self._running.pop(trial_id, None)

    def readmit(self, trial_id: str, entry: dict[str, int | None]) -> None:
        """Give a trial back the worker it held (an errored trial that Tune retries)."""
        if trial_id not in self._order:
            raise ValueError(f"trial_id {trial_id!r} was never started")
        self._running[trial_id] = {"milestone": entry["milestone"], "resume_from": entry["resume_from"]}

    # ------------------------------------------------------------------ PASHA internals
    def _top_two(self) -> tuple[_Rung, _Rung]:
        idx = self._rung_idx  # 1-based from the lowest rung, as in the reference
        top = self._rungs[idx - 1] if idx >= 1 else self._rungs[-1]
        below = self._rungs[idx - 2] if idx >= 2 else self._rungs[-1]  # reference: _rungs[-idx + 1]
        return top, below

    def _ranking_inconsistent(self) -> bool:
        top, below = self._top_two()
        if not top.entries or not below.entries:
            return False
        top_ids = top.ids
        prev = [(e[0], e[1]) for e in below.entries if e[0] in top_ids]
        eps = self._eps if len(prev) >= 2 else 0.0
        is_max = self.mode == "max"
        pos = {trial_id: j for j, (trial_id, _) in enumerate(prev)}
        for i, entry in enumerate(top.entries):
            p = pos.get(entry[0])
            if i >= len(prev) or p is None:  # cannot happen when every top-rung trial passed the rung below
                return True
            if not self._in_group(prev, i, p, eps, is_max):
                return True
        return False

    @staticmethod
    def _in_group(prev: list[tuple[str, float]], i: int, p: int, eps: float, is_max: bool) -> bool:
        """Is item ``p`` in group ``i``: item i plus its contiguous neighbours within eps of its value?

        ``prev`` is sorted best first, so the neighbours within eps form one run around i, and item
        p is in it iff p itself passes the reference's test (same float expressions).
        """
        value, v = prev[i][1], prev[p][1]
        if p > i:  # after i: the reference stops at the first worse-by-more-than-eps value
            return not ((v < value - eps) if is_max else (v > value + eps))
        if p < i:
            return not ((v > value + eps) if is_max else (v < value - eps))
        return True

    def _record(self, trial_id: str, resource: int, value: float) -> None:
        values = self._results.setdefault(trial_id, [None])
        previous_top = len(values) - 1
        if resource < len(values):
            changed = values[resource] != value
            values[resource] = value
        else:
            values.extend([None] * (resource - len(values) + 1))
            values[resource] = value
            changed = True
        self._epoch_trials.setdefault(resource, {})[trial_id] = None
        self._max_epoch = max(self._max_epoch, resource)
        window = self._window()
        if self._cache_window != window:
            if not self._extends_cache(window, resource, trial_id):
                self._cache_window = None
            else:
                self._cache_window = window
        if self._cache_window is None or not changed:
            return
        lo, hi = window
        if resource <= previous_top:  # an epoch re-reported with a new value
            self._cache_window = None
        elif lo < resource <= hi:
            mine = self._order[trial_id]
            others = [t for t in self._epoch_trials[resource] if t != trial_id]
            before = [t for t in others if self._order[t] < mine]
            after = [t for t in others if self._order[t] > mine]
            if before:
                self._pairs_at(resource, before, [trial_id])
            if after:
                self._pairs_at(resource, [trial_id], after)

    def _window(self) -> tuple[int, int]:
        top, below = self._top_two()
        return min(self._max_epoch, below.level), min(self._max_epoch, top.level)

    def _extends_cache(self, window: tuple[int, int], resource: int, trial_id: str) -> bool:
        """The window only grew at the top by epochs that only ``trial_id`` has reached."""
        if self._cache_window is None or window[0] != self._cache_window[0] or window[1] < self._cache_window[1]:
            return False
        return all(
            list(self._epoch_trials.get(e, {})) in ([], [trial_id])
            for e in range(self._cache_window[1] + 1, window[1] + 1)
        )

    def _pairs_at(self, epoch: int, firsts: list[str], seconds: list[str]) -> None:
        """Cache pairs (first, second) at ``epoch`` (their highest epoch); one side has one trial."""
        a = np.array([self._values(t, epoch) for t in firsts], dtype=float)
        b = np.array([self._values(t, epoch) for t in seconds], dtype=float)
        n = max(len(firsts), len(seconds))
        a, b = np.broadcast_to(a, (n, epoch)), np.broadcast_to(b, (n, epoch))
        hit = _crisscross(a, b)
        dist = np.abs(a[:, -1] - b[:, -1])
        pairs = zip(firsts * n, seconds) if len(firsts) == 1 else zip(firsts, seconds * n)
        for (f, t), h, d in zip(pairs, hit, dist):
            old = self._cache.get((f, t))
            new = (epoch, float(d) if h else None)
            self._cache[(f, t)] = new
            if new[1] is not None or (old is not None and old[1] is not None):
                self._eps_dirty = True

    def _values(self, trial_id: str, epoch: int) -> list[float]:
        values = self._results[trial_id]
        row = values[1 : epoch + 1]
        if len(row) < epoch or any(v is None for v in row):
            missing = [e for e in range(1, epoch + 1) if e >= len(values) or values[e] is None]
            raise ValueError(
                f"PASHA needs a result at every epoch 1..{epoch}; trial {trial_id!r} lacks epochs {missing}"
            )
        return row

    def _rebuild_cache(self, window: tuple[int, int] | None = None) -> None:
        """Reference loop: epochs of the window from the highest down, each pair once."""
        self._cache = {}
        lo, hi = self._window() if window is None else window
        for epoch in range(hi, lo, -1):
            ids = sorted(self._epoch_trials.get(epoch, {}), key=self._order.__getitem__)
            for i in range(len(ids) - 1):
                later = [t for t in ids[i + 1 :] if (ids[i], t) not in self._cache]
                if later:
                    self._pairs_at(epoch, [ids[i]], later)
        self._cache_window = (lo, hi)
        self._eps_dirty = True

    def _update_eps(self) -> None:
        if self._cache_window is None:
            self._rebuild_cache()
        if not self._eps_dirty:
            return  # same sample as last time: the reference would compute the same eps
        self._eps_dirty = False
        distances = [d for _, d in self._cache.values() if d is not None]
        if distances:
            self._eps = float(np.percentile(distances, EPS_PERCENTILE))

    def eps_sample(self, from_scratch: bool = False) -> list[float]:
        """The sorted distances behind the last eps update: from the incremental cache, or recomputed
        from scratch with the reference's loop over the same window (to check the cache)."""
        if self._cache_window is None:
            self._rebuild_cache()
        if not from_scratch:
            return sorted(d for _, d in self._cache.values() if d is not None)
        saved = (self._cache, self._cache_window, self._eps_dirty)
        try:
            self._rebuild_cache(self._cache_window)
            return sorted(d for _, d in self._cache.values() if d is not None)
        finally:
            self._cache, self._cache_window, self._eps_dirty = saved

    # ------------------------------------------------------------------ state
    def get_state(self) -> dict[str, Any]:
        """Plain, picklable data; :meth:`set_state` restores it exactly."""
        return {
            "levels": list(self.levels),
            "max_t": self.max_t,
            "mode": self.mode,
            "progressive": self.progressive,
            "rungs": [[r.level, [list(e) for e in r.entries]] for r in self._rungs],
            "running": {k: dict(v) for k, v in self._running.items()},
            "rung_idx": self._rung_idx,
            "current_max_t": self._current_max_t,
            "eps": float(self._eps),
            "results": {k: list(v) for k, v in self._results.items()},
            "epoch_trials": [[e, list(ts)] for e, ts in self._epoch_trials.items()],
            "order": sorted(self._order, key=self._order.__getitem__),
            "max_epoch": self._max_epoch,
        }

    def set_state(self, state: dict[str, Any]) -> None:
        for key in ("levels", "max_t", "mode", "progressive"):
            mine = list(self.levels) if key == "levels" else getattr(self, key)
            if state[key] != mine:
                raise ValueError(f"state[{key!r}]={state[key]!r} does not match this scheduler's {mine!r}")
        saved = {int(level): entries for level, entries in state["rungs"]}
        for rung in self._rungs:
            rung.keys, rung.entries, rung.ids = [], [], set()
            for trial_id, value, promoted in saved[rung.level]:
                rung.add(trial_id, value, bool(promoted))
        self._running = {k: dict(v) for k, v in state["running"].items()}
        self._rung_idx = int(state["rung_idx"])
        self._current_max_t = int(state["current_max_t"])
        self._eps = float(state["eps"])
        self._results = {k: list(v) for k, v in state["results"].items()}
        self._epoch_trials = {int(e): dict.fromkeys(ts) for e, ts in state["epoch_trials"]}
        self._max_epoch = int(state["max_epoch"])
        self._order = {t: i for i, t in enumerate(state["order"])}
        self._cache_window, self._cache = None, {}

    def started(self) -> list[str]:
        """Every trial started so far, in start order."""
        return sorted(self._order, key=self._order.__getitem__)

    def paused(self) -> set[str]:
        """Trials waiting in a rung (entered, not promoted from it, not running)."""
        out: set[str] = set()
        for r in self._rungs:
            out.update(e[0] for e in r.entries if not e[2])
        return out - set(self._running)
