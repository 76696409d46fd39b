"""The theory-driven metrics: Procrustes alignment, distances to the analytic optimum, effective ranks.

Embeddings are only defined up to an orthogonal rotation, so every comparison with the latent frame
first aligns the encoder B (k × d) with A⁺ by orthogonal Procrustes (Schönemann 1966):
Ω = argmin_{ΩᵀΩ = I} ‖Ω B − A⁺‖_F = U Vᵀ with U S Vᵀ = svd(A⁺ Bᵀ). For B = s·R·A⁺ (any scale s > 0,
any rotation R), Ω = Rᵀ exactly: A⁺Bᵀ = s (A⁺A⁺ᵀ) Rᵀ is an SPD matrix times Rᵀ, whose polar factor is Rᵀ.

======================  ==========================================================================
``W_Fro_aligned``       log10 ‖Ω P Ωᵀ − P*‖_F, P* = (AᵀA + σ_n²I)⁻¹AᵀA the latent Wiener shrinkage
``W_Fro_current``       log10 ‖P − C_to C_oo⁻¹‖_F at the current encoders (the predictor's lag)
``W_rel_sv_err``        ‖s_r(P) − s_r(P*)‖ / ‖s_r(P*)‖ over the top r = k singular values
``BA_err_aligned``      ‖Ω B A − I_k‖_F / √k (the encoder as an inverse of the mixing, aligned)
``enc_proj_dist``       ‖Π_row(B) − Π_row(A⁺)‖_F / √2 (√ of the summed sin² of the principal angles)
``enc_procrustes_fro``  ‖Ω B − A⁺‖_F / ‖A⁺‖_F
``erank_encoded``       RankMe effective rank of encoded outputs (Garrido et al. 2023); ``erank_pred`` same
======================  ==========================================================================

An MLP encoder or predictor has no matrix: its best linear approximation on the evaluation samples
(least squares, :func:`linearise`) stands in for B or P.

>>> q, _ = torch.linalg.qr(torch.randn(3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1)))
>>> x = torch.randn(3, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
>>> bool(torch.allclose(procrustes(q @ x, x), q.T))
True
"""

from __future__ import annotations

import math

import torch

from trainables.representation import effective_rank

from .data import LatentData, latent_wiener, wiener_predictor

METRIC_KEYS = ("W_Fro_aligned", "W_Fro_current", "W_rel_sv_err", "BA_err_aligned", "enc_proj_dist",
               "enc_procrustes_fro", "erank_encoded", "erank_pred")


def procrustes(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The orthogonal Ω minimising ‖Ω x − y‖_F (x, y: k × d): Ω = U Vᵀ, U S Vᵀ = svd(y xᵀ)."""
    u, _, vh = torch.linalg.svd(y.double() @ x.double().T)
    return (u @ vh).to(x.dtype)


def _log10(v: float) -> float:
    return math.log10(v) if v > 0 else -math.inf


def _row_basis(m: torch.Tensor, rtol: float = 1e-10) -> torch.Tensor:
    """Orthonormal basis (d × r) of the row space of m (k × d), numerical rank r."""
    u, s, _ = torch.linalg.svd(m.double().T, full_matrices=False)
    if s.numel() == 0 or float(s[0]) == 0.0:
        return u[:, :0]
    return u[:, s > rtol * s[0]]


def projection_distance(b: torch.Tensor, c: torch.Tensor) -> float:
    """‖Π_row(b) − Π_row(c)‖_F / √2 from orthonormal bases: ‖Π₁−Π₂‖² = r₁ + r₂ − 2‖Q₁ᵀQ₂‖²."""
    q1, q2 = _row_basis(b), _row_basis(c)
    sq = q1.shape[1] + q2.shape[1] - 2.0 * float((q1.T @ q2).pow(2).sum())
    return math.sqrt(max(sq, 0.0) / 2.0)


def linearise(inputs: torch.Tensor, outputs: torch.Tensor) -> torch.Tensor:
    """The least-squares linear map M (k' × d) with outputs ≈ inputs Mᵀ (float64)."""
    sol = torch.linalg.lstsq(inputs.double(), outputs.double()).solution  # d × k'
    return sol.T.to(inputs.dtype)


def theory_metrics(data: LatentData, b: torch.Tensor, b_target: torch.Tensor, p: torch.Tensor,
                   encoded: torch.Tensor, predicted: torch.Tensor) -> dict[str, float]:
    """Every metric of the module table for encoder B, target B_t, predictor P and eval outputs (NaN if non-finite)."""
    if not all(bool(torch.isfinite(t).all()) for t in (b, b_target, p, encoded, predicted)):
        return {k: math.nan for k in METRIC_KEYS}
    b, bt, p = b.double(), b_target.double(), p.double()
    a, a_pinv = data.a.double(), data.a_pinv.double()
    k = data.d_latent
    p_star = latent_wiener(data).double()
    omega = procrustes(b, a_pinv)
    out = {
        "W_Fro_aligned": _log10(float(torch.linalg.matrix_norm(omega @ p @ omega.T - p_star))),
        "BA_err_aligned": float(torch.linalg.matrix_norm(omega @ b @ a - torch.eye(k, dtype=torch.float64))) / k**0.5,
        "enc_proj_dist": projection_distance(b, a_pinv),
        "enc_procrustes_fro": float(torch.linalg.matrix_norm(omega @ b - a_pinv) / torch.linalg.matrix_norm(a_pinv)),
        "erank_encoded": effective_rank(encoded),
        "erank_pred": effective_rank(predicted),
    }
    sp, ss = torch.linalg.svdvals(p)[:k], torch.linalg.svdvals(p_star)[:k]
    out["W_rel_sv_err"] = float(torch.linalg.vector_norm(sp - ss) / torch.linalg.vector_norm(ss))
    try:
        current = wiener_predictor(data, b, bt).double()
        out["W_Fro_current"] = _log10(float(torch.linalg.matrix_norm(p - current)))
    except RuntimeError:  # a singular C_oo (collapsed encoder): no closed form
        out["W_Fro_current"] = math.nan
    return {key: out[key] for key in METRIC_KEYS}
