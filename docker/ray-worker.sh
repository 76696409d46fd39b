#!/usr/bin/env bash
# Join the Ray head with one labelled Ray node per group of this container's GPUs; block until stopped.
#
# Each node carries the node label ohgw-group=<prefix>-g<k> (ohgw.studies.cluster.GROUP_LABEL), so the
# study runner pins each study's trials to one group. Environment:
#   RAY_HEAD_ADDRESS      the head's GCS address, e.g. ray-head:6379 (required)
#   OHGW_GPUS_PER_GROUP   GPUs per group (default 1); it must divide the GPUs visible here
#   OHGW_CPUS_PER_GROUP   CPUs per group (default: this container's CPUs / groups)
#   OHGW_GROUP_PREFIX     label prefix (default: the container's hostname, unique per replica)
# Without GPUs it starts one CPU node labelled <prefix>-cpu (to try the stack on a laptop).
# SIGTERM (docker stop, compose down) stops the nodes cleanly.
set -euo pipefail

head_address="${RAY_HEAD_ADDRESS:?RAY_HEAD_ADDRESS is not set (e.g. ray-head:6379)}"
per_group="${OHGW_GPUS_PER_GROUP:-1}"
prefix="${OHGW_GROUP_PREFIX:-$(hostname)}"
n_gpus=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU ' || true)
n_cpus=$(nproc)

if ! [[ "$per_group" =~ ^[1-9][0-9]*$ ]]; then
    echo "ray-worker: error: OHGW_GPUS_PER_GROUP must be a positive integer, got '$per_group'" >&2
    exit 2
fi
if (( n_gpus > 0 && n_gpus % per_group != 0 )); then
    echo "ray-worker: error: OHGW_GPUS_PER_GROUP=$per_group does not divide the $n_gpus GPUs here" >&2
    exit 2
fi

stop() {
    if [[ -n "${sleeper:-}" ]]; then kill "$sleeper" 2>/dev/null || true; fi
    echo "ray-worker: stopping the Ray nodes of this container"
    ray stop --grace-period 30 || true
    exit 0
}
trap stop TERM INT

if (( n_gpus == 0 )); then
    ray start --address="$head_address" --num-gpus=0 --num-cpus="${OHGW_CPUS_PER_GROUP:-$n_cpus}" \
        --labels="ohgw-group=${prefix}-cpu" --metrics-export-port=8080
else
    groups=$(( n_gpus / per_group ))
    cpus="${OHGW_CPUS_PER_GROUP:-$(( n_cpus / groups > 0 ? n_cpus / groups : 1 ))}"
    for (( k = 0; k < groups; k++ )); do
        devices=$(seq -s, $(( k * per_group )) $(( (k + 1) * per_group - 1 )))
        CUDA_VISIBLE_DEVICES="$devices" ray start --address="$head_address" --num-gpus="$per_group" \
            --num-cpus="$cpus" --labels="ohgw-group=${prefix}-g${k}" --metrics-export-port=$(( 8080 + k )) \
            --dashboard-agent-listen-port=$(( 52365 + k ))
    done
fi
echo "ray-worker: joined $head_address; waiting (docker stop ends the nodes)"
while true; do
    sleep 3600 &
    sleeper=$!
    wait "$sleeper"
done
