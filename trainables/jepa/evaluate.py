"""The per-epoch evaluation on the held-out sets: the dot-position probe, the rollout probe, RankMe, references.

- Probe: a closed-form ridge regression (:func:`trainables.representation.ridge_fit`) from frozen
  features of every frame of the ``probe`` set (17 frames × sequences) to dot 0's (x, y) in pixels.
  λ is relative to the features' scale, λ = r · trace(XcᵀXc)/F, and r is chosen by 2-fold
  cross-validation over the probe set's sequences from :data:`RIDGE_GRID` (config ``probe_ridge``
  "cv", the default) or fixed (a number r). Without the choice a probe on 512 features of 2,176
  frames overfits whatever a representation holds besides the dot (e.g. a static noise image),
  and can score worse than the mean position. It is applied to every frame of ``val`` (the tuned metric) and ``test``
  (the twin). RMSE at step t is sqrt(mean over sequences of the squared Euclidean error ‖ŷ − y‖²),
  in pixels; the reported RMSE is the mean over the 17 steps of those per-step RMSEs (mode min).
- Rollout probe: the same probe applied to the predictor's open-loop rollout from frame 0 (JEPA: ẑ_h
  with no restart; RSSM: the prior's imagined state), h = 1 … 16: how far ahead the world model
  still tracks the dot.
- Collapse guard: RankMe (:func:`trainables.representation.effective_rank`) of the val features
  (dimensional collapse), and their mean per-dimension standard deviation (``std``): RankMe is
  scale-free, and a JEPA trained on the prediction error alone first shrinks its embeddings
  uniformly (std 0.2 → 0.04 in 8 short epochs, RankMe rising meanwhile; ``tests/test_jepa.py``).
- References, recorded with the run: the probe RMSE of the *same architecture at its initialisation*
  (same seed, untrained) and of the trivial predictor (the probe set's mean position).
Features are computed in batches, without gradients, BatchNorm on batch statistics (:func:`features`).
"""

from __future__ import annotations

import torch

from trainables.representation import effective_rank, ridge_fit, ridge_predict

from .world import Sequences

EVAL_BATCH = 128  # sequences per forward pass


@torch.no_grad()
def features(model, seqs: Sequences, rollout: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(features [B, T, F], open-loop rollout features [B, T−1, F] or None), with BatchNorm on batch statistics.

    BatchNorm runs in training mode over each evaluation batch (:data:`EVAL_BATCH` sequences, 2,176
    frames: stable statistics) and its running averages are restored afterwards, so evaluating never
    changes the model. Running averages are not used: after a few hundred steps they lag the
    batch statistics the model trained with (the val embeddings' std read 0.05 with them, 0.5 without).
    """
    was = model.training
    saved = {k: v.clone() for k, v in model.named_buffers()}
    model.train()
    try:
        feats, rolls = [], []
        for s in range(0, len(seqs), EVAL_BATCH):
            part = seqs.index(slice(s, s + EVAL_BATCH))
            if rollout:
                f, r = model.features(part.frames, part.actions)
                rolls.append(r)
            elif hasattr(model, "encode"):
                f = model.encode(part.frames)
            else:
                f, _ = model.features(part.frames, part.actions)
            feats.append(f)
    finally:
        model.train(was)
        for k, v in model.named_buffers():
            v.copy_(saved[k])
    return torch.cat(feats), (torch.cat(rolls) if rollout else None)


def step_rmse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-step RMSE [T] (pixels) of predictions and targets [B, T, 2]: sqrt(mean_B ‖ŷ − y‖²)."""
    return ((pred.double() - target.double()) ** 2).sum(-1).mean(0).sqrt()


RIDGE_GRID = (1e-6, 1e-4, 1e-2, 1.0, 100.0)  # relative λ candidates of the cross-validated probe


def _scale(feats: torch.Tensor) -> float:
    x = feats.flatten(0, 1).double()
    return float((x - x.mean(0)).pow(2).sum() / x.shape[1]) or 1.0


def choose_ridge(feats: torch.Tensor, target: torch.Tensor, grid=RIDGE_GRID) -> float:
    """The relative λ of ``grid`` with the lowest 2-fold (by sequence) cross-validated probe RMSE.

    The whole λ path of a fold comes from one eigendecomposition of its centred Gram matrix,
    XcᵀXc = V diag(e) Vᵀ: W(λ) = V diag(1/(e + λ)) Vᵀ XcᵀYc, the same solution as
    :func:`~trainables.representation.ridge_fit` for each λ (tested), at the cost of one fit.
    """
    half = feats.shape[0] // 2
    folds = ((slice(0, half), slice(half, None)), (slice(half, None), slice(0, half)))
    errors = torch.zeros(len(grid), dtype=torch.float64)
    for fit, held in folds:
        x, y = feats[fit].flatten(0, 1).double(), target[fit].flatten(0, 1).double()
        mx, my = x.mean(0), y.mean(0)
        xc = x - mx
        e, v = torch.linalg.eigh(xc.T @ xc)
        proj = v.T @ (xc.T @ (y - my))
        xh = (feats[held].double() - mx) @ v  # [B, T, F] in the eigenbasis
        scale = float(e.sum()) / x.shape[1] or 1.0
        for i, r in enumerate(grid):
            pred = xh @ (proj / (e.clamp_min(0) + r * scale)[:, None]) + my
            errors[i] += step_rmse(pred, target[held]).mean()
    return float(grid[int(torch.argmin(errors))])


def fit_probe(feats: torch.Tensor, target: torch.Tensor, ridge: float | str = "cv"):
    """The ridge probe of ``target`` [B, T, 2] from ``feats`` [B, T, F] (all frames pooled); ``ridge``: the
    relative λ, or "cv" to choose it (:func:`choose_ridge`)."""
    r = choose_ridge(feats, target) if ridge == "cv" else float(ridge)
    return ridge_fit(feats.flatten(0, 1), target.flatten(0, 1), r * _scale(feats))


def probe(fitted, feats: torch.Tensor) -> torch.Tensor:
    """Probe predictions [B, T, 2] of features [B, T, F]."""
    b, t = feats.shape[:2]
    return ridge_predict(feats.flatten(0, 1), fitted).view(b, t, 2)


def probe_rmse(fitted, feats: torch.Tensor, target: torch.Tensor) -> tuple[float, list[float]]:
    """(mean over steps of the per-step RMSE, per-step RMSEs) of the probe on ``feats``."""
    per = step_rmse(probe(fitted, feats), target)
    return float(per.mean()), [float(v) for v in per]


def mean_position_rmse(probe_set: Sequences, seqs: Sequences) -> float:
    """RMSE of the trivial predictor: the probe set's mean dot position, for every frame of ``seqs``."""
    mean = probe_set.target.double().mean(dim=(0, 1))
    return float(step_rmse(mean.expand_as(seqs.target), seqs.target).mean())


def representation_metrics(model, probe_set: Sequences, val: Sequences, test: Sequences, lam: float | str,
                           rollout: bool = True) -> dict[str, object]:  # fmt: skip
    """Probe RMSE (val mean / per step, test mean), rollout RMSE per horizon, RankMe and the val features."""
    pf, _ = features(model, probe_set, rollout=False)
    fitted = fit_probe(pf, probe_set.target, lam)
    vf, vr = features(model, val, rollout=rollout)
    tf, _ = features(model, test, rollout=False)
    val_mean, val_steps = probe_rmse(fitted, vf, val.target)
    test_mean, test_steps = probe_rmse(fitted, tf, test.target)
    out: dict[str, object] = {"val": val_mean, "val_steps": val_steps, "test": test_mean, "test_steps": test_steps,
                              "rank": effective_rank(vf.flatten(0, 1)),
                              "std": float(vf.flatten(0, 1).double().std(0).mean()), "val_features": vf}
    if vr is not None:
        out["rollout"] = [float(v) for v in step_rmse(probe(fitted, vr), val.target[:, 1:])]
    return out
