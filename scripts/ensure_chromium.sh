#!/usr/bin/env bash
# Make Debian's chromium available for the report's headless-browser test.
#
# Installs the `chromium` package with apt-get when /usr/bin/chromium is missing and we are root
# with apt-get available. Never fails the caller: when it cannot install, it says why and exits 0
# (the browser test then skips with a clear reason).
set -u

if [ -x /usr/bin/chromium ]; then
    echo "ensure_chromium: /usr/bin/chromium present"
    exit 0
fi
if [ "$(id -u)" != "0" ]; then
    echo "ensure_chromium: not root; skipping chromium install (browser test will be skipped)"
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure_chromium: apt-get not available; skipping chromium install (browser test will be skipped)"
    exit 0
fi

export DEBIAN_FRONTEND=noninteractive
if ! apt-get update -qq >/dev/null 2>&1; then
    echo "ensure_chromium: apt-get update failed (no package mirror?); skipping chromium install"
    exit 0
fi
if ! apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1; then
    echo "ensure_chromium: apt-get install chromium failed; skipping (browser test will be skipped)"
    exit 0
fi
if [ -x /usr/bin/chromium ]; then
    echo "ensure_chromium: installed $(/usr/bin/chromium --version 2>/dev/null || echo chromium)"
else
    echo "ensure_chromium: chromium package installed but /usr/bin/chromium is missing"
fi
exit 0
