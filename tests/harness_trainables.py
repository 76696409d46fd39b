"""A tiny, fast, deterministic function trainable for harness tests (not ours: a stand-in user trainable).

The validation "accuracy" follows a saturating learning curve whose ceiling depends
on how far log10(lr) is from -1; every epoch sleeps ``epoch_s`` seconds, reports the
trainable contract's keys, and checkpoints, so pause/resume and budgets behave as
with a real trainable.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from pathlib import Path


def curve_trainable(config: dict) -> None:
    import ray
    from ray import tune

    epoch_s = float(config.get("epoch_s", 0.05))
    start, compute = 0, 0.0
    ckpt = tune.get_checkpoint()
    if ckpt is not None:
        with ckpt.as_directory() as d, open(os.path.join(d, "state.json")) as f:
            state = json.load(f)
        start, compute = state["epoch"], state["compute"]
    ceiling = 0.95 - 0.2 * abs(math.log10(config["lr"]) + 1.0)
    node = ray.get_runtime_context().get_node_id()
    for epoch in range(start + 1, int(config["max_t"]) + 1):
        t0 = time.perf_counter()
        time.sleep(epoch_s)
        dt = time.perf_counter() - t0
        compute += dt
        acc = ceiling * (1 - math.exp(-epoch / 2.0)) + 0.01 * (config.get("seed", 0) % 3)
        with tempfile.TemporaryDirectory() as d:
            with open(os.path.join(d, "state.json"), "w") as f:
                json.dump({"epoch": epoch, "compute": compute}, f)
            tune.report(
                {"val_acc": acc, "test_acc": acc - 0.01, "val_loss": 1 - acc, "train_loss": 1 - acc,
                 "epoch_s": dt, "trial_compute_s": compute, "trial_epoch_equiv": float(epoch),
                 "ws_compute_s": 0.0, "node_id": node, "diverged": False, "peak_rss_mib": 1.0},
                checkpoint=tune.Checkpoint.from_directory(d),
            )


WS_EPOCHS = 0.5  # resume_trainable's warm-start charge, in epochs (a nominal, deterministic cost)
HOLD_ENV = "OHGW_TEST_HOLD"  # resume_trainable's hold point, for the tests that kill a driver


def _hold_before_report() -> None:
    """With ``$OHGW_TEST_HOLD`` naming a file that holds a count k (optionally followed by a method name): the
    study's k-th report waits while that file exists (up to 120 s), after touching ``<file>.held``. One trial
    runs at a time in those tests, so the count (kept in ``<file>.reports``) is the study's; with a method
    named, only that method's study counts (other studies of the same driver run on unheld). A driver
    killed during the wait has stored every earlier report, checkpoint and snapshot."""
    path = os.environ.get(HOLD_ENV)
    if not path:
        return
    try:
        k, *only = Path(path).read_text().split()
    except FileNotFoundError:  # no hold (or the test has just released it)
        return
    if only:
        from ohgw import metrics

        if metrics.current_tags().get("method") != only[0]:
            return
    counter = Path(path + ".reports")
    n = 1 + (int(counter.read_text()) if counter.exists() else 0)
    counter.write_text(str(n))
    if n != int(k):
        return
    Path(path + ".held").touch()
    deadline = time.time() + 120
    while os.path.exists(path) and time.time() < deadline:
        time.sleep(0.05)


def resume_trainable(config: dict) -> None:
    """Deterministic on the epochs clock, with a real warm-start: the trainable of the resume tests.

    Everything it reports is a function of its config and epoch (no measured time), so an
    interrupted-and-resumed study can be compared with an uninterrupted one row by row:

    - the curve: ``val_acc = c(lr) * (1 - exp(-epoch / 3))``, c peaking at lr = 0.1;
    - a warm-start when the OHGW wrapper asks for one (:func:`ohgw.warmstart.warm_start_with`)
      with the exact gradient of ``(u_lr + 1)^2`` (u: log10 search coordinates;
      :mod:`ohgw.testing.quadratic`), so x′ moves lr towards 0.1; it costs a nominal :data:`WS_EPOCHS` epochs. A trial restarted from scratch after
      its x′ was recorded (the wrapper consumed the instruction) is charged the same;
    - costs: ``epoch_s`` per epoch (slept, so that a driver can be killed mid-study), charged nominally;
    - a checkpoint every epoch (its epoch), restored from ``tune.get_checkpoint()``.
    """
    import ray
    from ray import tune

    from ohgw import protocol
    from ohgw.testing.quadratic import warm_start_toward

    epoch_s = float(config.get("epoch_s", 0.05))
    start = 0
    ckpt = tune.get_checkpoint()
    if ckpt is not None:
        with ckpt.as_directory() as d, open(os.path.join(d, "state.json")) as f:
            start = json.load(f)["epoch"]
    config = dict(config)
    ws_report: dict = {}
    record = None
    if start == 0:
        config, record = warm_start_toward(config, {"lr": 0.1})
    if record is not None:
        record.wall_s = record.compute_s = WS_EPOCHS * epoch_s  # nominal, as every cost here
        record.peak_rss_mib = 1.0
        ws_report = protocol.warm_start_result(record.to_dict(), share_of_epoch=WS_EPOCHS)
    warm_started = record is not None or protocol.applied_mode(config) != "none"
    ws = WS_EPOCHS if warm_started else 0.0
    ceiling = 0.95 - 0.2 * abs(math.log10(config["lr"]) + 1.0)
    node = ray.get_runtime_context().get_node_id()
    for epoch in range(start + 1, int(config["max_t"]) + 1):
        time.sleep(epoch_s)
        acc = ceiling * (1 - math.exp(-epoch / 3.0))
        with tempfile.TemporaryDirectory() as d:
            with open(os.path.join(d, "state.json"), "w") as f:
                json.dump({"epoch": epoch}, f)
            report = {
                "val_acc": acc, "test_acc": acc - 0.01, "val_loss": 1 - acc, "train_loss": 1 - acc,
                protocol.EPOCH_S: epoch_s, protocol.TRIAL_COMPUTE_S: epoch_s * (epoch + ws),
                protocol.TRIAL_EPOCH_EQUIV: epoch + ws, protocol.WS_COMPUTE_S: ws * epoch_s if epoch == 1 else 0.0,
                protocol.NODE_ID: node, protocol.DIVERGED: False, protocol.PEAK_RSS_MIB: 1.0,
            }
            if epoch == start + 1:
                report.update(ws_report)
            _hold_before_report()
            tune.report(report, checkpoint=tune.Checkpoint.from_directory(d))
