"""PASHA vs PASHA+OHGW, with promotion-type ASHA as PASHA's fair baseline.

Same harness and flags as ``asha_vs_ohgw.py``; run with ``--help``.
"""

import sys

from ohgw.cli import main

if __name__ == "__main__":
    sys.exit(main("pasha_vs_ohgw", ["asha-promo", "pasha", "pasha+ohgw"], __doc__))
