"""Learning: CPU epochs of BYOL and temporal SimCLR against the same encoder at random init.

On the embedded behaviour video (default size and epochs; seeded, one thread, so the numbers repeat
exactly on one machine), frozen-encoder metrics of the action label on the validation clips. The
random-init encoder is the same network before its first step, evaluated the same way (eval mode,
its initial BatchNorm statistics). The runs are scheduled for 20 (30) epochs and evaluated after 5
(15), as a scheduler's rung sees them (the cosine learning rate is still high there; a run scheduled
for 5 epochs anneals to 0 too early to learn: kNN 0.41). Measured (issue 11 report): temporal BYOL,
lr 0.1, 5 epochs of 40 steps: kNN 0.523 → 0.586, probe macro-F1 0.326 → 0.476 on that machine; on the
AMD EPYC machines CI runs on now, the same seeded one-thread run gives kNN 0.523 → 0.570 and F1 0.326 → 0.419
(the random-init numbers agree to the last digit, the trained ones do not: float kernels differ by CPU), so
the margins below (kNN +0.03, F1 +0.07) sit under both machines' gains with room. Temporal SimCLR needs more steps: after 5
epochs its kNN accuracy is *below* the random encoder's (0.371) while its F1 is above (0.411); after
15 epochs kNN 0.578 and F1 0.513 — that longer run is the slow test.
"""

import pytest
import torch

from ohgw import protocol
from trainables.ssl import SSLRun


@pytest.fixture(autouse=True)
def _threads():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _before_after(cfg, epochs):
    run = SSLRun(cfg)
    run.warm_start()
    before = run.evaluate_epoch()
    for _ in range(epochs):
        run.train_epoch()
    return before, run.evaluate_epoch()


def _check(before, after, knn_margin, f1_margin):
    assert not after[protocol.COLLAPSED]
    assert after["val_knn_acc"] >= before["val_knn_acc"] + knn_margin, (before["val_knn_acc"], after["val_knn_acc"])
    assert after["val_probe_f1"] >= before["val_probe_f1"] + f1_margin, (before["val_probe_f1"], after["val_probe_f1"])


def test_five_epochs_of_temporal_byol_beat_the_random_init_encoder(tmp_path_factory):
    cache = str(tmp_path_factory.getbasetemp() / "ssl_learning_cache")
    before, after = _before_after({"method": "byol", "lr": 0.1, "max_t": 20, "cache_dir": cache}, 5)
    _check(before, after, knn_margin=0.03, f1_margin=0.07)


@pytest.mark.slow
def test_fifteen_epochs_of_temporal_simclr_beat_the_random_init_encoder(tmp_path_factory):
    cache = str(tmp_path_factory.getbasetemp() / "ssl_learning_cache")
    before, after = _before_after({"method": "simclr-temporal", "lr": 0.1, "max_t": 30, "cache_dir": cache}, 15)
    _check(before, after, knn_margin=0.04, f1_margin=0.1)
