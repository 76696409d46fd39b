"""Helpers that only tests and benchmarks use: the hook-level scheduler replay
(:mod:`ohgw.testing.replay`) and the synthetic results generator (:mod:`ohgw.testing.synthetic_results`)."""
