"""A real Prometheus (Debian's ``prometheus`` binary) on loopback for tests: start, query, stop.

``scripts/ensure_prometheus.sh`` installs it; without it the tests that need it fail, naming that
script (CI must never skip them). The server scrapes the given targets every second and keeps its
data in a temporary folder; :meth:`Prometheus.query` runs PromQL through the HTTP API
(``/api/v1/query``, https://prometheus.io/docs/prometheus/latest/querying/api/).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

ENSURE = "bash scripts/ensure_prometheus.sh"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prometheus_binary() -> str:
    found = os.environ.get("PROMETHEUS_BIN") or shutil.which("prometheus")
    if not found:
        raise RuntimeError(f"the prometheus binary is missing: run `{ENSURE}` (installs Debian's prometheus)")
    return found


class Prometheus:
    """``prometheus`` scraping ``targets`` (host:port) every ``interval_s``, listening on 127.0.0.1."""

    def __init__(self, workdir: Path, targets: list[str], interval_s: float = 1.0) -> None:
        self.workdir = Path(workdir)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "prometheus.yml"
        lines = ["global:", f"  scrape_interval: {interval_s:g}s", f"  evaluation_interval: {interval_s:g}s",
                 "scrape_configs:", "  - job_name: ray", "    static_configs:",
                 f"      - targets: [{', '.join(repr(t) for t in targets)}]"]
        config.write_text("\n".join(lines) + "\n")
        self.log = open(self.workdir / "prometheus.log", "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [prometheus_binary(), f"--config.file={config}", f"--storage.tsdb.path={self.workdir / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
            stdout=self.log, stderr=subprocess.STDOUT)
        self._wait_ready()

    def _wait_ready(self, timeout_s: float = 30.0) -> None:
        deadline = time.time() + timeout_s
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"prometheus exited ({self.proc.returncode}); see {self.workdir / 'prometheus.log'}")
            try:
                with urllib.request.urlopen(self.url + "/-/ready", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"prometheus not ready after {timeout_s} s")

    def query(self, promql: str) -> list[dict]:
        """The instant vector of ``promql`` (a list of ``{"metric": {...}, "value": [t, "v"]}``)."""
        url = f"{self.url}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
        with urllib.request.urlopen(url, timeout=10) as r:
            body = json.load(r)
        if body.get("status") != "success":
            raise RuntimeError(f"PromQL {promql!r} failed: {body}")
        return body["data"]["result"]

    def scalar(self, promql: str) -> float | None:
        """The one value of ``promql`` (None when the vector is empty)."""
        result = self.query(promql)
        if not result:
            return None
        if len(result) != 1:
            raise RuntimeError(f"PromQL {promql!r} returned {len(result)} series, expected one")
        return float(result[0]["value"][1])

    def wait_for(self, promql: str, expected: float, timeout_s: float = 30.0) -> float | None:
        """Poll ``promql`` until it equals ``expected`` (or ``timeout_s`` passes); returns the last value."""
        deadline, value = time.time() + timeout_s, None
        while time.time() < deadline:
            value = self.scalar(promql)
            if value is not None and abs(value - expected) < 1e-9:
                return value
            time.sleep(0.5)
        return value

    def targets_up(self) -> list[str]:
        with urllib.request.urlopen(self.url + "/api/v1/targets", timeout=10) as r:
            active = json.load(r)["data"]["activeTargets"]
        return [t["scrapeUrl"] for t in active if t.get("health") == "up"]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
