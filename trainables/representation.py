"""Losses and frozen-embedding metrics shared by the self-supervised families (``ssl``, ``jepa``).

Pure torch functions, no state, each with its reference:

- :func:`info_nce`: multi-positive InfoNCE over a group labelling (SimCLR's NT-Xent when every
  group has two members; SupCon's ``L_out`` / ``L_in`` forms, Khosla et al. 2020, eqs. 2–3);
- :func:`vicreg_variance`, :func:`vicreg_covariance`: VICReg's regularisers (Bardes et al. 2022,
  eqs. 1–4), the hinge on the per-dimension std and the scaled sum of squared off-diagonal covariances;
- :func:`effective_rank`: RankMe (Garrido et al. 2023), exp of the entropy of the normalised
  singular values — the collapse guard;
- :func:`ridge_fit` / :func:`ridge_predict`: a closed-form ridge probe with an unpenalised bias;
- :func:`knn_predict`: the cosine kNN classifier with temperature-weighted votes that SSL libraries
  run every epoch (Wu et al. 2018; solo-learn's k = 20, T = 0.07).

>>> z = torch.eye(4, dtype=torch.float64)
>>> round(effective_rank(z), 3)      # four orthogonal directions of equal energy
4.0
>>> round(effective_rank(torch.ones(8, 3)), 3)  # everything on one line: collapsed
1.0
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

INFO_NCE_FORMS = ("out", "in")


def info_nce(z: torch.Tensor, groups: torch.Tensor, temperature: float, form: str = "out") -> torch.Tensor:
    """Multi-positive InfoNCE of embeddings ``z`` [N, D]: rows with equal ``groups`` [N] are positives.

    Cosine similarities divided by ``temperature``; the self-pair is excluded from numerator and
    denominator; every other row is a negative unless it shares the group. Per anchor with P > 0
    positives, ``form="out"`` averages −log p over the positives (SupCon ``L_out``, lightly's
    ``SupConLoss``; seed 003's "average negative log-probability over entries where P = 1");
    ``form="in"`` takes −log of the *summed* positive probability, solo-learn's multi-positive SimCLR value.
    That is not Khosla et al.'s ``L_in``, which averages the probability: −log((1/P)·Σ p) = this + log P
    per anchor (a constant, so the gradients agree). With two rows per group both forms equal SimCLR's NT-Xent.
    Anchors without a positive are left out of the mean.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if form not in INFO_NCE_FORMS:
        raise ValueError(f"form must be one of {INFO_NCE_FORMS}, got {form!r}")
    if z.ndim != 2 or groups.shape != z.shape[:1]:
        raise ValueError(f"z must be [N, D] and groups [N], got {tuple(z.shape)} and {tuple(groups.shape)}")
    n = z.shape[0]
    zn = F.normalize(z, dim=1)
    logits = zn @ zn.T / temperature
    self_mask = torch.eye(n, dtype=torch.bool, device=z.device)
    logits = logits.masked_fill(self_mask, float("-inf"))
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    positive = (groups[:, None] == groups[None, :]) & ~self_mask
    count = positive.sum(dim=1)
    has = count > 0
    if not bool(has.any()):
        raise ValueError("groups has no positive pair: every group needs at least two rows")
    if form == "out":
        per_anchor = -(log_prob.masked_fill(~positive, 0.0).sum(dim=1)[has] / count[has])
    else:
        per_anchor = -torch.logsumexp(log_prob.masked_fill(~positive, float("-inf"))[has], dim=1)
    return per_anchor.mean()


def vicreg_variance(z: torch.Tensor, gamma: float = 1.0, eps: float = 1e-4) -> torch.Tensor:
    """VICReg's variance term of one branch ``z`` [N, D]: mean over dimensions of relu(γ − sqrt(Var + ε))."""
    std = torch.sqrt(z.var(dim=0) + eps)
    return F.relu(gamma - std).mean()


def vicreg_covariance(z: torch.Tensor) -> torch.Tensor:
    """VICReg's covariance term of one branch ``z`` [N, D]: Σ_{i≠j} C_ij² / D, C the sample covariance."""
    n, d = z.shape
    zc = z - z.mean(dim=0)
    cov = zc.T @ zc / (n - 1)
    off = cov - torch.diag(torch.diagonal(cov))
    return off.pow(2).sum() / d


def effective_rank(z: torch.Tensor, eps: float = 1e-7) -> float:
    """RankMe of embeddings ``z`` [N, D]: exp(−Σ p_k log p_k), p_k = σ_k / Σσ + ε (Garrido et al. 2023).

    Between 1 (all rows on one line, or all zero) and min(N, D) (equal energy in every direction).
    """
    s = torch.linalg.svdvals(z.detach().double())
    total = s.sum()
    if not bool(torch.isfinite(total)) or float(total) == 0.0:
        return 1.0
    p = s / total + eps
    return float(torch.exp(-(p * torch.log(p)).sum()))


def ridge_fit(x: torch.Tensor, y: torch.Tensor, lam: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Closed-form ridge regression y ≈ x W + b with an unpenalised bias; returns (W [D, K], b [K]).

    Solves (Xcᵀ Xc + λ I) W = Xcᵀ Yc on centred data, in float64 for a stable solve.
    """
    if lam < 0:
        raise ValueError(f"lam must be ≥ 0, got {lam}")
    xd, yd = x.double(), (y.double() if y.ndim == 2 else y.double()[:, None])
    mx, my = xd.mean(dim=0), yd.mean(dim=0)
    xc, yc = xd - mx, yd - my
    gram = xc.T @ xc + lam * torch.eye(xd.shape[1], dtype=torch.float64, device=x.device)
    w = torch.linalg.solve(gram, xc.T @ yc)
    return w, my - mx @ w


def ridge_predict(x: torch.Tensor, fitted: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """Predictions of a :func:`ridge_fit` result for ``x`` [N, D], float64 [N, K]."""
    w, b = fitted
    return x.double() @ w + b


def knn_predict(train_z: torch.Tensor, train_y: torch.Tensor, test_z: torch.Tensor, num_classes: int,
                k: int = 20, temperature: float = 0.07, chunk: int = 1024) -> torch.Tensor:
    """Labels of ``test_z`` by cosine kNN over ``train_z`` with votes weighted by exp(sim / T).

    The votes are summed as log-sum-exp (each row's largest exponent subtracted), so any T > 0 works in
    float32.

    The weighted-vote kNN monitor of Wu et al. 2018, as solo-learn and lightly run it each epoch.
    ``k`` is capped at the number of training rows. Works in chunks of ``chunk`` test rows.
    """
    if k < 1:
        raise ValueError(f"k must be ≥ 1, got {k}")
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    k = min(k, train_z.shape[0])
    bank = F.normalize(train_z.float(), dim=1)
    out = []
    for start in range(0, test_z.shape[0], chunk):
        q = F.normalize(test_z[start:start + chunk].float(), dim=1)
        sim, idx = (q @ bank.T).topk(k, dim=1)
        # log-sum-exp: each row's votes scaled by exp(−max sim / T), so the largest is 1 and none overflows
        # (float32 exp(sim / T) is inf above sim / T ≈ 88, i.e. below T ≈ 0.011); the argmax is unchanged
        logits = sim / temperature
        votes = torch.zeros(q.shape[0], num_classes, device=q.device)
        votes.scatter_add_(1, train_y[idx].long(), torch.exp(logits - logits[:, :1]))
        out.append(votes.argmax(dim=1))
    return torch.cat(out) if out else torch.empty(0, dtype=torch.long, device=test_z.device)



LOGISTIC_PROBE = {"epochs": 20, "lr": 0.1, "batch_size": 256}  # seed 000's probe: SGD, 20 epochs, lr 0.1


def logistic_fit(x: torch.Tensor, y: torch.Tensor, num_classes: int, epochs: int = LOGISTIC_PROBE["epochs"],
                 lr: float = LOGISTIC_PROBE["lr"], batch_size: int = LOGISTIC_PROBE["batch_size"],
                 seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A single-layer logistic (softmax) classifier on ``x`` [N, D], labels ``y`` [N] in [0, num_classes):
    plain SGD on the mean cross-entropy, ``epochs`` passes of shuffled mini-batches (seeded), zero init;
    returns (W [D, K], b [K]). Seed 000's linear probe (20 epochs, lr 0.1)."""
    for name, v in (("epochs", epochs), ("batch_size", batch_size), ("num_classes", num_classes)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
    if not lr > 0:
        raise ValueError(f"lr must be > 0, got {lr}")
    x = x.detach().float()
    y = y.long().to(x.device)
    w = torch.zeros(x.shape[1], num_classes, device=x.device, requires_grad=True)
    b = torch.zeros(num_classes, device=x.device, requires_grad=True)
    gen = torch.Generator().manual_seed(seed)
    with torch.enable_grad():
        for _ in range(epochs):
            order = torch.randperm(x.shape[0], generator=gen).to(x.device)
            for start in range(0, x.shape[0], batch_size):
                rows = order[start:start + batch_size]
                loss = F.cross_entropy(x[rows] @ w + b, y[rows])
                gw, gb = torch.autograd.grad(loss, (w, b))
                with torch.no_grad():
                    w -= lr * gw
                    b -= lr * gb
    return w.detach(), b.detach()


def logistic_predict(x: torch.Tensor, fitted: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """Logits [N, K] of a :func:`logistic_fit` result for ``x`` [N, D]."""
    w, b = fitted
    return x.float() @ w + b
