"""The experiment manifest and the harness's use of the protocol, without Ray.

- a re-run of an experiment whose name needs URL-encoding in the partition path is accepted;
- τ (and the metric's range) are analysis settings: another τ re-runs the same studies;
- the refusal message names exactly the settings that differ;
- ``ohgw/studies`` spells no key of :mod:`ohgw.protocol` (it uses the protocol's names).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from ohgw import protocol
from ohgw.results import REQUIRED_COLUMNS, study_dir
from ohgw.space import SearchSpace
from ohgw.studies import ledger
from ohgw.studies.runner import check_manifest, write_manifest
from ohgw.studies.study import ExperimentConfig
from ohgw.warmstart import WarmStartSettings

STUDIES_PKG = Path(__file__).resolve().parents[1] / "ohgw" / "studies"


def _cfg(**kw) -> ExperimentConfig:
    base = dict(
        experiment="manifest-test",
        space=SearchSpace.default(),
        base_config={"dataset": "digits", "batch_size": 128, "width": 1},
        max_t=3,
        budget=6.0,
        tau=0.5,
        warm_start=WarmStartSettings(step_rule="normalized"),
    )
    base.update(kw)
    return ExperimentConfig(**base)


def _done_study(out: Path, experiment: str) -> None:
    """What the runner leaves behind for one finished study (only the path matters here)."""
    d = study_dir(out, "studies", experiment, "asha", 0)
    d.mkdir(parents=True)
    (d / "part-0.parquet").write_bytes(b"")


@pytest.mark.parametrize("name", ["my exp", "exp/with/slashes", "ünï=cödé&%"])
def test_rerun_of_an_experiment_with_an_encoded_name_is_accepted(tmp_path, name):
    cfg = _cfg(experiment=name)
    write_manifest(tmp_path, cfg)
    _done_study(tmp_path, name)
    check_manifest(tmp_path, cfg)  # its own folder: no refusal


def test_studies_of_another_experiment_are_still_refused_by_their_decoded_name(tmp_path):
    _done_study(tmp_path, "other exp")
    with pytest.raises(ValueError, match=re.escape("holds studies of other experiments ['other exp']")):
        check_manifest(tmp_path, _cfg(experiment="my exp"))


def test_another_tau_reruns_the_same_studies(tmp_path):
    write_manifest(tmp_path, _cfg(tau=0.5))
    _done_study(tmp_path, "manifest-test")
    check_manifest(tmp_path, _cfg(tau=0.8))
    check_manifest(tmp_path, _cfg(tau=0.2, metric_range=(0.0, 100.0)))
    assert _cfg(tau=0.5).fingerprint() == _cfg(tau=0.8, metric_range=(0.0, 2.0)).fingerprint()
    assert "tau" not in _cfg().fingerprint() and "metric_range" not in _cfg().fingerprint()


@pytest.mark.parametrize(
    ("change", "keys"),
    [
        ({"budget": 7.0}, ["budget"]),
        ({"max_t": 4, "searcher": "optuna"}, ["max_t", "searcher"]),
        ({"base_config": {"dataset": "digits", "batch_size": 64, "width": 1}}, ["base_config"]),
        ({"warm_start": WarmStartSettings(step_rule="raw")}, ["warm_start"]),
        ({"space": SearchSpace.from_bounds({"lr": (1e-3, 1.0, "log10")})}, ["space"]),
    ],
)
def test_refusal_names_exactly_the_changed_settings(tmp_path, change, keys):
    write_manifest(tmp_path, _cfg())
    with pytest.raises(ValueError) as err:
        check_manifest(tmp_path, _cfg(**change))
    named = re.search(r"\(differs in ([^)]*)\)", str(err.value)).group(1).split(", ")
    assert named == keys, str(err.value)


def test_unchanged_settings_in_another_key_order_are_accepted(tmp_path):
    write_manifest(tmp_path, _cfg(base_config={"width": 1, "dataset": "digits", "batch_size": 128}))
    check_manifest(tmp_path, _cfg(base_config={"batch_size": 128, "dataset": "digits", "width": 1}))


def test_trial_init_seed_is_paired_across_methods_and_differs_across_seeds():
    assert not hasattr(ledger, "trial_seed")  # one name per meaning: the wrapper has warm_start_seed
    s = ledger.trial_init_seed
    assert s(0, 3) == s(0, 3) and s(0, 3) != s(1, 3) and s(0, 3) != s(0, 4)
    assert all(0 <= s(k, i) < 2**31 - 1 for k in range(3) for i in range(50))


def _string_constants(path: Path) -> set[str]:
    return {n.value for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.Constant)
            and isinstance(n.value, str)}


def test_the_harness_spells_no_protocol_key():
    keys = {v for k, v in vars(protocol).items() if k.isupper() and isinstance(v, str)}
    keys |= set(protocol.CONTRACT_KEYS) | {protocol.WS_PREFIX + f for f in protocol.WS_FIELDS}
    # spelled legitimately with another meaning: the results schema's column names, the method
    # variant "ohgw", the studies column "space" and "mode" (the metric's / a setting's mode)
    columns = {c for cols in REQUIRED_COLUMNS.values() for c in cols}
    allowed = columns | {protocol.INSTRUCTION_KEY, protocol.SPACE_FIELD, protocol.MODE_FIELD}
    forbidden = keys - allowed
    assert {protocol.ORIGINAL_KEY, protocol.SEED_KEY, protocol.ITERATION} <= forbidden
    # tables.py speaks the results schema only: the iterations columns the recorder names after the contract keys
    schema_only = {"tables.py": set(protocol.CONTRACT_KEYS)}
    for path in sorted(STUDIES_PKG.glob("*.py")):
        spelled = {s for s in _string_constants(path) - schema_only.get(path.name, set())
                   if s in forbidden or s.startswith(protocol.WS_PREFIX)}
        assert not spelled, f"{path.name} spells protocol keys {sorted(spelled)}: use ohgw.protocol"
