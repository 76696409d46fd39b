"""Hook-level checks of what a study's resume rests on (no Ray runtime): the ledger's state, the replay of a
re-done epoch, and PASHA's snapshot bringing back its configuration."""

from __future__ import annotations

import pickle

import pytest
from ray.tune.schedulers import ASHAScheduler, TrialScheduler

from ohgw.pasha import PASHA, PromotionASHA
from ohgw.studies.ledger import BudgetStopper, StudyLedger, StudyRecorder, StudyTap, live
from ohgw.testing.replay import Replay, stub_trial


def _acc(trial_index: int, epoch: int) -> float:
    return (0.9 - 0.1 * ((trial_index * 7) % 5)) * (1 - 0.5**epoch)


class _Study:
    """The three plug-ins of a study around one scheduler, fed by hand as Tune would."""

    def __init__(self, inner, budget: float = 100.0) -> None:
        self.ledger = StudyLedger(study_seed=0, budget_kind="epochs", budget=budget)
        self.tap = StudyTap(inner, self.ledger)
        self.stop = BudgetStopper(self.ledger)
        self.rec = StudyRecorder(self.ledger, ())

    def add(self, trial) -> None:
        self.tap.on_trial_add(None, trial)

    def report(self, trial, epoch: int) -> str:
        i = self.ledger.trial_index[trial.trial_id]
        result = {"training_iteration": epoch, "acc": _acc(i, epoch), "trial_epoch_equiv": float(epoch),
                  "trial_compute_s": 0.1 * epoch}
        if self.stop(trial.trial_id, result):
            decision = TrialScheduler.STOP
        else:
            decision = self.tap.on_trial_result(None, trial, result)
        self.rec.on_trial_result(0, [], trial, result)
        return decision


def _asha() -> ASHAScheduler:
    return ASHAScheduler(metric="acc", mode="max", max_t=9, grace_period=1, reduction_factor=3)


def test_a_redone_epoch_is_replayed_and_the_restored_study_decides_like_the_original():
    trials = [stub_trial(i) for i in range(4)]
    a = _Study(_asha())
    for t in trials:
        a.add(t)
    log_a = [a.report(t, e) for t, e in ((trials[0], 1), (trials[0], 2), (trials[0], 3), (trials[1], 1))]
    # a snapshot now (Tune's callback states), then into a study built with a *default* ASHA
    tap_state, led_state = pickle.loads(pickle.dumps((a.tap.get_state(), a.rec.get_state())))
    b = _Study(ASHAScheduler())
    b.rec.set_state(led_state)
    b.tap.set_state(tap_state)
    for t in trials:  # Tune re-adds the restored trials
        b.add(t)
    assert b.ledger.resumes == 1 and b.ledger.rows == a.ledger.rows and b.ledger.epoch_equiv == 4.0
    # trial 1's epoch 1 was recorded, its checkpoint was not: it trains epoch 1 again
    assert b.report(trials[1], 1) == log_a[-1]
    assert b.ledger.redone == 1 and len(b.ledger.rows) == 4 and b.ledger.epoch_equiv == 4.0
    # from here on both decide alike: the default-built ASHA took the saved configuration and rungs
    rest = [(trials[1], 2), (trials[2], 1), (trials[3], 1), (trials[0], 4), (trials[2], 2), (trials[3], 2)]
    assert [b.report(t, e) for t, e in rest] == [a.report(t, e) for t, e in rest]
    assert TrialScheduler.STOP in [d for (_, _), d in a.ledger.decisions.items()]
    assert [r["decision"] for r in b.ledger.rows] == [r["decision"] for r in a.ledger.rows]


def test_a_redone_pause_runs_on_once_the_scheduler_resumed_the_trial():
    class Pauser(TrialScheduler):
        def on_trial_add(self, tune_controller, trial):
            pass

        def on_trial_result(self, tune_controller, trial, result):
            return TrialScheduler.PAUSE if result["training_iteration"] == 2 else TrialScheduler.CONTINUE

        def choose_trial_to_run(self, tune_controller):
            return self.next

    s = _Study(Pauser())
    t = stub_trial(0)
    s.add(t)
    assert [s.report(t, 1), s.report(t, 2)] == ["CONTINUE", "PAUSE"]
    t.set_status("PAUSED")
    assert s.report(t, 2) == "PAUSE"  # not resumed by the scheduler: it stays paused (HyperBand restore)
    s.tap.scheduler.next = t
    assert s.tap.choose_trial_to_run(None) is t  # promoted from PAUSED ...
    assert s.report(t, 2) == "CONTINUE"  # ... so its re-done rung epoch lets it run on, as promotion meant
    assert s.ledger.redone == 2 and [r["epoch"] for r in s.ledger.rows] == [1, 2]


def test_the_ledger_state_keeps_the_budget_and_clock_and_refuses_another_study():
    led = StudyLedger(study_seed=3, budget_kind="seconds", budget=60.0)
    led.t0 -= 10.0
    led.exhausted_at = led.t0 + 7.0
    state = led.to_state()
    back = StudyLedger(study_seed=3, budget_kind="seconds", budget=60.0)
    back.load_state(state)
    assert back.exhausted_at - back.t0 == pytest.approx(7.0) and 10.0 <= __import__("time").time() - back.t0 < 11.0
    with pytest.raises(ValueError, match=r"differs in budget, study_seed"):
        StudyLedger(study_seed=4, budget_kind="seconds", budget=30.0).load_state(state)
    with pytest.raises(ValueError, match="not a study ledger state"):
        back.load_state({"kind": "other"})


def test_a_live_ledger_pickles_as_a_reference_and_any_other_with_its_data():
    led = StudyLedger(study_seed=1, budget_kind="epochs", budget=5.0, key="study-x")
    led.trial_epoch_equiv["t"] = 2.0
    with live(led):
        assert pickle.loads(pickle.dumps(BudgetStopper(led)))._ledger is led  # what Tuner.restore unpickles
        other = StudyLedger(study_seed=1, budget_kind="epochs", budget=5.0, key="study-x")
        with pytest.raises(ValueError, match="running in this process already"), live(other):
            pass
    copy = pickle.loads(pickle.dumps(led))
    assert copy is not led and copy.trial_epoch_equiv == {"t": 2.0}


# ---- PASHA: a snapshot brings back its configuration (issue 10 §6) ------------------------------------
def _pasha(progressive: bool = True) -> PASHA:
    cls = PASHA if progressive else PromotionASHA
    kw = {} if not progressive else {"progressive": True}
    return cls(metric="acc", mode="max", max_t=27, grace_period=1, reduction_factor=3, max_concurrent=1, **kw)


@pytest.mark.parametrize("progressive", [True, False])
def test_a_pasha_snapshot_restored_into_a_default_built_pasha_decides_the_same(progressive):
    original = _pasha(progressive)
    restored = PASHA() if progressive else PromotionASHA()
    restored.set_state(original.get_state())
    assert restored.get_state() == original.get_state()
    assert (restored.rung_levels, restored.current_max_t) == (original.rung_levels, original.current_max_t)
    run = dict(n_trials=12, max_t=27, metric_fn=_acc)
    assert Replay(restored, **run).run() == Replay(_pasha(progressive), **run).run()
    # mid-run: everything, rungs and ε included, comes back
    half = _pasha(progressive)
    Replay(half, **{**run, "n_trials": 6}).run()
    again = PASHA() if progressive else PromotionASHA()
    again.set_state(half.get_state())
    assert again.get_state() == half.get_state() and again.eps == half.eps and again.rungs == half.rungs


def test_a_promotion_asha_refuses_a_progressive_pashas_state():
    with pytest.raises(ValueError, match="progressive PASHA"):
        PromotionASHA().set_state(_pasha(True).get_state())
