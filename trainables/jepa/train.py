"""One JEPA run from the command line: per-epoch metrics to Parquet, saved encoders, a learning-curve figure.

    python -m trainables.jepa.train --configs a.yaml b.yaml --values model_type=VICReg dataset_noise=0.5 \\
        dataset_static_noise=0 dataset_structured_noise=false dataset_type=Single output_path=runs/vicreg
    python -m trainables.jepa.train --preset seed --save-dir runs/vicreg_seed   # seed 004's settings
    python -m trainables.jepa.train --smoke                                     # a tiny run, seconds

Settings are applied in order: the model's defaults, ``--preset``, ``--smoke``, the ``--configs`` files,
then ``--values`` (YAML scalars); the result is checked by :func:`trainables.jepa.config.resolve_config`
before anything runs. A bad input prints one line ``error: …`` and exits with status 2, writing nothing.

Outputs (each written atomically, after every epoch, so an interrupted run keeps the epochs it finished):

- ``metrics_path`` (default ``<output_path>/metrics.parquet``, else ``jepa_<model>.parquet``): one row per
  epoch, every reported metric plus ``config_json`` (the resolved config);
- with ``output_path`` (seed 004: where models are saved; ``--save-dir`` sets it): the encoder of the
  best epoch by the tuned metric ``val_rmse`` in ``<output_path>/best/`` and of the last epoch in
  ``<output_path>/last/`` (``encoder.pt`` + ``encoder.json``, :mod:`trainables.jepa.export`; load one with
  :func:`trainables.jepa.load_encoder`);
- at the end, the learning curves (training and validation loss, probe RMSE with its reference lines,
  RankMe, per epoch) as ``<metrics stem>_learning_curve.png`` and ``.pdf`` beside the metrics file;
- ``<metrics stem>.log`` beside it: the resolved config, one line per epoch, what was saved, and any warning
  (appended to, so a rerun into the same folder keeps the earlier run's lines).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from ohgw.results import atomic_path
from trainables import checks

from .config import ALL_KEYS, DEFAULTS, HELP, MODEL_TYPES, load_overrides, resolve_config, seed_preset
from .run import METRIC, JepaRun

PRESETS = ("seed",)
# a run that shows its first epoch within seconds: a small world and model on the CPU
SMOKE: dict = {"dataset_size": 64, "probe_size": 32, "val_size": 16, "test_size": 16, "batch_size": 32,
               "embedding_dim": 64, "predictor_hidden": 64, "max_t": 2, "device": "cpu"}
log = logging.getLogger("trainables.jepa.train")  # the same name when run with -m


def write_parquet(rows: list[dict], path: str | os.PathLike) -> None:
    """Rows → Parquet at ``path``, atomically (:func:`ohgw.results.atomic_path`)."""
    with atomic_path(path) as tmp:
        pd.DataFrame(rows).to_parquet(tmp, index=False)


def metrics_file(cfg: dict) -> Path:
    """Where the per-epoch Parquet goes (see the module docstring)."""
    if cfg["metrics_path"] is not None:
        return Path(cfg["metrics_path"])
    if cfg["output_path"] is not None:
        return Path(cfg["output_path"]) / "metrics.parquet"
    return Path(f"jepa_{cfg['model_type'].lower()}.parquet")


def learning_curve(rows: list[dict], title: str):
    """The plotly figure: losses, probe RMSE (with the reference lines) and RankMe per epoch."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    df = pd.DataFrame(rows)
    x = df["training_iteration"]
    fig = make_subplots(rows=1, cols=3, subplot_titles=("loss", "dot-position probe RMSE (px)", "RankMe"))
    for key, name in (("train_loss", "training loss"), ("val_loss", "validation objective")):
        if key in df:
            fig.add_trace(go.Scatter(x=x, y=df[key], mode="lines+markers", name=name), row=1, col=1)
    for key, name, dash in ((METRIC, "val", None), ("test_rmse", "test", None),
                            ("ref_random_init_rmse", "random-init encoder", "dot"), ("ref_mean_rmse", "mean position", "dot")):
        if key in df:
            fig.add_trace(go.Scatter(x=x, y=df[key], mode="lines" if dash else "lines+markers", name=name,
                                     line={"dash": dash} if dash else None), row=1, col=2)
    if "rankme" in df:
        fig.add_trace(go.Scatter(x=x, y=df["rankme"], mode="lines+markers", name="RankMe (val)"), row=1, col=3)
    for col in (1, 2, 3):
        fig.update_xaxes(title_text="epoch", row=1, col=col)
    fig.update_layout(title=title, template="plotly_white", width=1200, height=420)
    return fig


def write_learning_curve(rows: list[dict], metrics_path: Path, title: str) -> list[str]:
    """``<metrics stem>_learning_curve.png`` and ``.pdf`` beside the metrics file; the paths written."""
    from ohgw.analysis.report import export_static

    name = f"{metrics_path.stem}_learning_curve"
    return export_static({name: learning_curve(rows, title)}, metrics_path.parent)


def run(config: dict, progress: bool = True, num_threads: int | None = None) -> list[dict]:
    """Train ``config`` to its max_t with the outputs of the module docstring; returns the reports."""
    from trainables.scaffold import Trial

    trial = Trial.start(lambda c: JepaRun(c, num_threads=num_threads), config)
    cfg = trial.run.config
    metrics_path = metrics_file(cfg)
    metrics_path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(metrics_path.with_name(f"{metrics_path.stem}.log"))
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.setLevel(logging.INFO)
    root, level = logging.getLogger(), log.level
    root.addHandler(handler)  # this module's INFO lines, and every logger's warnings
    log.setLevel(logging.INFO)
    try:
        return _train(trial, cfg, metrics_path, progress)
    finally:
        root.removeHandler(handler)
        log.setLevel(level)
        handler.close()


def _train(trial, cfg: dict, metrics_path: Path, progress: bool) -> list[dict]:
    log.info("config: %s", json.dumps(cfg, sort_keys=True, default=str))
    if progress:
        print(f"{cfg['model_type']}: world and model ready ({cfg['dataset_size']} training sequences, "
              f"{cfg['max_t']} epochs, {trial.run.device})", flush=True)
    save_dir = cfg["output_path"]
    rows: list[dict] = []
    best = float("inf")
    cfg_json = json.dumps(cfg, sort_keys=True, default=str)
    with tqdm(total=cfg["max_t"], desc=cfg["model_type"], unit="epoch", disable=not progress, file=sys.stdout,
              mininterval=0) as bar:
        while not trial.finished:
            report = trial.step()
            rows.append({**report, "config_json": cfg_json})
            write_parquet(rows, metrics_path)
            if save_dir is not None:
                _save(trial.run, cfg, Path(save_dir), report, improved=report[METRIC] < best)
            log.info("epoch %d: %s %.4f px, test_rmse %.4f, rankme %.1f%s", report["training_iteration"], METRIC,
                     report[METRIC], report.get("test_rmse", float("nan")), report.get("rankme", float("nan")),
                     "; encoder saved as best" if save_dir is not None and report[METRIC] < best else "")
            best = min(best, report[METRIC])
            bar.update(1)
            bar.set_postfix({METRIC: f"{report[METRIC]:.3f}", "rankme": f"{report.get('rankme', float('nan')):.1f}"})
    figures = write_learning_curve(rows, metrics_path, f"{cfg['model_type']} on the moving-dot world: learning curves")
    log.info("wrote %s%s", metrics_path, "".join(f", {f}" for f in figures))
    return rows


def _save(run_obj: JepaRun, cfg: dict, save_dir: Path, report: dict, improved: bool) -> None:
    from .export import save_encoder

    metrics = {k: report[k] for k in (METRIC, "test_rmse", "rankme", "val_loss") if k in report}
    epoch = int(report["training_iteration"])
    save_encoder(run_obj.model, cfg, save_dir / "last", epoch=epoch, metrics=metrics)
    if improved:
        save_encoder(run_obj.model, cfg, save_dir / "best", epoch=epoch, metrics=metrics)


def config_keys_help() -> str:
    """The --help epilog: every config key, its default per model, its meaning and units or choices."""
    lines = ["config keys (--values key=value, or a --configs YAML file); default, then meaning [units | choices]:"]
    for key in ALL_KEYS:
        models = [m for m in MODEL_TYPES if key in DEFAULTS[m]]
        values = {repr(DEFAULTS[m][key]) for m in models}
        default = values.pop() if len(values) == 1 else ", ".join(f"{m}: {DEFAULTS[m][key]!r}" for m in models)
        only = "" if len(models) == len(MODEL_TYPES) else f" ({', '.join(models)} only)"
        lines.append(f"  {key} = {default}{only}\n      {HELP.get(key, '')}")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m trainables.jepa.train", description=__doc__.splitlines()[0],
                                     epilog=config_keys_help(), formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", nargs="*", default=[], help="YAML files of config overrides, merged in order")
    parser.add_argument("--values", nargs="*", default=[], help="key=value overrides (YAML scalars), applied last")
    parser.add_argument("--preset", choices=PRESETS,
                        help="seed: seed 004's definitions where expressible (batch 32, VICReg variance/covariance "
                             "on encoder states only, SimCLR raw dot products; docs/seeds.md)")
    parser.add_argument("--save-dir", help="folder for the best and last encoders (sets output_path)")
    parser.add_argument("--smoke", action="store_true",
                        help=f"a tiny run that shows its first epoch within seconds ({len(SMOKE)} keys: "
                             + ", ".join(f"{k}={v}" for k, v in SMOKE.items()) + ")")
    parser.add_argument("--threads", type=int,
                        help="torch CPU threads (default: torch's own; 1 with --smoke, best on a shared CPU)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def resolve_args(args: argparse.Namespace) -> dict:
    """The config of the parsed flags (the order of the module docstring); ValueError names what is wrong."""
    given = load_overrides(args.configs, args.values)
    config: dict = {}
    if args.preset == "seed":
        config.update(seed_preset(given.get("model_type", DEFAULTS["VICReg"]["model_type"])))
    if args.smoke:
        config.update(SMOKE)
    config.update(given)
    if args.save_dir is not None:
        if given.get("output_path") is not None and os.fspath(given["output_path"]) != args.save_dir:
            raise ValueError(f"--save-dir {args.save_dir!r} and output_path {given['output_path']!r} disagree "
                             "(both name the folder the models are saved in)")
        config["output_path"] = args.save_dir
    resolve_config(config)
    return config


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.threads is not None and args.threads < 1:
            raise ValueError(f"--threads must be >= 1, got {args.threads}")
        config = resolve_args(args)
        cfg = resolve_config(config)
        checks.deterministic(config), checks.resolve_device(cfg["device"])  # one line here, not a traceback mid-run
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    root = logging.getLogger()
    if not root.handlers:  # the console gets warnings only; the run's log file gets the epoch lines too
        console = logging.StreamHandler()
        console.setLevel(logging.WARNING)
        console.setFormatter(logging.Formatter("%(message)s"))
        root.addHandler(console)
        root.setLevel(logging.WARNING)
    t0 = time.perf_counter()
    threads = args.threads if args.threads is not None else (1 if args.smoke else None)
    rows = run(config, progress=not args.quiet, num_threads=threads)
    last = rows[-1]
    saved = ""
    if cfg["output_path"] is not None:
        kept = [name for name in ("best", "last") if (Path(cfg["output_path"]) / name / "encoder.pt").is_file()]
        saved = f"; encoders ({', '.join(kept) or 'none: no finite val_rmse'}) in {cfg['output_path']}"
    print(f"{cfg['model_type']}: {METRIC} {last[METRIC]:.3f} px after {len(rows)} epochs "
          f"(random-init {last.get('ref_random_init_rmse', float('nan')):.3f}, "
          f"mean position {last.get('ref_mean_rmse', float('nan')):.3f}) in {time.perf_counter() - t0:.0f} s; "
          f"wrote {metrics_file(cfg)} (log: {metrics_file(cfg).with_suffix('.log')}){saved}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
