"""The warm-start step: modes, step rules, clipping, non-finite handling, the config instruction."""

import math

import numpy as np
import pytest
import torch

from ohgw import warmstart
from ohgw.protocol import INSTRUCTION_KEY as CONFIG_KEY
from ohgw.space import SearchSpace
from ohgw.update_rules import SGD
from ohgw.warmstart import (
    WarmStartSettings,
    instruction,
    make_instruction,
    maybe_warm_start,
    warm_start,
)

from hg_problems import CONFIG, classification_problem

SPACE = SearchSpace.default()


@pytest.fixture(scope="module")
def setup():
    return classification_problem(SGD(nesterov=True), dtype=torch.float32)


def _v_step(space, rec):
    """The step actually taken, in normalized coordinates (each ψ's range = 1)."""
    return (space.to_u(rec.x) - space.to_u(rec.x_prime)) / space.u_range


def test_raw_step_is_eta_times_g(setup):
    problem, tb, vb = setup
    cfg = {**CONFIG, "batch_size": 32}
    new, rec = warm_start(problem, SPACE, cfg, (tb, vb), WarmStartSettings(step_rule="raw", eta_h=0.01))
    g = np.array([rec.g[n] for n in SPACE.names])
    du = SPACE.to_u(cfg) - SPACE.to_u(new)
    np.testing.assert_allclose(du, 0.01 * g, rtol=1e-9, atol=1e-12)
    assert new["batch_size"] == 32 and rec.untouched == ["batch_size"]
    assert rec.compute_s > 0 and rec.wall_s > 0 and rec.peak_rss_mib > 0
    assert not rec.nonfinite


def test_normalized_step_moves_the_largest_component_by_eta_of_its_range(setup):
    problem, tb, vb = setup
    _, rec = warm_start(problem, SPACE, CONFIG, (tb, vb), WarmStartSettings(step_rule="normalized", eta_h=0.05))
    dv = _v_step(SPACE, rec)
    g = np.array([rec.g[n] for n in SPACE.names]) * SPACE.u_range
    assert math.isclose(np.max(np.abs(dv)), 0.05, rel_tol=1e-6)
    # direction is the hyper-gradient's own (in normalized coordinates)
    np.testing.assert_allclose(dv, 0.05 * g / np.max(np.abs(g)), rtol=1e-6, atol=1e-9)
    assert math.isclose(rec.step_norm, float(np.linalg.norm(dv)), rel_tol=1e-9)


def test_random_mode_has_same_step_norm_and_another_direction(setup):
    problem, tb, vb = setup
    kw = dict(step_rule="normalized", eta_h=0.05, seed=7)
    _, hg = warm_start(problem, SPACE, CONFIG, (tb, vb), WarmStartSettings(mode="hypergrad", **kw))
    _, rnd = warm_start(problem, SPACE, CONFIG, (tb, vb), WarmStartSettings(mode="random", **kw))
    v_hg, v_rnd = _v_step(SPACE, hg), _v_step(SPACE, rnd)
    assert math.isclose(np.linalg.norm(v_hg), np.linalg.norm(v_rnd), rel_tol=1e-6)
    assert math.isclose(hg.step_norm, rnd.step_norm, rel_tol=1e-9)
    cos = float(v_hg @ v_rnd / (np.linalg.norm(v_hg) * np.linalg.norm(v_rnd)))
    assert cos < 0.999
    # same seed, same random direction
    _, rnd2 = warm_start(problem, SPACE, CONFIG, (tb, vb), WarmStartSettings(mode="random", **kw))
    assert rnd2.x_prime == rnd.x_prime
    assert rnd.compute_s > 0  # the control pays the same hyper-gradient cost


CORNER = {**CONFIG, "aug_magnitude": 0.0, "label_smoothing": 0.0, "lr": 1.0, "momentum": 0.0}


def test_random_control_moves_as_far_as_its_partner_actually_moves_under_clipping(setup):
    """At a corner of the box the hyper-gradient step is clipped and most random directions leave
    the box: the control must still move x exactly as far (after clipping) as its partner does."""
    problem, tb, vb = setup
    kw = dict(step_rule="normalized", eta_h=0.3, seed=7)
    _, hg = warm_start(problem, SPACE, CORNER, (tb, vb), WarmStartSettings(mode="hypergrad", **kw))
    _, rnd = warm_start(problem, SPACE, CORNER, (tb, vb), WarmStartSettings(mode="random", **kw))
    assert hg.clipped  # the partner's own step is shortened by the bounds
    taken_hg, taken_rnd = np.linalg.norm(_v_step(SPACE, hg)), np.linalg.norm(_v_step(SPACE, rnd))
    assert taken_hg > 0.05
    assert math.isclose(taken_rnd, taken_hg, rel_tol=1e-9)
    # the recorded step_norm is the step actually taken, for both
    assert math.isclose(hg.step_norm, taken_hg, rel_tol=1e-12)
    assert math.isclose(rnd.step_norm, taken_rnd, rel_tol=1e-12)
    for p in SPACE.params:
        assert p.low <= rnd.x_prime[p.name] <= p.high, p.name
    cos = float(_v_step(SPACE, hg) @ _v_step(SPACE, rnd)) / (taken_hg * taken_rnd)
    assert cos < 0.999


def test_random_direction_is_redrawn_then_projected_and_rescaled(monkeypatch):
    rng = np.random.default_rng(0)
    v = np.array([0.0, 0.5, 1.0])
    for _ in range(20):  # redraws: always the full length, always inside the box
        dv, pinned = warmstart._random_dv(v, 0.3, rng)
        assert math.isclose(float(np.linalg.norm(dv)), 0.3, rel_tol=1e-12) and not pinned.any()
        assert np.all((v - dv >= 0) & (v - dv <= 1))
    # hand-made fallback: from v = (0, 0.5) the step (−0.3, +0.6), of length √0.45, pushes component 1
    # below 0: it is pinned there (a move of 0.5) and component 0 is stretched to √(0.45 − 0.25) = √0.2
    dv, pinned = warmstart._project_and_rescale(np.array([0.0, 0.5]), np.array([-0.3, 0.6]), math.sqrt(0.45))
    np.testing.assert_allclose(np.array([0.0, 0.5]) - dv, [math.sqrt(0.2), 0.0], atol=1e-12)
    assert pinned.tolist() == [False, True]
    monkeypatch.setattr(warmstart, "RANDOM_REDRAWS", 1)
    corner = np.zeros(4)
    dv, pinned = warmstart._random_dv(corner, 0.2, np.random.default_rng(3))
    assert math.isclose(float(np.linalg.norm(dv)), 0.2, rel_tol=1e-9) or pinned.all()
    assert np.all(corner - dv >= 0)


def test_clipping_at_bounds(setup):
    problem, tb, vb = setup
    at_edges = {**CONFIG, "aug_magnitude": 0.0, "label_smoothing": 0.0, "lr": 1.0}
    new, rec = warm_start(problem, SPACE, at_edges, (tb, vb), WarmStartSettings(step_rule="raw", eta_h=100.0))
    for p in SPACE.params:
        assert p.low - 1e-12 <= new[p.name] <= p.high + 1e-12, p.name
    assert rec.clipped  # a step of 100·g leaves the box
    assert set(rec.clipped) <= set(SPACE.names)


def test_nonfinite_leaves_x_unchanged_and_flags(setup):
    problem, tb, vb = setup
    x_bad = torch.full_like(tb[0], float("nan"))
    new, rec = warm_start(problem, SPACE, CONFIG, ((x_bad, tb[1]), vb), WarmStartSettings())
    assert rec.nonfinite and "non-finite" in rec.reason
    assert new == CONFIG and rec.x_prime == rec.x


def test_none_mode_is_free_and_identity(setup):
    problem, tb, vb = setup
    new, rec = warm_start(problem, SPACE, CONFIG, (tb, vb), WarmStartSettings(mode="none"))
    assert new == CONFIG and rec.compute_s == 0.0 and rec.x_prime == rec.x


def test_hyper_steps_take_several_steps_on_fresh_batches(setup):
    problem, tb, vb = setup
    calls = []

    def source(step):
        calls.append(step)
        return tb, vb

    _, one = warm_start(problem, SPACE, CONFIG, source, WarmStartSettings(step_rule="normalized"))
    _, two = warm_start(problem, SPACE, CONFIG, source, WarmStartSettings(step_rule="normalized", hyper_steps=2))
    assert calls == [0, 0, 1]
    assert np.linalg.norm(_v_step(SPACE, two)) > np.linalg.norm(_v_step(SPACE, one))


def test_instruction_roundtrip_and_maybe_warm_start(setup):
    problem, tb, vb = setup
    settings = WarmStartSettings(step_rule="normalized", seed=3)
    cfg = {**CONFIG, CONFIG_KEY: make_instruction(SPACE, settings)}
    got_settings, got_space = instruction(cfg)
    assert got_settings == settings and got_space.params == SPACE.params
    new, rec = maybe_warm_start(cfg, problem, (tb, vb))
    assert rec is not None and new != cfg
    flat = rec.flat()
    assert flat["ohgw/x_prime/lr"] == new["lr"] and flat["ohgw/x/lr"] == CONFIG["lr"]
    same, none = maybe_warm_start(CONFIG, problem, (tb, vb))
    assert none is None and same == CONFIG


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(eta_h=0.0), "eta_h must be > 0"),
        (dict(eta_h=-1e-3), "eta_h must be > 0"),
        (dict(mode="sometimes"), "mode must be one of"),
        (dict(step_rule="adam"), "step_rule must be one of"),
        (dict(hyper_steps=0), "hyper_steps must be an integer"),
        (dict(lookahead=0), "lookahead must be an integer"),
    ],
)
def test_bad_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        WarmStartSettings(**kwargs)
