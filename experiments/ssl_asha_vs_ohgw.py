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
import dataclasses
import sys

from ohgw.studies.cli import main
from trainables.ssl import METHODS, workload


def add_method_flag(group) -> None:
    group.add_argument("--method", choices=METHODS, default="tw-byol", help="SSL method (default: %(default)s)")


def build_workload(method: str):
    """The SSL workload of ``method``, with ``--method`` among its flags (listed by ``--help``)."""
    return dataclasses.replace(workload(method), add_flags=add_method_flag)


if __name__ == "__main__":
    # the method picks the workload (its search space), so it is read first; an unknown one is refused by
    # the harness's parser, with the same one line as any other bad flag
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--method", default="tw-byol")
    method = pre.parse_known_args()[0].method
    known = method if method in METHODS else "tw-byol"
    name = "ssl_asha_vs_ohgw" if known == "tw-byol" else f"ssl_asha_vs_ohgw-{known}"
    sys.exit(main(name, build_workload(known), ["asha", "asha+ohgw"], __doc__))
