"""ASHA vs ASHA+OHGW on temporal self-supervised pretraining (the embedded behaviour video).

With no arguments: TW-BYOL (``--method``: byol, tw-byol, simclr-temporal) with the ``cpu`` preset of
:func:`trainables.ssl.workload`: 25-step epochs on the CPU, max_t 6, 3 paired seeds; the search space is the
method's lr, wd, EMA momentum (as log10(1 − m)), τ or temperature, and augmentation strength.
Tuned metric: ``val_probe_f1`` (:data:`trainables.ssl.STUDY_METRIC`, the linear probe's macro-F1 of the
action label on held-out clips; why not kNN accuracy: see there).
``--preset gpu`` runs full epochs on one GPU per study. Every other flag is the harness's
(``--help`` lists them and the presets).
"""

import argparse
import sys

from ohgw.studies.cli import main
from trainables.ssl import METHODS, workload

if __name__ == "__main__":
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--method", default="tw-byol")
    known, rest = pre.parse_known_args()
    if known.method not in METHODS:
        print(f"ssl_asha_vs_ohgw.py: error: --method must be one of {METHODS}, got {known.method!r}", file=sys.stderr)
        sys.exit(2)
    name = "ssl_asha_vs_ohgw" if known.method == "tw-byol" else f"ssl_asha_vs_ohgw-{known.method}"
    sys.exit(main(name, workload(known.method), ["asha", "asha+ohgw"], __doc__, rest))
