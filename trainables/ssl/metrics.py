"""Representation metrics of a frozen encoder on held-out clips (no gradient): the SSL HPO metrics.

For one evaluation split (validation or test clips), with embeddings of the encoder's features:

- **kNN accuracy**: :func:`trainables.representation.knn_predict` (cosine, k = 20, votes weighted by
  exp(sim/0.07), as solo-learn) of each query frame's label from a bank of training-split frames,
  on features standardised with the bank's per-dimension mean and std (as the probe's). Raw
  post-ReLU pooled features share a large common direction, so raw cosines are all near 1 and
  the neighbours follow brightness and size: on the behaviour video, raw-feature kNN of the identity
  label was 0.16 where the linear probe's F1 was 0.65 on the same features;
- **linear-probe macro-F1**: a closed-form ridge probe (:func:`~trainables.representation.ridge_fit`,
  one-hot targets, λ = ``probe_lambda`` on features standardised with the bank's mean and std) fitted
  on the bank, macro-F1 over the labels present in the queries; ``probe="logistic"``: seed 000's
  logistic classifier trained by SGD (20 epochs, lr 0.1; :func:`~trainables.representation.logistic_fit`);
- **rare-action recall**: the probe's recall pooled over query frames whose true label is among the
  20 % least frequent labels of the training split (at least one label);
- **Spearman ρ** between the embedding's cosine distance and the frame gap, over frame pairs of the
  same clip with gap 1 … ``MAX_GAP`` (positive: nearer in time is nearer in embedding);
- **MRR**: for each query frame, its clip's other frames ranked by embedding similarity; the reciprocal
  rank of the first of its 5 true temporal neighbours (the frames nearest in time); averaged;
- **RankMe** (:func:`~trainables.representation.effective_rank`) of the features (``rankme``) and of
  the projector's output (``rankme_proj``); the collapse guard uses the latter — it is the embedding
  the SSL loss acts on, and a collapsed BYOL makes it constant (RankMe → 1) while the encoder's
  features may keep a spurious rank. Threshold (config ``collapse_rank``, default 1.1): RankMe is
  computed on un-centred embeddings, so a healthy projector whose outputs share a large common
  component still sits well above 1 but not far (measured on the behaviour video: 1.8–3.0 at init,
  ≥ 1.24 in every healthy epoch of BYOL, TW-BYOL and temporal SimCLR runs we made), while BYOL without
  predictor at constant EMA momentum 0 reached 1.04 (lr 0.5) and 1.01 (lr 2) after one epoch.

Frames are drawn once per split with a fixed seed (evenly spaced within the split), so every epoch
and every trial sees the same queries and bank.
"""

from __future__ import annotations

import numpy as np
import torch

from trainables.representation import (
    effective_rank,
    knn_predict,
    logistic_fit,
    logistic_predict,
    ridge_fit,
    ridge_predict,
)

RARE_SHARE = 0.20
N_NEIGHBOURS = 5
MAX_GAP = 40
SPEARMAN_PAIRS = 4000


def evenly(ids: np.ndarray, n: int) -> np.ndarray:
    """Up to ``n`` evenly spaced entries of ``ids`` (all of them when fewer)."""
    if len(ids) <= n:
        return ids
    return ids[np.linspace(0, len(ids) - 1, n).round().astype(np.int64)]


def macro_f1(pred: np.ndarray, true: np.ndarray) -> float:
    """Macro-F1 over the labels that occur in ``true`` (F1 of a label never predicted nor true is not counted)."""
    scores = []
    for c in np.unique(true):
        tp = np.sum((pred == c) & (true == c))
        fp = np.sum((pred == c) & (true != c))
        fn = np.sum((pred != c) & (true == c))
        scores.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0)
    return float(np.mean(scores)) if scores else float("nan")


def rare_labels(train_labels: np.ndarray, num_classes: int) -> np.ndarray:
    """The ceil(20 %) least frequent labels of the training split (ties by label id)."""
    counts = np.bincount(train_labels[train_labels >= 0], minlength=num_classes)
    k = max(1, int(np.ceil(RARE_SHARE * num_classes)))
    return np.argsort(counts, kind="stable")[:k]


def label_metrics(bank_z: torch.Tensor, bank_y: np.ndarray, query_z: torch.Tensor, query_y: np.ndarray,
                  num_classes: int, rare: np.ndarray, lam: float, probe: str = "ridge") -> dict[str, float]:
    """kNN accuracy, probe macro-F1 and rare-label recall of labelled queries (label −1: left out).

    ``probe``: ``ridge`` (closed form, penalty ``lam``) or ``logistic`` (seed 000's: SGD, 20 epochs, lr 0.1).
    """
    bm, qm = bank_y >= 0, query_y >= 0
    if bm.sum() < 2 or qm.sum() < 1:
        return {"knn_acc": float("nan"), "probe_f1": float("nan"), "rare_recall": float("nan")}
    bz, by, qz, qy = bank_z[torch.from_numpy(bm)], bank_y[bm], query_z[torch.from_numpy(qm)], query_y[qm]
    mean, std = bz.mean(0), bz.std(0).clamp_min(1e-6)
    knn = knn_predict((bz - mean) / std, torch.from_numpy(by).to(bz.device), (qz - mean) / std,
                      num_classes).cpu().numpy()
    if probe == "logistic":
        fitted = logistic_fit((bz - mean) / std, torch.from_numpy(by), num_classes)
        probe = logistic_predict((qz - mean) / std, fitted).argmax(1).cpu().numpy()
    else:
        onehot = torch.nn.functional.one_hot(torch.from_numpy(by), num_classes).to(bz.device)
        fitted = ridge_fit((bz - mean) / std, onehot, lam)
        probe = ridge_predict((qz - mean) / std, fitted).argmax(1).cpu().numpy()
    is_rare = np.isin(qy, rare)
    rare_recall = float(np.mean(probe[is_rare] == qy[is_rare])) if is_rare.any() else float("nan")
    return {"knn_acc": float(np.mean(knn == qy)), "probe_f1": macro_f1(probe, qy), "rare_recall": rare_recall}


def _rankdata(a: np.ndarray) -> np.ndarray:
    order = np.argsort(a, kind="stable")
    ranks = np.empty(len(a))
    ranks[order] = np.arange(len(a))
    sa = a[order]  # average ranks of ties
    _, first, counts = np.unique(sa, return_index=True, return_counts=True)
    for f, c in zip(first, counts):
        if c > 1:
            ranks[order[f:f + c]] = f + (c - 1) / 2
    return ranks


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's ρ (Pearson correlation of average ranks); NaN for constant input."""
    rx, ry = _rankdata(np.asarray(x, float)), _rankdata(np.asarray(y, float))
    rx, ry = rx - rx.mean(), ry - ry.mean()
    den = np.sqrt((rx * rx).sum() * (ry * ry).sum())
    return float((rx * ry).sum() / den) if den > 0 else float("nan")


def temporal_metrics(clips: list[torch.Tensor], seed: int = 0) -> dict[str, float]:
    """Spearman ρ (cosine distance vs frame gap) and MRR of temporal neighbours over clips' embeddings.

    ``clips``: one [n_frames, D] tensor per clip, frames in temporal order (consecutive frames of the clip).
    """
    rng = np.random.default_rng(seed)
    dists, gaps, rr = [], [], []
    per_clip = max(1, SPEARMAN_PAIRS // max(1, len(clips)))
    for z in clips:
        n = z.shape[0]
        if n < 2:
            continue
        zn = torch.nn.functional.normalize(z.double(), dim=1)
        sim = (zn @ zn.T).cpu().numpy()
        i = rng.integers(0, n, per_clip)
        g = rng.integers(1, min(MAX_GAP, n - 1) + 1, per_clip)
        j = np.where(i + g < n, i + g, i - g)
        ok = (j >= 0) & (j < n)
        dists.append(1 - sim[i[ok], j[ok]])
        gaps.append(np.abs(i[ok] - j[ok]))
        if n > N_NEIGHBOURS:
            t = np.arange(n)
            s = sim.copy()
            np.fill_diagonal(s, -np.inf)
            rank_of = np.argsort(np.argsort(-s, axis=1, kind="stable"), axis=1, kind="stable") + 1  # 1 = nearest
            gap = np.abs(t[:, None] - t[None, :]).astype(float)
            np.fill_diagonal(gap, np.inf)
            true_nb = np.argsort(gap + t[None, :] * 1e-6, axis=1, kind="stable")[:, :N_NEIGHBOURS]
            rr.append(1.0 / np.take_along_axis(rank_of, true_nb, axis=1).min(axis=1))
    rho = spearman(np.concatenate(dists), np.concatenate(gaps)) if dists else float("nan")
    return {"spearman": rho, "mrr": float(np.mean(np.concatenate(rr))) if rr else float("nan")}


def rankme(z: torch.Tensor) -> float:
    return effective_rank(z)
