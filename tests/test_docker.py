"""docker/: the Dockerfile passes hadolint and keeps its promises; compose validates with docker-compose 1.29.2."""

from __future__ import annotations

import json
import re

import yaml

from ohgw.studies.cluster import GROUP_LABEL

from lint_tools import ROOT, run, tool

DOCKERFILE = ROOT / "docker" / "Dockerfile"
COMPOSE = ROOT / "docker" / "compose.yaml"


def test_dockerfile_passes_hadolint():
    r = run(tool("hadolint"), "--failure-threshold", "info", str(DOCKERFILE))
    assert r.returncode == 0, r.stdout + r.stderr


def test_dockerfile_promises():
    text = DOCKERFILE.read_text()
    froms = re.findall(r"^FROM\s+(\S+)", text, re.M)
    assert len(froms) == 1 and re.fullmatch(r"python:\d+\.\d+\.\d+-slim-\w+", froms[0])  # a pinned full version
    users = re.findall(r"^USER\s+(\S+)", text, re.M)
    assert users and users[-1].split(":")[0] not in ("0", "root")  # runs as non-root
    runs = " ".join(re.findall(r"^RUN .*?(?<!\\)$", text, re.M | re.S))
    assert "pip install" in runs and "[dev]" not in runs and "pytest" not in runs  # no test/dev extras
    assert re.search(r"^HEALTHCHECK .*healthcheck\.py", text, re.M | re.S)
    assert len(re.findall(r"^RUN ", text, re.M)) <= 2  # few layers
    assert not re.search(r"(?i)(token|password|secret)\s*=", text.replace("RAY_AUTH_MODE=token", ""))  # no secrets
    assert "ARG TORCH_INDEX_URL" in text


def test_dockerignore_keeps_results_envs_and_data_out():
    ignored = (ROOT / ".dockerignore").read_text().split()
    for entry in ("results/", ".venv/", "data/", "**/auth_token"):
        assert entry in ignored, entry


def test_compose_validates_offline():
    r = run(tool("docker-compose"), "-f", str(COMPOSE), "config", "--quiet",
            env={"PATH": "/usr/bin:/bin", "HOME": str(ROOT)})  # no engine is contacted by `config`
    assert r.returncode == 0, r.stderr
    bad = COMPOSE.parent / "compose.invalid.yaml"
    try:  # the validator is real: an unknown key is an error
        bad.write_text(COMPOSE.read_text().replace("    hostname: ray-head", "    hostnamee: ray-head", 1))
        r = run(tool("docker-compose"), "-f", str(bad), "config", "--quiet", env={"PATH": "/usr/bin:/bin"})
        assert r.returncode != 0 and "hostnamee" in r.stderr
    finally:
        bad.unlink(missing_ok=True)


def test_compose_structure():
    c = yaml.safe_load(COMPOSE.read_text())
    s = c["services"]
    assert set(s) == {"ray-head", "ray-gpu-worker", "prometheus", "grafana"}
    head = s["ray-head"]
    assert "127.0.0.1:${OHGW_DASHBOARD_PORT:-8265}:8265" in head["ports"]
    for svc in s.values():  # every published port is on the host's loopback only
        assert all(str(p).startswith("127.0.0.1:") for p in svc.get("ports", []))
    env = head["environment"]
    assert env["RAY_AUTH_MODE"] == "token" and env["RAY_AUTH_TOKEN_PATH"].startswith("/run/secrets/")
    assert env["RAY_GRAFANA_HOST"] == "http://grafana:3000" and env["RAY_PROMETHEUS_HOST"] == "http://prometheus:9090"
    worker = s["ray-gpu-worker"]
    devices = worker["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["capabilities"] == ["gpu"]
    assert worker["environment"]["RAY_HEAD_ADDRESS"] == "ray-head:6379"
    script = (ROOT / "docker" / "ray-worker.sh").read_text()
    assert f'--labels="{GROUP_LABEL}=' in script  # the label ohgw.studies.cluster pins studies with
    for svc in ("ray-head", "ray-gpu-worker"):
        assert any(v.startswith("results:/app/results") for v in s[svc]["volumes"])
    assert any(v.startswith("ray-tmp:/tmp/ray") for v in s["prometheus"]["volumes"])
    prom = yaml.safe_load((ROOT / "docker/prometheus/prometheus.yml").read_text())
    files = prom["scrape_configs"][0]["file_sd_configs"][0]["files"]
    assert files == ["/tmp/ray/prom_metrics_service_discovery.json"]  # Ray's service-discovery file


def test_grafana_provisioning():
    prov = yaml.safe_load((ROOT / "docker/grafana/provisioning/dashboards/dashboards.yaml").read_text())
    paths = {p["name"]: p["options"]["path"] for p in prov["providers"]}
    assert paths == {"Ray": "/tmp/ray/session_latest/metrics/grafana/dashboards", "OHGW": "/etc/grafana/dashboards/ohgw"}
    ds = yaml.safe_load((ROOT / "docker/grafana/provisioning/datasources/prometheus.yaml").read_text())
    assert ds["datasources"][0]["name"] == "Prometheus" and ds["datasources"][0]["uid"] == "prometheus"
    dash = json.loads((ROOT / "docker/grafana/dashboards/ohgw.json").read_text())
    assert dash["uid"] == "ohgw-studies" and len({p["id"] for p in dash["panels"]}) == len(dash["panels"])
    assert all(t["datasource"]["uid"] == "prometheus" for p in dash["panels"] for t in p["targets"])


def test_worker_script_passes_shellcheck():
    r = run(tool("shellcheck"), "docker/ray-worker.sh")
    assert r.returncode == 0, r.stdout
