"""OHGW's live metrics end to end, and the token-protected dashboard, on one real local Ray.

One module-wide setup (one Ray start): a local Ray with the dashboard on loopback (token auth on, a
random token), a metrics export port, and a real Prometheus (Debian's, ``scripts/ensure_prometheus.sh``)
scraping that port; then a tiny experiment (LCBench surrogate: asha+ohgw and pasha+ohgw, one seed)
runs through the harness. PromQL over Prometheus' HTTP API must then agree with the Parquet export
(an independent record of the same run): studies done = studies run, warm-starts = warm-started trials,
|g| observations = warm-started trials × ψ, STOP/PAUSE decisions per rung = the decisions recorded
per rung, T@τ gauges exactly for the studies that reached τ.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import secrets
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from ohgw.results import read_table
from ohgw.studies.runner import run_experiment
from ohgw.studies.study import ExperimentConfig, tune_run_name

from prometheus_server import Prometheus, free_port

pytestmark = pytest.mark.ray

METHODS = ["asha+ohgw", "pasha+ohgw"]  # two studies: they run at once on 2 CPUs
EXPERIMENT = "metrics-e2e"
TAU = 0.6


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """(prometheus, dashboard url, token, results dir, summary, cfg) after the tiny experiment ran."""
    import ray
    from ray._private.authentication_test_utils import reset_auth_token_state  # Ray's own test helper

    from trainables.lcbench import search_space, train_lcbench

    if ray.is_initialized():
        ray.shutdown()
    saved = {k: os.environ.get(k) for k in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")}
    token = secrets.token_hex(16)
    os.environ.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=token)
    os.environ.pop("RAY_AUTH_TOKEN_PATH", None)
    reset_auth_token_state()  # Ray caches the auth mode per process: make it read the environment again
    metrics_port, dash_port = free_port(), free_port()
    prom = None
    try:
        ctx = ray.init(address="local", num_cpus=2, include_dashboard=True, dashboard_host="127.0.0.1",
                       dashboard_port=dash_port, _metrics_export_port=metrics_port, log_to_driver=False,
                       configure_logging=False, _system_config={"metrics_report_interval_ms": 500})
        prom = Prometheus(tmp_path_factory.mktemp("prometheus"), [f"127.0.0.1:{metrics_port}"])
        cfg = ExperimentConfig(experiment=EXPERIMENT, space=search_space(),
                               base_config={"task_id": 167149, "epoch_s": 0.0}, metric="val_acc", max_t=9,
                               budget=12.0, tau=TAU)
        out = tmp_path_factory.mktemp("results")
        summary = run_experiment(cfg, train_lcbench, METHODS, [0], out, quiet=True, stream=io.StringIO())
        yield prom, "http://" + ctx.dashboard_url, token, out, summary, cfg
    finally:
        if prom is not None:
            prom.stop()
        ray.shutdown()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        reset_auth_token_state()


def test_prometheus_scrapes_ray(cluster):
    prom, *_ = cluster
    assert prom.wait_for("count(up{job='ray'} == 1)", 1.0) == 1.0, prom.targets_up()


def test_studies_done_equals_studies_run(cluster):
    prom, _, _, _, summary, _ = cluster
    assert summary.ran == len(METHODS) and not summary.failed
    q = f"sum(ray_ohgw_studies_done_total{{experiment='{EXPERIMENT}'}})"
    assert prom.wait_for(q, summary.ran) == summary.ran
    assert prom.wait_for(f"sum(ray_ohgw_studies_started_total{{experiment='{EXPERIMENT}'}})", summary.ran) == summary.ran
    assert prom.scalar("sum(ray_ohgw_studies_failed_total)") is None  # never incremented: no series
    by_method = {r["metric"]["method"]: float(r["value"][1])
                 for r in prom.query("sum by (method) (ray_ohgw_studies_done_total)")}
    assert by_method == {m: 1.0 for m in METHODS}


def test_warm_start_count_equals_warm_started_trials(cluster):
    prom, _, _, out, _, cfg = cluster
    trials = read_table(out, "trials")
    warm = trials[trials["ws_mode"].fillna("none") != "none"]
    n_psi = len(cfg.space.names)
    assert len(warm) >= 2 and set(warm["method"]) == {"asha+ohgw", "pasha+ohgw"}
    for method, n in warm.groupby("method").size().items():
        tags = f"experiment='{EXPERIMENT}', method='{method}', seed='0'"
        assert prom.wait_for(f"sum(ray_ohgw_warmstarts_total{{{tags}}})", n) == n
        assert prom.wait_for(f"sum(ray_ohgw_warmstart_wall_seconds_count{{{tags}}})", n) == n
        wall = prom.scalar(f"sum(ray_ohgw_warmstart_wall_seconds_sum{{{tags}}})")
        assert 0 < wall < 60 * n
        assert prom.wait_for(f"sum(ray_ohgw_warmstart_abs_hypergradient_count{{{tags}}})", n * n_psi) == n * n_psi
        per_psi = {r["metric"]["psi"] for r in prom.query(f"ray_ohgw_warmstart_abs_step_count{{{tags}}}")}
        assert per_psi == set(cfg.space.names)


def test_rung_decisions_match_the_recorded_ones(cluster):
    prom, _, _, out, _, _ = cluster
    it = read_table(out, "iterations")
    for decision, name in (("STOP", "ray_ohgw_trials_stopped_total"), ("PAUSE", "ray_ohgw_trials_paused_total")):
        want = it[it["decision"] == decision].groupby(["method", "epoch"]).size()
        got = {(r["metric"]["method"], int(r["metric"]["rung"])): float(r["value"][1])
               for r in prom.query(f"sum by (method, rung) ({name})")}
        assert got == {(m, int(e)): float(n) for (m, e), n in want.items()}, decision
    assert it["decision"].isin(["STOP", "PAUSE"]).sum() >= 3  # PASHA pauses at rung 1: the check is not vacuous


def test_pasha_gauges(cluster):
    prom, _, _, _, _, cfg = cluster
    max_res = prom.query("ray_ohgw_pasha_max_resource_epochs")
    assert {r["metric"]["method"] for r in max_res} == {"pasha+ohgw"}
    assert all(1 <= float(r["value"][1]) <= cfg.max_t for r in max_res)
    eps = prom.query("ray_ohgw_pasha_epsilon")
    assert eps and all(float(r["value"][1]) >= 0 for r in eps)


def test_time_to_target_gauges_for_studies_that_reached_tau(cluster):
    prom, _, _, out, _, _ = cluster
    it = read_table(out, "iterations").sort_values("epoch_equiv")
    reached = {m: g for m, g in it.groupby("method") if (g["val_score"] >= TAU).any()}
    assert reached  # τ is low enough for at least one study
    got = {r["metric"]["method"]: float(r["value"][1])
           for r in prom.query("max by (method) (ray_ohgw_study_time_to_target_epoch_equivalents)")}
    assert set(got) == set(reached)
    for m, g in reached.items():
        first = g[g["val_score"] >= TAU].iloc[0]  # the first report at or above τ, in the study's own record
        assert math.isclose(got[m], first["epoch_equiv"], rel_tol=1e-9)
    for clock in ("wall_seconds", "compute_seconds"):
        vals = prom.query(f"ray_ohgw_study_time_to_target_{clock}")
        assert {r["metric"]["method"] for r in vals} == set(reached) and all(float(r["value"][1]) >= 0 for r in vals)


# ---- the dashboard, with and without the token ----------------------------------------------------------
def _get(url: str, token: str | None = None):
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(req, timeout=20) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_dashboard_version_with_token(cluster):
    _, url, token, *_ = cluster
    status, body = _get(url + "/api/version", token)
    assert status == 200 and json.loads(body)["ray_version"]


def test_dashboard_refuses_without_token(cluster):
    _, url, token, *_ = cluster
    assert _get(url + "/api/version")[0] == 401
    assert _get(url + "/api/v0/actors")[0] == 401
    assert _get(url + "/api/version", "not-" + token)[0] == 403  # a wrong token is no token


def test_dashboard_lists_the_studies_tasks_and_trial_actors(cluster):
    _, url, token, *_ = cluster
    status, body = _get(url + "/api/v0/tasks?limit=1000&detail=1", token)
    assert status == 200
    tasks = json.loads(body)["data"]["result"]["result"]
    study_tasks = [t for t in tasks if t.get("func_or_class_name") == "run_study"]
    assert len(study_tasks) == len(METHODS)
    status, body = _get(url + "/api/v0/actors?limit=1000&detail=1", token)
    assert status == 200
    actors = json.loads(body)["data"]["result"]["result"]
    trial_actors = [a for a in actors if a.get("class_name") == "ImplicitFunc"]  # Tune's trial actors
    # an actor's name is its __repr__, reported once its constructor has run; an actor Tune started and then
    # stopped before that (seen once on a busy machine, load 8-10) has no name, and never ran a trial
    unnamed = [a for a in trial_actors if not a.get("repr_name")]
    assert all(a.get("state") == "DEAD" for a in unnamed), unnamed
    names = {a["repr_name"] for a in trial_actors if a.get("repr_name")}
    assert names == {tune_run_name(EXPERIMENT, m, 0) for m in METHODS}  # each study's uniquely named trainable


def test_grafana_dashboard_queries_run_and_cover_every_metric(cluster):
    from ohgw.metrics import METRICS

    prom = cluster[0]
    dash = json.loads((Path(__file__).parents[1] / "docker/grafana/dashboards/ohgw.json").read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    it = read_table(cluster[3], "iterations")
    # events this small run may not have had (how far the budget reaches depends on warm-start timing)
    maybe_empty = {"ray_ohgw_trials_stopped_total": not (it["decision"] == "STOP").any(),
                   "ray_ohgw_trials_paused_total": not (it["decision"] == "PAUSE").any()}
    for expr in exprs:  # each panel's PromQL is valid (a failing query raises) and has data
        result = prom.query(expr.replace("$experiment", ".*").replace("$method", ".*"))
        if result or any(m in expr and empty for m, empty in maybe_empty.items()):
            continue
        # a rate() needs two samples of a series in its window: a series that a short-lived trial actor
        # exported for under a scrape interval has one; then every metric the panel reads must have data
        assert "rate(" in expr, expr
        names = set(re.findall(r"ray_ohgw_\w+", expr))
        assert names and all(prom.query(f"max_over_time({n}[10m])") for n in names), expr
    used = " ".join(exprs)
    assert all("ray_" + name in used for name in METRICS), [n for n in METRICS if "ray_" + n not in used]


def test_docker_healthcheck_asks_the_head(cluster):
    _, url, *_ = cluster
    script = Path(__file__).parents[1] / "docker/healthcheck.py"
    ok = subprocess.run([sys.executable, str(script)], env={**os.environ, "RAY_HEAD_URL": url}, capture_output=True)
    assert ok.returncode == 0, ok.stderr
    down = subprocess.run([sys.executable, str(script)], env={**os.environ, "RAY_HEAD_URL": f"http://127.0.0.1:{free_port()}"},
                          capture_output=True, text=True)
    assert down.returncode == 1 and down.stderr.startswith("healthcheck: ")
