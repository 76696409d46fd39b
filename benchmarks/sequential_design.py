"""The group-sequential design by simulation: its level under no effect, its power and pairs saved under an effect.

What it measures: :class:`ohgw.analysis.sequential.SequentialDesign` (``--seeds auto``) run on
simulated sequences of paired log speed-ups d = log(T_vanilla / T_method) ~ N(δ, σ²), with exactly
the decisions a real study makes (:func:`ohgw.analysis.sequential.simulate`), against a fixed
design with the same maximum number of pairs (one look at N: the same statistic at |z| >= 1.96).

- **No effect** (δ = 0, ``--sequences`` ≥ 20,000): the rejection rate (either efficacy boundary)
  with its 95 % Clopper–Pearson interval, for the boundaries alone and with the non-binding
  futility rule; the level holds when the interval reaches down to α or below.
- **15 % and 30 % true median reductions** (δ = -log(1 - r)): the power (efficacy in the method's
  favour) and the expected number of pairs, sequential vs fixed.
- **A harmful effect (-10 %)**: how often futility (or the lower efficacy boundary) stops the
  study, and at which look.

The spread σ is ``--sigma`` (default 0.89: the spread behind the embedded default's reported
minimum detectable effect, 47 % at 16 pairs, by the signed-rank test's normal approximation
δ* = 2.80 σ sqrt(π / (3 n)), as :func:`ohgw.analysis.stats.paired_power` states it), or measured
(``--results DIR``) as the sample standard deviation of the informative paired log speed-ups of a
results directory, at its studies' τ on the compute clock. Simulated pairs are never censored.

    python benchmarks/sequential_design.py                       # 20,000 sequences per scenario
    python benchmarks/sequential_design.py --results /tmp/seq_default
"""

from __future__ import annotations

import argparse
import math
import sys
import time

import numpy as np
from _machine import load_line, run_header

SCENARIOS = {"no effect": 0.0, "15 % reduction": 0.15, "30 % reduction": 0.30, "harmful (-10 %)": -0.10}
DEFAULT_SIGMA = 0.89  # log speed-up spread, see the module doc


def measured_sigma(results_dir: str) -> tuple[float, str]:
    """σ of the informative paired log speed-ups in ``results_dir`` (the first method with a partner)."""
    import warnings

    from ohgw.analysis import load_results
    from ohgw.analysis.sequential import seed_log_speedups

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = load_results(results_dir)
    pairs = [(m, res.partner(m)) for m in res.methods if res.partner(m)]
    if not pairs:
        raise ValueError(f"--results: {results_dir} has no method with its vanilla partner")
    method, partner = pairs[0]
    tau = float(res.studies["tau"].iloc[0])
    d = np.array(list(seed_log_speedups(res, method, partner, tau).values()))
    d = d[np.isfinite(d) & (d != 0)]
    if len(d) < 2:
        raise ValueError(f"--results: {results_dir} has {len(d)} informative pairs; the spread needs 2")
    return float(np.std(d, ddof=1)), f"measured: {len(d)} informative pairs of {method} vs {partner} in {results_dir}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sequences", type=int, default=20000, help="simulated studies per scenario (default 20000)")
    p.add_argument("--max-seeds", type=int, default=16)
    p.add_argument("--look-every", type=int, default=4)
    p.add_argument("--alpha", type=float, default=0.05)
    p.add_argument("--target-reduction", type=float, default=0.15)
    p.add_argument("--sigma", type=float, help=f"spread of the log speed-ups (default {DEFAULT_SIGMA})")
    p.add_argument("--results", help="measure the spread from this results directory instead")
    p.add_argument("--seed", type=int, default=20261207)
    args = p.parse_args(argv)
    from ohgw.analysis.sequential import DECISIONS, SequentialDesign, rejection_rate, simulate

    try:
        if args.sequences < 100:
            raise ValueError(f"--sequences: at least 100, got {args.sequences}")
        if args.sigma is not None and args.results:
            raise ValueError("--sigma and --results: give one of them")
        if args.sigma is not None and not args.sigma > 0:
            raise ValueError(f"--sigma: must be > 0, got {args.sigma}")
        design = SequentialDesign(args.max_seeds, args.look_every, args.alpha, args.target_reduction)
        fixed = SequentialDesign(args.max_seeds, args.max_seeds, args.alpha, args.target_reduction)
        sigma, source = (measured_sigma(args.results) if args.results else
                         (args.sigma or DEFAULT_SIGMA, "stated" if args.sigma else "default, see the module doc"))
    except ValueError as e:
        print(f"sequential_design.py: error: {e}", file=sys.stderr)
        return 2
    print(run_header(__file__, argv))
    print(load_line("at start"))
    print(f"design: up to {design.max_pairs} pairs, looks at {design.looks}, efficacy |z| >= "
          f"{', '.join(f'{c:.3f}' for c in design.boundaries)} (Lan-DeMets OBF, two-sided alpha {design.alpha:g}); "
          f"futility below {design.futility_power:.0%} conditional power for a {design.target_reduction:.0%} reduction")
    print(f"fixed design: {fixed.max_pairs} pairs, |z| >= {fixed.boundaries[0]:.3f}; sigma of the log speed-ups "
          f"{sigma:.3f} ({source}); {args.sequences} sequences per scenario, seed {args.seed}")
    t0 = time.perf_counter()
    eff, harm, fut = (DECISIONS.index(x) for x in ("efficacy", "harm", "futility"))
    rows = []
    for i, (name, r) in enumerate(SCENARIOS.items()):
        delta = -math.log1p(-r)
        seq = simulate(design, delta, sigma, args.sequences, seed=args.seed + i)
        bare = simulate(design, delta, sigma, args.sequences, seed=args.seed + i, futility=False)
        one = simulate(fixed, delta, sigma, args.sequences, seed=args.seed + i)
        rows.append((name, r, seq, bare, one))
    elapsed = time.perf_counter() - t0

    name, _, seq, bare, one = rows[0]
    print(f"\n== {name}: rejection rate (either efficacy boundary), 95 % Clopper-Pearson interval; alpha = "
          f"{design.alpha:g}")
    for label, sim in (("sequential, boundaries alone", bare), ("sequential, with futility", seq),
                       ("fixed design", one)):
        rate, (lo, hi) = rejection_rate(sim)
        ok = "level holds" if lo <= design.alpha else "LEVEL EXCEEDED"
        print(f"  {label:30s} {rate:.4f}  [{lo:.4f}, {hi:.4f}]  {ok}")

    print("\n== power (efficacy in the method's favour) and pairs used: sequential with futility (seq), its "
          "boundaries alone (no fut.), fixed")
    print(f"  {'scenario':18s} {'power seq':>9s} {'no fut.':>7s} {'fixed':>5s} {'E[pairs] seq':>12s} {'fixed':>5s} "
          f"{'saved':>6s} {'futility':>8s} {'stops by look (seq)':>24s}")
    for name, _, seq, bare, one in rows:
        k = len(design.looks)
        by_look = np.bincount(seq["look"], minlength=k + 1)[1:] / args.sequences
        print(f"  {name:18s} {np.mean(seq['decision'] == eff):9.3f} {np.mean(bare['decision'] == eff):7.3f} "
              f"{np.mean(one['decision'] == eff):5.3f} "
              f"{seq['pairs'].mean():12.2f} {design.max_pairs:5d} {1 - seq['pairs'].mean() / design.max_pairs:6.1%} "
              f"{np.mean(seq['decision'] == fut):8.3f} {' '.join(f'{x:.2f}' for x in by_look):>24s}")
    name, _, seq, _, _ = rows[-1]
    stopped = np.isin(seq["decision"], [fut, harm])
    mean_look = seq["look"][stopped].mean() if stopped.any() else float("nan")
    print(f"\n== {name}: futility stops {np.mean(seq['decision'] == fut):.1%}, lower efficacy boundary "
          f"{np.mean(seq['decision'] == harm):.1%}; mean stopping look of those {mean_look:.2f} of "
          f"{len(design.looks)} ({seq['pairs'][stopped].mean():.1f} pairs)")
    print(f"\nsimulation: {elapsed:.1f} s for {3 * len(rows)} x {args.sequences} sequences")
    print(load_line("at end"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
