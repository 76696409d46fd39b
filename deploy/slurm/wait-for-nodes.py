"""Wait until every Slurm node of the job has a labelled OHGW group in the Ray cluster (run by the sbatch scripts).

    python deploy/slurm/wait-for-nodes.py <head-ip:port> <nodes> <timeout-s>

Succeeds once ``<nodes>`` distinct machines (node addresses) carry an ``ohgw-group`` label; the runner reads the
groups once, before its first study, so it must not start earlier. A fixed sleep was too short where ``ray start``
takes over 30 s (a loaded machine) and needlessly long elsewhere. Otherwise one line and exit 1 at the timeout.
"""

import sys
import time

import ray

USAGE = "usage: wait-for-nodes.py <head-ip:port> <nodes> <timeout-s>"


def main(argv: list[str]) -> int:
    if len(argv) != 3 or not argv[1].isdigit() or int(argv[1]) < 1:
        print(USAGE, file=sys.stderr)
        return 2
    address, want, timeout_s = argv[0], int(argv[1]), float(argv[2])
    try:
        ray.init(address=address, logging_level="ERROR", log_to_driver=False, configure_logging=False)
    except (ConnectionError, RuntimeError) as e:  # no head there, or no Ray node of this machine in it
        print(f"wait-for-nodes.py: error: cannot join the Ray cluster at {address}: {str(e).splitlines()[0]}",
              file=sys.stderr)
        return 1

    def joined() -> set[str]:
        return {n["NodeManagerAddress"] for n in ray.nodes() if n["Alive"] and n.get("Labels", {}).get("ohgw-group")}

    deadline = time.monotonic() + timeout_s
    while len(joined()) < want and time.monotonic() < deadline:
        time.sleep(0.5)
    got = joined()
    if len(got) < want:
        print(f"wait-for-nodes.py: error: {len(got)} of {want} node(s) joined the Ray cluster at {address} within "
              f"{timeout_s:g} s (OHGW_JOIN_WAIT_S): {sorted(got)}", file=sys.stderr)
        return 1
    print(f"wait-for-nodes.py: {want} node(s) joined: {' '.join(sorted(got))}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
