"""The SSL trainable under a real Ray Tune ``Tuner`` with the OHGW wrapper: x′ ≠ x in the first report."""

import pytest

from ohgw import protocol
from ohgw.warmstart import WarmStartSettings

TINY = {"video_clips": 8, "video_frames": 40, "batch_size": 16, "steps_per_epoch": 2, "bank_frames": 64,
        "eval_frames": 32}


@pytest.mark.ray
def test_tuner_with_asha_and_ohgw_warm_starts_the_ssl_trainable(ray_local, tmp_path):
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    from ohgw.tune.wrapper import OHGW
    from trainables.ssl import METRIC, search_space, train_ssl

    space = search_space("tw-byol")
    sched = OHGW(ASHAScheduler(max_t=2, grace_period=1, reduction_factor=2), space,
                 WarmStartSettings(seed=0, batch_size=16))
    results = tune.Tuner(
        tune.with_resources(train_ssl, {"cpu": 1}),
        param_space={**space.param_space(), **TINY, "method": "tw-byol", "max_t": 2, "cache_dir": str(tmp_path / "c")},
        tune_config=tune.TuneConfig(metric=METRIC, mode="max", scheduler=sched, num_samples=2, reuse_actors=True),
        run_config=tune.RunConfig(storage_path=str(tmp_path), name="ssl", verbose=0, callbacks=sched.callbacks()),
    ).fit()
    assert not results.errors and len(results) == 2
    for r in results:
        first = r.metrics_dataframe.iloc[0].to_dict()
        adjusted = protocol.adjusted_from_result(first)
        assert protocol.warm_start_fields(first) and adjusted is not None and r.checkpoint is not None
        x, x_prime = adjusted["x"], adjusted["x_prime"]
        assert x_prime == {k: first[protocol.hp_key(k)] for k in space.names}  # trained with x′
        assert x_prime["lr"] != x["lr"]  # lr moved
        assert any(x_prime[k] != x[k] for k in ("ema_gap", "tau", "aug_strength"))  # and an SSL-specific ψ
        assert first[protocol.WS_COMPUTE_S] > 0 and METRIC in first
