"""Hyperband vs Hyperband+OHGW, paired by seed.

Same harness and flags as ``asha_vs_ohgw.py``; run with ``--help``.
"""

import sys

from ohgw.cli import main

if __name__ == "__main__":
    sys.exit(main("hyperband_vs_ohgw", ["hyperband", "hyperband+ohgw"], __doc__))
