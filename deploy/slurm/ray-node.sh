#!/usr/bin/env bash
# One Slurm node of an OHGW Ray cluster (run by srun, one task per node): start this node's Ray
# node(s), one per group of its GPUs, labelled ohgw-group=<host>-g<k>; block until SIGTERM, then stop.
#
#   ray-node.sh head   <ip:port>    the first node: the Ray head (dashboard on loopback) + its GPU groups
#   ray-node.sh worker <ip:port>    every other node: GPU groups joined to the head
#
# Environment: OHGW_GPUS_PER_GROUP (default 1; must divide the node's GPUs), OHGW_CPUS_PER_GROUP
# (default: the task's CPUs / groups), OHGW_RAY_DASHBOARD (true|false, default true: the head's dashboard,
# on loopback), OHGW_RAY_STOP_GRACE_S (`ray stop --grace-period`, default 30), RAY_AUTH_MODE / RAY_AUTH_TOKEN_PATH (token auth, on by default), RAY_TMPDIR (Ray's temp dir).
# GPUs: SLURM's CUDA_VISIBLE_DEVICES (or nvidia-smi) lists this task's GPUs; groups take them in order.
set -euo pipefail

usage() { echo "usage: ray-node.sh head|worker <head-ip:port>" >&2; exit 2; }
[[ $# -eq 2 ]] || usage
role="$1"
address="$2"
[[ "$role" == head || "$role" == worker ]] || usage
[[ "$address" =~ ^[^:]+:[0-9]+$ ]] || { echo "ray-node.sh: error: address must be <ip>:<port>, got '$address'" >&2; exit 2; }
port="${address##*:}"
command -v ray >/dev/null 2>&1 || {
    echo "ray-node.sh: error: ray is not on PATH on $(hostname -s) (submit from the environment that has Ray)" >&2; exit 2; }
dashboard="${OHGW_RAY_DASHBOARD:-true}"
[[ "$dashboard" == true || "$dashboard" == false ]] || {
    echo "ray-node.sh: error: OHGW_RAY_DASHBOARD must be true or false, got '$dashboard'" >&2; exit 2; }

per_group="${OHGW_GPUS_PER_GROUP:-1}"
[[ "$per_group" =~ ^[1-9][0-9]*$ ]] || {
    echo "ray-node.sh: error: OHGW_GPUS_PER_GROUP must be a positive integer, got '$per_group'" >&2; exit 2; }

if [[ -n "${CUDA_VISIBLE_DEVICES:-}" ]]; then
    IFS=, read -r -a gpus <<< "$CUDA_VISIBLE_DEVICES"
else
    mapfile -t gpus < <(nvidia-smi --query-gpu=index --format=csv,noheader 2>/dev/null || true)
fi
n_gpus=${#gpus[@]}
if (( n_gpus % per_group != 0 )); then
    echo "ray-node.sh: error: OHGW_GPUS_PER_GROUP=$per_group does not divide the $n_gpus GPUs of $(hostname -s)" >&2
    exit 2
fi
groups=$(( n_gpus > 0 ? n_gpus / per_group : 1 ))
n_cpus="${SLURM_CPUS_ON_NODE:-$(nproc)}"
cpus="${OHGW_CPUS_PER_GROUP:-$(( n_cpus / groups > 0 ? n_cpus / groups : 1 ))}"
host=$(hostname -s)

# Every Ray process stays in this step's process tree (`ray start --block`): Slurm's own signals reach them
# even where it tracks processes by parent (proctrack/linuxproc). Without --block Ray's daemons outlive
# `ray start` and escape it; a scancel whose srun ended the step before this script's `ray stop` had run
# left a gcs_server behind (tests/test_slurm.py).
starters=()
stop() {
    trap '' TERM INT
    echo "ray-node.sh: stopping Ray on $host"
    local status=0
    ray stop --grace-period "${OHGW_RAY_STOP_GRACE_S:-30}" || status=$?
    echo "ray-node.sh: ray stop on $host: exit $status"
    # the `ray start --block` monitors outlast their stopped daemons (they do not end on SIGTERM)
    kill -KILL "${starters[@]}" 2>/dev/null || true
    wait || true
    exit 0
}
trap stop TERM INT

node_ip=()
if [[ "$role" == head ]]; then  # the head itself takes no trials: studies go to the labelled groups
    # the head's own nodes use the address the others join (no guess by an outbound probe); a loopback
    # address (a single-node cluster, ray-array.sbatch) is left to Ray, as the driver's own guess is
    if [[ "${address%:*}" != 127.* ]]; then node_ip=(--node-ip-address="${address%:*}"); fi
    ray start --block --head --port="$port" "${node_ip[@]}" --num-cpus=0 --num-gpus=0 --dashboard-host=127.0.0.1 \
        --include-dashboard="$dashboard" --metrics-export-port=8080 &
    starters+=("$!")
    until ray health-check --address "$address" >/dev/null 2>&1; do  # the head's GCS, before its groups join
        kill -0 "${starters[0]}" 2>/dev/null || { echo "ray-node.sh: error: the Ray head on $host exited" >&2; exit 1; }
        sleep 1
    done
fi
for (( k = 0; k < groups; k++ )); do
    if (( n_gpus > 0 )); then
        devices=$(IFS=,; echo "${gpus[*]:k*per_group:per_group}")
        label="ohgw-group=${host}-g${k}"
    else
        devices=""
        label="ohgw-group=${host}-cpu"
    fi
    CUDA_VISIBLE_DEVICES="$devices" ray start --block --address="$address" "${node_ip[@]}" \
        --num-gpus=$(( n_gpus > 0 ? per_group : 0 )) --num-cpus="$cpus" --labels="$label" \
        --metrics-export-port=$(( 8081 + k )) --dashboard-agent-listen-port=$(( 52366 + k )) &
    starters+=("$!")
done
echo "ray-node.sh: $host starting ($role, $groups group(s) of $(( n_gpus > 0 ? per_group : 0 )) GPU(s))"
status=0
wait -n "${starters[@]}" || status=$?  # a Ray node of this machine ended (or failed to start): end them all
echo "ray-node.sh: error: a Ray node on $host exited (status $status)" >&2
stop
