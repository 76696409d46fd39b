"""Named sets of flag defaults for ``python -m trainables.linear_byol``: ``--preset seed`` is seed 002's.

:data:`SEED` holds, per command, the defaults that seed 002 gives its train, sweep and analysis scripts
(its ``hyperparameters`` table). ``--preset seed`` makes them the defaults of the command's flags, so a
flag given on the command line still wins. Where this project cannot or does not follow the seed
(``docs/seeds.md``, section 002), the preset says so here:

- ``device``: the seed's default is ``cuda``; the preset uses ``auto`` (CUDA when visible), so it runs on a
  CPU-only machine too;
- ``samples_per_epoch``: the seed does not define an epoch's size; the project's 1024 fresh samples stay;
- ``all``: its train and sweep share the model flags here, so ``all --preset seed`` trains the single run
  with the sweep's momenta (0.9) instead of the single run's (0.95).

>>> defaults("seed", "sweep")["lr_pred_logspace"], defaults("seed", "train")["ema_m"]
([1e-05, 0.01, 4], 0.999)
"""

from __future__ import annotations

from typing import Any

PRESETS = ("seed",)
_MODEL = {"seed": 42, "device": "auto", "d_latent": 10, "d_obs": 100, "epochs": 2000, "log_every": 10,
          "sigma_n": 0.5, "enc": "linear", "pred": "linear", "auto_alpha_c": 0.4, "auto_beta_c": 0.4,
          "pred_update_every": 1, "enc_update_every": 1, "out_dir": "runs_parquet"}
SEED: dict[str, dict[str, Any]] = {
    "train": {**_MODEL, "batch_size": 64, "lr_pred": 1e-3, "lr_enc": 1e-3, "mom_pred": 0.95, "mom_enc": 0.95,
              "ema_m": 0.999},
    "sweep": {**_MODEL, "seeds": [42, 43], "batch_sizes": [32, 64], "lr_pred_logspace": [1e-5, 1e-2, 4],
              "tau_logspace": [1e-4, 1e-1, 4], "lr_enc_mode": "auto", "enc_over_pred": 0.4,
              "lr_enc_logspace": [1e-5, 1e-2, 6], "beta_from_tau_c": 0.4, "mom_pred": 0.9, "mom_enc": 0.9},
    "analyze": {"metric": "W_Fro_aligned", "enc_metric": "BA_err_aligned", "epoch": 2000, "out": "figs"},
}
SEED["all"] = {**SEED["train"], **SEED["sweep"], **{k: v for k, v in SEED["analyze"].items() if k != "out"}}


def defaults(preset: str, command: str) -> dict[str, Any]:
    """The flag defaults of ``preset`` for ``command`` (train, sweep, analyze or all); ValueError names a bad one."""
    if preset not in PRESETS:
        raise ValueError(f"--preset must be one of {PRESETS}, got {preset!r}")
    if command not in SEED:
        raise ValueError(f"command must be one of {tuple(SEED)}, got {command!r}")
    return dict(SEED[command])
