"""The data model x = A z + ε and its closed forms.

z ~ N(0, I_k) is the latent (k = ``d_latent``), A ∈ ℝ^{d×k} a Gaussian mixing matrix with entries
N(0, 1/d) (columns of norm ≈ 1, so AᵀA ≈ I and the Wiener shrinkage below is far from trivial),
ε ~ N(0, σ_n² I_d). The two views of one sample share z and draw ε independently, so with
C_xx = AAᵀ + σ_n² I (a view's covariance) and C_12 = AAᵀ (the cross-covariance of the views):

- for linear online/target encoders B, B_t (k×d): C_oo = B C_xx Bᵀ, C_to = B_t C_12 Bᵀ and the MSE-optimal
  linear predictor is the Wiener filter P*(B, B_t) = C_to C_oo⁻¹ (:func:`wiener_predictor`);
- at the analytic encoder B = B_t = A⁺ (and any rotation R·A⁺ of it), C_oo = I + σ_n²(AᵀA)⁻¹ and C_to = I,
  so P* = (AᵀA + σ_n² I)⁻¹ AᵀA (:func:`latent_wiener`), the shrinkage the predictor must learn.

>>> d = LatentData.make(d_obs=6, d_latent=2, sigma_n=0.5, seed=0, dtype=torch.float64)
>>> b = d.a_pinv
>>> bool(torch.allclose(wiener_predictor(d, b, b), d.p_star))
True
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class LatentData:
    """A mixing matrix, the noise level, and their derived matrices (all on one device and dtype)."""

    a: torch.Tensor  # d × k
    sigma_n: float

    @classmethod
    def make(cls, d_obs: int, d_latent: int, sigma_n: float, seed: int, dtype=torch.float32,
             device: torch.device | str = "cpu") -> LatentData:
        if d_latent > d_obs:
            raise ValueError(f"d_latent ({d_latent}) must be <= d_obs ({d_obs})")
        g = torch.Generator().manual_seed(int(seed))
        a = torch.randn(d_obs, d_latent, generator=g, dtype=torch.float64) / d_obs**0.5
        return cls(a.to(device=device, dtype=dtype), float(sigma_n))

    @property
    def d_obs(self) -> int:
        return self.a.shape[0]

    @property
    def d_latent(self) -> int:
        return self.a.shape[1]

    @property
    def a_pinv(self) -> torch.Tensor:
        """A⁺ = (AᵀA)⁻¹Aᵀ (k × d), computed in float64."""
        return torch.linalg.pinv(self.a.double()).to(self.a.dtype)

    @property
    def p_star(self) -> torch.Tensor:
        return latent_wiener(self)

    def sample(self, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Two views (n × d each) of n fresh latents: x_v = z Aᵀ + σ_n ε_v."""
        a = self.a
        z = torch.randn(n, self.d_latent, generator=generator, device=a.device, dtype=a.dtype)
        eps = torch.randn(2, n, self.d_obs, generator=generator, device=a.device, dtype=a.dtype)
        clean = z @ a.T
        return torch.addcmul(clean, eps[0], torch.tensor(self.sigma_n, dtype=a.dtype, device=a.device)), \
            torch.addcmul(clean, eps[1], torch.tensor(self.sigma_n, dtype=a.dtype, device=a.device))


def latent_wiener(data: LatentData) -> torch.Tensor:
    """(AᵀA + σ_n² I)⁻¹ AᵀA: the closed-form predictor at the analytic encoder A⁺ (float64 solve)."""
    a = data.a.double()
    ata = a.T @ a
    eye = torch.eye(data.d_latent, dtype=torch.float64, device=a.device)
    return torch.linalg.solve(ata + data.sigma_n**2 * eye, ata).to(data.a.dtype)


def wiener_predictor(data: LatentData, b: torch.Tensor, b_target: torch.Tensor) -> torch.Tensor:
    """P*(B, B_t) = C_to C_oo⁻¹ with population covariances (float64); B, B_t are k' × d linear encoders."""
    a, b, bt = data.a.double(), b.double(), b_target.double()
    ab, abt = b @ a, bt @ a  # k' × k
    c_oo = ab @ ab.T + data.sigma_n**2 * (b @ b.T)
    c_to = abt @ ab.T
    return torch.linalg.solve(c_oo.T, c_to.T).T.to(data.a.dtype)  # C_to C_oo⁻¹
