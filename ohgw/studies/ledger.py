"""Per-study bookkeeping inside one Tune run: trial indices and seeds, decisions, budget.

Three small Tune plug-ins share one :class:`StudyLedger` (they live in the same
process as the study's ``Tuner``):

- :class:`StudyTap` wraps the study's scheduler: it numbers trials in creation
  order, gives trial i the model-init/data-order seed derived from (study seed,
  i) so that every method sees the same seeds per trial index, and notes each
  scheduler decision. Everything else is delegated.
- :class:`BudgetStopper` ends the study once its budget (epoch-equivalents,
  warm-starts included, or wall seconds) is spent.
- :class:`StudyRecorder` (a ``tune.Callback``) records one row per reported epoch.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from ray.tune import Callback
from ray.tune.schedulers import TrialScheduler
from ray.tune.stopper import Stopper

from ohgw.tune.delegating import DelegatingScheduler

INDEX_KEY = "trial_index"


def trial_seed(study_seed: int, trial_index: int) -> int:
    """The model-init and data-order seed of trial ``trial_index`` in every study with ``study_seed``."""
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
        if "trial_epoch_equiv" in result:
            self.trial_epoch_equiv[trial_id] = float(result["trial_epoch_equiv"])
        if "trial_compute_s" in result:
            self.trial_compute_s[trial_id] = float(result["trial_compute_s"])

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
            idx = trial.config.get(INDEX_KEY)
            led.trial_index[trial.trial_id] = len(led.trial_index) if idx is None else int(idx)
        idx = led.trial_index[trial.trial_id]
        if trial.config.get(INDEX_KEY) != idx:
            trial.set_config({**trial.config, INDEX_KEY: idx, "seed": trial_seed(led.study_seed, idx)})
        self.scheduler.on_trial_add(tune_controller, trial)

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        decision = self.scheduler.on_trial_result(tune_controller, trial, result)
        it = int(result.get("training_iteration", 0))
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
    """One row per reported epoch, with study-level clocks, and each trial's end state."""

    def __init__(self, ledger: StudyLedger, psi: tuple[str, ...], metric: str = "val_acc") -> None:
        self._ledger = ledger
        self._psi = psi
        self._metric = metric
        self._test_metric = metric.replace("val_", "test_", 1) if metric.startswith("val_") else "test_" + metric
        self.rows: list[dict] = []
        self.trials: dict[str, dict] = {}

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        led = self._ledger
        tid = trial.trial_id
        led.account(tid, result)
        epoch = int(result.get("training_iteration", 0))
        cfg = trial.config
        row = {
            "trial_id": tid,
            "trial_index": int(led.trial_index.get(tid, cfg.get(INDEX_KEY, -1))),
            "epoch": epoch,
            "wall_s": time.time() - led.t0,
            "compute_s": led.compute_s,
            "epoch_equiv": led.epoch_equiv,
            "decision": led.decisions.get((tid, epoch), ""),
        }
        row["val_score"] = result.get(self._metric)
        row["test_score"] = result.get(self._test_metric)
        for key in ("val_loss", "train_loss", "trial_compute_s", "trial_epoch_equiv",
                    "ws_compute_s", "epoch_s", "samples_per_s", "peak_rss_mib", "diverged", "node_id", "device"):
            if key in result:
                row[key] = result[key]
        for name in self._psi:
            x = result.get(f"ohgw/x/{name}", (cfg.get("ohgw_x") or {}).get(name, cfg.get(name)))
            row[f"x.{name}"] = x
            row[f"x_prime.{name}"] = result.get(f"ohgw/x_prime/{name}", cfg.get(name))
            row[f"g.{name}"] = result.get(f"ohgw/g/{name}")
        for key in ("ohgw/wall_s", "ohgw/peak_rss_mib", "ohgw/mode", "ohgw/nonfinite", "ohgw/share_of_epoch"):
            if key in result:
                row["ws_" + key.split("/", 1)[1]] = result[key]
        self.rows.append(row)

    def _end(self, trial, status: str) -> None:
        self.trials[trial.trial_id] = {"tune_status": status}

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        self._end(trial, "TERMINATED")

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        self._end(trial, "ERROR")
