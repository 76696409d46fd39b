"""Studies pinned to labelled GPU groups of a multi-node cluster, spread over all groups."""

from __future__ import annotations

import pytest

from ohgw.results import read_table
from ohgw.space import SearchSpace
from ohgw.studies.cluster import GROUP_LABEL, discover_groups
from ohgw.studies.runner import run_experiment
from ohgw.studies.study import ExperimentConfig

from harness_trainables import curve_trainable

pytestmark = pytest.mark.ray


@pytest.fixture
def labelled_cluster(monkeypatch):
    import os

    import ray
    from ray.cluster_utils import Cluster

    here = os.path.dirname(os.path.abspath(__file__))  # the nodes' workers import the test trainable from here
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([here, os.environ.get("PYTHONPATH", "")]))
    if ray.is_initialized():
        ray.shutdown()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    nodes = {}
    for g in ("g0", "g1"):
        node = cluster.add_node(num_cpus=2, num_gpus=1, labels={GROUP_LABEL: g})
        nodes[node.node_id] = g
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, log_to_driver=False)
    yield cluster, nodes
    ray.shutdown()
    cluster.shutdown()


def test_trials_run_on_their_study_group_and_all_groups_are_used(labelled_cluster, tmp_path):
    cluster, nodes = labelled_cluster
    groups = discover_groups()
    assert [(g.name, g.cpus, g.gpus) for g in groups] == [("g0", 2.0, 1.0), ("g1", 2.0, 1.0)]
    cfg = ExperimentConfig(
        experiment="placement-test",
        space=SearchSpace.from_bounds({"lr": (1e-3, 1.0, "log10")}),
        base_config={"epoch_s": 0.05},
        max_t=3,
        budget=4.0,
        tau=0.5,
        cpus_per_trial=1.0,
        gpus_per_trial=0.5,
    )
    summary = run_experiment(cfg, curve_trainable, ["asha", "hyperband"], [0, 1], tmp_path, quiet=True)
    assert summary.ran == 4 and not summary.failed
    st = read_table(tmp_path, "studies")
    tr = read_table(tmp_path, "trials")
    group_of_study = {(r.method, r.seed): r.group for r in st.itertuples()}
    assert set(group_of_study.values()) == {"g0", "g1"}  # studies spread over every group
    for t in tr.itertuples():
        assert nodes[t.node_id] == group_of_study[(t.method, t.seed)], t  # every trial on its study's group
    # per node: never more GPU (0.5 per trial) or CPU held than it has
    for node_id in nodes:
        events = []
        for t in tr[tr.node_id == node_id].itertuples():
            events += [(t.start_ts + 1e-3, 1), (t.end_ts - 1e-3, -1)]
        level = peak = 0
        for _, d in sorted(events):
            level += d
            peak = max(peak, level)
        assert peak * 0.5 <= 1.0 and peak * 1.0 <= 2.0, (node_id, peak)
