"""Temporal self-supervised pretraining on video frames: BYOL, TW-BYOL, temporal SimCLR, with OHGW.

- :mod:`~trainables.ssl.frames`: frame-folder clips, windows, the split by clip, device cache / streaming;
- :mod:`~trainables.ssl.behaviour`: the embedded default, a synthetic "behaviour video" written as PNG folders;
- :mod:`~trainables.ssl.views`: view pairs (Δt ≤ max_dt) and batched augmentation at a strength hp;
- :mod:`~trainables.ssl.losses`: BYOL, TW-BYOL weightings and reduction, temporal SimCLR, the EMA schedule;
- :mod:`~trainables.ssl.models`: the small conv encoder, the ResNet-20 trunk, heads, :class:`SSLNet`;
- :mod:`~trainables.ssl.metrics`: kNN, ridge probe F1, rare-label recall, Spearman ρ, MRR, RankMe;
- :mod:`~trainables.ssl.problem`: the hyper-gradient problem (EMA update unrolled);
- :mod:`~trainables.ssl.run`: the run object :class:`SSLRun` (a :class:`trainables.scaffold.Run`), its Tune
  trainable :func:`train_ssl` and driver :func:`train_epochs`;
- :mod:`~trainables.ssl.export`: a trained encoder on disk (``encoder.pt`` + ``encoder.json``),
  :func:`load_encoder`;
- ``python -m trainables.ssl.train`` (one run → Parquet, ``--save-dir``: encoders) and ``python -m trainables.ssl.visualize`` (PNG).

:func:`workload` is what ``experiments/ssl_asha_vs_ohgw.py`` hands to the study harness.
"""

from __future__ import annotations

from typing import Any

from trainables.ssl.config import CONTINUOUS, DEFAULT_CONFIG, METHODS, resolve_config
from trainables.ssl.export import export_checkpoint, load_encoder
from trainables.ssl.run import METRIC, SSLRun, train_epochs, train_ssl

# The studies' tuned metric: the linear probe's macro-F1 of the action label on held-out clips. On the
# behaviour video the kNN accuracy of the action label stays near the share of its majority class
# ("still") through the first epochs whatever the hyper-parameters, so it cannot rank trials there;
# the probe's F1 rises with training (random init ≈ 0.25, ≈ 0.37 after five 40-step epochs) and does.
STUDY_METRIC = "val_probe_f1"
# The tuned metric on frames without labels.csv: RankMe (Garrido et al. 2023, proposed for label-free
# hyper-parameter selection of SSL) of the encoder's features on the fixed held-out frames, divided by the
# feature dimension: in (0, 1], mode max, never NaN. Measured on the behaviour video (TW-BYOL, cpu preset,
# seed 0, epochs 1–6): RankMe 8.5 → 10.9 of 128, rising every epoch but one with the probe F1 (0.315 → 0.396),
# while the temporal-neighbour MRR stayed flat (0.369 → 0.356) and Spearman ρ too (0.041 → 0.034). Not the
# reference SSL loss: BYOL's is lowest for a collapsed target (a collapse is ended by the RankMe guard).
LABEL_FREE_METRIC = "val_rankme_frac"
LABEL_FREE_TAU = 0.08  # the presets' target on unlabelled frames (behaviour video: 0.067 at epoch 1, 0.085 at 6)


def has_labels(root_dir: str | None) -> bool:
    """Whether the clips of ``root_dir`` have labels (a clip folder with a ``labels.csv``; the embedded video has)."""
    import os

    from trainables.ssl.frames import LABELS_FILE

    if root_dir is None:
        return True
    return os.path.isdir(root_dir) and any(os.path.isfile(os.path.join(root_dir, d, LABELS_FILE))
                                           for d in os.listdir(root_dir) if not d.startswith("."))


def tuned_metric(root_dir: str | None) -> str:
    """:data:`STUDY_METRIC` for labelled frames, else :data:`LABEL_FREE_METRIC`."""
    return STUDY_METRIC if has_labels(root_dir) else LABEL_FREE_METRIC

# Search ranges (natural units): lr and wd log-uniform; ema_gap = 1 − m on log10 (m ∈ [0.9, 0.999]);
# tau in frames of the 10 fps behaviour video (2–40 frames = 0.2–4 s); temperature log; strength linear.
BOUNDS: dict[str, tuple[float, float, str]] = {
    "lr": (1e-3, 0.5, "log10"),
    "wd": (1e-6, 1e-3, "log10"),
    "ema_gap": (1e-3, 0.1, "log10"),
    "tau": (2.0, 40.0, "log10"),
    "temperature": (0.03, 1.0, "log10"),
    "aug_strength": (0.0, 1.0, "identity"),
}

# Study presets. cpu: the embedded behaviour video on the CPU, 1 trial per study (2 studies at once on
# 2 cores), 25-step epochs (the evaluation stays near 10 % of an epoch), max_t 6 (ASHA rungs 1, 3 at
# η = 3), τ = 0.42 probe F1 (random init ≈ 0.33; temporal BYOL at lr 0.1 reached 0.48 after 200 steps). gpu: full epochs on one GPU per study,
# 4 trials per study at 0.25 GPU.
_CPU_BASE = {"steps_per_epoch": 25, "batch_size": 64}
PRESETS: dict[str, dict[str, Any]] = {
    "cpu": {"base_config": _CPU_BASE, "max_t": 6, "seeds": 3, "budget": 14.0, "tau": 0.42,
            "cpus_per_trial": 1.0, "gpus_per_trial": 0.0, "trials_per_study": 1},
    "gpu": {"base_config": {"batch_size": 256, "device": "cuda"}, "max_t": 27, "seeds": 20, "budget": 150.0,
            "tau": 0.6, "cpus_per_trial": 2.0, "gpus_per_trial": 0.25, "trials_per_study": 4},
}  # fmt: skip


def _method_base(base: dict[str, Any], method: str) -> dict[str, Any]:
    """A preset's base config for ``method``: its batch (frames per step) in the method's unit (SimCLR: windows)."""
    out = {**base, "method": method}
    if method == "simclr-temporal" and "batch_size" in base:
        out["batch_size"] = max(2, base["batch_size"] // DEFAULT_CONFIG["window_size"])
    return out


def search_space(method: str = "tw-byol"):
    """The :class:`ohgw.space.SearchSpace` of ``method``'s continuous hyper-parameters (:data:`BOUNDS`)."""
    from ohgw.space import SearchSpace

    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    return SearchSpace.from_bounds({k: BOUNDS[k] for k in CONTINUOUS[method]})


def check_study_config(base: dict[str, Any]) -> None:
    """:func:`resolve_config`, and a ``root_dir`` that is a folder: a ValueError before any study starts."""
    import os

    cfg = resolve_config(base)
    if cfg["root_dir"] is not None and not os.path.isdir(cfg["root_dir"]):
        raise ValueError(f"root_dir {cfg['root_dir']!r} is not a folder")


def workload(method: str = "tw-byol", metric: str | None = None, frames: dict[str, Any] | None = None):
    """The :class:`ohgw.studies.workload.Workload` of one SSL method on ``frames`` (config keys such as
    ``root_dir``, ``window_size``, ``frame_step``, ``window_stride``, ``steps_per_epoch``; default: the
    behaviour video). Tuned metric (max): ``metric``, else :func:`tuned_metric` of the root; with
    :data:`LABEL_FREE_METRIC` the presets' τ is :data:`LABEL_FREE_TAU`."""
    from ohgw.studies.workload import Workload

    frames = dict(frames or {})
    metric = metric or tuned_metric(frames.get("root_dir"))
    space = search_space(method)
    tau = {"tau": LABEL_FREE_TAU} if metric == LABEL_FREE_METRIC else {}
    presets = {name: {**p, **tau, "base_config": {**_method_base(p["base_config"], method), **frames}}
               for name, p in PRESETS.items()}
    return Workload(f"ssl-{method}", trainable=train_ssl, space=space, presets=presets, metric=metric, mode="max",
                    metric_range=(0.0, 1.0), check_base_config=check_study_config, export_best=export_checkpoint)


__all__ = ["BOUNDS", "CONTINUOUS", "DEFAULT_CONFIG", "LABEL_FREE_METRIC", "METHODS", "METRIC", "PRESETS",
           "STUDY_METRIC", "SSLRun", "check_study_config", "export_checkpoint", "has_labels", "load_encoder", "resolve_config",
           "search_space", "train_epochs", "train_ssl", "tuned_metric", "workload"]
