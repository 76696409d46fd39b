"""The scheduler state snapshot reads Ray's private attributes: it refuses a Ray outside SUPPORTED_RAY."""

from __future__ import annotations

import pytest
import ray
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, HyperBandScheduler, MedianStoppingRule

from ohgw.space import SearchSpace
from ohgw.tune.callbacks import SchedulerStateCallback
from ohgw.tune.state import (
    PRIVATE_ATTRS,
    SUPPORTED_RAY,
    UnsupportedRayVersion,
    check_supported,
    kind_of,
    ray_version_supported,
    reload,
    snapshot,
)
from ohgw.tune.wrapper import OHGW
from ohgw.warmstart import WarmStartSettings

SPACE = SearchSpace.from_bounds({"lr": (1e-3, 1.0, "log10"), "wd": (1e-6, 1e-2, "log10")})
PRIVATE = {
    "asha": lambda: ASHAScheduler(metric="acc", mode="max", max_t=9),
    "hyperband": lambda: HyperBandScheduler(metric="acc", mode="max", max_t=9),
    "median": lambda: MedianStoppingRule(metric="acc", mode="max"),
}


def test_the_installed_ray_is_supported_and_has_every_private_attribute():
    assert ray_version_supported(), (ray.__version__, SUPPORTED_RAY)
    for kind, make in PRIVATE.items():
        sched = make()
        assert kind_of(sched) == kind
        check_supported(sched)  # every attribute of PRIVATE_ATTRS[kind] exists
        assert reload(make(), snapshot(sched)) is not None
    assert set(PRIVATE_ATTRS) == set(PRIVATE)


@pytest.mark.parametrize("version, ok", [("2.60.0", True), ("2.60.1", True), ("2.59.9", False), ("2.61.0", False),
                                         ("3.0.0", False), ("not-a-version", False)])
def test_version_range(version, ok):
    assert ray_version_supported(version) is ok


@pytest.mark.parametrize("kind", sorted(PRIVATE))
def test_outside_the_range_snapshot_reload_and_the_callback_fail_clearly(monkeypatch, kind):
    snap = snapshot(PRIVATE[kind]())  # taken on the supported Ray
    monkeypatch.setattr(ray, "__version__", "2.61.0")
    name = type(PRIVATE[kind]()).__name__
    match = rf"state: saving/restoring a {name} .* ray >=2\.60,<2\.61; this is ray 2\.61\.0"
    with pytest.raises(UnsupportedRayVersion, match=match):
        snapshot(PRIVATE[kind]())
    with pytest.raises(UnsupportedRayVersion, match=match):
        reload(PRIVATE[kind](), snap)
    sched = OHGW(PRIVATE[kind](), SPACE, WarmStartSettings(mode="none"))
    with pytest.raises(UnsupportedRayVersion, match=match):
        sched.get_state()
    with pytest.raises(UnsupportedRayVersion, match="restore_state=False"):
        sched.callbacks()  # at setup, not at the first experiment checkpoint
    assert [type(c).__name__ for c in sched.callbacks(restore_state=False)] == ["AdjustedConfigCallback"]


def test_schedulers_without_private_state_need_no_check(monkeypatch):
    from ohgw.pasha import PASHA

    monkeypatch.setattr(ray, "__version__", "9.9.9")
    for inner in (FIFOScheduler(), PASHA(metric="acc", mode="max", max_t=27, grace_period=1, reduction_factor=3)):
        sched = OHGW(inner, SPACE)
        state = sched.get_state()  # FIFO: stateless; PASHA: its own get_state
        sched.set_state(state)
        SchedulerStateCallback(sched)


def test_a_missing_private_attribute_is_named(monkeypatch):
    sched = PRIVATE["hyperband"]()
    del sched._num_stopped
    with pytest.raises(UnsupportedRayVersion, match=r"lacks the attributes \['_num_stopped'\]"):
        snapshot(sched)
    from ray.tune.schedulers.hyperband import _Bracket

    bracket_init = _Bracket.__init__

    def without_cumul_r(self, *a, **kw):
        bracket_init(self, *a, **kw)
        del self._cumul_r

    monkeypatch.setattr(_Bracket, "__init__", without_cumul_r)
    with pytest.raises(UnsupportedRayVersion, match=r"bracket\._cumul_r"):
        check_supported(PRIVATE["hyperband"]())
