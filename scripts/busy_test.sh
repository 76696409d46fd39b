#!/usr/bin/env bash
# The test suite on a busy machine: `make test`'s pytest while 2 x nproc plain busy processes run beside it.
#
#     bash scripts/busy_test.sh                 # the default suite (pyproject's addopts), as `make test` runs it
#     bash scripts/busy_test.sh tests/test_x.py -k name    # extra arguments go to pytest
#
# Every busy process is stopped when the suite ends, fails, or is interrupted (Ctrl-C, TERM): they are
# this script's own children, stopped by their process ids. The exit status is the suite's. Prints the
# load, the suite's wall time and its status at the end. On a fresh clone it first does `make test`'s
# set-up (the venv, chromium, prometheus, lint tools); PYTHON=... names another interpreter and skips it.
set -u

cd "$(dirname "$0")/.." || exit 2
if [ -z "${PYTHON:-}" ]; then
    make -s install && bash scripts/ensure_chromium.sh && bash scripts/ensure_prometheus.sh \
        && PYTHON=.venv/bin/python bash scripts/ensure_lint_tools.sh || exit 2
fi
PY="${PYTHON:-.venv/bin/python}"
if [ ! -x "$PY" ] && ! command -v "$PY" >/dev/null 2>&1; then
    echo "busy_test: error: no Python at $PY (run make install, or set PYTHON)" >&2
    exit 2
fi
N_BUSY=$((2 * $(nproc)))
BUSY_PIDS=()

stop_busy() {
    local pid
    for pid in "${BUSY_PIDS[@]}"; do
        kill "$pid" 2>/dev/null
    done
    for pid in "${BUSY_PIDS[@]}"; do
        wait "$pid" 2>/dev/null
    done
    BUSY_PIDS=()
}
trap stop_busy EXIT
trap 'stop_busy; exit 130' INT
trap 'stop_busy; exit 143' TERM

for _ in $(seq "$N_BUSY"); do
    ( while :; do :; done ) &
    BUSY_PIDS+=("$!")
done
echo "busy_test: $N_BUSY busy processes beside the suite ($(nproc) CPUs; pids ${BUSY_PIDS[*]}); load $(cut -d' ' -f1-3 /proc/loadavg)"

start=$(date +%s)
PYTHONFAULTHANDLER=1 "$PY" -m pytest -q "$@"
status=$?
end=$(date +%s)
load=$(cut -d' ' -f1-3 /proc/loadavg)
stop_busy
echo "busy_test: suite exit status $status after $((end - start)) s under load $load (1, 5, 15 min)"
exit "$status"
