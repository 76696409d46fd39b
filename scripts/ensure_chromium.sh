#!/usr/bin/env bash
# Make Debian's chromium available: the figures' PDF/PNG export (kaleido drives it; `make run`) and the
# report's headless-browser test (tests/test_analysis_report.py; `make test`).
#
# Exits 0 when chromium is present (CHROMIUM_BIN, default /usr/bin/chromium, or `chromium` on PATH)
# or once it has installed it with apt-get (needs root). Otherwise it fails loudly: one line
# "ensure_chromium: error: ..." on stderr and exit status 1. The browser test never skips: without
# chromium it fails, pointing here.
set -u

BIN="${CHROMIUM_BIN:-/usr/bin/chromium}"

fail() {
    echo "ensure_chromium: error: $1; the figures' PDF/PNG and the report test (tests/test_analysis_report.py) need chromium" >&2
    exit 1
}

if [ -x "$BIN" ]; then
    echo "ensure_chromium: $BIN present"
    exit 0
fi
if [ -z "${CHROMIUM_BIN:-}" ] && command -v chromium >/dev/null 2>&1; then
    echo "ensure_chromium: $(command -v chromium) present"
    exit 0
fi
if [ "${EUID:-$(id -u)}" != "0" ]; then
    fail "$BIN is missing and installing it needs root (run: sudo bash scripts/ensure_chromium.sh)"
fi
if ! command -v apt-get >/dev/null 2>&1; then
    fail "$BIN is missing and apt-get is not available to install the chromium package"
fi

export DEBIAN_FRONTEND=noninteractive
if ! apt-get update -qq >/dev/null 2>&1; then
    fail "apt-get update failed (no package mirror reachable?), chromium not installed"
fi
if ! apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1; then
    fail "apt-get install chromium failed"
fi
if [ ! -x "$BIN" ]; then
    fail "the chromium package is installed but $BIN is missing"
fi
echo "ensure_chromium: installed $("$BIN" --version 2>/dev/null || echo chromium)"
