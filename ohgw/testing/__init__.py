"""Helpers that only tests and benchmarks use: the hook-level scheduler replay
(:mod:`ohgw.testing.replay`), the synthetic results generator (:mod:`ohgw.testing.synthetic_results`) and a
torch-free warm-start with an exact hyper-gradient for test trainables (:mod:`ohgw.testing.quadratic`)."""
