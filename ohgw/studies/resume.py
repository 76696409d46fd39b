"""Can an interrupted study resume from its Tune state? And the two files a study keeps beside that state.

:func:`ohgw.studies.study.run_study` keeps a study's Tune run in ``<storage>/<run name>``
(:func:`~ohgw.studies.study.tune_run_name`). Beside Tune's own files it writes

- :data:`MARKER` (``ohgw_study.json``) before Tune starts: the study's id, method, seed and the
  experiment's fingerprint (:meth:`~ohgw.studies.study.ExperimentConfig.fingerprint`), so that a
  resume never continues another experiment's study;
- :data:`TABLES` (``ohgw_study_tables.pkl``) once ``fit`` has returned, before the trials'
  last checkpoints are swept: the study's finished tables. A run killed between the end of the
  study and its Parquet export reloads them instead of restoring Tune.

:func:`inspect` says what to do with a run folder: ``fresh`` (none), ``finished`` (the tables
are there), ``resume`` (a consistent Tune state), or ``redo`` with the reason why Tune's state
cannot be restored. A folder whose marker belongs to another experiment or study raises
:class:`StudyStateMismatch` (a ``ValueError``): it is refused, never overwritten.

What ``resume`` needs, checked here before ``Tuner.restore`` is called (Tune would otherwise
fail late, or restore a state whose parts are of different moments):

1. Tune's newest experiment state (``experiment_state-<session>.json``, picked by name as Tune
   does) parses, and ``tuner.pkl`` is there;
2. Tune's callback states (``callback-states-<session>.pkl``) hold the study's ledger
   (:meth:`ohgw.studies.ledger.StudyLedger.to_state`) and the scheduler snapshot
   (:class:`ohgw.studies.ledger.StudyTap`'s, through ``SchedulerStateCallback``);
3. both are of one snapshot: the same trials, no trial ahead of the ledger (the ledger may be one
   report ahead of a trial's checkpoint: that epoch is re-done and replayed, see
   :mod:`ohgw.studies.ledger`), every ended trial's end recorded. Tune writes the files one
   after the other and copies them to the storage folder in the background, so a kill in
   between can leave a mix of two snapshots;
4. every unfinished trial's latest checkpoint is on disk, or retired by
   :class:`ohgw.studies.checkpoints.KeepRestorable` (Tune deletes the previous one as soon as a new
   one is registered, and the copy of the state naming the new one may not have landed yet);
5. the scheduler snapshot loads into a freshly built scheduler (``probe``).
"""

from __future__ import annotations

import json
import os
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ohgw import protocol
from ohgw.results import atomic_path
from ohgw.studies.checkpoints import ENDED, EXPERIMENT_STATE, RETIRED, newest, stored_trials
from ohgw.studies.ledger import LEDGER_STATE

MARKER = "ohgw_study.json"
TABLES = "ohgw_study_tables.pkl"
MARKER_VERSION = 1
_CALLBACK_STATES = "callback-states-*.pkl"  # Tune's CallbackList.CKPT_FILE_TMPL


class StudyStateMismatch(ValueError):
    """A study's Tune folder holds the state of another experiment (or another study): refused."""


@dataclass(frozen=True)
class TuneState:
    """What :func:`inspect` found: ``action`` is fresh, finished, resume or redo."""

    action: str
    reason: str = ""
    tables: dict | None = None


def _atomic_write(path: Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def marker(study: str, method: str, seed: int, fingerprint: dict) -> dict:
    return {"version": MARKER_VERSION, "study_id": study, "method": method, "study_seed": int(seed),
            "fingerprint": fingerprint}


def write_marker(run_dir: str | os.PathLike, mark: dict) -> None:
    """Write :data:`MARKER` into ``run_dir`` (created), atomically."""
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    _atomic_write(Path(run_dir) / MARKER, json.dumps(mark, indent=1, sort_keys=True).encode())


def read_marker(run_dir: str | os.PathLike) -> dict | None:
    """The marker of ``run_dir``, None if there is none; a ValueError if it is unreadable."""
    path = Path(run_dir) / MARKER
    if not path.is_file():
        return None
    try:
        mark = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"{MARKER} is unreadable ({type(e).__name__})") from None
    if not isinstance(mark, dict) or mark.get("version") != MARKER_VERSION:
        raise ValueError(f"{MARKER} is not of version {MARKER_VERSION}")
    return mark


def check_owner(run_dir: str | os.PathLike, mine: dict) -> None:
    """Refuse (:class:`StudyStateMismatch`) a ``run_dir`` whose marker is another experiment's or study's.

    Writes nothing; no folder or no (readable) marker passes (:func:`inspect` then redoes the study).
    """
    try:
        theirs = read_marker(run_dir)
    except ValueError:
        return
    if theirs is None:
        return
    fp_mine, fp_theirs = mine["fingerprint"], theirs.get("fingerprint") or {}
    differ = sorted(k for k in set(fp_mine) | set(fp_theirs) if fp_mine.get(k) != fp_theirs.get(k))
    differ += [k for k in ("method", "study_seed") if theirs.get(k) != mine[k]]
    if differ:
        raise StudyStateMismatch(
            f"study {mine['study_id']}: its Tune state in {run_dir} belongs to another experiment "
            f"({fp_theirs.get('experiment', '?')!r}, study {theirs.get('study_id', '?')!r}; differs in "
            f"{', '.join(differ)}); remove that folder or use another --out")


def save_tables(run_dir: str | os.PathLike, tables: dict) -> None:
    """Keep a finished study's tables in ``run_dir`` (atomically) until they are exported."""
    _atomic_write(Path(run_dir) / TABLES, pickle.dumps(tables, protocol=pickle.HIGHEST_PROTOCOL))


def _trials(state: dict) -> list[tuple[dict, dict]]:
    return [(json.loads(js), json.loads(meta)) for js, meta in state["trial_data"]]


def _consistency(trials: list[tuple[dict, dict]], ledger: dict) -> str:
    """Empty if the experiment state and the ledger are of one snapshot (module doc, 3.), else why not."""
    ids = {js["trial_id"] for js, _ in trials}
    known = set(ledger["trial_index"])
    if ids != known:
        return (f"the experiment state and the study's records are of different moments (trials only in Tune's: "
                f"{sorted(ids - known)}, only in the records: {sorted(known - ids)})")
    ahead = []
    for js, meta in trials:
        it = int((meta.get("last_result") or {}).get(protocol.ITERATION, 0) or 0)
        if it > int(ledger["last_epoch"].get(js["trial_id"], 0)):
            ahead.append(js["trial_id"])
    ended = [js["trial_id"] for js, _ in trials if js.get("status") in ENDED]
    unrecorded = [t for t in ended if t not in ledger["trial_end"]]
    if ahead or unrecorded:
        return (f"the experiment state is newer than the study's records (reports not recorded: {sorted(ahead)}, "
                f"ends not recorded: {sorted(unrecorded)})")
    return ""


def _missing_checkpoints(run_dir: Path, state: dict) -> list[str]:
    """Unfinished trials whose latest registered checkpoint is neither on disk nor retired."""
    missing = []
    for dir_name, t in stored_trials(state).items():
        if t.ended or t.checkpoint is None:
            continue  # ended, or never checkpointed: it restarts from scratch
        trial_dir = run_dir / dir_name
        if not ((trial_dir / t.checkpoint).is_dir() or (trial_dir / RETIRED / t.checkpoint).is_dir()):
            missing.append(t.trial_id)
    return missing


def _callback_states(run_dir: Path) -> tuple[dict | None, dict | None]:
    """(ledger state, StudyTap snapshot) from Tune's newest callback-state file."""
    path = newest(run_dir, _CALLBACK_STATES)
    if path is None:
        return None, None
    with open(path, "rb") as f:
        states = pickle.load(f)
    ledger = tap = None
    for s in (states or {}).values():
        if isinstance(s, dict) and s.get("kind") == LEDGER_STATE:
            ledger = s
        elif isinstance(s, dict) and s.get("scheduler_type") == "StudyTap":
            tap = s["state"]
    return ledger, tap


def inspect(run_dir: str | os.PathLike, mine: dict, probe: Callable[[dict], Any] | None = None) -> TuneState:
    """What to do with a study's Tune folder ``run_dir`` (module doc); ``mine`` is the study's :func:`marker`.

    ``probe(tap_state)`` loads the scheduler snapshot into a freshly built scheduler (raises if it cannot).
    Raises :class:`StudyStateMismatch` for another experiment's or study's folder.
    """
    run = Path(run_dir)
    if not run.is_dir() or not any(run.iterdir()):
        return TuneState("fresh")
    check_owner(run, mine)
    try:
        if read_marker(run) is None:
            return TuneState("redo", f"it has no {MARKER}: not written by this harness's resume")
    except ValueError as e:
        return TuneState("redo", str(e))
    if (run / TABLES).is_file():
        try:
            tables = pickle.loads((run / TABLES).read_bytes())
            if not isinstance(tables, dict) or set(tables) != {"iterations", "trials", "studies"}:
                raise ValueError("not a study's tables")
        except Exception as e:  # noqa: BLE001 - any unreadable file: redo
            return TuneState("redo", f"{TABLES} is unreadable ({type(e).__name__})")
        return TuneState("finished", tables=tables)
    path = newest(run, EXPERIMENT_STATE)
    if path is None:
        return TuneState("redo", "no experiment state was saved yet")
    try:
        state = json.loads(path.read_text())
        trials = _trials(state)
    except Exception as e:  # noqa: BLE001 - a truncated or garbled file
        return TuneState("redo", f"{path.name} is unreadable ({type(e).__name__})")
    if not (run / "tuner.pkl").is_file():
        return TuneState("redo", "tuner.pkl is missing")
    try:
        ledger, tap = _callback_states(run)
    except Exception as e:  # noqa: BLE001
        return TuneState("redo", f"the callback states are unreadable ({type(e).__name__})")
    if ledger is None or tap is None:
        return TuneState("redo", "the callback states hold no study ledger and scheduler snapshot")
    why = _consistency(trials, ledger)
    if why:
        return TuneState("redo", why)
    try:
        missing = _missing_checkpoints(run, state)
    except Exception as e:  # noqa: BLE001
        return TuneState("redo", f"the trials' checkpoints cannot be read from {path.name} ({type(e).__name__})")
    if missing:
        return TuneState("redo", f"the latest checkpoints of trials {missing} are gone")
    if probe is not None:
        try:
            probe(tap)
        except Exception as e:  # noqa: BLE001
            first = str(e).strip().splitlines()[0] if str(e).strip() else ""
            return TuneState("redo", f"its scheduler state does not load: {type(e).__name__}: {first}")
    return TuneState("resume", f"{len(trials)} trials, {len(ledger['rows'])} reports recorded")
