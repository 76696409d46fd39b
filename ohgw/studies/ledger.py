"""Per-study bookkeeping inside one Tune run: trial indices and seeds, decisions, budget.

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
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from ray.tune import Callback
from ray.tune.schedulers import TrialScheduler
from ray.tune.stopper import Stopper

from ohgw import protocol
from ohgw.tune.delegating import DelegatingScheduler

# warm-start fields that become ``ws_<field>`` columns (the warm-start compute is the contract's ws_compute_s)
RECORDED_WS_FIELDS = tuple(f for f in protocol.WS_FIELDS if f != "compute_s")


def trial_init_seed(study_seed: int, trial_index: int) -> int:
    """The model-init and data-order seed of trial ``trial_index`` in every study with ``study_seed``.

    Every method of a (study) seed gives its i-th trial the same seed: the pairing of the studies.
    """
    return (int(study_seed) * 1_000_003 + int(trial_index) * 7_919 + 17) % (2**31 - 1)


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

    def spent(self) -> bool:
        if self.budget_kind == "epochs":
            return self.epoch_equiv >= self.budget
        return time.time() - self.t0 >= self.budget


class StudyTap(DelegatingScheduler):
    """Delegating wrapper: trial numbering + seeds at creation, decision notes on results."""

    def __init__(self, inner: TrialScheduler, ledger: StudyLedger) -> None:
        super().__init__(inner)
        self._ledger = ledger

    def on_trial_add(self, tune_controller, trial) -> None:
        led = self._ledger
        if trial.trial_id not in led.trial_index:
            idx = trial.config.get(protocol.TRIAL_INDEX_KEY)
            led.trial_index[trial.trial_id] = len(led.trial_index) if idx is None else int(idx)
        idx = led.trial_index[trial.trial_id]
        if trial.config.get(protocol.TRIAL_INDEX_KEY) != idx:
            trial.set_config(protocol.with_trial_identity(trial.config, idx, trial_init_seed(led.study_seed, idx)))
        self.scheduler.on_trial_add(tune_controller, trial)

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        decision = super().on_trial_result(tune_controller, trial, result)  # keeps the HyperBand repair
        it = int(result.get(protocol.ITERATION, 0))
        self._ledger.decisions[(trial.trial_id, it)] = decision
        self._ledger.last_decision[trial.trial_id] = decision
        return decision


class BudgetStopper(Stopper):
    """Stops the whole study once the ledger's budget is spent; trials then end as stopped-by-budget."""

    def __init__(self, ledger: StudyLedger) -> None:
        self._ledger = ledger

    def __call__(self, trial_id: str, result: dict) -> bool:
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
    them, the warm-start fields as ``ws_<field>`` (settings used, step taken, cost).
    """

    def __init__(self, ledger: StudyLedger, psi: tuple[str, ...], metric: str = "val_acc") -> None:
        self._ledger = ledger
        self._psi = psi
        self._metric = metric
        self._test_metric = protocol.test_metric(metric)
        self.rows: list[dict] = []
        self.trials: dict[str, dict] = {}

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        led = self._ledger
        tid = trial.trial_id
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
        self.rows.append(row)

    def _end(self, trial, status: str) -> None:
        self.trials[trial.trial_id] = {"tune_status": status}

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        self._end(trial, "TERMINATED")

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        self._end(trial, "ERROR")
