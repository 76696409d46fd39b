"""Checks made before the first study of a run on a Ray cluster; each failure is one ValueError line.

- :func:`check_writable`: the storage folder (Tune's ``storage_path``, ``--storage``) can be created
  and written here; nothing is left behind.
- :func:`check_reachable`: ``--address`` answers within :data:`REACH_TIMEOUT_S` (Ray itself would
  wait minutes for an address where nothing answers).
- :func:`trial_nodes`: the alive nodes that take trials (the labelled ones once any node is
  labelled, :mod:`ohgw.studies.cluster`); a node whose ``ohgw-group`` label names no group is refused.
- :func:`check_shared`: on a cluster whose trials run on other nodes than the driver's, the storage
  folder must be the *same place* on every node that takes trials (a shared filesystem such as NFS,
  mounted at the same path): Ray >= 2.7 does not copy trial files between nodes, and a node-local
  folder fails at the first checkpoint, hours into a run. The driver writes a token file there; a
  task pinned to each node reads it and writes one of its own, which the driver reads back. The
  tokens (and any folder made for them) are removed whatever the outcome.

:func:`check_run` runs all of them, in that order (connecting to Ray after the first two).

>>> trial_nodes([{"Alive": True, "NodeID": "a", "NodeManagerAddress": "10.0.0.1", "Labels": {}},
...              {"Alive": True, "NodeID": "b", "NodeManagerAddress": "10.0.0.2",
...               "Labels": {"ohgw-group": "g0"}}])
[('b', '10.0.0.2')]
"""

from __future__ import annotations

import contextlib
import os
import socket
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

from ohgw.studies.cluster import GROUP_LABEL

REACH_TIMEOUT_S = 30.0  # how long --address may take to answer
PROBE_TIMEOUT_S = 120.0  # how long every node together may take to answer the storage check
TOKEN_PREFIX = ".ohgw-storage-check-"


def check_writable(path: str | os.PathLike) -> None:
    """The storage folder ``path`` exists or can be made, and a file can be written in it; leaves nothing.

    >>> check_writable("/proc/ohgw")
    Traceback (most recent call last):
    ValueError: --storage /proc/ohgw is not writable: [Errno 2] No such file or directory: '/proc/ohgw'
    """
    p = Path(path).absolute()
    made = []
    try:
        for d in reversed([p, *p.parents]):
            if not d.exists():
                d.mkdir()
                made.append(d)
        if not p.is_dir():
            raise NotADirectoryError(f"{p} is not a folder")
        fd, name = tempfile.mkstemp(prefix=TOKEN_PREFIX, dir=p)
        os.close(fd)
        os.unlink(name)
    except OSError as e:
        raise ValueError(f"--storage {p} is not writable: {e}") from None
    finally:
        for d in reversed(made):
            with contextlib.suppress(OSError):
                d.rmdir()


def _host_port(address: str) -> tuple[str, int] | None:
    """``host:port`` of a Ray bootstrap address (``auto`` read from this machine), None for a Ray Client address."""
    if address.startswith("ray://"):
        return None
    from ray._private.services import canonicalize_bootstrap_address

    try:
        canonical = canonicalize_bootstrap_address(address)
    except (ValueError, ConnectionError) as e:
        raise ValueError(f"--address {address}: {e}") from None
    if canonical is None:
        raise ValueError(f"--address {address}: no running Ray cluster found on this machine")
    host, _, port = canonical.rpartition(":")
    return host.strip("[]"), int(port)


def check_reachable(address: str, timeout_s: float = REACH_TIMEOUT_S) -> None:
    """Something accepts connections at ``address`` (a Ray head's GCS) within ``timeout_s`` seconds.

    >>> check_reachable("127.0.0.1:1", timeout_s=1.0)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ValueError: --address 127.0.0.1:1: nothing answers at ...:1 (connection refused); is the Ray head up?
    """
    if timeout_s <= 0:
        raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
    target = _host_port(address)
    if target is None:
        return
    deadline = time.monotonic() + timeout_s
    while True:
        left = deadline - time.monotonic()
        try:
            with socket.create_connection(target, timeout=max(0.1, min(5.0, left))):
                return
        except ConnectionRefusedError:
            raise ValueError(f"--address {address}: nothing answers at {target[0]}:{target[1]} "
                             "(connection refused); is the Ray head up?") from None
        except OSError as e:
            if time.monotonic() >= deadline:
                raise ValueError(f"--address {address}: no answer from {target[0]}:{target[1]} within "
                                 f"{timeout_s:g} s ({e.strerror or type(e).__name__})") from None
            time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))


def trial_nodes(nodes: Sequence[dict]) -> list[tuple[str, str]]:
    """(node id, address) of the alive nodes that take trials, from ``ray.nodes()``.

    Once any node carries the ``ohgw-group`` label only labelled nodes take trials; a label with an
    empty name (``--labels ohgw-group=$UNSET``) is refused, naming the node.
    """
    alive = [n for n in nodes if n.get("Alive", False)]
    for n in alive:
        label = (n.get("Labels") or {}).get(GROUP_LABEL)
        if label is not None and not str(label).strip():
            raise ValueError(f"node {n.get('NodeManagerAddress')} has the label {GROUP_LABEL}={label!r}, which names "
                             f"no group; start it with --labels {GROUP_LABEL}=<group name>")
    labelled = [n for n in alive if (n.get("Labels") or {}).get(GROUP_LABEL) is not None]
    return [(n["NodeID"], n.get("NodeManagerAddress", "?")) for n in (labelled or alive)]


def _probe(path: str, token: str) -> tuple[bool, str]:
    """On one node: does ``path`` hold the driver's token? If so, write this node's token beside it."""
    mine = os.path.join(path, f"{TOKEN_PREFIX}{token}")
    try:
        with open(mine) as f:
            if f.read() != token:
                return False, "the token file there holds something else"
        with open(f"{mine}.{os.getpid()}-{socket.gethostname()}", "w") as f:
            f.write(token)
    except OSError as e:
        return False, str(e)
    return True, f"{mine}.{os.getpid()}-{socket.gethostname()}"


def check_shared(path: str | os.PathLike, nodes: Sequence[tuple[str, str]],
                 timeout_s: float = PROBE_TIMEOUT_S) -> None:
    """Every node of ``nodes`` ((node id, address), :func:`trial_nodes`) sees ``path`` as the driver does.

    A ValueError names the first node that cannot see it or cannot write there, or that did not answer.
    Needs a connected Ray; the token files, and the folder if it was made here, are removed.
    """
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    p = Path(path).absolute()
    made = not p.exists()
    token = uuid.uuid4().hex
    driver_token = p / f"{TOKEN_PREFIX}{token}"
    probe = ray.remote(num_cpus=0, max_retries=0)(_probe)
    try:
        p.mkdir(parents=True, exist_ok=True)
        driver_token.write_text(token)
        refs = {probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False)).remote(
            str(p), token): ip for node_id, ip in nodes}
        ready, late = ray.wait(list(refs), num_returns=len(refs), timeout=timeout_s)
        if late:
            raise ValueError(f"storage check: node {refs[late[0]]} did not answer within {timeout_s:g} s")
        for ref in ready:
            ok, where = ray.get(ref)
            if not ok or not os.path.exists(where):
                raise ValueError(f"storage {p} is not shared: node {refs[ref]} cannot see it; use a shared "
                                 "filesystem (NFS) mounted at the same path on every node")
    finally:
        for f in p.glob(f"{TOKEN_PREFIX}{token}*") if p.is_dir() else []:
            with contextlib.suppress(OSError):
                f.unlink()
        if made:
            with contextlib.suppress(OSError):
                p.rmdir()


def check_run(storage: str | os.PathLike, address: str | None, connect: Callable[[], None]) -> None:
    """Every check of a run, before anything is written: storage writable; with ``address``, reachable,
    then ``connect()`` (to Ray) and :func:`check_cluster`."""
    check_writable(storage)
    if address:
        check_reachable(address)
        connect()
        check_cluster(storage)


def check_cluster(storage: str | os.PathLike) -> None:
    """On a connected Ray: group labels, then shared storage when trials run beyond the driver's node."""
    import ray

    nodes = trial_nodes(ray.nodes())
    here = ray.get_runtime_context().get_node_id()
    if any(node_id != here for node_id, _ in nodes):
        check_shared(storage, nodes)


__all__ = ["REACH_TIMEOUT_S", "check_cluster", "check_reachable", "check_run", "check_shared", "check_writable", "trial_nodes"]
