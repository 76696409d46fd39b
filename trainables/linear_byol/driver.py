"""A run outside Tune's scheduling: train, evaluate every ``log_every`` epochs, keep the rows.

:func:`run_rows` yields one row per log step (:func:`~trainables.linear_byol.records.make_row`) and
stops at the first non-finite training loss with a row marked ``diverged`` (a diverged run is
recorded, never dropped). :func:`train_single` writes the rows of one run to its Parquet file, with
an optional Weights & Biases log (the ``wandb`` extra).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from ohgw import protocol
from trainables.scaffold import Trial

from .records import make_row, write_rows
from .run import METRIC, LinearBYOLRun


def default_run_name(cfg: Mapping[str, Any]) -> str:
    return (f"bs{cfg['batch_size']}_a{cfg['lr_pred']:.3g}_b{cfg['lr_enc']:.3g}_t{cfg['tau']:.3g}"
            f"_s{cfg[protocol.SEED_KEY]}")


def run_rows(config: Mapping[str, Any], run_name: str | None = None) -> Iterator[dict[str, Any]]:
    """Train the run of ``config`` for ``max_t`` epochs; one row per log step (and the last epoch)."""
    run = Trial.start(LinearBYOLRun, config).run  # with its determinism setting applied
    cfg = run.config
    name = run_name or default_run_name(cfg)
    t0 = time.perf_counter()
    while not run.finished:
        trained = run.train_epoch()
        diverged = not math.isfinite(trained.loss)
        if diverged or run.epoch % cfg["log_every"] == 0 or run.finished:
            # a diverged row records NaN metrics (DIVERGED_SCORE is for schedulers, which must rank it)
            metrics = {**run.diverged_metrics(), METRIC: math.nan} if diverged else run.evaluate_epoch()
            yield make_row(name, run.epoch, run.trainer.step, diverged, time.perf_counter() - t0, metrics, cfg)
        if diverged:
            return


def _wandb_logger(log_wandb: bool, cfg: Mapping[str, Any], name: str) -> Callable[[dict], None] | None:
    if not log_wandb:
        return None
    try:
        import wandb
    except ImportError as e:
        raise ValueError("--log_wandb needs the wandb package (pip install wandb); it is not installed") from e
    wb = wandb.init(project="linear_byol", name=name, config=dict(cfg))

    def log(row: dict) -> None:
        wb.log({k: v for k, v in row.items() if isinstance(v, (int, float))}, step=row["epoch"])
        if row["diverged"] or row["epoch"] >= cfg[protocol.MAX_T_KEY]:
            wb.finish()

    return log


def check_wandb(log_wandb: bool) -> None:
    """ValueError (before any training) if wandb logging is asked for and wandb is not installed."""
    if log_wandb:
        import importlib.util

        if importlib.util.find_spec("wandb") is None:
            raise ValueError("--log_wandb needs the wandb package (pip install wandb); it is not installed")


def train_single(config: Mapping[str, Any], out_dir: str, run_name: str | None = None, log_wandb: bool = False,
                 progress: bool = False) -> Path:
    """Train one run and write its Parquet file into ``out_dir``; returns the path."""
    check_wandb(log_wandb)
    run = Trial.start(LinearBYOLRun, config).run  # validates before anything is written
    name = run_name or default_run_name(run.config)
    log = _wandb_logger(log_wandb, run.config, name)
    rows = []
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=run.config[protocol.MAX_T_KEY], desc=name, unit="epoch")
    for row in run_rows(run.config, name):
        rows.append(row)
        if log is not None:
            log(row)
        if bar is not None:
            bar.update(row["epoch"] - bar.n)
            bar.set_postfix_str(f"W_Fro_aligned {row['W_Fro_aligned']:.3f}")
    if bar is not None:
        bar.close()
    return write_rows(rows, out_dir, name)
