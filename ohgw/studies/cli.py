"""The command line shared by ``experiments/*_vs_ohgw.py``: presets, flags, run, analyse.

``main(script, workload, default_methods, description)`` is the whole of a script:
the :class:`~ohgw.studies.workload.Workload` brings the trainable, its search space
and its presets, so the harness never imports a trainable. Every flag overrides the
preset; bad input exits with status 2 and one line, before anything is written.

The studies run through :func:`ohgw.studies.runner.run_experiment` into ``--out``
(re-running resumes); the analysis (:func:`ohgw.analysis.analyze`) then runs at this
command's τ (``--tau``, else the preset's). τ is an analysis setting only: the same
results directory can be re-run or re-analysed at any τ.

The console shows a study progress bar, one line per finished study and the headline
tables; Ray's and Tune's own output goes to the log file named at the start
(``<out>/logs/``), and to the console too with ``--verbose`` (every table as well).
``--quiet`` shows the progress bar only. Each study's Tune directory is removed once its
Parquet export is written, unless ``--keep-tune-dirs``.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

from ohgw import protocol
from ohgw.metrics import study_tags
from ohgw.studies.methods import known_methods, parse_method
from ohgw.studies.study import BUDGET_KINDS, SEARCHERS, ExperimentConfig
from ohgw.studies.workload import Workload
from ohgw.warmstart_settings import DEFAULT_STEP_RULE, STEP_RULES, WarmStartSettings


class _OneLineParser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one clear line, exit 2
        self.exit(2, f"{self.prog}: error: {message}\n")


def _presets_epilog(workload: Workload) -> str:
    lines = ["presets (every flag overrides them):"]
    for name, p in workload.presets.items():
        lines.append(f"  {name}: {p['base_config']}, max_t {p['max_t']}, {p['seeds']} seeds, budget {p['budget']:g} "
                     f"epoch-equivalents per study, tau {p['tau']:g}, {p['trials_per_study']} trial(s) per study at "
                     f"{p['cpus_per_trial']:g} CPU / {p['gpus_per_trial']:g} GPU each")
    return "\n".join(lines)


def build_parser(prog: str, workload: Workload, default_methods: Sequence[str],
                 description: str) -> argparse.ArgumentParser:
    p = _OneLineParser(prog=prog, description=description, formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog=_presets_epilog(workload))
    p.add_argument("--preset", choices=list(workload.presets), default=workload.default_preset,
                   help="study setting (default: %(default)s)")
    p.add_argument("--methods", default=",".join(default_methods),
                   help=f"comma-separated methods (default: %(default)s); known: {', '.join(known_methods())}; "
                        "append @eta=<float> for an η_h sweep")
    p.add_argument("--seeds", help="number of paired seeds 0..N-1, or 'auto': a group-sequential study that stops "
                                   "when the answer is known (the flags below)")
    p.add_argument("--budget", type=float, help="per-study budget, in --budget-kind units")
    p.add_argument("--budget-kind", choices=BUDGET_KINDS, default="epochs",
                   help="epochs = epoch-equivalents (default): whole epochs, plus each warm-start's measured share of "
                        "an epoch, which varies a little run to run; seconds = wall clock")
    p.add_argument("--tau", type=float, help=f"target {workload.metric} for T@τ (mode {workload.mode}; default: the preset's)")
    p.add_argument("--max-t", type=int, help="epochs of a full trial (top rung)")
    p.add_argument("--eta-h", type=float, help="η_h; default 1e-3 (raw) or 0.05 (normalized)")
    p.add_argument("--step-rule", choices=STEP_RULES, default=DEFAULT_STEP_RULE,
                   help="warm-start step rule (default: %(default)s; 'raw' with --eta-h 1e-3 is the original proposal)")
    p.add_argument("--searcher", choices=SEARCHERS, default="random", help="config sampler, seeded per study")
    p.add_argument("--out", help="results directory (default: results/<experiment>)")
    p.add_argument("--experiment", help="experiment name (default: <script>-<preset>)")
    p.add_argument("--trials-per-study", type=int, help="concurrent trials inside one study")
    p.add_argument("--cpus-per-trial", type=float)
    p.add_argument("--gpus-per-trial", type=float, help="fraction of a GPU per trial, e.g. 0.25")
    p.add_argument("--data-dir", help="cifar10: folder holding cifar-10-batches-py")
    p.add_argument("--download", action="store_true", help="cifar10: download into --data-dir if missing")
    p.add_argument("--device", help="where every trial trains: auto (CUDA if visible), cpu or cuda[:N] "
                                    "(default: the preset's); CUDA is checked here unless --address")
    p.add_argument("--deterministic", choices=("true", "false"),
                   help="deterministic CUDA kernels in every trial (default true: twins stay bit-identical on GPUs; "
                        "false: faster, pairs approximate)")
    p.add_argument("--address", help="Ray cluster address (e.g. auto); default: start a local Ray")
    p.add_argument("--storage", help="folder of Tune's runs (default: <out>/_tune); on a cluster, a shared filesystem "
                                     "mounted at the same path on every node (checked before the first study)")
    p.add_argument("--num-cpus", type=int, help="CPUs of the local Ray (default: all)")
    p.add_argument("--dashboard-host", default="127.0.0.1",
                   help="interface the local Ray dashboard binds to (default: loopback only)")
    p.add_argument("--allow-public-dashboard", action="store_true",
                   help="allow a non-loopback --dashboard-host (reachable from the network; keep token auth on)")
    p.add_argument("--no-reuse-actors", action="store_true", help="start a fresh actor per trial")
    p.add_argument("--no-report", action="store_true", help="skip the analysis at the end")
    p.add_argument("--keep-tune-dirs", action="store_true",
                   help="keep each study's Tune directory (_tune/<run>) after its Parquet export (default: removed)")
    seq = p.add_argument_group("sequential seeds (--seeds auto; ohgw.analysis.sequential)")
    seq.add_argument("--max-seeds", type=int, help="most pairs it runs (default: the preset's seeds)")
    seq.add_argument("--look-every", type=int, help=f"pairs between looks (default {LOOK_EVERY}, or --max-seeds)")
    seq.add_argument("--target-reduction", type=float,
                     help="median T@tau reduction (a fraction) the futility rule asks about (default 0.15)")
    seq.add_argument("--alpha", type=float, help="two-sided type-I error of the design (default 0.05)")
    if workload.add_flags is not None:
        workload.add_flags(p.add_argument_group(f"flags of the {workload.name} workload"))
    talk = p.add_mutually_exclusive_group()
    talk.add_argument("--quiet", action="store_true",
                      help="the progress bar only: no line per study, no tables (the report is still written)")
    talk.add_argument("--verbose", action="store_true",
                      help="also Ray's and Tune's own output (trial tables) on the console, and every table")
    return p


def check_trial_device(base: dict, local: bool) -> None:
    """The base config's determinism must be a bool, and CUDA asked for on a local Ray (trials run on this
    machine) must be here; a ValueError says which."""
    det = base.get(protocol.DETERMINISTIC_KEY, True)
    if not isinstance(det, bool):
        raise ValueError(f"{protocol.DETERMINISTIC_KEY} must be true or false, got {det!r}")
    device = base.get(protocol.DEVICE)
    if local and isinstance(device, str) and device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise ValueError(f"the preset's {protocol.DEVICE} is {device!r}, but CUDA is not available here "
                             "(give --address to run the trials on a cluster's GPU nodes)")


def config_from_args(args: argparse.Namespace, script: str,
                     workload: Workload) -> tuple[ExperimentConfig, list[str], list[int], Path]:
    """Validate everything before anything is written; a ValueError names the bad argument."""
    preset = workload.presets[args.preset]
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    if not methods:
        raise ValueError("--methods is empty")
    for m in methods:
        parse_method(m)
    seeds = _seed_count(args, preset["seeds"])
    if seeds < 1:
        raise ValueError(f"--seeds must be >= 1, got {seeds}")
    base = dict(preset["base_config"])
    if args.data_dir:
        base["data_dir"] = args.data_dir
    if args.download:
        base["download"] = True
    if args.deterministic is not None:
        base[protocol.DETERMINISTIC_KEY] = args.deterministic == "true"
    if args.device is not None:
        base[protocol.DEVICE] = args.device
    check_trial_device(base, local=not args.address)
    if workload.check_base_config is not None:
        workload.check_base_config(base)
    warm = WarmStartSettings(step_rule=args.step_rule, eta_h=args.eta_h)
    experiment = args.experiment or f"{script}-{args.preset}"
    pick = lambda flag, key: preset[key] if flag is None else flag  # noqa: E731
    cfg = ExperimentConfig(
        experiment=experiment,
        space=workload.space,
        metric=workload.metric,
        mode=workload.mode,
        metric_range=workload.metric_range,
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
        export_best=workload.export_best,
    )
    out = Path(args.out) if args.out else Path("results") / experiment
    return cfg, methods, list(range(seeds)), out


LOOK_EVERY = 4  # default pairs between looks
SEQUENTIAL_FLAGS = ("max_seeds", "look_every", "target_reduction", "alpha")


def _seed_count(args: argparse.Namespace, preset_seeds: int) -> int:
    """Pairs to run: ``--seeds N``, the preset's, or ``--max-seeds`` for ``--seeds auto``."""
    given = [f"--{f.replace('_', '-')}" for f in SEQUENTIAL_FLAGS if getattr(args, f) is not None]
    if args.seeds == "auto":
        if args.max_seeds is not None and args.max_seeds < 2:
            raise ValueError(f"--max-seeds: must be an integer >= 2, got {args.max_seeds}")
        return preset_seeds if args.max_seeds is None else args.max_seeds
    if given:
        fixed = f"--seeds {args.seeds}" if args.seeds is not None else f"the preset's {preset_seeds} seeds"
        raise ValueError(f"{given[0]} needs --seeds auto ({fixed} fix the seeds)")
    if args.seeds is None:
        return preset_seeds
    try:
        return int(args.seeds)
    except ValueError:
        raise ValueError(f"--seeds: an integer or 'auto', got {args.seeds!r}") from None


def sequential_from_args(args: argparse.Namespace, max_seeds: int):
    """The group-sequential design of ``--seeds auto`` (None for a fixed number of seeds); ValueError names the flag."""
    if args.seeds != "auto":
        return None
    from ohgw.analysis.sequential import SETTINGS, SequentialDesign, check_design

    look_every = min(LOOK_EVERY, max_seeds) if args.look_every is None else args.look_every
    alpha = SETTINGS["alpha"] if args.alpha is None else args.alpha
    target = SETTINGS["target_reduction"] if args.target_reduction is None else args.target_reduction
    check_design(max_seeds, look_every, alpha, target)
    return SequentialDesign(max_pairs=max_seeds, look_every=look_every, alpha=alpha, target_reduction=target)


def main(script: str, workload: Workload, default_methods: Sequence[str], description: str,
         argv: Sequence[str] | None = None) -> int:
    """Parse ``argv``, run the studies of ``workload`` not yet in the results directory, then analyse."""
    parser = build_parser(f"{script}.py", workload, default_methods, description)
    args = parser.parse_args(argv)
    try:
        cfg, methods, seeds, out = config_from_args(args, script, workload)
        design = sequential_from_args(args, len(seeds))
        from ohgw.studies.runner import check_dashboard_host, check_keep_tune_dirs, check_manifest, run_experiment
        from ohgw.studies.study import check_methods

        if not args.address:
            check_dashboard_host(args.dashboard_host, args.allow_public_dashboard)
        check_methods(cfg, methods)  # each method's scheduler accepts the config (PASHA: max_t above the grace period)
        for m in methods:  # Ray metric labels must stay bounded: no id-like experiment name
            study_tags(cfg.experiment, m, seeds[-1])
        check_manifest(out, cfg)
        if design is not None:
            from ohgw.studies.looks import SequentialLooks

            SequentialLooks(design, cfg, out, methods)  # one comparison, the same design as a run before
        if args.keep_tune_dirs:
            check_keep_tune_dirs(out)
        # storage writable; on a cluster: address, group labels, shared storage (ohgw.studies.preflight)
        from ohgw.studies.preflight import check_run
        from ohgw.studies.ray_session import init_ray

        check_run(Path(args.storage or out / "_tune").resolve(), args.address,
                  lambda: init_ray(args.address, args.num_cpus))
    except ValueError as e:
        print(f"{script}.py: error: {e}", file=sys.stderr)
        return 2
    t0 = time.time()
    how_many = f"{len(seeds)} seeds" if design is None else f"up to {len(seeds)} seeds"
    print(f"experiment {cfg.experiment}: {len(methods)} methods × {how_many}, budget {cfg.budget:g} "
          f"{cfg.budget_kind} per study, τ = {cfg.tau:g}, results in {out}", file=sys.stderr, flush=True)
    if design is not None:
        print(f"sequential: a look every {design.look_every} pairs (at {', '.join(map(str, design.looks))}), "
              f"efficacy |z| >= {', '.join(f'{c:.2f}' for c in design.boundaries)} (two-sided alpha "
              f"{design.alpha:g}), futility below {design.futility_power:.0%} conditional power for a "
              f"{design.target_reduction:.0%} reduction", file=sys.stderr, flush=True)
    try:  # the cluster checks (--storage, --address, group labels) come before anything is written
        summary = run_experiment(cfg, workload.trainable, methods, seeds, out, quiet=args.quiet, address=args.address,
                                 num_cpus=args.num_cpus, dashboard_host=args.dashboard_host, verbose=args.verbose,
                                 keep_tune_dirs=args.keep_tune_dirs, allow_public_dashboard=args.allow_public_dashboard,
                                 storage=args.storage,
                                 sequential=design)
    except ValueError as e:
        print(f"{script}.py: error: {e}", file=sys.stderr)
        return 2
    print(f"studies: {summary.ran} run, {summary.skipped} resumed, {len(summary.failed)} failed; "
          f"{time.time() - t0:.0f} s", file=sys.stderr, flush=True)
    if summary.decision:
        print(f"sequential: {summary.decision}", file=sys.stderr, flush=True)
    if not args.no_report and not report(out, cfg, quiet=args.quiet, full=args.verbose):
        return 1
    if summary.failed:
        return 1
    return workload.after_studies(args, cfg, out) if workload.after_studies is not None else 0


def report(out: Path, cfg: ExperimentConfig, quiet: bool = False, full: bool = False) -> bool:
    """The analysis of ``out`` at this run's τ (which may differ from the τ the studies were run with).

    Prints the headline tables (every table when ``full``; none when ``quiet``); all of them are in
    ``tables.txt`` and ``report.html``. The analysis' warnings are counted there, not printed one by one.
    Returns False (after one line on stderr) when the results cannot be analysed.
    """
    from ohgw.analysis import AnalysisError, AnalysisWarning, analyze

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", AnalysisWarning)
        try:
            s = analyze(out, tau=cfg.tau, out_html=out / "report.html", quiet=quiet, brief=not full)
        except AnalysisError as e:
            print(f"analysis: error: {e}", file=sys.stderr)
            return False
    for w in caught:
        if not issubclass(w.category, AnalysisWarning):
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    if quiet:
        print(f"report: {s.html_path}", file=sys.stderr)
    return True


__all__ = ["build_parser", "config_from_args", "main", "sequential_from_args"]
