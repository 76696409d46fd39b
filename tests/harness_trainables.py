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
