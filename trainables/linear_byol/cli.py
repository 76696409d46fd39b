"""``python -m trainables.linear_byol {train,sweep,analyze,all}``: one run, a grid sweep, the heatmaps, or all three.

Every command validates its input before anything is written and answers bad input with one line
on stderr and exit status 2. ``train`` writes ``<out_dir>/<run_name>.parquet``; ``sweep`` one such
file per grid point into ``--out_dir``; ``analyze`` the figures of
:mod:`~trainables.linear_byol.analyze` into ``--out``; ``all`` runs ``train`` into ``<out_dir>/single``,
``sweep`` into ``<out_dir>/sweep`` and ``analyze`` of the sweep into ``--out`` (default ``<out_dir>/figs``).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from ohgw import protocol

PROG = "python -m trainables.linear_byol"


class _Help(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """The description as written; every flag's help ends with its default."""


class _OneLineParser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", _Help)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # one clear line, exit 2
        self.exit(2, f"{self.prog}: error: {message}\n")


def _model_flags(p: argparse.ArgumentParser) -> None:
    from trainables.checks import true_or_false

    from .config import DEFAULT_CONFIG as D

    p.add_argument("--seed", type=int, default=D[protocol.SEED_KEY], help="seed of the data (A), init and sampling")
    p.add_argument("--device", choices=("cpu", "cuda", "auto"), default=D["device"],
                   help="where it trains; auto: CUDA when visible")
    p.add_argument("--dtype", choices=("float32", "float64"), default=D["dtype"], help="floating-point precision")
    p.add_argument("--deterministic", type=true_or_false, default=True,
                   help="deterministic CUDA kernels (true or false; no effect on the CPU)")
    p.add_argument("--d_latent", type=int, default=D["d_latent"], help="latent dimension k, also the embedding's")
    p.add_argument("--d_obs", type=int, default=D["d_obs"], help="observed dimension d >= k (A is d × k)")
    p.add_argument("--epochs", type=int, default=D[protocol.MAX_T_KEY], help="epochs per run")
    p.add_argument("--log_every", type=int, default=D["log_every"], help="epochs between two metric rows")
    p.add_argument("--samples_per_epoch", type=int, default=D["samples_per_epoch"],
                   help="fresh samples per epoch: ceil(samples / batch size) steps")
    p.add_argument("--lr_enc", type=float, default=D["lr_enc"], help="β, the encoder's SGD learning rate, per step")
    p.add_argument("--mom_pred", type=float, default=D["mom_pred"], help="the predictor's SGD momentum, in [0, 1)")
    p.add_argument("--mom_enc", type=float, default=D["mom_enc"], help="the encoder's SGD momentum, in [0, 1)")
    p.add_argument("--pred_update_every", type=int, default=D["pred_update_every"],
                   help="update the predictor every k-th step")
    p.add_argument("--enc_update_every", type=int, default=D["enc_update_every"],
                   help="update the encoder every k-th step")
    p.add_argument("--freeze_enc", action="store_true", help="keep the encoder at its init")
    p.add_argument("--sigma_n", type=float, default=D["sigma_n"], help="observation noise std σ_n in x = A z + ε")
    p.add_argument("--enc", choices=("linear", "mlp"), default=D["enc"],
                   help="encoder, online and target: a linear map or a 2-layer SiLU MLP")
    p.add_argument("--pred", choices=("linear", "mlp"), default=D["pred"],
                   help="predictor: a linear map or a 2-layer SiLU MLP")
    p.add_argument("--hidden", type=int, default=D["hidden"], help="MLP width, units")
    p.add_argument("--auto_alpha_c", type=float, default=D["auto_alpha_c"],
                   help="> 0: α_t = c·τ/H_t (H_t: top eigenvalue of the online feature covariance); 0: off")
    p.add_argument("--auto_beta_c", type=float, default=D["auto_beta_c"], help="> 0: β_t = c·τ/H_t; 0: off")
    p.add_argument("--out_dir", default="runs/linear_byol", help="folder of the runs' Parquet files")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 is best on shared CPUs)")


def _train_flags(p: argparse.ArgumentParser) -> None:
    from .config import DEFAULT_CONFIG as D

    p.add_argument("--batch_size", type=int, default=D["batch_size"], help="samples per step")
    p.add_argument("--lr_pred", type=float, default=D["lr_pred"], help="α, the predictor's SGD learning rate, per step")
    p.add_argument("--ema_m", type=float, default=1.0 - D["tau"], help="the target's EMA momentum m, in [0, 1) "
                                                                      "(τ = 1 − m)")
    p.add_argument("--run_name", help="the run's Parquet file name (default: from its settings)")
    p.add_argument("--log_wandb", action="store_true", help="also log to Weights & Biases (needs wandb)")


def _sweep_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--lr_pred_logspace", type=float, nargs=3, default=[1e-3, 1.0, 7],
                   metavar=("START", "STOP", "STEPS"),
                   help="α grid: STEPS values from START to STOP, log-spaced (values, not exponents; "
                        "seed 002: 1e-5 1e-2 4) (default: %(default)s)")
    p.add_argument("--tau_logspace", type=float, nargs=3, default=[1e-3, 1.0, 7], metavar=("START", "STOP", "STEPS"),
                   help="τ = 1 − m grid, as --lr_pred_logspace (default: %(default)s)")
    p.add_argument("--batch_sizes", type=int, nargs="+", default=[128], help="batch sizes of the grid")
    p.add_argument("--lr_enc_mode", default="same", help="β per grid point: same (β = α), ratio, logspace, "
                                                           "from_tau or auto (β_t = auto_beta_c·τ/H_t)")
    p.add_argument("--enc_over_pred", type=float, default=1.0, help="ratio mode: β = enc_over_pred·α")
    p.add_argument("--lr_enc_logspace", type=float, nargs=3, metavar=("START", "STOP", "STEPS"),
                   help="β grid of --lr_enc_mode logspace, as --lr_pred_logspace")
    p.add_argument("--beta_from_tau_c", type=float, default=1.0, help="from_tau mode: β = c·τ")
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="seeds of the grid (one run each)")
    p.add_argument("--backend", default="tune", help="tune (Ray Tune grid_search) or local (in this process)")
    p.add_argument("--cpus_per_trial", type=float, default=1.0, help="CPUs per Tune trial")
    p.add_argument("--address", help="Ray cluster address (none: a local Ray)")
    p.add_argument("--verbose", action="store_true", help="Ray's and Tune's output on the console too "
                                                          "(always in <out_dir>/_logs/)")
    p.add_argument("--keep_tune_dirs", "--keep-tune-dirs", action="store_true",
                   help="keep Tune's folder <out_dir>/_tune after the runs are written")


def _analyze_flags(p: argparse.ArgumentParser, runs_dir_required: bool) -> None:
    if runs_dir_required:
        p.add_argument("--runs_dir", required=True, help="folder of the runs' Parquet files")
    p.add_argument("--metric", default="W_Fro_aligned", help="predictor metric of the main heatmap (a row metric)")
    p.add_argument("--enc_metric", default="BA_err_aligned", help="encoder metric of the second heatmap")
    p.add_argument("--epoch", type=int, help="epoch of the heatmaps (none: the last logged)")
    p.add_argument("--use_last_valid", action="store_true", help="diverged runs: their last finite value, marked")
    p.add_argument("--regime_c", type=float, default=1.0,
                   help="c of the heatmaps' line α·H = c·τ, the edge of the regime α·H ≲ c·τ")
    p.add_argument("--out", help="figure folder" + ("" if runs_dir_required else " (none: <out_dir>/figs)"),
                   **({"default": "figs"} if runs_dir_required else {}))
    p.add_argument("--no_static", action="store_true", help="HTML only (no PDF/PNG)")


def _preset_flag(p: argparse.ArgumentParser, command: str, preset: str | None) -> None:
    from .presets import PRESETS, defaults

    p.add_argument("--preset", choices=PRESETS, help="seed: seed 002's defaults for this command's flags (a flag "
                                                     "given still wins; trainables/linear_byol/presets.py)")
    if preset is not None:
        p.set_defaults(**defaults(preset, command))


def _preset_of(argv: Sequence[str] | None) -> str | None:
    """The ``--preset`` among ``argv`` if it names one (a bad one is left to the real parser's error)."""
    from .presets import PRESETS

    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--preset")
    known, _ = pre.parse_known_args(list(sys.argv[1:] if argv is None else argv))
    return known.preset if known.preset in PRESETS else None


def build_parser(preset: str | None = None) -> argparse.ArgumentParser:
    """The parser; with ``preset`` its flags default to that preset's values (:mod:`.presets`)."""
    p = _OneLineParser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True, parser_class=_OneLineParser)
    t = sub.add_parser("train", help="one run → one Parquet file")
    _model_flags(t)
    _train_flags(t)
    s = sub.add_parser("sweep", help="a Ray Tune grid over α, τ, batch size, seed")
    _model_flags(s)
    s.add_argument("--ema_m", type=float, help=argparse.SUPPRESS)  # τ comes from --tau_logspace
    _sweep_flags(s)
    a = sub.add_parser("analyze", help="heatmaps and slices of a runs directory")
    _analyze_flags(a, True)
    al = sub.add_parser("all", help="train, sweep, analyze")
    _model_flags(al)
    _train_flags(al)
    _sweep_flags(al)
    _analyze_flags(al, False)
    for command, parser in (("train", t), ("sweep", s), ("analyze", a), ("all", al)):
        _preset_flag(parser, command, preset)
    return p


BASE_KEYS = ("d_latent", "d_obs", "log_every", "samples_per_epoch", "lr_enc", "mom_pred", "mom_enc",
             "pred_update_every", "enc_update_every", "freeze_enc", "sigma_n", "enc", "pred", "hidden",
             "auto_alpha_c", "auto_beta_c", "device", "dtype")


def _base(args: argparse.Namespace) -> dict:
    base = {k: getattr(args, k) for k in BASE_KEYS}
    base[protocol.SEED_KEY], base[protocol.MAX_T_KEY] = args.seed, args.epochs
    base[protocol.DETERMINISTIC_KEY] = args.deterministic
    return base


def _single_config(args: argparse.Namespace) -> dict:
    from .config import resolve_config

    return resolve_config({**_base(args), "batch_size": args.batch_size, "lr_pred": args.lr_pred,
                           "ema_m": args.ema_m})


def _sweep_configs(args: argparse.Namespace) -> list[dict]:
    from .config import resolve_config
    from .sweep import BACKENDS, grid

    if args.backend not in BACKENDS:
        raise ValueError(f"--backend must be one of {BACKENDS}, got {args.backend!r}")
    resolve_config(_base(args))  # the shared flags, named as flags, before the grid
    return grid(_base(args), args.lr_pred_logspace, args.tau_logspace, args.batch_sizes, args.seeds,
                args.lr_enc_mode, args.enc_over_pred, args.lr_enc_logspace, args.beta_from_tau_c)


def _analyze(args: argparse.Namespace, runs_dir: str, out: str) -> None:
    from .analyze import analyze

    figs = analyze(runs_dir, out, args.metric, args.enc_metric, args.epoch, args.use_last_valid,
                   static=not args.no_static, regime_c=args.regime_c)
    print(f"analyze: {len(figs)} figures in {out}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser(_preset_of(argv)).parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from .driver import check_wandb, train_single
    from .sweep import run_sweep

    try:
        if args.command != "analyze":
            from trainables.scaffold import set_num_threads

            set_num_threads(args.threads)
        if args.command == "train":
            cfg = _single_config(args)
            check_wandb(args.log_wandb)
            path = train_single(cfg, args.out_dir, args.run_name, args.log_wandb, progress=True)
            print(f"train: {path}", file=sys.stderr)
        elif args.command == "sweep":
            configs = _sweep_configs(args)
            paths = run_sweep(configs, args.out_dir, args.backend, args.cpus_per_trial, args.address,
                              verbose=args.verbose, keep_tune_dirs=args.keep_tune_dirs)
            print(f"sweep: {len(paths)} runs in {args.out_dir}", file=sys.stderr)
        elif args.command == "analyze":
            _analyze(args, args.runs_dir, args.out)
        else:  # all: validate everything first, then single → sweep → analyze
            root = Path(args.out_dir)
            cfg, configs = _single_config(args), _sweep_configs(args)
            check_wandb(args.log_wandb)
            from .analyze import ROW_METRICS

            for name, m in (("--metric", args.metric), ("--enc_metric", args.enc_metric)):
                if m not in ROW_METRICS:
                    raise ValueError(f"{name} must be one of {', '.join(ROW_METRICS)}, got {m!r}")
            print(f"train: {train_single(cfg, str(root / 'single'), args.run_name, args.log_wandb, True)}",
                  file=sys.stderr)
            paths = run_sweep(configs, str(root / "sweep"), args.backend, args.cpus_per_trial, args.address,
                              verbose=args.verbose, keep_tune_dirs=args.keep_tune_dirs)
            print(f"sweep: {len(paths)} runs in {root / 'sweep'}", file=sys.stderr)
            _analyze(args, str(root / "sweep"), args.out or str(root / "figs"))
    except ValueError as e:
        print(f"{PROG} {args.command}: error: {e}", file=sys.stderr)
        return 2
    return 0
