"""DyHPO vs DyHPO+OHGW (and the random-step control), paired by seed.

Same harness and flags as ``asha_vs_ohgw.py``; run with ``--help``. DyHPO's surrogate learns
from x′, the config each warm-started trial trained with (:mod:`ohgw.dyhpo.scheduler`).
"""

import sys

from ohgw.studies.cli import main
from trainables.classification import workload

if __name__ == "__main__":
    sys.exit(main("dyhpo_vs_ohgw", workload(), ["dyhpo", "dyhpo+ohgw", "dyhpo+random"], __doc__))
