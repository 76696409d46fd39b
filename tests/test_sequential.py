"""The group-sequential statistics (ohgw.analysis.sequential) against independent references."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from ohgw.analysis.sequential import (
    DECISIONS,
    SequentialDesign,
    conditional_power,
    efficacy_boundaries,
    exit_probabilities,
    obf_spending,
    signed_rank_z,
)

# Lan-DeMets O'Brien-Fleming-type spending, 5 equally spaced looks, two-sided alpha 0.05: the critical values
# gsDesign (sfLDOF, alpha 0.025 per side) and rpact ("asOF") publish for this design
PUBLISHED_5 = [4.877, 3.357, 2.680, 2.290, 2.031]


def _brownian(fractions, n, drift=0.0, seed=0):
    """Z_k = W(t_k) / sqrt(t_k) of n Brownian paths with drift (E[Z(1)] = drift), by independent increments."""
    t = np.asarray(fractions, float)
    inc = np.random.default_rng(seed).standard_normal((n, len(t))) * np.sqrt(np.diff(np.r_[0.0, t]))
    return (np.cumsum(inc, axis=1) + drift * t) / np.sqrt(t)


def _first_crossing(z, c):
    """Per look: share of paths whose first |z| >= c is there, split (upper, lower)."""
    crossed = np.abs(z) >= c
    first = np.where(crossed.any(axis=1), crossed.argmax(axis=1), -1)
    up = [np.mean((first == k) & (z[:, k] > 0)) for k in range(z.shape[1])]
    low = [np.mean((first == k) & (z[:, k] < 0)) for k in range(z.shape[1])]
    return np.array(up), np.array(low)


def test_boundaries_match_the_published_values_and_a_brownian_monte_carlo():
    t = np.linspace(0.2, 1.0, 5)
    c = efficacy_boundaries(t)
    assert np.round(c, 3).tolist() == PUBLISHED_5
    z = _brownian(t, 400_000, seed=1)
    up, low = _first_crossing(z, c)
    spent = np.cumsum(up + low)
    se = np.sqrt(obf_spending(t) * (1 - obf_spending(t)) / len(z))
    assert np.all(np.abs(spent - obf_spending(t)) < 4 * se + 1e-5), (spent, obf_spending(t))
    assert abs(spent[-1] - 0.05) < 0.0015


def test_exit_probabilities_under_a_drift_match_the_monte_carlo():
    t, c, drift = [0.25, 0.5, 0.75, 1.0], [3.0, 2.5, 2.2, 2.0], 2.0
    up, low = exit_probabilities(c, t, drift)
    mc_up, mc_low = _first_crossing(_brownian(t, 400_000, drift, seed=2), np.array(c))
    np.testing.assert_allclose(up, mc_up, atol=0.003)
    np.testing.assert_allclose(low, mc_low, atol=0.001)


def test_one_look_is_the_fixed_sample_normal_test():
    d = np.log([1.3, 1.1, 0.9, 1.6, 1.2, 1.4, 0.8, 1.25])
    design = SequentialDesign(max_pairs=8, look_every=8)
    assert design.boundaries[0] == pytest.approx(sps.norm.isf(0.025), abs=1e-6)
    final = design.final(1, d)
    z = signed_rank_z(d)
    assert final["p_adjusted"] == pytest.approx(2 * sps.norm.sf(abs(z)), abs=1e-6)
    # one look: no adjustment, the estimate is the naive one
    assert final["median_reduction_adjusted"] == pytest.approx(final["naive_median_reduction"], abs=1e-6)


def test_signed_rank_z_by_hand_and_against_scipys_normal_approximation():
    # ranks of |d| among the non-zero: 0.1 -> 1, 0.3 -> 2, 0.5 -> 3 (the zero is dropped): (3 - 1 + 2) / sqrt(14)
    assert signed_rank_z([0.5, -0.1, 0.3, 0.0]) == pytest.approx(4 / np.sqrt(14))
    d = np.random.default_rng(3).normal(0.2, 1.0, 30)
    r = sps.wilcoxon(d, method="approx", correction=False)
    assert 2 * sps.norm.sf(abs(signed_rank_z(d))) == pytest.approx(r.pvalue, rel=1e-9)


def test_stagewise_p_value_matches_the_monte_carlo_of_the_design():
    design = SequentialDesign(max_pairs=16, look_every=4)
    k, z_obs = 3, 2.1  # continued at looks 1-2, then observed z = 2.1 at look 3 (below its boundary 2.359)
    p_up, _ = design.stagewise(k, z_obs)
    z = _brownian(design.fractions, 400_000, seed=4)
    c = design.boundaries
    first = np.argmax(np.abs(z) >= c, axis=1)
    any_cross = (np.abs(z) >= c).any(axis=1)
    up_before = any_cross & (first < k - 1) & (z[np.arange(len(z)), first] > 0)
    reach = ~(any_cross & (first < k - 1))
    mc = np.mean(up_before | (reach & (z[:, k - 1] >= z_obs)))
    assert p_up == pytest.approx(mc, abs=0.002)


def test_the_median_unbiased_estimate_is_median_unbiased_for_the_drift():
    """Over Brownian paths with a known drift, stopped by the design, the estimate exceeds the drift half the time.

    P_eta(>= observed) increases with eta and the estimate solves it = 1/2, so the estimate exceeds the true
    drift exactly when P_drift(>= observed) < 1/2: one probability per path, no root search."""
    design = SequentialDesign(max_pairs=20, look_every=5)
    drift, n = 2.5, 400
    z = _brownian(design.fractions, n, drift, seed=5)
    hit = np.abs(z) >= design.boundaries
    stop = np.where(hit.any(axis=1), hit.argmax(axis=1), len(design.boundaries) - 1)
    over = sum(design.stagewise(k + 1, z[i, k], drift)[0] < 0.5 for i, k in enumerate(stop))
    assert abs(over / n - 0.5) < 3 * np.sqrt(0.25 / n), over
    assert 0.2 < np.mean(stop < len(design.boundaries) - 1) < 0.9  # many paths stopped early: a real check
    d = np.random.default_rng(6).normal(0.4, 0.5, 10)  # and final() reports that root
    final = design.final(2, d)
    assert design.stagewise(2, final["z"], final["drift_adjusted"])[0] == pytest.approx(0.5, abs=1e-6)


def test_conditional_power_matches_the_monte_carlo_of_the_remaining_path():
    t, z_now, c_final, drift = 0.5, 0.8, 1.96, 2.0
    rng = np.random.default_rng(6)
    w_final = z_now * np.sqrt(t) + drift * (1 - t) + np.sqrt(1 - t) * rng.standard_normal(400_000)
    assert conditional_power(z_now, t, c_final, drift) == pytest.approx(np.mean(w_final >= c_final), abs=0.003)


def test_decisions_at_a_look():
    design = SequentialDesign(max_pairs=16, look_every=4)
    assert DECISIONS[int(design.decide(2, 3.5, 0.5)[0])] == "efficacy"
    assert DECISIONS[int(design.decide(2, -3.5, 0.5)[0])] == "harm"
    assert DECISIONS[int(design.decide(2, -1.0, 0.5)[0])] == "futility"  # conditional power far below 10 %
    assert DECISIONS[int(design.decide(2, 1.0, 0.5)[0])] == "continue"
    assert DECISIONS[int(design.decide(2, -1.0, float("nan"))[0])] == "continue"  # no spread yet: no futility
    assert DECISIONS[int(design.decide(4, 1.0, 0.5)[0])] == "final"


def test_small_null_simulation_keeps_the_level(capsys):
    """benchmarks/sequential_design.py at 2,000 sequences: under no effect the rejection rate's 95 % interval
    reaches alpha, for the boundaries alone and with the non-binding futility rule (which only lowers it)."""
    import importlib.util
    import sys
    from pathlib import Path

    bench = Path(__file__).resolve().parents[1] / "benchmarks"
    sys.path.insert(0, str(bench))
    try:
        spec = importlib.util.spec_from_file_location("sequential_design", bench / "sequential_design.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        assert mod.main(["--sequences", "2000"]) == 0
    finally:
        sys.path.remove(str(bench))
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "# command: python benchmarks/sequential_design.py --sequences 2000"
    rates = {}
    for label in ("sequential, boundaries alone", "sequential, with futility"):
        line = next(x for x in out if x.strip().startswith(label))
        rate, lo, hi = (float(v) for v in line[len(label) + 2:].replace("[", " ").replace(",", " ")
                        .replace("]", " ").split()[:3])
        assert lo <= 0.05 and "level holds" in line, line
        rates[label] = rate
    assert rates["sequential, with futility"] <= rates["sequential, boundaries alone"]
    assert rates["sequential, boundaries alone"] > 0.02  # a design that never rejects would pass the first check


@pytest.mark.parametrize(("kw", "flag"), [
    ({"max_pairs": 8, "look_every": 1}, "--look-every"),
    ({"max_pairs": 8, "look_every": 9}, "--look-every"),
    ({"max_pairs": 8, "look_every": 4, "alpha": 0.5}, "--alpha"),
    ({"max_pairs": 8, "look_every": 4, "alpha": 0.0}, "--alpha"),
    ({"max_pairs": 8, "look_every": 4, "target_reduction": 1.0}, "--target-reduction"),
    ({"max_pairs": 8, "look_every": 4, "target_reduction": 0.0}, "--target-reduction"),
])
def test_bad_designs_name_their_flag(kw, flag):
    with pytest.raises(ValueError, match=flag):
        SequentialDesign(**kw)
