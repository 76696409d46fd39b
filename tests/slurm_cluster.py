"""A real Slurm cluster on one machine: ``munged``, one ``slurmctld`` and two ``slurmd`` nodes in namespaces.

Debian's ``slurm-wlm`` and ``munge`` (``scripts/ensure_slurm.sh``), with a private configuration under ``<root>``
(``SLURM_CONF``; the machine's ``/etc/slurm`` and ``/etc/munge`` are not used) and plugins that need neither
systemd nor cgroups: ``proctrack/linuxproc``, ``task/none``, ``jobacct_gather/none``, ``select/cons_tres``.

- ``munged`` runs in this machine's namespaces with a private key and socket (``AuthInfo=socket=...``); Unix
  sockets on a path reach it from every network namespace;
- ``slurmctld`` runs in network namespace ``ohgws<pid>-ctl`` (hostname ``ctl``, address ``10.232.<k>.1`` on a
  bridge), each ``slurmd`` in ``ohgws<pid>-<node>`` (hostname ``n1``/``n2``, addresses ``.2``/``.3``, a veth
  into the bridge). No namespace has a route anywhere else: all traffic stays between them;
- each slurmd has its own mount namespace with a private tmpfs at ``<root>/node`` (its spool, and Ray's temp
  dir: jobs get ``RAY_TMPDIR=<root>/node``), private ``/etc/hosts`` and an empty ``/etc/resolv.conf``, and its
  own PID namespace: a ``ray stop`` in a job step on one node stops that node's Ray only. The rest of the
  machine's filesystem (the checkout, ``<root>/shared``) is seen by every node: a cluster with a shared home;
- each node has fake GPUs (``gres/gpu``, ``File=<root>/dev/nvidia<i>``, character devices 1:3 like
  ``/dev/null``; slurmd refuses a plain file): ``--gpus-per-task`` works and steps get ``CUDA_VISIBLE_DEVICES``.

Client commands (``sbatch``, ``squeue``, ``scancel``) run in the controller's network namespace
(:meth:`SlurmCluster.client`). :meth:`SlurmCluster.stop` kills every process of every namespace by PID,
deletes the namespaces (their veths go with them) and ``<root>``; it runs from a pytest finalizer, at exit and
on SIGTERM/SIGINT (after a SIGKILL, the next run's :func:`remove_stale` does). Never runs ``ray stop``.
Needs root (CI runs as root).

    with SlurmCluster(Path("/tmp/ohgw-slurm")) as c:
        job = c.submit(["deploy/slurm/ray-cluster.sbatch"], env)
        c.wait_job(job, timeout_s=300)
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import stop_at_exit  # tests/ is on sys.path wherever this module is imported from

VENV_BIN = Path(sys.executable).parent
START_TIMEOUT_S = 60.0  # every slurmd registered and idle
PREFIX = "ohgws"
# PID 1 of a node: runs its argv, reaps every child (orphans included), exits with the argv's status
REAPER = ("import os, subprocess, sys\n"
          "p = subprocess.Popen(sys.argv[1:])\n"
          "while True:\n"
          "    pid, status = os.wait()\n"
          "    if pid == p.pid:\n"
          "        sys.exit(os.waitstatus_to_exitcode(status))\n")


def _run(*cmd: str, check: bool = True, timeout: float = 30.0, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=check, capture_output=True, text=True, timeout=timeout, env=env)


@dataclass
class Host:
    name: str  # hostname in its UTS namespace: "ctl" or a Slurm node name
    ip: str
    proc: subprocess.Popen | None = None
    init_pid: int = 0  # PID 1 of its PID namespace (:data:`REAPER`), as this machine sees it
    log: Path | None = None

    @property
    def netns(self) -> str:
        return f"{PREFIX}{os.getpid()}-{self.name}"


@dataclass
class SlurmCluster:
    root: Path
    node_names: tuple[str, ...] = ("n1", "n2")
    cpus_per_node: int = 2
    gpus_per_node: int = 1
    kill_wait_s: int = 30  # Slurm's KillWait: SIGTERM to SIGKILL on scancel (Slurm's default)
    hosts: dict[str, Host] = field(default_factory=dict)
    munged: subprocess.Popen | None = None

    def __post_init__(self) -> None:
        self.root = Path(self.root).resolve()
        if self.root == Path("/tmp") or Path("/tmp").is_relative_to(self.root):
            raise ValueError(f"root {self.root} would mount over /tmp; give a folder below it")
        self.subnet = f"10.232.{1 + os.getpid() % 250}"
        self.hosts = {"ctl": Host("ctl", f"{self.subnet}.1")}
        for i, n in enumerate(self.node_names):
            self.hosts[n] = Host(n, f"{self.subnet}.{i + 2}")

    @property
    def conf(self) -> Path:
        return self.root / "etc" / "slurm.conf"

    @property
    def node_dir(self) -> Path:
        """Each node's private tmpfs (spool, Ray's temp dir), at the same path on every node."""
        return self.root / "node"

    @property
    def shared(self) -> Path:
        """A folder every node sees (results, Tune storage)."""
        return self.root / "shared"

    def env(self, **extra: str) -> dict:
        """The environment of client commands, and of jobs (sbatch exports it)."""
        return {**os.environ, "SLURM_CONF": str(self.conf), "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}",
                "RAY_TMPDIR": str(self.node_dir), "RAY_USAGE_STATS_ENABLED": "0", **extra}

    def __enter__(self) -> SlurmCluster:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # ---- start ------------------------------------------------------------------------------------------------
    def start(self, timeout_s: float = START_TIMEOUT_S) -> None:
        stop_at_exit.register(self)
        for d in ("etc", "munge", "ctl-state", "node", "shared", "logs", "dev"):
            (self.root / d).mkdir(parents=True, exist_ok=True)
        self._write_config()
        self._start_munged()
        ctl = self.hosts["ctl"]
        for h in self.hosts.values():
            _run("ip", "netns", "add", h.netns)
            _run("ip", "-n", h.netns, "link", "set", "lo", "up")
        _run("ip", "-n", ctl.netns, "link", "add", "br0", "type", "bridge")
        _run("ip", "-n", ctl.netns, "addr", "add", f"{ctl.ip}/24", "dev", "br0")
        _run("ip", "-n", ctl.netns, "link", "set", "br0", "up")
        for h in self.hosts.values():
            if h is ctl:
                continue
            peer = f"b-{h.name}"
            _run("ip", "link", "add", "eth0", "netns", h.netns, "type", "veth", "peer", "name", peer, "netns", ctl.netns)
            _run("ip", "-n", h.netns, "addr", "add", f"{h.ip}/24", "dev", "eth0")
            _run("ip", "-n", h.netns, "link", "set", "eth0", "up")
            _run("ip", "-n", ctl.netns, "link", "set", peer, "master", "br0", "up")
        self._launch(ctl, [], f"slurmctld -D -f {self.conf}")
        for n in self.node_names:
            self._launch(self.hosts[n], [f"mount -t tmpfs -o size=512m ohgw-slurm {self.node_dir}",
                                         f"mkdir -p {self.node_dir}/spool"], f"slurmd -D -N {n} -f {self.conf}")
        self.wait_idle(timeout_s)

    def _write_config(self) -> None:
        k = self.root
        for i in range(self.gpus_per_node):  # slurmd wants a device file: a character device like /dev/null
            os.mknod(k / "dev" / f"nvidia{i}", stat.S_IFCHR | 0o666, os.makedev(1, 3))
        gpus = f"{k}/dev/nvidia[0-{self.gpus_per_node - 1}]" if self.gpus_per_node > 1 else f"{k}/dev/nvidia0"
        nodes = "\n".join(f"NodeName={n} NodeAddr={self.hosts[n].ip} CPUs={self.cpus_per_node} "
                          f"Gres=gpu:{self.gpus_per_node} State=UNKNOWN" for n in self.node_names)
        (k / "etc" / "slurm.conf").write_text(f"""\
ClusterName=ohgwtest
SlurmctldHost=ctl({self.hosts['ctl'].ip})
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={k}/munge/munge.sock
StateSaveLocation={k}/ctl-state
SlurmdSpoolDir={self.node_dir}/spool
SlurmctldPidFile={k}/ctl-state/slurmctld.pid
SlurmdPidFile={self.node_dir}/slurmd.pid
SlurmctldLogFile={k}/logs/slurmctld.log
SlurmdLogFile={k}/logs/slurmd-%n.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/builtin
MpiDefault=none
GresTypes=gpu
ReturnToService=2
KillWait={self.kill_wait_s}
InactiveLimit=0
MinJobAge=600
{nodes}
PartitionName=test Nodes={','.join(self.node_names)} Default=YES MaxTime=INFINITE State=UP
""")
        (k / "etc" / "gres.conf").write_text(f"AutoDetect=off\nName=gpu File={gpus}\n")
        hosts = "127.0.0.1 localhost\n" + "".join(f"{h.ip} {h.name}\n" for h in self.hosts.values())
        (k / "etc" / "hosts").write_text(hosts)
        (k / "etc" / "resolv.conf").write_text("")

    def _start_munged(self) -> None:
        key = self.root / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        (self.root / "munge").chmod(0o700)
        m = self.root / "munge"
        _run("munged", "--force", f"--key-file={key}", f"--socket={m}/munge.sock", f"--pid-file={m}/munged.pid",
             f"--log-file={self.root}/logs/munged.log", f"--seed-file={m}/munged.seed")
        # munged daemonizes: its PID is in the pid file

    def _launch(self, host: Host, setup: list[str], command: str) -> None:
        """``command`` in new mount, PID and UTS namespaces in ``host``'s network namespace, after ``setup``.

        PID 1 of the PID namespace is :data:`REAPER`, which reaps the orphans (Ray's daemons, once ``ray start``
        has exited and ``ray stop`` has ended them; unreaped, ``ray stop`` waits out its grace period on them).
        ``nsenter --net``, not ``ip netns exec``: that one mounts a fresh ``/sys`` without ``/sys/fs/cgroup``, and
        slurmd 22.05 refuses to start without it (even with ``proctrack/linuxproc``)."""
        script = "; ".join(["set -e", f"hostname {host.name}", f"mount --bind {self.root}/etc/hosts /etc/hosts",
                            f"mount --bind {self.root}/etc/resolv.conf /etc/resolv.conf", *setup,
                            f"exec {sys.executable} -c '{REAPER}' {command}"])
        host.log = self.root / "logs" / f"{host.name}.console"
        with open(host.log, "w") as log:
            host.proc = subprocess.Popen(
                ["nsenter", f"--net=/run/netns/{host.netns}", "unshare", "--mount", "--pid", "--uts", "--fork", "--mount-proc",
                 "--propagation", "private", "bash", "-c", script],
                env=self.env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 30
        while not host.init_pid:
            children = Path(f"/proc/{host.proc.pid}/task/{host.proc.pid}/children")
            with contextlib.suppress(OSError, ValueError, IndexError):
                host.init_pid = int(children.read_text().split()[0])
            if host.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{host.name} did not start: {self.log_tail(host)}")
            time.sleep(0.05)

    def log_tail(self, host: Host, n: int = 2000) -> str:
        text = ""
        for log in (host.log, self.root / "logs" / ("slurmctld.log" if host.name == "ctl" else f"slurmd-{host.name}.log")):
            if log and log.exists():
                text += f"[{log.name}] {log.read_text()[-n:]}\n"
        return text or "(no log)"

    # ---- clients ----------------------------------------------------------------------------------------------
    def client(self, argv: list[str], env: dict | None = None, timeout: float = 60.0, **kw) -> subprocess.CompletedProcess:
        """A Slurm client command run in the controller's network namespace (where its address is reachable)."""
        return subprocess.run(["nsenter", f"--net=/run/netns/{self.hosts['ctl'].netns}", *argv],
                              env=env or self.env(), capture_output=True, text=True, timeout=timeout, **kw)

    def wait_idle(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            for h in self.hosts.values():
                if h.proc.poll() is not None:
                    raise RuntimeError(f"{h.name} exited: {self.log_tail(h)}")
            r = self.client(["sinfo", "-h", "-N", "-o", "%N %t"], timeout=30)
            states = dict(line.split() for line in r.stdout.splitlines() if line.strip())
            if r.returncode == 0 and all(states.get(n) == "idle" for n in self.node_names):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"slurm nodes not idle within {timeout_s:g} s: {r.stdout}{r.stderr}\n"
                                   f"{self.log_tail(self.hosts['ctl'])}")
            time.sleep(0.3)

    def submit(self, argv: list[str], env: dict | None = None, cwd: Path | None = None) -> int:
        """``sbatch --parsable argv``; returns the job id (fails with sbatch's message)."""
        r = self.client(["sbatch", "--parsable", *argv], env=env, cwd=cwd)
        if r.returncode != 0:
            raise RuntimeError(f"sbatch {' '.join(argv)} failed: {r.stderr.strip()}")
        return int(r.stdout.strip().split(";")[0])

    def job_states(self, job: int) -> dict[str, str]:
        """``scontrol show job``'s JobState per job (array tasks as ``<job>_<i>``), e.g. ``{"12": "RUNNING"}``."""
        r = self.client(["scontrol", "-o", "show", "job", str(job)], timeout=30)
        states = {}
        for line in r.stdout.splitlines():
            fields = dict(f.split("=", 1) for f in line.split() if "=" in f)
            name = fields.get("JobId", "?")
            if fields.get("ArrayTaskId"):
                name = f"{fields['ArrayJobId']}_{fields['ArrayTaskId']}"
            states[name] = fields.get("JobState", "?")
        return states

    def job_info(self, job: int) -> dict[str, str]:
        r = self.client(["scontrol", "-o", "show", "job", str(job)], timeout=30)
        line = r.stdout.splitlines()[0] if r.stdout.strip() else ""
        return dict(f.split("=", 1) for f in line.split() if "=" in f)

    def wait_job(self, job: int, timeout_s: float, done=("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT",
                                                          "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE")) -> dict[str, str]:
        """Until every task of ``job`` has ended; returns their states."""
        deadline = time.monotonic() + timeout_s
        while True:
            states = self.job_states(job)
            if states and all(s in done for s in states.values()):
                return states
            if time.monotonic() > deadline:
                raise RuntimeError(f"job {job} not done within {timeout_s:g} s: {states}")
            time.sleep(0.5)

    def node_processes(self, name: str) -> list[str]:
        """The live processes of node ``name`` other than its ``unshare``, PID 1 and slurmd: ``"<pid> <cmdline>"`` each."""
        out = []
        for pid in _run("ip", "netns", "pids", self.hosts[name].netns, check=False).stdout.split():
            with contextlib.suppress(OSError):
                status = Path(f"/proc/{pid}/stat").read_text()
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
                host = self.hosts[name]
                if int(pid) in (host.init_pid, host.proc.pid) or status.rsplit(")", 1)[1].split()[0] == "Z":
                    continue
                if re.match(r"slurmd\b", cmd):
                    continue
                out.append(f"{pid} {cmd}")
        return out

    # ---- stop -------------------------------------------------------------------------------------------------
    def stop(self) -> None:
        """Kill every process of every namespace, munged, delete the namespaces and ``root``; idempotent."""
        for h in [self.hosts[n] for n in self.node_names] + [self.hosts["ctl"]]:
            with contextlib.suppress(subprocess.SubprocessError, OSError):
                for pid in _run("ip", "netns", "pids", h.netns, check=False).stdout.split():
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(int(pid), signal.SIGKILL)
            if h.proc is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(h.proc.pid, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    h.proc.wait(timeout=30)
                h.proc = None
            with contextlib.suppress(subprocess.SubprocessError, OSError):
                _run("ip", "netns", "del", h.netns, check=False)
        pid_file = self.root / "munge" / "munged.pid"
        with contextlib.suppress(OSError, ValueError, ProcessLookupError):
            os.kill(int(pid_file.read_text().strip()), signal.SIGKILL)
        shutil.rmtree(self.root, ignore_errors=True)
        stop_at_exit.unregister(self)


def default_root() -> Path:
    """``/tmp/ohgw-slurm-<pid>``: a root that :func:`remove_stale` recognises once this process is gone."""
    return Path(f"/tmp/ohgw-slurm-{os.getpid()}")


def remove_stale() -> None:
    """Delete what a SIGKILLed run of this helper left behind: its namespaces and their processes, its munged
    and its :func:`default_root` folder."""
    for root in Path("/tmp").glob("ohgw-slurm-*"):
        pid = root.name.rsplit("-", 1)[1]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            with contextlib.suppress(OSError, ValueError, ProcessLookupError):
                munged = int((root / "munge" / "munged.pid").read_text().strip())
                if Path(f"/proc/{munged}/comm").read_text().strip() == "munged":
                    os.kill(munged, signal.SIGKILL)
            shutil.rmtree(root, ignore_errors=True)
    for line in _run("ip", "netns", "list").stdout.splitlines():
        name = line.split()[0] if line.strip() else ""
        pid = name[len(PREFIX):].split("-")[0]
        if name.startswith(PREFIX) and pid.isdigit() and not Path(f"/proc/{pid}").exists():
            for p in _run("ip", "netns", "pids", name, check=False).stdout.split():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(p), signal.SIGKILL)
            _run("ip", "netns", "del", name, check=False)


if __name__ == "__main__":  # a manual check: python tests/slurm_cluster.py ROOT (starts, runs srun hostname, stops)
    with SlurmCluster(Path(sys.argv[1])) as c:
        print(c.client(["srun", "-N2", "hostname"]).stdout, flush=True)
