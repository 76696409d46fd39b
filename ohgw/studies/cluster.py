"""GPU groups: labelled Ray nodes that each host whole studies.

A *group* is the set of Ray nodes carrying the node label ``ohgw-group=<name>``.
A study's trials are pinned to one group with
``PlacementGroupFactory(..., bundle_label_selector=[{"ohgw-group": name}])``,
and the runner spreads studies across groups. Unlabelled clusters form one
implicit group.

One command starts a labelled local cluster on a multi-GPU host, one Ray node per
group of GPUs (here 8 GPUs → 4 groups of 2)::

    python -m ohgw.studies.cluster start --gpus-per-group 2
    python experiments/asha_vs_ohgw.py --preset cifar10 --address auto
    python -m ohgw.studies.cluster stop

Multi-node: on the head, ``ray start --head --labels ohgw-group=g0
--dashboard-host 127.0.0.1``; on every other machine (or GPU subset, with
``CUDA_VISIBLE_DEVICES``), ``ray start --address <head-ip>:6379 --labels
ohgw-group=g<k>``; then run the experiment with ``--address auto``.
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
from dataclasses import dataclass

GROUP_LABEL = "ohgw-group"


@dataclass(frozen=True)
class Group:
    name: str | None  # None: the implicit group of an unlabelled cluster
    cpus: float
    gpus: float

    def study_slots(self, cpus_per_trial: float, gpus_per_trial: float, trials_per_study: int) -> int:
        """How many studies fit at once, each holding its full resource slice."""
        fits = [math.floor(self.cpus / (cpus_per_trial * trials_per_study) + 1e-9)]
        if gpus_per_trial > 0:
            fits.append(math.floor(self.gpus / (gpus_per_trial * trials_per_study) + 1e-9))
        return max(0, min(fits))


def discover_groups() -> list[Group]:
    """Groups of the connected Ray cluster, from alive nodes' labels and resources."""
    import ray

    groups: dict[str | None, list[float]] = {}
    labelled = False
    for node in ray.nodes():
        if not node.get("Alive", False):
            continue
        label = (node.get("Labels") or {}).get(GROUP_LABEL)
        labelled |= label is not None
        res = node.get("Resources", {})
        acc = groups.setdefault(label, [0.0, 0.0])
        acc[0] += res.get("CPU", 0.0)
        acc[1] += res.get("GPU", 0.0)
    if labelled:
        groups.pop(None, None)  # unlabelled nodes (e.g. a CPU-only head) take no studies
    return [Group(name, c, g) for name, (c, g) in sorted(groups.items(), key=lambda kv: str(kv[0]))]


def _gpu_count() -> int:
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20, check=True).stdout
        return sum(1 for line in out.splitlines() if line.startswith("GPU "))
    except (OSError, subprocess.SubprocessError):
        return 0


def start_local(gpus_per_group: int, cpus_per_group: int | None = None, port: int = 6379) -> list[str]:
    """Start one Ray node per group of ``gpus_per_group`` GPUs on this host; returns the commands run."""
    n_gpus = _gpu_count()
    if n_gpus == 0:
        raise ValueError("no GPUs found (nvidia-smi -L); a labelled GPU cluster needs GPUs")
    if gpus_per_group < 1 or n_gpus % gpus_per_group:
        raise ValueError(f"--gpus-per-group must divide the {n_gpus} GPUs of this host, got {gpus_per_group}")
    n_groups = n_gpus // gpus_per_group
    cpus = cpus_per_group or max(1, (os.cpu_count() or 1) // n_groups)
    commands = []
    for k in range(n_groups):
        devices = ",".join(str(d) for d in range(k * gpus_per_group, (k + 1) * gpus_per_group))
        cmd = ["ray", "start", f"--num-cpus={cpus}", f"--num-gpus={gpus_per_group}", f"--labels={GROUP_LABEL}=g{k}"]
        cmd += ["--head", f"--port={port}", "--dashboard-host=127.0.0.1", "--include-dashboard=true"] if k == 0 else [
            f"--address=127.0.0.1:{port}"
        ]
        env = {**os.environ, "CUDA_VISIBLE_DEVICES": devices}
        subprocess.run(cmd, env=env, check=True)
        commands.append(f"CUDA_VISIBLE_DEVICES={devices} " + " ".join(cmd))
    return commands


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ohgw.studies.cluster", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    start = sub.add_parser("start", help="start a labelled local cluster, one Ray node per GPU group")
    start.add_argument("--gpus-per-group", type=int, default=1)
    start.add_argument("--cpus-per-group", type=int, default=None)
    start.add_argument("--port", type=int, default=6379)
    sub.add_parser("stop", help="stop every Ray node on this host")
    args = parser.parse_args(argv)
    try:
        if args.command == "start":
            for c in start_local(args.gpus_per_group, args.cpus_per_group, args.port):
                print(c)
            print("cluster up: run experiments with --address auto; dashboard on http://127.0.0.1:8265")
        else:
            subprocess.run(["ray", "stop"], check=True)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
