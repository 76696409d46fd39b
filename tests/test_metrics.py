"""ohgw.metrics without Ray: names, bounded labels, the study tag context, the runner's dashboard safety."""

from __future__ import annotations

import re

import pytest

from ohgw import metrics
from ohgw.space import SearchSpace
from ohgw.studies import runner
from ohgw.studies.cli import main
from ohgw.studies.workload import Workload

STUDY = {"experiment": "asha_vs_ohgw-digits", "method": "asha+ohgw", "seed": 3}


def test_names_follow_prometheus_conventions():
    for name, (kind, _, extra, bounds) in metrics.METRICS.items():
        assert re.fullmatch(r"ohgw_[a-z_]+", name), name
        assert name.endswith("_total") == (kind == "counter"), name  # counters and only counters end in _total
        assert (bounds is not None) == (kind == "histogram")
        assert extra in (None, "psi", "rung")
    assert "ohgw_warmstart_wall_seconds" in metrics.METRICS


@pytest.mark.parametrize("bad, label", [
    ({**STUDY, "trial_id": "3f2a1_00004"}, "trial_id"),           # an unbounded label key
    ({**STUDY, "method": "3f2a1_00004"}, "method"),                # a Tune trial id as a value
    ({**STUDY, "experiment": "run-9f86d081884c"}, "experiment"),   # a hash / Ray id
    ({**STUDY, "experiment": "0b5e3c1e-6a52-4f2b-9f3e-5c1b2a7d9e10"}, "experiment"),  # a UUID
    ({**STUDY, "seed": 1_000_020}, "seed"),                        # a trial's derived seed, not a study seed
    ({**STUDY, "seed": -1}, "seed"),
    ({**STUDY, "seed": "s1"}, "seed"),
    ({**STUDY, "experiment": 7}, "experiment"),
])
def test_unbounded_tag_values_are_rejected(bad, label):
    with pytest.raises(ValueError, match=f"'{label}'"):
        metrics.check_tags(bad)


def test_extra_dimension_is_checked():
    assert metrics.check_tags({**STUDY, "psi": "lr"}, extra="psi")["psi"] == "lr"
    assert metrics.check_tags({**STUDY, "rung": 9}, extra="rung")["rung"] == "9"
    with pytest.raises(ValueError, match="'rung'"):
        metrics.check_tags({**STUDY, "rung": 2.5}, extra="rung")
    with pytest.raises(ValueError, match="exactly"):
        metrics.check_tags(STUDY, extra="psi")  # the metric needs its ψ
    with pytest.raises(ValueError, match="exactly"):
        metrics.check_tags({**STUDY, "rung": 1})  # a study metric takes no rung


def test_a_label_with_too_many_values_is_refused(monkeypatch):
    monkeypatch.setattr(metrics, "_seen", {})  # this process' label values, restored after the test
    for i in range(metrics.MAX_VALUES):
        metrics.check_tags({**STUDY, "psi": f"p{i}"}, extra="psi")
    with pytest.raises(ValueError, match="distinct values"):
        metrics.check_tags({**STUDY, "psi": "one_too_many"}, extra="psi")
    assert metrics.check_tags({**STUDY, "psi": "p0"}, extra="psi")["psi"] == "p0"  # known values stay fine


def test_record_outside_ray_is_a_no_op_but_still_checks():
    import ray

    assert not ray.is_initialized()
    assert metrics.record("ohgw_studies_done_total", 1, STUDY) is False
    with pytest.raises(ValueError, match="unknown metric"):
        metrics.record("ohgw_nope_total", 1, STUDY)
    with pytest.raises(ValueError, match="'trial_id'"):
        metrics.record("ohgw_studies_done_total", 1, {**STUDY, "trial_id": "x"})
    assert metrics.safely("ohgw_studies_done_total", 1, {**STUDY, "trial_id": "x"}) is False  # logged, not raised


def test_tagged_trainable_sees_its_study_then_restores():
    seen = []
    run = metrics.tagged(lambda config: seen.append(metrics.current_tags()), "exp", "pasha+ohgw", 4)
    run({})
    assert seen == [{"experiment": "exp", "method": "pasha+ohgw", "seed": "4"}]
    assert metrics.current_tags() == {"experiment": "", "method": "", "seed": ""}
    with pytest.raises(ValueError, match="'seed'"):
        metrics.tagged(print, "exp", "asha", 2**31 - 5)


# ---- the runner's dashboard safety ----------------------------------------------------------------------
@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "[::1]", "127.0.0.2"])
def test_loopback_hosts_are_allowed(host):
    runner.check_dashboard_host(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.1.2.3", "myhost.example"])
def test_public_dashboard_needs_the_flag(host):
    with pytest.raises(ValueError, match="--allow-public-dashboard"):
        runner.check_dashboard_host(host)
    runner.check_dashboard_host(host, allow_public=True)


def test_auth_disabled_is_detected(monkeypatch):
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    assert runner.auth_disabled()
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    assert not runner.auth_disabled()
    monkeypatch.delenv("RAY_AUTH_MODE")
    assert not runner.auth_disabled()  # Ray's default for a local cluster is token auth


def _workload() -> Workload:
    preset = {"base_config": {}, "max_t": 3, "seeds": 1, "budget": 3.0, "tau": 0.5, "cpus_per_trial": 1.0,
              "gpus_per_trial": 0.0, "trials_per_study": 1}
    return Workload("toy", trainable=print, space=SearchSpace.from_bounds({"lr": (1e-3, 1.0, "log10")}),
                    presets={"p": preset}, metric="val_acc", mode="max", metric_range=(0.0, 1.0))


@pytest.mark.parametrize("argv, message", [
    (["--dashboard-host", "0.0.0.0"], "--allow-public-dashboard"),
    (["--experiment", "run-9f86d081884c"], "looks like an id"),
])
def test_cli_refuses_before_writing(tmp_path, capsys, argv, message):
    out = tmp_path / "out"
    assert main("toy", _workload(), ["asha"], "toy", [*argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert not out.exists()
