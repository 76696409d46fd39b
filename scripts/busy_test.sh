#!/usr/bin/env bash
# The test suite on a busy machine: `make test`'s pytest while 2 x nproc plain busy processes run beside it.
#
#     bash scripts/busy_test.sh                 # the default suite (pyproject's addopts), as `make test` runs it
#     bash scripts/busy_test.sh tests/test_x.py -k name    # extra arguments go to pytest
#
# The load is a job of its own, as other work on a machine is: its busy processes run in a session of
# their own (setsid), so Linux's scheduler (autogroup) shares the CPUs between the load and the suite.
# Started from the suite's own session instead, plain busy processes (niceness 0) would take 1024/36 =
# 28x the CPU of each Ray worker, which Ray starts at niceness 15, and of the dashboard agent that Ray
# waits for at start-up: trials then crawl (a 30 s test takes over 10 minutes) and the raylet gives up
# waiting for its agent ("Timed out waiting for file .../metrics_agent_port"). Measured here: beside 4
# busy loops of its own session a niceness-15 loop got 0.02 CPU-s in 8 s, its niceness-0 peers 0.7 each.
# Where the kernel does not group sessions (/proc/sys/kernel/sched_autogroup_enabled 0, or a container
# with a cpu cgroup of its own), the load shares the suite's group and starves Ray's workers again.
#
# Every busy process is stopped when the suite ends, fails, or is interrupted (Ctrl-C, TERM): the
# script kills the load's process group, its own child, by id; a busy process also stops by itself
# once this script is gone (even after a SIGKILL). The exit status is the suite's. Prints the load,
# the suite's wall time and its status at the end. On a fresh clone it first does `make test`'s
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
LOAD_GROUP=""  # the process group (and session) of the load: its leader's pid
PID_FILE=$(mktemp)

stop_busy() {
    if [ -n "$LOAD_GROUP" ]; then
        kill -TERM -- "-$LOAD_GROUP" 2>/dev/null
        wait "$LOAD_GROUP" 2>/dev/null
        LOAD_GROUP=""
    fi
    rm -f "$PID_FILE" "$PID_FILE.part"
}
trap stop_busy EXIT
trap 'stop_busy; exit 130' INT
trap 'stop_busy; exit 143' TERM

# the leader starts the busy processes, writes their pids, and waits; each loops while this script lives
# shellcheck disable=SC2016  # the inner script expands its own arguments
setsid bash -c 'owner=$1; pids=(); for _ in $(seq "$2"); do
    ( while [ -d "/proc/$owner" ]; do :; done ) & pids+=("$!"); done
    echo "${pids[*]}" > "$3.part" && mv "$3.part" "$3"; wait' busy_load "$$" "$N_BUSY" "$PID_FILE" &
LOAD_GROUP=$!
for _ in $(seq 100); do  # bounded: 10 s for the leader to start the load
    [ -s "$PID_FILE" ] && break
    sleep 0.1
done
if [ ! -s "$PID_FILE" ]; then
    echo "busy_test: error: the busy processes did not start within 10 s" >&2
    exit 2
fi
echo "busy_test: $N_BUSY busy processes beside the suite ($(nproc) CPUs; a session of their own, pids $(cat "$PID_FILE")); load $(cut -d' ' -f1-3 /proc/loadavg)"

start=$(date +%s)
PYTHONFAULTHANDLER=1 "$PY" -m pytest -q -n 2 --dist loadfile --no-loadscope-reorder "$@"  # as make test runs it (PYTEST_WORKERS)
status=$?
end=$(date +%s)
load=$(cut -d' ' -f1-3 /proc/loadavg)
stop_busy
echo "busy_test: suite exit status $status after $((end - start)) s under load $load (1, 5, 15 min)"
exit "$status"
