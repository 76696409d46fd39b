"""The command line shared by ``experiments/*_vs_ohgw.py``: presets, flags, run, analyse.

Presets (every flag overrides them):

- ``digits`` (default, the embedded data set; CPU): ResNet-20 on scikit-learn's
  8×8 digits, max_t 10 epochs (rungs 1, 3, 9 at η = 3), 6 paired seeds, 40 epoch-equivalents per study,
  1 CPU per trial and 1 trial per study (2 studies at once on 2 cores);
  finishes in well under 10 minutes on 2 cores.
- ``cifar10`` (an 8-GPU node): ResNet-20 on CIFAR-10 from ``--data-dir``, the
  5-dim space, max_t 27, 50 paired seeds, 300 epoch-equivalents per study,
  4 trials per study at 0.25 GPU and 2 CPUs each (one GPU per study, 8 studies
  at once); τ = 0.88 validation accuracy.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from .methods import known_methods, parse_method
from .space import SearchSpace
from .study import BUDGET_KINDS, SEARCHERS, ExperimentConfig
from .warmstart import STEP_RULES, WarmStartSettings

PRESETS: dict[str, dict] = {
    "digits": dict(
        base_config={"dataset": "digits", "batch_size": 128, "width": 1},
        max_t=10, seeds=6, budget=40.0, tau=0.95, cpus_per_trial=1.0, gpus_per_trial=0.0, trials_per_study=1,
    ),
    "cifar10": dict(
        base_config={"dataset": "cifar10", "batch_size": 128, "width": 1, "data_dir": "data/cifar10"},
        max_t=27, seeds=50, budget=300.0, tau=0.88, cpus_per_trial=2.0, gpus_per_trial=0.25, trials_per_study=4,
    ),
}


class _OneLineParser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one clear line, exit 2
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser(prog: str, default_methods: Sequence[str], description: str) -> argparse.ArgumentParser:
    p = _OneLineParser(prog=prog, description=description, formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--preset", choices=sorted(PRESETS), default="digits", help="study setting (default: digits)")
    p.add_argument("--methods", default=",".join(default_methods),
                   help=f"comma-separated methods (default: %(default)s); known: {', '.join(known_methods())}; "
                        "append @eta=<float> for an η_h sweep")
    p.add_argument("--seeds", type=int, help="number of paired seeds 0..N-1")
    p.add_argument("--budget", type=float, help="per-study budget, in --budget-kind units")
    p.add_argument("--budget-kind", choices=BUDGET_KINDS, default="epochs",
                   help="epochs = epoch-equivalents incl. warm-starts (noise-free, default); seconds = wall clock")
    p.add_argument("--tau", type=float, help="target validation accuracy for T@τ, in [0, 1]")
    p.add_argument("--max-t", type=int, help="epochs of a full trial (top rung)")
    p.add_argument("--eta-h", type=float, help="η_h; default 1e-3 (raw) or 0.05 (normalized)")
    p.add_argument("--step-rule", choices=STEP_RULES, default="normalized",
                   help="warm-start step rule (default: normalized; 'raw' with --eta-h 1e-3 is the original proposal)")
    p.add_argument("--searcher", choices=SEARCHERS, default="random", help="config sampler, seeded per study")
    p.add_argument("--out", help="results directory (default: results/<experiment>)")
    p.add_argument("--experiment", help="experiment name (default: <script>-<preset>)")
    p.add_argument("--trials-per-study", type=int, help="concurrent trials inside one study")
    p.add_argument("--cpus-per-trial", type=float)
    p.add_argument("--gpus-per-trial", type=float, help="fraction of a GPU per trial, e.g. 0.25")
    p.add_argument("--data-dir", help="cifar10: folder holding cifar-10-batches-py")
    p.add_argument("--download", action="store_true", help="cifar10: download into --data-dir if missing")
    p.add_argument("--address", help="Ray cluster address (e.g. auto); default: start a local Ray")
    p.add_argument("--num-cpus", type=int, help="CPUs of the local Ray (default: all)")
    p.add_argument("--dashboard-host", default="127.0.0.1",
                   help="interface the local Ray dashboard binds to (default: loopback only)")
    p.add_argument("--no-reuse-actors", action="store_true", help="start a fresh actor per trial")
    p.add_argument("--no-report", action="store_true", help="skip the analysis at the end")
    p.add_argument("--quiet", action="store_true", help="only the study progress line; no Ray trial output")
    return p


def config_from_args(args: argparse.Namespace, script: str) -> tuple[ExperimentConfig, list[str], list[int], Path]:
    """Validate everything before anything is written; a ValueError names the bad argument."""
    preset = PRESETS[args.preset]
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    if not methods:
        raise ValueError("--methods is empty")
    for m in methods:
        parse_method(m)
    seeds = preset["seeds"] if args.seeds is None else args.seeds
    if seeds < 1:
        raise ValueError(f"--seeds must be >= 1, got {seeds}")
    base = dict(preset["base_config"])
    if args.data_dir:
        base["data_dir"] = args.data_dir
    if args.download:
        base["download"] = True
    if base["dataset"] == "cifar10":
        from trainables.data import check_source

        check_source(base["dataset"], base.get("data_dir"), base.get("download", False))
    warm = WarmStartSettings(step_rule=args.step_rule, eta_h=args.eta_h)
    experiment = args.experiment or f"{script}-{args.preset}"
    pick = lambda flag, key: preset[key] if flag is None else flag  # noqa: E731
    cfg = ExperimentConfig(
        experiment=experiment,
        space=SearchSpace.default(),
        base_config=base,
        max_t=pick(args.max_t, "max_t"),
        budget_kind=args.budget_kind,
        budget=pick(args.budget, "budget"),
        tau=pick(args.tau, "tau"),
        searcher=args.searcher,
        warm_start=warm,
        cpus_per_trial=pick(args.cpus_per_trial, "cpus_per_trial"),
        gpus_per_trial=pick(args.gpus_per_trial, "gpus_per_trial"),
        trials_per_study=pick(args.trials_per_study, "trials_per_study"),
        reuse_actors=not args.no_reuse_actors,
    )
    out = Path(args.out) if args.out else Path("results") / experiment
    return cfg, methods, list(range(seeds)), out


def main(script: str, default_methods: Sequence[str], description: str, argv: Sequence[str] | None = None) -> int:
    parser = build_parser(f"{script}.py", default_methods, description)
    args = parser.parse_args(argv)
    try:
        cfg, methods, seeds, out = config_from_args(args, script)
        from trainables.classification import train_classifier

        from .runner import check_manifest, run_experiment

        check_manifest(out, cfg)
    except ValueError as e:
        print(f"{script}.py: error: {e}", file=sys.stderr)
        return 2
    t0 = time.time()
    print(f"experiment {cfg.experiment}: {len(methods)} methods × {len(seeds)} seeds, budget {cfg.budget:g} "
          f"{cfg.budget_kind} per study, τ = {cfg.tau:g}, results in {out}", file=sys.stderr, flush=True)
    summary = run_experiment(cfg, train_classifier, methods, seeds, out, quiet=args.quiet, address=args.address,
                             num_cpus=args.num_cpus, dashboard_host=args.dashboard_host)
    print(f"studies: {summary.ran} run, {summary.skipped} resumed, {len(summary.failed)} failed; "
          f"{time.time() - t0:.0f} s", file=sys.stderr, flush=True)
    if not args.no_report:
        report(out, cfg)
    return 1 if summary.failed else 0


def report(out: Path, cfg: ExperimentConfig) -> None:
    from .analysis import analyze

    analyze(out, tau=cfg.tau, out_html=out / "report.html")


__all__ = ["PRESETS", "build_parser", "config_from_args", "main"]
