import math
import os
import pickle

import numpy as np
import pytest
import torch

from ohgw.hypergrad import hypergradient
from ohgw.space import SearchSpace
from ohgw.warmstart import WarmStartSettings, make_instruction
from trainables.classification import (
    DEFAULT_CONFIG,
    ClassificationRun,
    cosine_lr,
    data,
    make_problem,
    resolve_config,
    train_classifier,
    train_epochs,
)
from trainables.scaffold import Run

CONTRACT_KEYS = {
    "val_acc", "val_loss", "train_loss", "test_acc", "test_loss", "epoch_s", "samples_per_s",
    "trial_compute_s", "trial_epoch_equiv", "ws_compute_s", "device", "node_id", "diverged", "peak_rss_mib",
}  # fmt: skip
# metrics that depend on the model and data only (not on timing)
EXACT_KEYS = ("val_acc", "val_loss", "train_loss", "test_acc", "test_loss", "diverged", "training_iteration")
THREADS = 1  # one thread: exact and robust to a shared, oversubscribed machine


@pytest.fixture(autouse=True)
def _restore_torch_threads():
    # ClassificationRun(num_threads=...) sets the process-wide thread count; give it back
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


def _ohgw(step_rule="normalized", mode="hypergrad"):
    return make_instruction(SearchSpace.default(), WarmStartSettings(mode=mode, step_rule=step_rule))


def _exact(rows):
    return [[r[k] for k in EXACT_KEYS] for r in rows]


# ---- acceptance ---------------------------------------------------------------------------------------


def test_digits_default_reaches_95_percent_within_10_epochs_and_is_deterministic():
    a = train_epochs({}, 10, num_threads=THREADS)
    assert [r["training_iteration"] for r in a] == list(range(1, 11))
    assert max(r["val_acc"] for r in a) >= 0.95
    assert a[-1]["val_acc"] >= 0.95 and a[-1]["test_acc"] >= 0.93
    for r in a:
        assert set(r) >= CONTRACT_KEYS
        assert r["diverged"] is False and r["device"] == "cpu" and r["ws_compute_s"] == 0.0
        assert not any(k.startswith("ohgw/") for k in r)
    # cost bookkeeping: cumulative compute, epochs without a warm-start are whole numbers
    assert [r["trial_epoch_equiv"] for r in a] == [float(i) for i in range(1, 11)]
    assert all(b["trial_compute_s"] > c["trial_compute_s"] for b, c in zip(a[1:], a))
    # deterministic: a second run of the same config repeats the first one's epochs exactly (a shorter
    # rerun suffices: max_t, and so the LR schedule, is the same; the epochs compared are bit-identical)
    b = train_epochs({}, 3, num_threads=THREADS)
    assert _exact(a[:3]) == _exact(b)


@pytest.fixture(scope="module")
def warm_started(tmp_path_factory):
    """One uninterrupted 4-epoch run with a hyper-gradient warm-start, checkpointed at its end: its config,
    rows and checkpoint folder (shared: the warm-start is recorded and charged with epoch 1 whatever max_t is)."""
    cfg = {"max_t": 4, "ohgw": _ohgw()}
    done = tmp_path_factory.mktemp("warm_started") / "done"
    n = torch.get_num_threads()
    rows = train_epochs(cfg, 4, save_to=done, num_threads=THREADS)
    torch.set_num_threads(n)
    return cfg, rows, done


def test_pause_resume_is_exact_and_does_not_warm_start_again(warm_started, tmp_path):
    cfg, straight, done = warm_started
    first = train_epochs(cfg, 2, save_to=tmp_path, num_threads=THREADS)
    rest = train_epochs(cfg, 2, restore_from=tmp_path, num_threads=THREADS)
    assert _exact(straight) == _exact(first + rest)
    assert [r["training_iteration"] for r in rest] == [3, 4]
    # the restored run trains with the checkpoint's x', and charges no second warm-start
    assert rest[0]["hp/lr"] == straight[0]["ohgw/x_prime/lr"] == straight[3]["hp/lr"]
    assert all(r["ws_compute_s"] == 0.0 and "ohgw/g/lr" not in r for r in rest)
    assert rest[0]["trial_epoch_equiv"] == pytest.approx(first[0]["trial_epoch_equiv"] + 2)
    assert rest[0]["trial_compute_s"] > first[1]["trial_compute_s"]
    # a finished run trains no further
    assert train_epochs(cfg, 3, restore_from=done, num_threads=THREADS) == []


def test_warm_start_is_reported_with_the_first_epoch_and_charged_to_the_trial(warm_started):
    r0, r1 = warm_started[1][:2]
    space = SearchSpace.default()
    for name in space.names:
        assert r0[f"ohgw/x/{name}"] == pytest.approx(DEFAULT_CONFIG[name])
        assert math.isfinite(r0[f"ohgw/g/{name}"])
        assert r0[f"hp/{name}"] == r0[f"ohgw/x_prime/{name}"]
    # the normalised step moves the steepest coordinate by 5 % of its range
    du = space.to_u({n: r0[f"ohgw/x_prime/{n}"] for n in space.names}) - space.to_u(DEFAULT_CONFIG)
    assert float(np.max(np.abs(du / space.u_range))) == pytest.approx(0.05, rel=1e-6)
    assert r0["ohgw/g/lr"] != 0.0 and r0["ohgw/g/label_smoothing"] != 0.0 and r0["ohgw/g/aug_magnitude"] != 0.0
    # cost: charged once, in compute seconds and in epoch units
    ws = r0["ohgw/compute_s"]
    assert ws > 0 and r0["ws_compute_s"] == ws and r1["ws_compute_s"] == 0.0
    first_epoch = r0["trial_compute_s"] - ws
    assert r0["ohgw/share_of_epoch"] == pytest.approx(ws / first_epoch)
    assert r0["trial_epoch_equiv"] == pytest.approx(1 + r0["ohgw/share_of_epoch"])
    assert r1["trial_epoch_equiv"] == pytest.approx(2 + r0["ohgw/share_of_epoch"])
    assert "ohgw/share_of_epoch" not in r1 and "ohgw/x_prime/lr" not in r1


def test_warm_start_uses_the_optimizer_with_x_prime_and_leaves_the_init_alone():
    plain = ClassificationRun({"max_t": 2}, num_threads=THREADS)
    run = ClassificationRun({"max_t": 2, "ohgw": _ohgw()}, num_threads=THREADS)
    assert isinstance(run, Run)  # the scaffold's run-object interface
    before = {k: v.clone() for k, v in run.model.state_dict().items()}
    record = run.warm_start()
    assert all(torch.equal(before[k], v) for k, v in run.model.state_dict().items())
    assert all(torch.equal(before[k], v) for k, v in plain.model.state_dict().items())
    group = run.optimizer.param_groups[0]
    assert group["lr"] == record.x_prime["lr"] and group["weight_decay"] == record.x_prime["wd"]
    assert group["momentum"] == record.x_prime["momentum"] and group["nesterov"] is True
    assert run.hp == record.x_prime and record.x["lr"] == DEFAULT_CONFIG["lr"]
    assert run.warm_start() is record  # once per trial
    # same seed, same data-order stream with and without the warm-start (the paired design)
    plain.warm_start()
    assert torch.equal(plain.generator.get_state(), run.generator.get_state())


@pytest.mark.parametrize("hp", [{}, {"momentum": 0.5, "nesterov": False, "wd": 0.0}, {"momentum": 0.0}])
def test_cpu_sgd_is_torch_optim_sgd_bit_for_bit_and_checkpoints_load_both_ways(hp, monkeypatch):
    import trainables.classification.run as run_module
    from trainables.classification.sgd import PlainSGD

    cfg = {"max_t": 2, **hp}
    ours = ClassificationRun(cfg, num_threads=THREADS)
    with monkeypatch.context() as m:  # the reference: torch.optim.SGD itself
        m.setattr(run_module, "PlainSGD", torch.optim.SGD)
        ref = ClassificationRun(cfg, num_threads=THREADS)
        ref.warm_start()
    ours.warm_start()
    assert isinstance(ours.optimizer, PlainSGD) and type(ref.optimizer) is torch.optim.SGD
    for _ in range(2):  # 2 x 3 steps, the learning rate set per step as in training
        assert ours.train_pass(max_batches=3) == ref.train_pass(max_batches=3)
    assert all(torch.equal(v, ref.model.state_dict()[k]) for k, v in ours.model.state_dict().items())
    a, b = ours.optimizer.state_dict(), ref.optimizer.state_dict()
    assert a["param_groups"] == b["param_groups"] and a["state"].keys() == b["state"].keys()
    assert all(torch.equal(a["state"][i]["momentum_buffer"], b["state"][i]["momentum_buffer"]) for i in a["state"])
    # either optimizer's checkpoint state loads into the other and steps on identically
    ours.optimizer.load_state_dict(b)
    ref.optimizer.load_state_dict(a)
    assert ours.train_pass(max_batches=2) == ref.train_pass(max_batches=2)
    assert all(torch.equal(v, ref.model.state_dict()[k]) for k, v in ours.model.state_dict().items())


def test_augmentation_draws_do_not_depend_on_the_magnitude(monkeypatch):
    # A trial whose warm-start (or random step) clipped aug_magnitude to 0 must keep its vanilla
    # twin's random stream: the same batches and the same crop/flip draws, step after step.
    from trainables.classification import run as run_module

    log: dict[int, list] = {}

    def shuffled(n, bs, generator, *args):
        out = data.shuffled_batches(n, bs, generator, *args)
        log.setdefault(id(generator), []).append(("batches", [b.tolist() for b in out]))
        return out

    def crop_flip(x, padding, flip, generator):
        log.setdefault(id(generator), []).append(("crop_flip", generator.get_state().tolist()))
        return data.crop_flip(x, padding, flip, generator)

    monkeypatch.setattr(run_module, "shuffled_batches", shuffled)
    monkeypatch.setattr(run_module, "crop_flip", crop_flip)
    clipped, twin = (ClassificationRun({"aug_magnitude": m, "max_t": 2}, num_threads=THREADS) for m in (0.0, 0.3))
    for _ in range(3):
        for run in (clipped, twin):
            assert run.train_pass(max_batches=2)[1] == 2 * DEFAULT_CONFIG["batch_size"]
        assert torch.equal(clipped.generator.get_state(), twin.generator.get_state())
    a, b = log[id(clipped.generator)], log[id(twin.generator)]
    assert [kind for kind, _ in a] == ["batches", "crop_flip", "crop_flip"] * 3
    assert a == b


def test_random_mode_moves_as_far_as_hypergrad_in_another_direction(warm_started):
    hg = warm_started[1][0]
    rnd = train_epochs({"max_t": 4, "ohgw": _ohgw(mode="random")}, 1, num_threads=THREADS)[0]
    assert rnd["ohgw/step_norm"] == pytest.approx(hg["ohgw/step_norm"], rel=1e-6)
    assert rnd["ohgw/x_prime/lr"] != hg["ohgw/x_prime/lr"]
    assert rnd["ohgw/compute_s"] > 0


def test_make_problem_hypergradients_match_finite_differences():
    from ohgw.hypergrad import lookahead_val_loss

    run = ClassificationRun({"max_t": 1}, num_threads=THREADS)
    (x, y, draws), (xv, yv) = data.warm_start_batches(run.data, 128, seed=0)(0)
    # float64 so that the finite differences below are exact enough to compare
    train_b = (x.double(), y, draws)
    val_b = (xv.double(), yv)
    problem = make_problem(run.model.double(), nesterov=True)
    space = SearchSpace.default()
    hg = hypergradient(problem, space, run.config, [train_b], val_b)
    g = dict(zip(space.names, hg.g))
    assert all(math.isfinite(v) for v in g.values())
    assert abs(g["wd"]) < 1e-2 * abs(g["lr"])  # O(lr·wd) small
    assert g["momentum"] != 0.0  # Nesterov: momentum enters the first step
    # the trainable's train loss really carries lr and label smoothing: central differences agree
    u0 = torch.tensor(space.to_u(run.config), dtype=torch.float64)
    # (aug_magnitude is left out: it moves the inputs, so ReLU patterns flip and the lookahead
    # loss is jagged at every scale; the core checks that term on a smooth network)
    for name, h in (("lr", 1e-4), ("label_smoothing", 1e-4)):
        i = space.names.index(name)
        vals = []
        for s in (h, -h):
            u = u0.clone()
            u[i] += s
            vals.append(float(lookahead_val_loss(problem, space, u, run.config, [train_b], val_b)[0].detach()))
        fd = (vals[0] - vals[1]) / (2 * h)
        assert g[name] == pytest.approx(fd, rel=0.02, abs=1e-4), name
    # the magnitude reaches the loss only through the augmentation draws: zero draws, zero gradient
    assert g["aug_magnitude"] != 0.0
    still = type(draws)(*(torch.zeros_like(t) for t in (draws.shift, draws.brightness, draws.contrast)))
    g0 = hypergradient(problem, space, run.config, [(x.double(), y, still)], val_b).g
    assert g0[space.names.index("aug_magnitude")] == 0.0


def test_divergence_ends_the_run_cleanly():
    rows = train_epochs({"lr": 1e6, "max_t": 5}, 5, num_threads=THREADS)
    assert len(rows) == 1
    r = rows[0]
    assert r["diverged"] is True and r["val_acc"] == 0.0 and r["test_acc"] == 0.0
    assert math.isnan(r["train_loss"]) and math.isnan(r["val_loss"])
    assert set(r) >= CONTRACT_KEYS


def test_cosine_schedule():
    assert cosine_lr(0.1, 0, 100) == 0.1
    assert cosine_lr(0.1, 50, 100) == pytest.approx(0.05)
    assert cosine_lr(0.1, 100, 100) == pytest.approx(0.0, abs=1e-12)
    assert cosine_lr(0.1, 150, 100) == pytest.approx(0.0, abs=1e-12)


# ---- bad input -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "override, match",
    [
        ({"dataset": "mnist"}, "dataset must be one of"),
        ({"lr": 0.0}, "lr must be > 0"),
        ({"lr": -1.0}, "lr must be > 0"),
        ({"lr": float("nan")}, "lr must be a finite number"),
        ({"wd": -1e-4}, "wd must be >= 0"),
        ({"momentum": 1.0}, r"momentum must be in \[0, 1\)"),
        ({"momentum": -0.1}, r"momentum must be in \[0, 1\)"),
        ({"label_smoothing": 1.0}, r"label_smoothing must be in \[0, 1\)"),
        ({"label_smoothing": -0.01}, r"label_smoothing must be in \[0, 1\)"),
        ({"aug_magnitude": -0.5}, "aug_magnitude must be >= 0"),
        ({"lr": "0.1"}, "lr must be a finite number"),
        ({"batch_size": 0}, "batch_size must be an integer >= 1"),
        ({"max_t": 2.5}, "max_t must be an integer >= 1"),
        ({"nesterov": "yes"}, "nesterov must be True or False"),
        ({"device": "tpu"}, "device must be"),
        ({"precision": "fp16"}, "precision must be one of"),
        ({"channels_last": "auto"}, "channels_last must be True or False"),
        ({"dataset": "cifar10", "data_dir": None}, "needs data_dir"),
        ({"dataset": "cifar10", "data_dir": "/nonexistent/ohgw"}, r"data_dir '/nonexistent/ohgw'.*download=True"),
    ],
)
def test_bad_config_is_rejected_before_training(override, match):
    with pytest.raises(ValueError, match=match):
        resolve_config(override)
    with pytest.raises(ValueError, match=match):
        ClassificationRun(override)


def test_batch_size_larger_than_the_training_split():
    with pytest.raises(ValueError, match=r"batch_size 2000 is larger than the training split \(1167 images\)"):
        ClassificationRun({"batch_size": 2000})


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="has no classification_state.pt"):
        train_epochs({"max_t": 1}, 1, restore_from=tmp_path)


# ---- CIFAR-10 through torchvision's own loader -------------------------------------------------------


def _write_cifar10(root, n_train=64, n_test=32, seed=0):
    """A tiny dataset in CIFAR-10's on-disk format (python-2 style pickles, as the real files)."""
    rng = np.random.default_rng(seed)
    folder = os.path.join(root, "cifar-10-batches-py")
    os.makedirs(folder)
    labels = rng.integers(0, 10, n_train)
    images = rng.integers(0, 256, (n_train, 3072), dtype=np.uint8)
    for k, part in enumerate(np.array_split(np.arange(n_train), 5), start=1):
        with open(os.path.join(folder, f"data_batch_{k}"), "wb") as f:
            pickle.dump(
                {"batch_label": f"training batch {k} of 5", "data": images[part], "labels": labels[part].tolist()}, f
            )
    # test image i is constant with value 4·i, so its order can be checked after loading
    test = np.repeat((4 * np.arange(n_test)).astype(np.uint8)[:, None], 3072, axis=1)
    test_labels = (np.arange(n_test) % 10).tolist()
    with open(os.path.join(folder, "test_batch"), "wb") as f:
        pickle.dump({"batch_label": "testing batch 1 of 1", "data": test, "labels": test_labels}, f)
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    with open(os.path.join(folder, "batches.meta"), "wb") as f:
        pickle.dump({"label_names": names, "num_cases_per_batch": 10000, "num_vis": 3072}, f)
    return labels, test_labels


@pytest.fixture
def tiny_cifar(tmp_path, monkeypatch):
    labels, test_labels = _write_cifar10(tmp_path)
    # Our files cannot match the published MD5 sums; only torchvision's checksum test is relaxed.
    monkeypatch.setattr("torchvision.datasets.cifar.check_integrity", lambda fpath, md5=None: os.path.isfile(fpath))
    yield str(tmp_path), labels, test_labels
    data.clear_cache()


def test_cifar10_loads_through_torchvision_and_trains_one_epoch(tiny_cifar):
    root, labels, test_labels = tiny_cifar
    s = data.load_dataset("cifar10", root)
    assert s.image_shape == (3, 32, 32) and s.flip is True and s.crop_padding == 4
    assert (len(s.train_y), len(s.val_y), len(s.test_y)) == (58, 6, 32)
    assert sorted(torch.cat([s.train_y, s.val_y]).tolist()) == sorted(labels.tolist())
    assert s.test_y.tolist() == test_labels
    means = s.test_x.mean(dim=(1, 2, 3))
    assert bool((means[1:] > means[:-1]).all())  # order kept, standardised by an increasing map
    rows = train_epochs({"dataset": "cifar10", "data_dir": root, "batch_size": 16, "max_t": 1}, 1, num_threads=THREADS)
    (r,) = rows
    assert set(r) >= CONTRACT_KEYS and r["diverged"] is False
    assert r["samples_per_s"] > 0 and 0.0 <= r["val_acc"] <= 1.0 and math.isfinite(r["val_loss"])
    assert r["val_acc"] * 6 == pytest.approx(round(r["val_acc"] * 6))


# ---- Ray Tune (ray_local: tests/conftest.py) ----------------------------------------------------------


@pytest.mark.ray
def test_tune_function_trainable_reports_every_epoch_with_checkpoints(ray_local, tmp_path, warm_started):
    from ray import tune

    # one trial: the module's warm-started config, stopped after 2 of its 4 epochs (a trial without an
    # instruction reports no ohgw/ key: the scaffold's rows, test_digits_default_... above)
    cfg, core, _ = warm_started
    tuner = tune.Tuner(
        tune.with_resources(train_classifier, {"cpu": 1}),
        param_space={"dataset": "digits", "seed": 0, **cfg},
        tune_config=tune.TuneConfig(metric="val_acc", mode="max"),
        run_config=tune.RunConfig(storage_path=str(tmp_path), name="clf", verbose=0, stop={"training_iteration": 2}),
    )
    results = tuner.fit()
    assert not results.errors
    (result,) = results
    df = result.metrics_dataframe
    assert df["training_iteration"].tolist() == [1, 2]
    assert set(df.columns) >= CONTRACT_KEYS
    assert result.checkpoint is not None
    assert (df["device"] == "cpu").all() and df["node_id"].str.len().gt(10).all()
    assert df["ws_compute_s"].iloc[0] > 0 and df["ws_compute_s"].iloc[1] == 0
    assert df["hp/lr"].iloc[0] == df["ohgw/x_prime/lr"].iloc[0] != DEFAULT_CONFIG["lr"]
    # the same config and seed in a trial process: its epochs (warm-start included) match the core run exactly
    assert df["val_loss"].tolist() == [r["val_loss"] for r in core[:2]]
    assert df["ohgw/x_prime/lr"].iloc[0] == core[0]["ohgw/x_prime/lr"]


@pytest.mark.ray
@pytest.mark.slow
def test_hyperband_pause_and_resume_continue_exactly(ray_local, tmp_path):
    # max_t 4, rf 4: bracket 0 takes 2 trials to 4 epochs, bracket 1 takes 4 trials with a rung at
    # epoch 1; with 2 CPUs the first ones to reach it are paused until the rest catch up.
    from ray import tune
    from ray.tune.schedulers import HyperBandScheduler

    trainable = tune.with_resources(train_classifier, {"cpu": 1})
    tuner = tune.Tuner(
        trainable,
        param_space={"dataset": "digits", "max_t": 4, "seed": tune.grid_search(list(range(6))), "ohgw": _ohgw()},
        tune_config=tune.TuneConfig(
            metric="val_acc", mode="max", scheduler=HyperBandScheduler(max_t=4, reduction_factor=4)
        ),
        run_config=tune.RunConfig(storage_path=str(tmp_path), name="hb", verbose=0),
    )
    results = tuner.fit()
    assert not results.errors
    resumed = [
        r
        for r in results
        if (r.metrics_dataframe["iterations_since_restore"] < r.metrics_dataframe["training_iteration"]).any()
    ]
    assert resumed, "HyperBand paused no trial: the test did not exercise a resume"
    for result in results:
        df = result.metrics_dataframe
        # Tune's result log may lose rows written before a pause (its CSV is rewritten on restore),
        # so compare the epochs it kept: consecutive, each equal to the uninterrupted run's
        first, last = int(df["training_iteration"].iloc[0]), int(df["training_iteration"].iloc[-1])
        assert df["training_iteration"].tolist() == list(range(first, last + 1))
        assert (df.loc[df["training_iteration"] > 1, "ws_compute_s"] == 0).all()  # warm-start once, never on resume
        core = train_epochs(
            {"dataset": "digits", "max_t": 4, "seed": result.config["seed"], "ohgw": _ohgw()}, last, num_threads=1
        )[first - 1 :]
        assert df["val_loss"].tolist() == [r["val_loss"] for r in core]
        assert df["train_loss"].tolist() == [r["train_loss"] for r in core]
