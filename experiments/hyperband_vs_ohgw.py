"""Hyperband vs Hyperband+OHGW, paired by seed.

Same harness and flags as ``asha_vs_ohgw.py``; run with ``--help``.
"""

import sys

from ohgw.studies.cli import main
from trainables.classification import workload

if __name__ == "__main__":
    sys.exit(main("hyperband_vs_ohgw", workload(), ["hyperband", "hyperband+ohgw"], __doc__))
