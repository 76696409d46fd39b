import math
import re

import numpy as np
import pytest

from ohgw.space import Continuous, SearchSpace


def test_roundtrip_and_transforms():
    space = SearchSpace.default()
    cfg = {"lr": 0.1, "wd": 1e-4, "momentum": 0.9, "aug_magnitude": 0.25, "label_smoothing": 0.05, "batch_size": 64}
    u = space.to_u(cfg)
    np.testing.assert_allclose(u, [-1.0, -4.0, 0.9, 0.25, 0.05])
    x = space.to_x(u)
    for k in space.names:
        assert math.isclose(x[k], cfg[k], rel_tol=1e-12)
    cont, rest = space.split(cfg)
    assert rest == {"batch_size": 64}
    assert set(cont) == set(space.names)


def test_ranges_and_clip():
    space = SearchSpace.default()
    np.testing.assert_allclose(space.u_range, [3.0, 4.0, 0.99, 1.0, 0.3])
    clipped = space.clip_u(np.array([1.0, -9.0, 0.5, 2.0, -1.0]))
    np.testing.assert_allclose(clipped, [0.0, -6.0, 0.5, 1.0, 0.0])


def test_param_space_is_ray_tune_domains():
    from ray.tune.search.sample import Categorical, Float

    space = SearchSpace.from_bounds({"lr": (1e-3, 1.0, "log10"), "momentum": (0.0, 0.9, "identity")}, discrete={"batch_size": [64, 128]})
    ps = space.param_space()
    assert isinstance(ps["lr"], Float) and isinstance(ps["momentum"], Float)
    assert isinstance(ps["batch_size"], Categorical)
    assert ps["lr"].lower == 1e-3 and ps["lr"].upper == 1.0
    assert str(ps["lr"].sampler) == "LogUniform"
    assert str(ps["momentum"].sampler) == "Uniform"


def test_dict_roundtrip():
    space = SearchSpace.from_bounds({"lr": (1e-3, 1.0, "log10")}, discrete={"bs": [1, 2]})
    again = SearchSpace.from_dict(space.to_dict())
    assert again.params == space.params and again.discrete == space.discrete


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        # the core knows no hyper-parameter by name: even lr must say how it is scaled
        ({"bounds": {"lr": (0.1, 1.0)}}, "'lr': give its transform, 'log10' or 'identity'"),
        ({"bounds": {"lr": (0.1, 1.0, "log10")}, "transforms": {"wd": "log10"}}, "transforms: ['wd'] are not in bounds"),
        ({"bounds": {"lr": (0.1,)}}, "bounds['lr'] must be (low, high) or (low, high, transform)"),
        ({"bounds": {"lr": (1.0, 0.1, "log10")}}, "'lr': bounds need low < high"),
        ({"bounds": {"momentum": (0.5, 0.5, "identity")}}, "'momentum': bounds need low < high"),
        ({"bounds": {"wd": (0.0, 1e-2, "log10")}}, "'wd': a log10 transform needs positive bounds"),
        ({"bounds": {"lr": (-1.0, 1.0)}, "transforms": {"lr": "log10"}}, "'lr': a log10 transform needs positive bounds"),
    ],
)
def test_bad_bounds_raise_naming_the_parameter(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        SearchSpace.from_bounds(**kwargs)


def test_bad_transform_and_duplicates():
    with pytest.raises(ValueError, match="'lr': transform must be one of"):
        Continuous("lr", 0.1, 1.0, "ln")
    with pytest.raises(ValueError, match="duplicate hyper-parameter names"):
        SearchSpace([Continuous("lr", 0.1, 1.0, "log10"), Continuous("lr", 0.2, 1.0)])
    with pytest.raises(ValueError, match="lacks continuous hyper-parameters"):
        SearchSpace.default().split({"lr": 0.1})


def test_custom_name_with_explicit_transform():
    space = SearchSpace.from_bounds({"temperature": (0.05, 1.0)}, transforms={"temperature": "log10"})
    assert space["temperature"].is_log


def test_param_space_parts_edge_cases():
    from ray import tune
    from ray.tune.search.sample import Float

    from ohgw.space import param_space_parts

    params, skipped = param_space_parts({
        "flat": tune.uniform(0.5, 0.5),  # low == high: not a range to step in
        "neg": Float(-1.0, 1.0).uniform(),
        "free": Float(None, None),  # unbounded, no sampler: Tune cannot sample it either
        "grid": tune.grid_search([0.1, 0.2]),
        "deep": {"a": {"b": tune.loguniform(1e-3, 1.0)}, "c": 1},
        7: tune.loguniform(1e-2, 1.0),  # a non-string key is named by str()
    })
    assert [(p.name, p.low, p.high, p.transform) for p in params] == [("neg", -1.0, 1.0, "identity"),
                                                                       ("7", 1e-2, 1.0, "log10")]
    assert "low < high" in skipped["flat"]
    assert skipped["grid"] == "grid_search" and skipped["deep/a/b"].startswith("nested")
    assert "free" in skipped and "deep/c" not in skipped
    with pytest.raises(ValueError, match="param_space must be a dict"):
        param_space_parts([("lr", 0.1)])


def test_from_param_space_warns_about_what_it_skips():
    from ray import tune

    with pytest.warns(UserWarning, match=r"cannot warm-start 'bs' \(choice\)"):
        space = SearchSpace.from_param_space({"lr": tune.loguniform(1e-3, 1.0), "bs": tune.choice([1, 2])})
    assert space.names == ("lr",)
