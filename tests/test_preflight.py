"""The checks before a run's first study (ohgw.studies.preflight): each bad input is one line, nothing written.

The shared-storage check itself runs for real on a namespaced cluster in tests/test_cluster_ns.py;
here: its single-node pass, and the other checks with real sockets and files.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from ohgw.studies import preflight
from ohgw.studies.cli import main as cli_main
from trainables.classification import workload


def _files(root: Path) -> list[Path]:
    return sorted(root.rglob("*"))


def test_storage_under_a_file_is_not_writable_and_nothing_is_made(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match=r"^--storage .*/file/tune is not writable: .*Not a directory"):
        preflight.check_writable(tmp_path / "file" / "tune")
    assert _files(tmp_path) == [tmp_path / "file"]


def test_a_new_storage_folder_is_checked_and_not_left_behind(tmp_path):
    preflight.check_writable(tmp_path / "a" / "b" / "tune")
    assert _files(tmp_path) == []


def test_a_refused_address_is_one_line_at_once():
    with socket.socket() as s:  # a port nobody listens on: bound, never listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        t0 = time.monotonic()
        with pytest.raises(ValueError, match=rf"^--address 127.0.0.1:{port}: nothing answers at .*connection refused"):
            preflight.check_reachable(f"127.0.0.1:{port}")
    assert time.monotonic() - t0 < 5


def test_an_address_that_never_answers_is_one_line_after_the_timeout(monkeypatch):
    calls = []

    def silent(target, timeout):  # a host that drops every packet: each try times out
        calls.append(timeout)
        time.sleep(min(timeout, 0.2))
        raise TimeoutError("timed out")

    monkeypatch.setattr(preflight.socket, "create_connection", silent)
    t0 = time.monotonic()
    with pytest.raises(ValueError, match=r"^--address 10.231.9.9:6379: no answer from 10.231.9.9:6379 within 1 s"):
        preflight.check_reachable("10.231.9.9:6379", timeout_s=1.0)
    assert 1.0 <= time.monotonic() - t0 < 3.0 and len(calls) >= 2  # retried until the deadline, then stopped


def test_the_harness_refuses_an_unreachable_address_in_one_line_and_writes_nothing(tmp_path, capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        argv = ["--address", f"127.0.0.1:{s.getsockname()[1]}", "--out", str(tmp_path / "out"), "--seeds", "1"]
        code = cli_main("asha_vs_ohgw", workload(), ["asha"], "doc", argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith("asha_vs_ohgw.py: error: --address 127.0.0.1:") and "connection refused" in err[0]
    assert not (tmp_path / "out").exists()


def test_the_harness_refuses_a_storage_it_cannot_write_in_one_line_and_writes_nothing(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    argv = ["--storage", str(tmp_path / "file" / "tune"), "--out", str(tmp_path / "out"), "--seeds", "1"]
    code = cli_main("asha_vs_ohgw", workload(), ["asha"], "doc", argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("asha_vs_ohgw.py: error: --storage ")
    assert "not writable" in err[0]
    assert _files(tmp_path) == [tmp_path / "file"]


def _node(ip: str, label: str | None = None, alive: bool = True) -> dict:
    return {"Alive": alive, "NodeID": f"id-{ip}", "NodeManagerAddress": ip,
            "Labels": {} if label is None else {"ohgw-group": label}}


def test_trial_nodes_are_the_labelled_alive_ones_or_all_when_none_is_labelled():
    head, dead = _node("10.0.0.1"), _node("10.0.0.9", "g1", alive=False)
    assert preflight.trial_nodes([head, _node("10.0.0.2", "g0"), dead]) == [("id-10.0.0.2", "10.0.0.2")]
    assert preflight.trial_nodes([head, _node("10.0.0.3")]) == [("id-10.0.0.1", "10.0.0.1"), ("id-10.0.0.3", "10.0.0.3")]


@pytest.mark.parametrize("label", ["", "  "])
def test_a_label_that_names_no_group_is_refused_naming_the_node(label):
    with pytest.raises(ValueError, match=r"^node 10.0.0.2 has the label ohgw-group='\s*', which names no group; "
                                         r"start it with --labels ohgw-group=<group name>$"):
        preflight.trial_nodes([_node("10.0.0.1", "g0"), _node("10.0.0.2", label)])


def test_the_shared_check_passes_on_one_node_and_leaves_nothing(ray_local, tmp_path):
    import ray

    nodes = preflight.trial_nodes(ray.nodes())
    preflight.check_shared(tmp_path / "tune", nodes)
    assert _files(tmp_path) == []
    (tmp_path / "kept").mkdir()
    preflight.check_shared(tmp_path / "kept", nodes)
    assert _files(tmp_path) == [tmp_path / "kept"]
