"""A Ray cluster of real ``ray start`` nodes on one machine, each node in Linux namespaces of its own.

Each node (a head and GPU-group workers) runs in its own

- **network namespace** ``ohgw<pid>-<node>``: the head's holds a bridge with the head's address,
  each worker's a veth pair into that bridge; addresses in the private subnet ``10.231.<k>.0/24``.
  No namespace has a route anywhere else, so all traffic stays between these namespaces;
- **mount namespace**: a private tmpfs as Ray's temp dir (``<root>/node``) and as the node's own
  results disk (``<root>/disk``), and ``<root>/shared``, a bind mount of ``<root>/nfs`` into every
  node, standing for an NFS export mounted at the same path everywhere. ``/tmp`` itself is never
  mounted over (the project's virtual environment may live under it);
- **PID namespace** (``unshare --pid --fork --mount-proc``) and UTS namespace (hostname = node name):
  a ``ray stop`` inside one node stops that node only; this module never runs ``ray stop``.

``health_check`` sets the head's GCS health check of the nodes (Ray's defaults when empty): a node whose
processes are all SIGKILLed (:meth:`NsCluster.kill_node`) is marked dead after about period x threshold.
Workers carry ``--labels ohgw-group=<group>`` and fake GPUs (``--num-gpus``, no device behind them).
A driver joins the head's mount and network namespaces (:meth:`NsCluster.driver_command`:
``nsenter -t <head pid> -m -n -p``). :meth:`NsCluster.stop` kills every process of every node by PID
(SIGKILL of a PID namespace's first process ends all of it) and deletes the namespaces (their
veths go with them) and ``<root>``; it runs from a pytest finalizer, at exit, and on SIGTERM/SIGINT.
Needs root (CI runs as root).

    with NsCluster(Path("/tmp/ohgw-ns")) as c:   # head + workers g0, g1
        subprocess.run(c.driver_command(["python", "-c", "import ray; ray.init(address=c.address)"]))
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import stop_at_exit  # tests/ is on sys.path wherever this module is imported from

VENV_BIN = Path(sys.executable).parent
TESTS = Path(__file__).resolve().parent
START_TIMEOUT_S = 240.0  # every node up and registered, on a loaded 2-core machine
# Ray's GCS health check of each node (RAY_health_check_<key>, read by the head's gcs_server)
HEALTH_CHECK_KEYS = ("period_ms", "failure_threshold", "timeout_ms", "initial_delay_ms")
# Ray daemons no test of this cluster uses, each a Python process of its own on 2 shared cores (about 2.5 CPU-s
# each to start): every node's log monitor (it streams workers' output to drivers; the drivers here read only
# their own stderr and the Parquet tables) and the head's autoscaler monitor (``--no-monitor``)
LEAN_NODE = ["--include-log-monitor=false"]


def _run(*cmd: str, check: bool = True, timeout: float = 30.0) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=check, capture_output=True, text=True, timeout=timeout)


@dataclass
class Node:
    name: str
    ip: str
    group: str | None  # None: the head (no group, no GPUs)
    proc: subprocess.Popen | None = None  # `ip netns exec … unshare …`
    init_pid: int = 0  # PID 1 of the node's PID namespace (``ray start --block``), as this machine sees it
    node_id: str = ""  # Ray's node id, once the cluster is up
    log: Path | None = None

    @property
    def netns(self) -> str:
        return f"ohgw{os.getpid()}-{self.name}"


@dataclass
class NsCluster:
    root: Path
    groups: tuple[str, ...] = ("g0", "g1")
    cpus_per_worker: int = 1
    gpus_per_worker: int = 1
    env: dict = field(default_factory=dict)  # extra environment of every node's processes
    node_envs: dict = field(default_factory=dict)  # node name -> extra environment of that node's processes
    # the head's GCS health check of every node, as Ray's config names it without ``health_check_`` (e.g.
    # {"period_ms": 500, "failure_threshold": 3}); a node stops answering -> marked dead after about
    # period_ms x failure_threshold. Empty: Ray's defaults (3000 ms x 5, timeout_ms 10000).
    health_check: dict = field(default_factory=dict)
    nodes: dict[str, Node] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.root = Path(self.root).resolve()
        if self.root == Path("/tmp") or Path("/tmp").is_relative_to(self.root):
            raise ValueError(f"root {self.root} would mount over /tmp; give a folder below it")
        for key, value in self.health_check.items():
            if key not in HEALTH_CHECK_KEYS:
                raise ValueError(f"health_check: unknown key {key!r}; known: {', '.join(HEALTH_CHECK_KEYS)}")
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"health_check[{key!r}] must be a positive int, got {value!r}")
        k = 1 + os.getpid() % 250
        self.subnet = f"10.231.{k}"
        self.nodes = {"head": Node("head", f"{self.subnet}.1", None)}
        for i, g in enumerate(self.groups):
            self.nodes[f"w{i}"] = Node(f"w{i}", f"{self.subnet}.{i + 2}", g)

    # paths every node sees at the same place (each its own, except shared/)
    @property
    def temp_dir(self) -> Path:
        return self.root / "node"

    @property
    def disk(self) -> Path:
        return self.root / "disk"

    @property
    def shared(self) -> Path:
        return self.root / "shared"

    def host_path(self, path: str | os.PathLike) -> Path:
        """Where this process (outside the nodes' mount namespaces) sees a path below :attr:`shared`."""
        return self.root / "nfs" / Path(path).relative_to(self.shared)

    @property
    def address(self) -> str:
        return f"{self.nodes['head'].ip}:6379"

    def __enter__(self) -> NsCluster:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def node_env(self, node: Node | None = None) -> dict:
        extra = self.node_envs.get(node.name, {}) if node is not None else {}
        if node is not None and node.group is None:  # the head: its GCS checks every node's health
            extra = {**{f"RAY_health_check_{k}": str(v) for k, v in self.health_check.items()}, **extra}
        return {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0",
                "PYTHONPATH": f"{TESTS}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
                "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}", **self.env, **extra}

    def start(self) -> None:
        """Namespaces, network, mounts and one ``ray start --block`` per node; waits until all are registered."""
        stop_at_exit.register(self)
        for d in ("node", "disk", "shared", "nfs", "logs"):
            (self.root / d).mkdir(parents=True, exist_ok=True)
        head = self.nodes["head"]
        for node in self.nodes.values():
            _run("ip", "netns", "add", node.netns)
            _run("ip", "-n", node.netns, "link", "set", "lo", "up")
        _run("ip", "-n", head.netns, "link", "add", "br0", "type", "bridge")
        _run("ip", "-n", head.netns, "addr", "add", f"{head.ip}/24", "dev", "br0")
        _run("ip", "-n", head.netns, "link", "set", "br0", "up")
        for node in self.nodes.values():
            if node is head:
                continue
            peer = f"b-{node.name}"
            _run("ip", "link", "add", "eth0", "netns", node.netns, "type", "veth", "peer", "name", peer,
                 "netns", head.netns)
            _run("ip", "-n", node.netns, "addr", "add", f"{node.ip}/24", "dev", "eth0")
            _run("ip", "-n", node.netns, "link", "set", "eth0", "up")
            _run("ip", "-n", head.netns, "link", "set", peer, "master", "br0", "up")
        self._launch(head)
        for node in self.nodes.values():
            if node is not head:
                self._launch(node)
        self.wait_for_nodes(len(self.nodes))

    def _launch(self, node: Node) -> None:
        ray_args = ["--block", f"--node-ip-address={node.ip}", f"--temp-dir={self.temp_dir}",
                    "--object-store-memory=80000000", "--disable-usage-stats", *LEAN_NODE]
        if node.group is None:
            ray_args += ["--head", "--port=6379", "--num-cpus=0", "--num-gpus=0", "--include-dashboard=false",
                         "--no-monitor"]
        else:
            ray_args += [f"--address={self.address}", f"--num-cpus={self.cpus_per_worker}",
                         f"--num-gpus={self.gpus_per_worker}", f"--labels=ohgw-group={node.group}"]
        setup = " && ".join([
            f"mount -t tmpfs -o size=512m ohgw-ns {self.temp_dir}",  # Ray's temp dir: this node's own
            f"mount -t tmpfs -o size=256m ohgw-ns {self.disk}",  # this node's own results disk
            f"mount --bind {self.root / 'nfs'} {self.shared}",  # the "NFS" mount, the same on every node
            f"hostname {node.name}",
            # the node's name resolves to its address, and no DNS server is asked (none is reachable)
            f"printf '127.0.0.1 localhost\\n{node.ip} {node.name}\\n' > {self.root}/logs/{node.name}.hosts",
            f": > {self.root}/logs/{node.name}.resolv",
            f"mount --bind {self.root}/logs/{node.name}.hosts /etc/hosts",
            f"mount --bind {self.root}/logs/{node.name}.resolv /etc/resolv.conf",
            f"cd {self.disk}",
            "exec ray start " + " ".join(ray_args),
        ])
        node.log = self.root / "logs" / f"{node.name}.log"
        with open(node.log, "w") as log:
            node.proc = subprocess.Popen(
                ["ip", "netns", "exec", node.netns, "unshare", "--mount", "--pid", "--uts", "--fork", "--mount-proc",
                 "--propagation", "private", "bash", "-c", setup],
                env=self.node_env(node), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 30
        while not node.init_pid:  # `unshare --fork`'s child: PID 1 of the node's PID namespace
            children = Path(f"/proc/{node.proc.pid}/task/{node.proc.pid}/children")
            with contextlib.suppress(OSError, ValueError, IndexError):
                node.init_pid = int(children.read_text().split()[0])
            if node.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"node {node.name} did not start: {self.log_tail(node)}")
            time.sleep(0.05)

    def log_tail(self, node: Node, n: int = 2000) -> str:
        return node.log.read_text()[-n:] if node.log and node.log.exists() else "(no log)"

    def driver_command(self, argv: list[str]) -> list[str]:
        """``argv`` run in the head's mount, network and PID namespaces (the driver of a study on this cluster).

        The PID namespace too: the head's mount namespace has that namespace's ``/proc``, in which Ray's
        driver looks itself up."""
        return ["nsenter", "-t", str(self.nodes["head"].init_pid), "-m", "-n", "-p", *argv]

    def wait_for_nodes(self, n: int, timeout_s: float = START_TIMEOUT_S) -> None:
        """Until ``n`` nodes are alive in the cluster (asked from the head's namespaces), or fail naming them.

        Then each node's Ray id is in :attr:`Node.node_id`."""
        code = ("import json, ray, sys, time\n"
                f"ray.init(address={self.address!r}, logging_level='ERROR', log_to_driver=False)\n"
                f"deadline = time.time() + {timeout_s}\n"
                f"while sum(x['Alive'] for x in ray.nodes()) < {n} and time.time() < deadline:\n"
                "    time.sleep(0.5)\n"
                "print(json.dumps({x['NodeManagerAddress']: x['NodeID'] for x in ray.nodes() if x['Alive']}))\n"
                f"sys.exit(0 if sum(x['Alive'] for x in ray.nodes()) >= {n} else 1)\n")
        head = self.nodes["head"]
        deadline = time.monotonic() + timeout_s
        while True:  # the head's GCS may not listen yet: retry the driver until the deadline
            for node in self.nodes.values():
                if node.proc is not None and node.proc.poll() is not None:
                    raise RuntimeError(f"node {node.name} exited: {self.log_tail(node)}")
            left = deadline - time.monotonic()
            if left <= 0:
                raise RuntimeError(f"{n} nodes not up within {timeout_s:g} s; head log: {self.log_tail(head)}")
            r = subprocess.run(self.driver_command([sys.executable, "-c", code]), env=self.node_env(),
                               capture_output=True, text=True, timeout=left + 30)
            if r.returncode == 0:
                ids = json.loads(r.stdout.strip().splitlines()[-1])
                for node in self.nodes.values():
                    node.node_id = ids.get(node.ip, "")
                return
            time.sleep(1.0)

    def kill_node(self, name: str) -> list[int]:
        """SIGKILL every process of node ``name`` (all PIDs in its network namespace); returns them."""
        node = self.nodes[name]
        pids = [int(p) for p in _run("ip", "netns", "pids", node.netns, check=False).stdout.split()]
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if node.proc is not None:
            node.proc.wait(timeout=30)
            node.proc = None  # a lost node: stop() still deletes its namespace
        return pids

    def stop(self) -> None:
        """Kill every node's processes, delete the namespaces (and their veths) and ``root``; idempotent."""
        for name in [n for n in self.nodes if n != "head"] + ["head"]:
            node = self.nodes[name]
            proc = node.proc
            if proc is not None:
                with contextlib.suppress(ProcessLookupError, subprocess.TimeoutExpired, OSError):
                    self.kill_node(name)
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=30)
                node.proc = None
            with contextlib.suppress(subprocess.SubprocessError, OSError):
                _run("ip", "netns", "del", node.netns, check=False)
        shutil.rmtree(self.root, ignore_errors=True)
        stop_at_exit.unregister(self)


def stale_namespaces() -> list[str]:
    """Namespaces of this helper whose creator process is gone (a run killed by SIGKILL)."""
    names = [line.split()[0] for line in _run("ip", "netns", "list").stdout.splitlines() if line.startswith("ohgw")]
    stale = []
    for name in names:
        pid = name[4:].split("-")[0]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            stale.append(name)
    return stale


def remove_stale() -> None:
    """Delete the namespaces (and kill the processes) that a SIGKILLed run of this helper left behind."""
    for name in stale_namespaces():
        for pid in _run("ip", "netns", "pids", name, check=False).stdout.split():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)
        _run("ip", "netns", "del", name, check=False)


if __name__ == "__main__":  # a manual check: python tests/ns_cluster.py ROOT (starts, prints, stops)
    with NsCluster(Path(sys.argv[1])) as c:
        print(f"up: head {c.address}, workers {[n.ip for n in c.nodes.values() if n.group]}", flush=True)
