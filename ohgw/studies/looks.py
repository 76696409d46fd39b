"""The looks of a sequential study (``--seeds auto``): when to look, what was decided, kept across a kill.

The runner schedules the pairs in seed order and calls :meth:`SequentialLooks.update` after every
recorded study. A look over the first n pairs happens only once all 2n studies of seeds 0..n-1 are
in the results directory, whatever else has finished: a study's finishing time can correlate with its
T@τ, so pairs that end early are never looked at first. Each look
(:meth:`ohgw.analysis.sequential.SequentialDesign.look`, at the run's τ on the compute clock, the
analysis' primary clock) is appended to ``<out>/sequential.json`` in one atomic write, with the final
analysis once a boundary is crossed or the last look is made; from then on nothing changes the
decision (studies still running finish and are recorded, and no new pair starts).

A rerun reads the file: the looks already made are kept as they are (a rerun never re-decides them),
a look that was due when the run was killed is made from the same pairs (so it decides the same), and
a design other than the file's is refused before anything starts.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

from ohgw.analysis.sequential import LOOKS_FILE, SequentialDesign, read_looks
from ohgw.results import atomic_path
from ohgw.studies.manifest import is_done
from ohgw.studies.study import ExperimentConfig

CLOCK = "compute"  # the clock of the looks: the analysis' primary clock (its C1 verdict)


def monitored_pair(methods: list[str]) -> tuple[str, str]:
    """The one (method, vanilla partner) comparison a sequential study decides on; ValueError otherwise.

    >>> monitored_pair(["asha", "asha+ohgw"])
    ('asha+ohgw', 'asha')
    """
    from ohgw.studies.methods import parse_method

    pairs = [(m, parse_method(m).vanilla) for m in methods if parse_method(m).vanilla != m]
    pairs = [(m, v) for m, v in pairs if v in methods]
    if len(pairs) != 1:
        found = ", ".join(f"{m} vs {v}" for m, v in pairs) or "none"
        raise ValueError(f"--seeds auto: --methods must hold exactly one method and its vanilla partner "
                         f"(the comparison the looks decide on); found {found}")
    return pairs[0]


class SequentialLooks:
    """The record of one sequential study in ``out`` (``sequential.json``): design, looks, final analysis."""

    def __init__(self, design: SequentialDesign, cfg: ExperimentConfig, out: Path, methods: list[str]) -> None:
        self.design, self.cfg, self.out = design, cfg, Path(out)
        self.method, self.partner = monitored_pair(list(methods))
        self.path = self.out / LOOKS_FILE
        mine = {"design": design.to_dict(), "method": self.method, "partner": self.partner,
                "tau": cfg.tau, "clock": CLOCK}
        record = read_looks(self.out)
        if record:
            theirs = {k: record.get(k) for k in mine}
            if json.loads(json.dumps(theirs)) != json.loads(json.dumps(mine)):
                diff = sorted(k for k in mine if json.dumps(mine[k]) != json.dumps(theirs[k]))
                raise ValueError(f"{self.path} holds a sequential study with another design (differs in "
                                 f"{', '.join(diff)}); rerun with its settings or use another --out")
            self.record = record
        else:
            self.record = {**mine, "looks": [], "final": None}

    @property
    def looks(self) -> list[dict]:
        return self.record["looks"]

    @property
    def stopped(self) -> bool:
        """A boundary was crossed or the last look made: no new pair starts."""
        return bool(self.looks) and self.looks[-1]["decision"] != "continue"

    @property
    def pairs_needed(self) -> int:
        """Pairs to schedule: all ``max_pairs`` until stopped, then those the stopping look used."""
        return self.looks[-1]["n"] if self.stopped else self.design.max_pairs

    def _complete(self, n: int) -> bool:
        return all(is_done(self.out, self.cfg.experiment, m, s) for s in range(n) for m in (self.method, self.partner))

    def update(self) -> list[dict]:
        """Make every look now due (in order), persist each; returns the new looks."""
        new = []
        while not self.stopped and len(self.looks) < len(self.design.looks):
            k = len(self.looks) + 1
            n = self.design.looks[k - 1]
            if not self._complete(n):
                break
            d = self._log_speedups(n)
            look = {**self.design.look(k, d), "seeds": list(range(n))}
            self.record["looks"].append(look)
            if look["decision"] != "continue":
                self.record["final"] = self.design.final(k, d)
            self._write()
            new.append(look)
        return new

    def _log_speedups(self, n: int) -> list[float]:
        from ohgw.analysis import load_results
        from ohgw.analysis.sequential import seed_log_speedups

        with warnings.catch_warnings():  # the analysis' warnings belong to the report, not to a look
            warnings.simplefilter("ignore")
            res = load_results(self.out, experiment=self.cfg.experiment)
        by_seed = seed_log_speedups(res, self.method, self.partner, self.cfg.tau, CLOCK)
        return [by_seed[s] for s in range(n)]

    def _write(self) -> None:
        from ohgw.analysis.summary import jsonable

        with atomic_path(self.path) as tmp:
            tmp.write_text(json.dumps(jsonable(self.record), indent=2))

    def line(self, look: dict) -> str:
        """One console line on a look."""
        cp = look.get("conditional_power")
        cp_text = f", conditional power {cp:.0%}" if cp is not None and cp == cp else ""
        return (f"look {look['look']}/{len(self.design.looks)} at {look['n']} pairs: z = {look['z']:+.2f} "
                f"(boundaries ±{look['upper']:.2f}{cp_text}): {look['decision']}")


__all__ = ["CLOCK", "SequentialLooks", "monitored_pair"]
