"""PASHA vs PASHA+OHGW, with promotion-type ASHA as PASHA's fair baseline.

Same harness and flags as ``asha_vs_ohgw.py``; run with ``--help``.
"""

import sys

from ohgw.studies.cli import main
from trainables.classification import workload

if __name__ == "__main__":
    sys.exit(main("pasha_vs_ohgw", workload(), ["asha-promo", "pasha", "pasha+ohgw"], __doc__))
