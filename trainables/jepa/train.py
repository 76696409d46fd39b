"""One JEPA run from the command line: per-epoch metrics to Parquet, progress on the console.

    python -m trainables.jepa.train --configs a.yaml b.yaml --values model_type=VICReg dataset_noise=0.5 \\
        dataset_static_noise=0 dataset_structured_noise=false dataset_type=Single output_path=runs/vicreg.parquet

Config files are merged in order, then ``--values`` (YAML scalars); the result is checked by
:func:`trainables.jepa.config.resolve_config` before anything runs. A bad input prints one line
``error: …`` and exits with status 2, writing nothing. The Parquet file (default
``jepa_<model>.parquet`` in the working directory) has one row per epoch: every reported metric
plus ``config_json`` (the resolved config); it is written atomically (temporary file + rename)
after every epoch, so an interrupted run leaves the epochs it finished.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import pandas as pd
from tqdm import tqdm

from ohgw.results import atomic_path
from trainables import checks

from .config import load_overrides, resolve_config
from .run import METRIC, JepaRun


def write_parquet(rows: list[dict], path: str) -> None:
    """Rows → Parquet at ``path``, atomically (:func:`ohgw.results.atomic_path`)."""
    with atomic_path(path) as tmp:
        pd.DataFrame(rows).to_parquet(tmp, index=False)


def run(config: dict, output_path: str, progress: bool = True) -> list[dict]:
    """Train ``config`` to its max_t, writing the Parquet after each epoch; returns the reports."""
    from trainables.scaffold import Trial

    trial = Trial.start(JepaRun, config)
    rows: list[dict] = []
    cfg_json = json.dumps(trial.run.config, sort_keys=True, default=str)
    with tqdm(total=trial.run.config["max_t"], desc=f"{config.get('model_type', 'VICReg')}", unit="epoch",
              disable=not progress, file=sys.stdout) as bar:
        while not trial.finished:
            report = trial.step()
            rows.append({**report, "config_json": cfg_json})
            write_parquet(rows, output_path)
            bar.update(1)
            bar.set_postfix({METRIC: f"{report[METRIC]:.3f}", "rankme": f"{report.get('rankme', float('nan')):.1f}"})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trainables.jepa.train", description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="*", default=[], help="YAML files of config overrides, merged in order")
    parser.add_argument("--values", nargs="*", default=[], help="key=value overrides (YAML scalars), applied last")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    try:
        config = load_overrides(args.configs, args.values)
        cfg = resolve_config(config)
        checks.deterministic(config), checks.resolve_device(cfg["device"])  # bad input: one line, before any work
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    output = os.fspath(cfg["output_path"] or f"jepa_{cfg['model_type'].lower()}.parquet")
    rows = run(config, output, progress=not args.quiet)
    last = rows[-1]
    print(f"{cfg['model_type']}: {METRIC} {last[METRIC]:.3f} px after {len(rows)} epochs "
          f"(random-init {last.get('ref_random_init_rmse', float('nan')):.3f}, "
          f"mean position {last.get('ref_mean_rmse', float('nan')):.3f}); wrote {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
