#!/usr/bin/env bash
# Make Debian's prometheus available for the live-metrics test (tests/test_metrics_e2e.py), which
# starts it on loopback itself. Installing the package does not start a service here (no systemd in
# containers); elsewhere the packaged service is stopped and disabled so that the test owns the binary.
# Exits 0 when prometheus is present (PROMETHEUS_BIN or on PATH) or installed; otherwise one line
# "ensure_prometheus: error: ..." and exit 1. The test never skips: without prometheus it fails.
set -u

fail() {
    echo "ensure_prometheus: error: $1; tests/test_metrics_e2e.py needs it" >&2
    exit 1
}

if [ -n "${PROMETHEUS_BIN:-}" ]; then
    [ -x "$PROMETHEUS_BIN" ] || fail "PROMETHEUS_BIN=$PROMETHEUS_BIN is not executable"
    echo "ensure_prometheus: $PROMETHEUS_BIN present"
    exit 0
fi
if command -v prometheus >/dev/null 2>&1; then
    echo "ensure_prometheus: $(command -v prometheus) present"
    exit 0
fi
[ "${EUID:-$(id -u)}" = "0" ] || fail "prometheus is missing and installing it needs root (run: sudo bash scripts/ensure_prometheus.sh)"
command -v apt-get >/dev/null 2>&1 || fail "prometheus is missing and apt-get is not available"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null 2>&1 || fail "apt-get update failed (no package mirror reachable?)"
apt-get install -y -qq --no-install-recommends prometheus >/dev/null 2>&1 || fail "apt-get install prometheus failed"
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    systemctl disable --now prometheus >/dev/null 2>&1 || true
fi
command -v prometheus >/dev/null 2>&1 || fail "the prometheus package is installed but the binary is not on PATH"
echo "ensure_prometheus: installed $(prometheus --version 2>&1 | head -n 1)"
