"""ASHA vs ASHA+OHGW: paired multi-seed studies, Parquet export and the T@τ report.

With no arguments: the ``digits`` preset of :func:`trainables.classification.workload`
(ResNet-20 on the embedded digits data set, on the CPU, paired seeds).
``--preset cifar10`` is the GPU study. Run with ``--help`` for every flag and preset.
"""

import sys

from ohgw.studies.cli import main
from trainables.classification import workload

if __name__ == "__main__":
    sys.exit(main("asha_vs_ohgw", workload(), ["asha", "asha+ohgw"], __doc__))
