"""Exact Gaussian-process regression in plain torch: kernels, posterior, negative log marginal likelihood.

The GP part of DyHPO's deep-kernel surrogate (:mod:`ohgw.dyhpo.surrogate`), which puts one of
these kernels on learned features. Here the inputs are whatever feature vectors it is given;
with the identity as "feature extractor" it is a textbook exact GP (Rasmussen & Williams 2006,
Algorithm 2.1: Cholesky of K + σ²I, α = K⁻¹(y − m), predictive mean k*ᵀα + m, latent
variance k** − vᵀv with v = L⁻¹k*; log marginal likelihood eq. 2.30).

Kernels (one length-scale ℓ shared by all feature dimensions, output scale s², r = |a − b|):

- ``rbf``: s² exp(−r²/(2ℓ²)) (the reference DyHPO code: gpytorch ``ScaleKernel(RBFKernel())``);
- ``matern32``: s² (1 + √3 r/ℓ) exp(−√3 r/ℓ);
- ``matern52``: s² (1 + √5 r/ℓ + 5r²/(3ℓ²)) exp(−√5 r/ℓ).

Hyper-parameters live as unconstrained tensors; ℓ, s² and σ² are ``softplus(raw) + floor``
(σ² ≥ 1e-4 like gpytorch's ``GaussianLikelihood``), the mean is a constant.

>>> import torch
>>> hp = GPParams.initial(lengthscale=1.0, outputscale=1.0, noise=0.01)
>>> x = torch.tensor([[0.0], [1.0]], dtype=torch.float64)
>>> round(float(kernel(x, x, hp, "rbf")[0, 1]), 6)  # exp(-1/2)
0.606531
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

KERNELS = ("rbf", "matern32", "matern52")
NOISE_FLOOR = 1e-4
SCALE_FLOOR = 1e-6
JITTER = 1e-8


def check_kernel(name: object) -> str:
    """``name`` if it is a known kernel; else a ValueError naming the argument."""
    if name not in KERNELS:
        raise ValueError(f"kernel must be one of {KERNELS}, got {name!r}")
    return name  # type: ignore[return-value]


def _inverse_softplus(value: float, floor: float) -> float:
    y = value - floor
    if y <= 0:
        raise ValueError(f"value {value} must exceed its floor {floor}")
    return y + math.log(-math.expm1(-y))


@dataclass
class GPParams:
    """Unconstrained GP hyper-parameters (tensors, float64, ``requires_grad`` set by the caller)."""

    raw_lengthscale: torch.Tensor
    raw_outputscale: torch.Tensor
    raw_noise: torch.Tensor
    mean: torch.Tensor

    @classmethod
    def initial(cls, lengthscale: float = 1.0, outputscale: float = 1.0, noise: float = 0.01,
                mean: float = 0.0) -> GPParams:
        """Parameters with these constrained values (exactly, up to float rounding)."""
        t = lambda v: torch.tensor(v, dtype=torch.float64)  # noqa: E731
        return cls(t(_inverse_softplus(lengthscale, SCALE_FLOOR)), t(_inverse_softplus(outputscale, SCALE_FLOOR)),
                   t(_inverse_softplus(noise, NOISE_FLOOR)), t(mean))

    @property
    def lengthscale(self) -> torch.Tensor:
        return F.softplus(self.raw_lengthscale) + SCALE_FLOOR

    @property
    def outputscale(self) -> torch.Tensor:
        return F.softplus(self.raw_outputscale) + SCALE_FLOOR

    @property
    def noise(self) -> torch.Tensor:
        return F.softplus(self.raw_noise) + NOISE_FLOOR

    def tensors(self) -> list[torch.Tensor]:
        return [self.raw_lengthscale, self.raw_outputscale, self.raw_noise, self.mean]

    def values(self) -> dict[str, float]:
        """The constrained values, as floats."""
        return {"lengthscale": float(self.lengthscale), "outputscale": float(self.outputscale),
                "noise": float(self.noise), "mean": float(self.mean)}


def _sq_dist(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    sq = (a * a).sum(-1, keepdim=True) + (b * b).sum(-1)[None, :] - 2.0 * a @ b.T
    return sq.clamp_min(0.0)


def kernel(a: torch.Tensor, b: torch.Tensor, hp: GPParams, name: str) -> torch.Tensor:
    """The (n, m) kernel matrix between rows of ``a`` (n, d) and ``b`` (m, d)."""
    sq = _sq_dist(a / hp.lengthscale, b / hp.lengthscale)
    if name == "rbf":
        k = torch.exp(-0.5 * sq)
    else:
        r = torch.sqrt(sq.clamp_min(1e-30))
        if name == "matern32":
            s = math.sqrt(3.0) * r
            k = (1.0 + s) * torch.exp(-s)
        elif name == "matern52":
            s = math.sqrt(5.0) * r
            k = (1.0 + s + s * s / 3.0) * torch.exp(-s)
        else:
            check_kernel(name)
    return hp.outputscale * k


def _cholesky(x: torch.Tensor, hp: GPParams, name: str) -> torch.Tensor:
    k = kernel(x, x, hp, name)
    k = k + (hp.noise + JITTER) * torch.eye(len(x), dtype=k.dtype)
    return torch.linalg.cholesky(k)


def neg_log_marginal_likelihood(x: torch.Tensor, y: torch.Tensor, hp: GPParams, name: str) -> torch.Tensor:
    """−log p(y | x) per observation (R&W eq. 2.30 divided by n, as gpytorch's ExactMarginalLogLikelihood)."""
    n = len(y)
    chol = _cholesky(x, hp, name)
    resid = (y - hp.mean)[:, None]
    alpha = torch.cholesky_solve(resid, chol)
    quad = (resid * alpha).sum()
    logdet = 2.0 * torch.log(torch.diagonal(chol)).sum()
    return 0.5 * (quad + logdet + n * math.log(2.0 * math.pi)) / n


def posterior(x: torch.Tensor, y: torch.Tensor, x_star: torch.Tensor, hp: GPParams, name: str,
              include_noise: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Predictive mean and variance at ``x_star`` (latent f; plus σ² with ``include_noise``)."""
    chol = _cholesky(x, hp, name)
    k_star = kernel(x, x_star, hp, name)  # (n, m)
    alpha = torch.cholesky_solve((y - hp.mean)[:, None], chol)
    mean = hp.mean + (k_star * alpha).sum(0)
    v = torch.linalg.solve_triangular(chol, k_star, upper=False)
    var = hp.outputscale - (v * v).sum(0)  # k(x*, x*) = s² for every kernel here
    var = var.clamp_min(1e-12)
    if include_noise:
        var = var + hp.noise
    return mean, var
