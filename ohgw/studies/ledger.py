"""Per-study bookkeeping inside one Tune run: trial indices and seeds, decisions, budget, records.

Three small Tune plug-ins share one :class:`StudyLedger` (they live in the same
process as the study's ``Tuner``, see :func:`ohgw.studies.study.run_study`):

- :class:`StudyTap` wraps the study's scheduler: it numbers trials in creation
  order and gives trial i the model-init / data-order seed :func:`trial_init_seed`
  (study seed, i), so that every method sees the same seeds per trial index
  (:func:`ohgw.protocol.with_trial_identity`); it notes each scheduler decision.
  Everything else is delegated. (The warm-start's own randomness is seeded by the
  wrapper: :func:`ohgw.tune.wrapper.warm_start_seed`.)
- :class:`BudgetStopper` ends the study once its budget (epoch-equivalents,
  warm-starts included, or wall seconds) is spent.
- :class:`StudyRecorder` (a ``tune.Callback``) records one ``iterations`` row per
  reported epoch, reading the reports through :mod:`ohgw.protocol` only.

**Surviving a restore** (:func:`ohgw.studies.study.run_study` resumes an interrupted study
with ``Tuner.restore``). Tune snapshots the experiment (trials, searcher, callback states)
after every registered checkpoint. The ledger, with the rows recorded so far, is
:class:`StudyRecorder`'s callback state (:meth:`StudyLedger.to_state`); the wrapped
scheduler's bookkeeping and configuration are :class:`StudyTap`'s (through
:class:`ohgw.tune.callbacks.SchedulerStateCallback`, :mod:`ohgw.tune.state`). Both are written
in Tune's one callback-state file of that snapshot (atomically: a temporary file, then
``os.replace``), so the ledger, the scheduler and the trials' states are of one moment.
``Tuner.restore`` unpickles the plug-ins from ``tuner.pkl``: a *live* ledger (registered with
:func:`live`) pickles as a reference by its key, so the restored plug-ins share the ledger that
:func:`~ohgw.studies.study.run_study` reads afterwards, and Tune then loads the saved state into it.

**The re-done epoch.** Tune registers a trial's checkpoint one controller step after the
report it came with; a snapshot taken in between holds the report (its row, its decision,
its cost) but not its checkpoint, so the restored trial trains that epoch again. Such a
report of an epoch already decided is *replayed*, not decided again: the scheduler does not
see it, the recorded decision is returned (a PAUSE as CONTINUE when the scheduler has resumed
the trial since, as PASHA does by promotion), the budget is not charged again and no second
row is written. The same holds for a trial that Tune retries from an older checkpoint. The
epoch's compute is spent twice (``StudyLedger.redone`` counts such reports); a deterministic
trainable on the epochs clock gives the same rows and decisions as without the interruption.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from ray.tune import Callback
from ray.tune.experiment import Trial
from ray.tune.schedulers import TrialScheduler
from ray.tune.stopper import Stopper

from ohgw import protocol
from ohgw.tune.delegating import DelegatingScheduler
from ohgw.tune.state import Reattach, reload, snapshot

# warm-start fields that become ``ws_<field>`` columns (the warm-start compute is the contract's ws_compute_s)
RECORDED_WS_FIELDS = tuple(f for f in protocol.WS_FIELDS if f != "compute_s")
LEDGER_STATE = "ohgw-study-ledger"  # the kind of a StudyLedger.to_state() dict
LEDGER_STATE_VERSION = 1
TAP_STATE_VERSION = 1
_LIVE: dict[str, StudyLedger] = {}  # ledgers of the studies running in this process, by key


def trial_init_seed(study_seed: int, trial_index: int) -> int:
    """The model-init and data-order seed of trial ``trial_index`` in every study with ``study_seed``.

    Every method of a (study) seed gives its i-th trial the same seed: the pairing of the studies.
    """
    return (int(study_seed) * 1_000_003 + int(trial_index) * 7_919 + 17) % (2**31 - 1)


def _attach(key: str, study_seed: int, budget_kind: str, budget: float, state: dict | None) -> StudyLedger:
    """Unpickling a ledger: the live one of ``key`` if this process runs that study, else a copy of ``state``."""
    led = _LIVE.get(key) if key else None
    if led is not None:
        return led
    led = StudyLedger(study_seed, budget_kind, budget, key=key)
    if state is not None:
        led.load_state(state, resumed=False)
    return led


@dataclass
class StudyLedger:
    study_seed: int
    budget_kind: str  # "epochs" | "seconds"
    budget: float
    t0: float = field(default_factory=time.time)
    trial_index: dict[str, int] = field(default_factory=dict)
    decisions: dict[tuple[str, int], str] = field(default_factory=dict)
    last_decision: dict[str, str] = field(default_factory=dict)
    trial_epoch_equiv: dict[str, float] = field(default_factory=dict)
    trial_compute_s: dict[str, float] = field(default_factory=dict)
    exhausted_at: float | None = None
    key: str = ""  # the study's key in this process (its Tune run name): see live()
    rows: list[dict] = field(default_factory=list)  # StudyRecorder's iterations rows
    trial_end: dict[str, dict] = field(default_factory=dict)  # trial id -> {"tune_status": ...}
    last_epoch: dict[str, int] = field(default_factory=dict)  # trial id -> last recorded epoch
    started: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat())
    resumes: int = 0  # how often the study was restored
    redone: int = 0  # reports of epochs already recorded (re-done after a restore or a retry), replayed

    @property
    def epoch_equiv(self) -> float:
        return float(sum(self.trial_epoch_equiv.values()))

    @property
    def compute_s(self) -> float:
        return float(sum(self.trial_compute_s.values()))

    def account(self, trial_id: str, result: dict) -> None:
        if protocol.TRIAL_EPOCH_EQUIV in result:
            self.trial_epoch_equiv[trial_id] = float(result[protocol.TRIAL_EPOCH_EQUIV])
        if protocol.TRIAL_COMPUTE_S in result:
            self.trial_compute_s[trial_id] = float(result[protocol.TRIAL_COMPUTE_S])

    def is_redone(self, trial_id: str, result: dict) -> bool:
        """Whether ``result`` reports an epoch of ``trial_id`` that is recorded already (module doc)."""
        it = result.get(protocol.ITERATION)
        return it is not None and int(it) <= self.last_epoch.get(trial_id, 0)

    def spent(self) -> bool:
        if self.budget_kind == "epochs":
            return self.epoch_equiv >= self.budget
        return time.time() - self.t0 >= self.budget

    # ---- state (module doc) ---------------------------------------------------------------------
    def to_state(self) -> dict[str, Any]:
        """Plain, picklable data. Clocks are kept as seconds since the study's start, so that a restored
        study's clock (and a wall-seconds budget) goes on from where it stopped, without the downtime."""
        now = time.time()
        return {
            "kind": LEDGER_STATE,
            "version": LEDGER_STATE_VERSION,
            "study_seed": int(self.study_seed),
            "budget_kind": self.budget_kind,
            "budget": float(self.budget),
            "elapsed_s": now - self.t0,
            "exhausted_after_s": None if self.exhausted_at is None else self.exhausted_at - self.t0,
            "trial_index": dict(self.trial_index),
            "decisions": [[tid, int(it), d] for (tid, it), d in self.decisions.items()],
            "last_decision": dict(self.last_decision),
            "trial_epoch_equiv": dict(self.trial_epoch_equiv),
            "trial_compute_s": dict(self.trial_compute_s),
            "rows": [dict(r) for r in self.rows],
            "trial_end": {k: dict(v) for k, v in self.trial_end.items()},
            "last_epoch": dict(self.last_epoch),
            "started": self.started,
            "resumes": int(self.resumes),
            "redone": int(self.redone),
        }

    def load_state(self, state: dict[str, Any], resumed: bool = True) -> None:
        """Load :meth:`to_state` in place (the plug-ins share this object); ``resumed`` counts a restore."""
        if not isinstance(state, dict) or state.get("kind") != LEDGER_STATE:
            raise ValueError("state: not a study ledger state")
        if state.get("version") != LEDGER_STATE_VERSION:
            raise ValueError(f"state: study ledger state of version {state.get('version')!r}, "
                             f"this harness reads version {LEDGER_STATE_VERSION}")
        mine = {"study_seed": int(self.study_seed), "budget_kind": self.budget_kind, "budget": float(self.budget)}
        differ = sorted(k for k, v in mine.items() if state[k] != v)
        if differ:
            raise ValueError(f"state: the saved study ledger differs in {', '.join(differ)} "
                             f"(saved {[state[k] for k in differ]}, here {[mine[k] for k in differ]})")
        self.t0 = time.time() - float(state["elapsed_s"])
        after = state["exhausted_after_s"]
        self.exhausted_at = None if after is None else self.t0 + float(after)
        self.trial_index = {k: int(v) for k, v in state["trial_index"].items()}
        self.decisions = {(tid, int(it)): d for tid, it, d in state["decisions"]}
        self.last_decision = dict(state["last_decision"])
        self.trial_epoch_equiv = {k: float(v) for k, v in state["trial_epoch_equiv"].items()}
        self.trial_compute_s = {k: float(v) for k, v in state["trial_compute_s"].items()}
        self.rows = [dict(r) for r in state["rows"]]
        self.trial_end = {k: dict(v) for k, v in state["trial_end"].items()}
        self.last_epoch = {k: int(v) for k, v in state["last_epoch"].items()}
        self.started = state["started"]
        self.resumes = int(state["resumes"]) + (1 if resumed else 0)
        self.redone = int(state["redone"])

    def __reduce__(self):
        # a live ledger is pickled as a reference (module doc); any other one with its data
        state = None if _LIVE.get(self.key) is self else self.to_state()
        return _attach, (self.key, int(self.study_seed), self.budget_kind, float(self.budget), state)


@contextlib.contextmanager
def live(ledger: StudyLedger) -> Iterator[StudyLedger]:
    """Register ``ledger`` (it needs a ``key``) as its study's live ledger in this process while the study runs."""
    if not ledger.key:
        raise ValueError("ledger.key must name the study (its Tune run name) to register it")
    if _LIVE.get(ledger.key) not in (None, ledger):
        raise ValueError(f"study {ledger.key!r} is running in this process already")
    _LIVE[ledger.key] = ledger
    try:
        yield ledger
    finally:
        _LIVE.pop(ledger.key, None)


class StudyTap(DelegatingScheduler):
    """Delegating wrapper: trial numbering + seeds at creation, decision notes on results, re-done reports
    replayed (module doc). ``get_state``/``set_state`` carry the wrapped scheduler's snapshot."""

    def __init__(self, inner: TrialScheduler, ledger: StudyLedger) -> None:
        super().__init__(inner)
        self._ledger = ledger
        self._reattach = Reattach()  # restored trials that the wrapped scheduler knows already
        self._resumed: set[str] = set()  # trials the scheduler took out of PAUSED since their last pause

    def on_trial_add(self, tune_controller, trial) -> None:
        led = self._ledger
        if trial.trial_id not in led.trial_index:
            idx = trial.config.get(protocol.TRIAL_INDEX_KEY)
            led.trial_index[trial.trial_id] = len(led.trial_index) if idx is None else int(idx)
        idx = led.trial_index[trial.trial_id]
        if trial.config.get(protocol.TRIAL_INDEX_KEY) != idx:
            trial.set_config(protocol.with_trial_identity(trial.config, idx, trial_init_seed(led.study_seed, idx)))
        if trial.trial_id in self._reattach:  # restored with the scheduler's state: not added twice
            self._reattach(trial)
            return
        self.scheduler.on_trial_add(tune_controller, trial)

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        it = int(result.get(protocol.ITERATION, 0))
        key = (trial.trial_id, it)
        recorded = self._ledger.decisions.get(key)
        if recorded is not None:  # an epoch decided before (re-done after a restore or a retry): replay
            if recorded == TrialScheduler.PAUSE and trial.trial_id in self._resumed:
                return TrialScheduler.CONTINUE  # the scheduler has resumed it since: it runs on
            return recorded
        decision = super().on_trial_result(tune_controller, trial, result)  # keeps the HyperBand repair
        self._ledger.decisions[key] = decision
        self._ledger.last_decision[trial.trial_id] = decision
        if decision == TrialScheduler.PAUSE:
            self._resumed.discard(trial.trial_id)
        return decision

    def choose_trial_to_run(self, tune_controller) -> Trial | None:
        trial = super().choose_trial_to_run(tune_controller)
        if trial is not None and trial.status == Trial.PAUSED:
            self._resumed.add(trial.trial_id)
        return trial

    def get_state(self) -> dict[str, Any]:
        """The wrapped scheduler's snapshot (:func:`ohgw.tune.state.snapshot`) and the trials it knows."""
        return {"version": TAP_STATE_VERSION, "inner": snapshot(self.scheduler),
                "trials": sorted(self._ledger.trial_index)}

    def set_state(self, state: dict[str, Any]) -> None:
        if not isinstance(state, dict) or state.get("version") != TAP_STATE_VERSION:
            raise ValueError(f"state: not a StudyTap state of version {TAP_STATE_VERSION}")
        attach = reload(self.scheduler, state["inner"])
        # a scheduler with its own get_state/set_state (OHGW, PASHA) recognises restored trials itself
        self._reattach = Reattach() if state["inner"]["kind"] == "protocol" else Reattach(set(state["trials"]), attach)


class BudgetStopper(Stopper):
    """Stops the whole study once the ledger's budget is spent; trials then end as stopped-by-budget."""

    def __init__(self, ledger: StudyLedger) -> None:
        self._ledger = ledger

    def __call__(self, trial_id: str, result: dict) -> bool:
        if not self._ledger.is_redone(trial_id, result):  # a re-done epoch is charged once (module doc)
            self._ledger.account(trial_id, result)
        if self._ledger.spent() and self._ledger.exhausted_at is None:
            self._ledger.exhausted_at = time.time()
        return self._ledger.exhausted_at is not None

    def stop_all(self) -> bool:
        if self._ledger.exhausted_at is None and self._ledger.budget_kind == "seconds" and self._ledger.spent():
            self._ledger.exhausted_at = time.time()
        return self._ledger.exhausted_at is not None


class StudyRecorder(Callback):
    """One row per reported epoch, with study-level clocks, and each trial's end state.

    A row holds the contract keys (:data:`ohgw.protocol.CONTRACT_KEYS`) under their own names,
    the trial's ``x.<ψ>`` / ``x_prime.<ψ>`` / ``g.<ψ>`` and, on the row of the report that carried
    them, the warm-start fields as ``ws_<field>`` (settings used, step taken, cost). A report of an
    epoch recorded already (re-done) writes no second row. Rows and end states live in the ledger;
    its :meth:`~StudyLedger.to_state` is this callback's state in Tune's experiment snapshots.
    """

    def __init__(self, ledger: StudyLedger, psi: tuple[str, ...], metric: str = "val_acc") -> None:
        self._ledger = ledger
        self._psi = psi
        self._metric = metric
        self._test_metric = protocol.test_metric(metric)

    @property
    def rows(self) -> list[dict]:
        return self._ledger.rows

    @property
    def trials(self) -> dict[str, dict]:
        return self._ledger.trial_end

    def get_state(self) -> dict[str, Any]:
        return self._ledger.to_state()

    def set_state(self, state: dict[str, Any]) -> None:
        self._ledger.load_state(state)

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        led = self._ledger
        tid = trial.trial_id
        if led.is_redone(tid, result):
            led.redone += 1
            return
        led.account(tid, result)
        epoch = int(result.get(protocol.ITERATION, 0))
        cfg = trial.config
        index = led.trial_index.get(tid, protocol.trial_index(cfg))
        row = {
            "trial_id": tid,
            "trial_index": -1 if index is None else int(index),
            "epoch": epoch,
            "wall_s": time.time() - led.t0,
            "compute_s": led.compute_s,
            "epoch_equiv": led.epoch_equiv,
            "decision": led.decisions.get((tid, epoch), ""),
        }
        row["val_score"] = result.get(self._metric)
        row["test_score"] = result.get(self._test_metric)
        for key in protocol.CONTRACT_KEYS:
            if key in result:
                row[key] = result[key]
        # x′ as this report carries it (the first of a warm-started trial), else as the config records it
        adjusted = protocol.adjusted_from_result(result, self._psi)
        sampled = protocol.sampled_config(cfg)
        recorded_g = cfg.get(protocol.GRADIENT_KEY) or {}
        for name in self._psi:
            if adjusted is not None and name in adjusted["x_prime"]:
                x, x_prime, g = adjusted["x"][name], adjusted["x_prime"][name], adjusted["g"][name]
            else:
                x, x_prime, g = sampled.get(name), cfg.get(name), recorded_g.get(name)
            row[f"x.{name}"] = x
            row[f"x_prime.{name}"] = x_prime
            row[f"g.{name}"] = g
        fields = protocol.warm_start_fields(result)
        for f in RECORDED_WS_FIELDS:
            if f in fields:
                row["ws_" + f] = fields[f]
        led.rows.append(row)
        led.last_epoch[tid] = epoch

    def _end(self, trial, status: str) -> None:
        self._ledger.trial_end[trial.trial_id] = {"tune_status": status}

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        self._end(trial, "TERMINATED")

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        self._end(trial, "ERROR")
