"""ASHA vs ASHA+OHGW on LCBench learning curves (YAHPO Gym's surrogate): paired studies, Parquet, T@τ.

With no arguments: the ``cpu`` preset of :func:`trainables.lcbench.workload` (task 167149,
20 ms busy epochs, max_t 27, τ = 0.95). ``--preset sim`` runs the epochs as fast as possible,
for many seeds. The warm-start is a finite-difference hyper-gradient of the surrogate
(:mod:`trainables.lcbench.run`): a harness and overhead study, not evidence about OHGW on real
training. Run with ``--help`` for every flag and preset.
"""

import sys

from ohgw.studies.cli import main
from trainables.lcbench import workload

if __name__ == "__main__":
    sys.exit(main("lcbench_vs_ohgw", workload(), ["asha", "asha+ohgw"], __doc__))
