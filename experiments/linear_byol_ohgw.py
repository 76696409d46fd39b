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
Flags of this script: ``--sweep_dir``, ``--sweep_steps`` (default 5), ``--regime_c`` (default 1);
every other flag is the harness's (``--help``).
"""

import argparse
import sys
from pathlib import Path

from ohgw.studies.cli import main
from trainables.linear_byol import PRESETS, workload

SCRIPT = "linear_byol_ohgw"


def _own_flags(argv):
    """(this script's flags plus the harness flags it reads, the harness's argv without this script's flags)."""
    own = argparse.ArgumentParser(add_help=False)
    own.add_argument("--sweep_dir")
    own.add_argument("--sweep_steps", type=int, default=5)
    own.add_argument("--regime_c", type=float, default=1.0)
    mine, harness = own.parse_known_args(argv)
    peek = argparse.ArgumentParser(add_help=False)
    peek.add_argument("--preset", default=next(iter(PRESETS)))
    peek.add_argument("--out")
    peek.add_argument("--experiment")
    peek.add_argument("--max-t", type=int)
    seen, _ = peek.parse_known_args(harness)
    return argparse.Namespace(**vars(mine), **vars(seen)), harness


def distance_report(own) -> int:
    from trainables.linear_byol.report import write_report
    from trainables.linear_byol.sweep import grid, run_sweep
    from trainables.scaffold import set_num_threads

    set_num_threads(1)  # one thread per run: on a shared CPU two spinning threads are several times slower

    preset = PRESETS.get(own.preset)
    if preset is None:
        return 0  # the harness has already rejected the preset
    experiment = own.experiment or f"{SCRIPT}-{own.preset}"
    out = Path(own.out) if own.out else Path("results") / experiment
    base = dict(preset["base_config"], max_t=own.max_t or preset["max_t"])
    try:
        if own.sweep_steps < 1 or own.regime_c <= 0:
            raise ValueError("--sweep_steps must be >= 1 and --regime_c > 0")
        sweep_dir = Path(own.sweep_dir) if own.sweep_dir else out / "sweep"
        if own.sweep_dir is None and not any(sweep_dir.glob("*.parquet")):
            configs = grid(base, (-3, 0, own.sweep_steps), (-3, 0, own.sweep_steps), [base["batch_size"]], [0])
            run_sweep(configs, str(sweep_dir), backend="local")
        print(write_report(out, sweep_dir, base, own.regime_c, experiment=experiment))
    except ValueError as e:
        print(f"{SCRIPT}.py: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    own, harness_argv = _own_flags(sys.argv[1:])
    rc = main(SCRIPT, workload(), ["asha", "asha+ohgw"], __doc__, harness_argv)
    if "-h" in harness_argv or "--help" in harness_argv:
        sys.exit(rc)
    sys.exit(rc or distance_report(own))
