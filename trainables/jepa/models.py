"""The networks: the MeNet5 encoder, MLP / GRU predictors, the action-conditioned JEPA, and the RSSM baseline.

- :class:`MeNet5`: the LeNet-5-style encoder of the moving-dot literature (Sobal et al. 2022):
  conv 5×5/2 (16w) → conv 5×5/2 (32w) → conv 3×3 (32w), each ReLU + BatchNorm, average pool 2,
  linear to ``embedding_dim`` (512). 28×28 → 14 → 7 → 3, so 288·w features before the linear.
- :class:`MLPPredictor` ((z_t, a_t) → ẑ_{t+1}, two hidden layers) and :class:`GRUPredictor`
  (a GRU cell whose hidden state is the embedding and whose input is the action).
- :class:`JEPA`: encodes all 17 frames and rolls the predictor over the 16 actions. The rollout
  restarts from the encoder's z_t every ``horizon`` steps (horizon 16: multistep prediction from the
  first frame) and, between restarts, feeds the true z_t instead of its own ẑ_t at the steps a
  teacher-forcing mask marks.
- :class:`RSSM`: the recurrent state-space model of PlaNet / Dreamer (Hafner et al. 2019): a GRU
  deterministic state h_t, a diagonal-Gaussian stochastic state s_t with prior p(s_t | h_t) and
  posterior q(s_t | h_t, e_t) (e_t = the MeNet5 embedding of frame t), and a transposed-conv decoder
  of (h_t, s_t) to the frame. Its probe features are the posterior state [h_t, mean q]; its rollout
  (imagination) features are [h_t, mean p] with h driven by the prior means.

Every random draw (teacher-forcing mask, reparameterisation noise) is an argument, so the
hyper-gradient's train loss is a deterministic function of the parameters.

**bf16** (``bf16=True``, the run's ``precision``): the conv nets, where the compute is (MeNet5 on every
frame, the RSSM's decoder), run under bf16 autocast and return float32; the predictors, the RSSM's
recurrent state and every loss stay float32. Float64 inputs (the tests' references) are never cast.

>>> enc = MeNet5(8, bf16=True)
>>> x = torch.rand(2, 1, 28, 28)
>>> enc(x).dtype, enc.double()(x.double()).dtype
(torch.float32, torch.float64)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

ACTION_DIM = 2


def _bf16(net: nn.Module, x: torch.Tensor, bf16: bool) -> torch.Tensor:
    """``net(x)``, under bf16 autocast if ``bf16``, in ``x``'s dtype."""
    if not bf16:
        return net(x)
    with torch.autocast(x.device.type, dtype=torch.bfloat16):
        out = net(x)
    return out.to(x.dtype)


class MeNet5(nn.Module):
    """LeNet-5-style encoder: [N, 1, 28, 28] → [N, ``embedding_dim``] (under bf16 autocast if ``bf16``)."""

    def __init__(self, embedding_dim: int = 512, width: int = 1, bf16: bool = False) -> None:
        super().__init__()
        self.bf16 = bf16
        c1, c2 = 16 * width, 32 * width
        self.features = nn.Sequential(
            nn.Conv2d(1, c1, 5, stride=2, padding=2), nn.ReLU(), nn.BatchNorm2d(c1),
            nn.Conv2d(c1, c2, 5, stride=2, padding=2), nn.ReLU(), nn.BatchNorm2d(c2),
            nn.Conv2d(c2, c2, 3, stride=1, padding=1), nn.ReLU(), nn.BatchNorm2d(c2),
            nn.AvgPool2d(2, stride=2),
        )  # fmt: skip
        self.fc = nn.Linear(9 * c2, embedding_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _bf16(self._forward, x, self.bf16)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x).flatten(1))


class MLPPredictor(nn.Module):
    """ẑ_{t+1} = MLP([z_t, a_t]) with two hidden layers of ``hidden`` units."""

    def __init__(self, dim: int, hidden: int = 512) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim + ACTION_DIM, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                 nn.Linear(hidden, dim))

    def forward(self, z: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([z, a], dim=-1))


class GRUPredictor(nn.Module):
    """ẑ_{t+1} = GRUCell(input a_t, hidden z_t)."""

    def __init__(self, dim: int, hidden: int = 512) -> None:
        super().__init__()
        self.cell = nn.GRUCell(ACTION_DIM, dim)

    def forward(self, z: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        return self.cell(a, z)


PREDICTORS = {"mlp": MLPPredictor, "gru": GRUPredictor}


def rollout(step, z: torch.Tensor, actions: torch.Tensor, horizon: int,
            teacher: torch.Tensor | None = None) -> torch.Tensor:  # fmt: skip
    """Predictions [B, T−1, D] of z_1 … z_{T−1} from encodings ``z`` [B, T, D] and actions [B, T−1, 2].

    Step t starts from the true z_t when t is a multiple of ``horizon`` or ``teacher[t]`` is true,
    else from the previous prediction.
    """
    preds = []
    for t in range(actions.shape[1]):
        restart = t % horizon == 0 or (teacher is not None and bool(teacher[t]))
        src = z[:, t] if restart else preds[-1]
        preds.append(step(src, actions[:, t]))
    return torch.stack(preds, dim=1)


class JEPA(nn.Module):
    """Encoder + action-conditioned predictor. ``forward`` → (z [B, T, D], ẑ [B, T−1, D])."""

    def __init__(self, embedding_dim: int = 512, width: int = 1, predictor: str = "mlp", hidden: int = 512,
                 bf16: bool = False) -> None:  # fmt: skip
        super().__init__()
        self.encoder = MeNet5(embedding_dim, width, bf16)
        self.predictor = PREDICTORS[predictor](embedding_dim, hidden)

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        b, t = frames.shape[:2]
        return self.encoder(frames.flatten(0, 1)).view(b, t, -1)

    def forward(self, frames: torch.Tensor, actions: torch.Tensor, horizon: int = 16,
                teacher: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
        z = self.encode(frames)
        return z, rollout(self.predictor, z, actions, horizon, teacher)

    def features(self, frames: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Probe features (z [B, T, D]) and the open-loop rollout from z_0 ([B, T−1, D])."""
        z = self.encode(frames)
        return z, rollout(self.predictor, z, actions, horizon=actions.shape[1])


class Decoder(nn.Module):
    """[N, in_dim] → [N, 1, 28, 28]: linear to 32×7×7, two stride-2 transposed convs (bf16 autocast if ``bf16``)."""

    def __init__(self, in_dim: int, width: int = 1, bf16: bool = False) -> None:
        super().__init__()
        self.bf16 = bf16
        c1, c2 = 32 * width, 16 * width
        self.c1 = c1
        self.fc = nn.Linear(in_dim, c1 * 49)
        self.net = nn.Sequential(nn.ReLU(), nn.ConvTranspose2d(c1, c2, 4, stride=2, padding=1), nn.ReLU(),
                                 nn.ConvTranspose2d(c2, 1, 4, stride=2, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _bf16(self._forward, x, self.bf16)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.fc(x).view(-1, self.c1, 7, 7))


def gaussian_kl(qm: torch.Tensor, qs: torch.Tensor, pm: torch.Tensor, ps: torch.Tensor) -> torch.Tensor:
    """KL(N(qm, qs²) ‖ N(pm, ps²)) of diagonal Gaussians, summed over the last dimension (nats)."""
    return (torch.log(ps / qs) + (qs**2 + (qm - pm) ** 2) / (2 * ps**2) - 0.5).sum(-1)


class RSSMOutput(dict):
    """Keys: recon [B, T, 1, S, S], kl [B, T] (nats, summed over stochastic dims), features [B, T, det+stoch]."""


class RSSM(nn.Module):
    """PlaNet's recurrent state-space model on MeNet5 embeddings with a conv decoder."""

    def __init__(self, embedding_dim: int = 512, width: int = 1, det_dim: int = 200, stoch_dim: int = 30,
                 hidden: int = 200, min_std: float = 0.1, bf16: bool = False) -> None:  # fmt: skip
        super().__init__()
        self.det_dim, self.stoch_dim, self.min_std = det_dim, stoch_dim, min_std
        self.encoder = MeNet5(embedding_dim, width, bf16)
        self.cell = nn.GRUCell(stoch_dim + ACTION_DIM, det_dim)
        self.prior = nn.Sequential(nn.Linear(det_dim, hidden), nn.ELU(), nn.Linear(hidden, 2 * stoch_dim))
        self.posterior = nn.Sequential(nn.Linear(det_dim + embedding_dim, hidden), nn.ELU(),
                                       nn.Linear(hidden, 2 * stoch_dim))
        self.decoder = Decoder(det_dim + stoch_dim, width, bf16)

    def _gauss(self, out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, raw = out.chunk(2, dim=-1)
        return mean, F.softplus(raw) + self.min_std

    def forward(self, frames: torch.Tensor, actions: torch.Tensor, noise: torch.Tensor) -> RSSMOutput:
        """Filter the sequence; ``noise`` [B, T, stoch] are the reparameterisation draws."""
        b, t = frames.shape[:2]
        emb = self.encoder(frames.flatten(0, 1)).view(b, t, -1)
        h = frames.new_zeros(b, self.det_dim)
        s = frames.new_zeros(b, self.stoch_dim)
        feats, kls, post_means = [], [], []
        for i in range(t):
            if i > 0:
                h = self.cell(torch.cat([s, actions[:, i - 1]], dim=-1), h)
            pm, ps = self._gauss(self.prior(h))
            qm, qs = self._gauss(self.posterior(torch.cat([h, emb[:, i]], dim=-1)))
            s = qm + qs * noise[:, i]
            kls.append(gaussian_kl(qm, qs, pm, ps))
            feats.append(torch.cat([h, s], dim=-1))
            post_means.append(torch.cat([h, qm], dim=-1))
        recon = self.decoder(torch.stack(feats, 1).flatten(0, 1)).view_as(frames)
        return RSSMOutput(recon=recon, kl=torch.stack(kls, 1), features=torch.stack(post_means, 1))

    def features(self, frames: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior features [h, mean q] of every frame, and the prior rollout [h, mean p] from frame 0."""
        b, t = frames.shape[:2]
        out = self.forward(frames, actions, frames.new_zeros(b, t, self.stoch_dim))
        h = out["features"][:, 0, : self.det_dim]
        s = out["features"][:, 0, self.det_dim:]
        roll = []
        for i in range(1, t):
            h = self.cell(torch.cat([s, actions[:, i - 1]], dim=-1), h)
            s, _ = self._gauss(self.prior(h))
            roll.append(torch.cat([h, s], dim=-1))
        return out["features"], torch.stack(roll, 1)
