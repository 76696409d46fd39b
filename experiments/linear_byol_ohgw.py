"""ASHA vs ASHA+OHGW on the linear BYOL toy with analytic optima: T@τ, plus the distance to the known answer.

The studies tune α (predictor lr), β (encoder lr) and τ (EMA rate, 1 − m) on log10 coordinates
(:func:`trainables.linear_byol.workload`, metric ``W_Fro_aligned``, mode min), through the shared
harness: paired seeds, equal budgets, Parquet, the T@τ report. The warm-start differentiates one
unrolled BYOL step with the EMA inside it (:mod:`trainables.linear_byol.problem`).

Then, beyond T@τ (:mod:`trainables.linear_byol.report`): for each method and budget fraction, the
median distance of the best trial's (α, τ) to the best cell of a grid sweep of the same problem,
and how far it lies outside the analytic regime α·H ≲ c·τ. The sweep is ``--sweep_dir`` (a runs
directory of ``python -m trainables.linear_byol sweep`` on the preset's problem), or else one is run
here once, in-process, into ``<out>/sweep`` (``--sweep_steps``² cells, β = α, one seed, max_t epochs).
Flags of this script: ``--sweep_dir``, ``--sweep_steps`` (default 5), ``--regime_c`` (default 1), given
to the harness as the workload's own (:attr:`ohgw.studies.workload.Workload.add_flags`): ``--help``
lists them with the harness's, and a bad value stops the script before any study runs.
"""

import argparse
import dataclasses
import sys
import time
from pathlib import Path

from ohgw.studies.cli import main
from trainables.linear_byol import workload

SCRIPT = "linear_byol_ohgw"


def _positive(kind):
    def parse(text: str):
        value = kind(text)
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its message
    return parse


def add_flags(group) -> None:
    """This script's flags, beside the harness's (``--help`` lists them; argparse checks them first)."""
    group.add_argument("--sweep_dir", help="runs directory of `python -m trainables.linear_byol sweep` on the "
                                           "preset's problem (default: run one into <out>/sweep)")
    group.add_argument("--sweep_steps", type=_positive(int), default=5,
                       help="grid steps per axis of the sweep run here (default: %(default)s)")
    group.add_argument("--regime_c", type=_positive(float), default=1.0,
                       help="c of the analytic regime alpha*H <= c*tau (default: %(default)s)")


def distance_report(args, cfg, out: Path) -> int:
    """After the studies: the distance of each method's best (α, τ) to the sweep's best cell."""
    from trainables.linear_byol.report import write_report
    from trainables.linear_byol.sweep import grid, run_sweep
    from trainables.scaffold import set_num_threads

    set_num_threads(1)  # one thread per run: on a shared CPU two spinning threads are several times slower
    base = dict(cfg.base_config, max_t=cfg.max_t)
    try:
        sweep_dir = Path(args.sweep_dir) if args.sweep_dir else out / "sweep"
        if args.sweep_dir is None and not any(sweep_dir.glob("*.parquet")):
            configs = grid(base, (1e-3, 1.0, args.sweep_steps), (1e-3, 1.0, args.sweep_steps), [base["batch_size"]],
                           [0])
            # the harness's bar is the run's one bar: the sweep says what it does in a line before and after
            say = (lambda line: None) if args.quiet else (lambda line: print(line, flush=True))
            runs = f"{len(configs)} run{'s' if len(configs) != 1 else ''}"
            say(f"reference sweep: {runs} ({args.sweep_steps} x {args.sweep_steps} grid, one seed, "
                f"{cfg.max_t} epochs each) into {sweep_dir} ...")
            t0 = time.time()
            run_sweep(configs, str(sweep_dir), backend="local", quiet=True)
            say(f"reference sweep: {runs} done in {time.time() - t0:.0f} s")
        print(write_report(out, sweep_dir, base, args.regime_c, experiment=cfg.experiment))
    except ValueError as e:
        print(f"{SCRIPT}.py: error: {e}", file=sys.stderr)
        return 2
    return 0


def build_workload():
    """The linear BYOL workload with this script's flags and its distance report after the studies."""
    return dataclasses.replace(workload(), add_flags=add_flags, after_studies=distance_report)


if __name__ == "__main__":
    sys.exit(main(SCRIPT, build_workload(), ["asha", "asha+ohgw"], __doc__))
