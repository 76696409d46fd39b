"""DyHPO's deep-kernel GP surrogate (Wistuba, Schwarz & Grabocka, NeurIPS 2022, §3), in plain torch.

Every observation is (config x ∈ [0, 1]^d, budget b, curve prefix) → score: the score a trial
reported at epoch b, with the scores it reported before b as its curve prefix. A small feature
extractor maps it to a feature vector, and an exact GP (:mod:`ohgw.dyhpo.gp`, RBF or Matérn)
sits on those features. Following the reference code (``machinelearningnuremberg/DyHPO``,
``surrogate_models/dyhpo.py``):

- features: ``LeakyReLU(Linear(x ⊕ b/max_t → 64))``, concatenated with a 1-D convolution over the
  curve prefix (``Conv1d(1 → 4, kernel 3)`` then a max over positions), then
  ``LeakyReLU(Linear(64 + 4 → 32))``. Prefixes are padded with zeros to the longest one (at least
  the kernel size), as in the reference. Differences: no BatchNorm (the reference's breaks on
  one-row batches and makes train/eval predictions differ), a 32-unit output instead of 128, float64.
- targets are standardised with the training set's mean and standard deviation, predictions
  mapped back; curve prefixes are min-max scaled by the training scores, so that the zero padding
  reads as the worst score seen (the reference feeds raw accuracies in [0, 1], padded with 0);
- training maximises the exact marginal likelihood (mean NLL per observation, Adam, lr 1e-2)
  over the network and the GP hyper-parameters together. :meth:`DeepKernelSurrogate.fit` is
  *warm-started*: it continues from the current weights (the reference refines the same way
  after its first fits; its ``refine_epochs`` is 50). If a step fails (non-finite NLL, Cholesky
  failure), the weights from before the fit are kept.

``features=False`` is the feature-free path: the GP sees ``x ⊕ b/max_t`` directly, so this
class is then a plain exact GP (tests compare it with the closed form).

>>> import numpy as np
>>> s = DeepKernelSurrogate(n_config=1, curve_len=2, features=False, normalize=False)
>>> obs = Observations(x=np.array([[0.0], [1.0]]), budget=np.ones(2), curves=np.zeros((2, 2)), y=np.array([0.0, 1.0]))
>>> mean, std = s.predict(obs, obs)
>>> np.round(mean, 2).tolist()
[0.01, 0.98]
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ohgw.dyhpo import gp

HIDDEN = 64
OUT_DIM = 32
CONV_CHANNELS = 4
CONV_KERNEL = 3
LEARNING_RATE = 1e-2
DTYPE = torch.float64


@dataclass
class Observations:
    """Rows of (config, budget, curve prefix) and, for training data, the score.

    ``x``: (n, d) configs in [0, 1]; ``budget``: (n,) b / max_t; ``curves``: (n, L) scores before b,
    NaN where there is none (padding); ``y``: (n,) scores (higher is better), or None for queries.
    """

    x: np.ndarray
    budget: np.ndarray
    curves: np.ndarray
    y: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.x)

    def take(self, idx: np.ndarray) -> Observations:
        return Observations(self.x[idx], self.budget[idx], self.curves[idx], None if self.y is None else self.y[idx])


@dataclass(frozen=True)
class FitReport:
    """What one (re)fit did: mean NLL per observation before and after, steps, seconds, n."""

    nll_before: float
    nll_after: float
    steps: int
    seconds: float
    n: int
    failed: bool = False


class _Extractor(nn.Module):
    def __init__(self, n_config: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(n_config + 1, HIDDEN)
        self.conv = nn.Conv1d(1, CONV_CHANNELS, kernel_size=CONV_KERNEL)
        self.fc2 = nn.Linear(HIDDEN + CONV_CHANNELS, OUT_DIM)
        self.act = nn.LeakyReLU()

    def forward(self, xb: torch.Tensor, curves: torch.Tensor) -> torch.Tensor:
        h = self.act(self.fc1(xb))
        c = self.conv(curves[:, None, :]).amax(dim=-1)
        return self.act(self.fc2(torch.cat([h, c], dim=1)))


class DeepKernelSurrogate:
    """Deep-kernel GP (module doc). ``kernel``: ``"rbf"``, ``"matern32"`` or ``"matern52"``."""

    def __init__(self, n_config: int, curve_len: int, kernel: str = "rbf", features: bool = True,
                 normalize: bool = True, seed: int = 0, lr: float = LEARNING_RATE) -> None:
        if isinstance(n_config, bool) or not isinstance(n_config, int) or n_config < 1:
            raise ValueError(f"n_config must be a positive integer, got {n_config!r}")
        if isinstance(curve_len, bool) or not isinstance(curve_len, int) or curve_len < 0:
            raise ValueError(f"curve_len must be an integer >= 0, got {curve_len!r}")
        self.kernel = gp.check_kernel(kernel)
        self.n_config = n_config
        self.curve_len = max(curve_len, CONV_KERNEL)
        self.features = bool(features)
        self.normalize = bool(normalize)
        self.lr = float(lr)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            self.net = _Extractor(n_config).to(DTYPE) if self.features else None
        self.hp = gp.GPParams.initial()
        self.y_mean, self.y_std = 0.0, 1.0
        self.y_low, self.y_span = 0.0, 1.0
        self.n_fits = 0

    # ---------------------------------------------------------------- parameters
    def parameters(self) -> list[torch.Tensor]:
        out = list(self.net.parameters()) if self.net is not None else []
        return out + self.hp.tensors()

    def _tensors(self, obs: Observations) -> tuple[torch.Tensor, torch.Tensor]:
        xb = np.concatenate([np.asarray(obs.x, dtype=np.float64), np.asarray(obs.budget, dtype=np.float64)[:, None]], 1)
        xb_t = torch.as_tensor(xb, dtype=DTYPE)
        if not self.features:
            return xb_t, xb_t
        curves = np.asarray(obs.curves, dtype=np.float64)
        curves = (curves - self.y_low) / self.y_span  # seen scores in [0, 1]; padding 0 = the worst seen
        padded = np.zeros((len(curves), self.curve_len))
        width = min(curves.shape[1], self.curve_len) if curves.ndim == 2 else 0
        padded[:, :width] = np.nan_to_num(curves[:, :width], nan=0.0)
        return xb_t, torch.as_tensor(padded, dtype=DTYPE)

    def _phi(self, obs: Observations) -> torch.Tensor:
        xb, curves = self._tensors(obs)
        return xb if self.net is None else self.net(xb, curves)

    def _y(self, obs: Observations) -> torch.Tensor:
        return torch.as_tensor((np.asarray(obs.y, dtype=np.float64) - self.y_mean) / self.y_std, dtype=DTYPE)

    def _set_normalization(self, y: np.ndarray) -> None:
        if self.normalize:
            self.y_mean = float(np.mean(y))
            std = float(np.std(y))
            self.y_std = std if std > 1e-12 else 1.0
            self.y_low = float(np.min(y))
            span = float(np.max(y)) - self.y_low
            self.y_span = span if span > 1e-12 else 1.0

    # ---------------------------------------------------------------- training and prediction
    def nll(self, obs: Observations) -> float:
        """Mean negative log marginal likelihood per observation, with the current weights and normalisation."""
        with torch.no_grad():
            return float(gp.neg_log_marginal_likelihood(self._phi(obs), self._y(obs), self.hp, self.kernel))

    def fit(self, obs: Observations, steps: int) -> FitReport:
        """``steps`` Adam steps on the marginal likelihood, from the current weights (warm start)."""
        if obs.y is None or len(obs) < 2:
            raise ValueError(f"obs: fitting needs at least 2 observations with scores, got {len(obs)}")
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
            raise ValueError(f"steps must be an integer >= 0, got {steps!r}")
        t0 = time.perf_counter()
        saved = self.get_state()
        self._set_normalization(np.asarray(obs.y, dtype=np.float64))
        params = self.parameters()
        for p in params:
            p.requires_grad_(True)
        opt = torch.optim.Adam(params, lr=self.lr)
        y = self._y(obs)
        failed = False
        try:
            before = self.nll(obs)
            for _ in range(steps):
                opt.zero_grad()
                loss = gp.neg_log_marginal_likelihood(self._phi(obs), y, self.hp, self.kernel)
                if not torch.isfinite(loss):
                    raise FloatingPointError("non-finite marginal likelihood")
                loss.backward()
                opt.step()
            after = self.nll(obs)
            if not np.isfinite(after):
                raise FloatingPointError("non-finite marginal likelihood")
        except (RuntimeError, FloatingPointError):  # torch.linalg.LinAlgError is a RuntimeError
            self.set_state(saved)
            failed, before, after = True, float("nan"), float("nan")
        finally:
            for p in self.parameters():
                p.requires_grad_(False)
        self.n_fits += 1
        return FitReport(before, after, steps, time.perf_counter() - t0, len(obs), failed)

    def predict(self, train: Observations, query: Observations) -> tuple[np.ndarray, np.ndarray]:
        """Predictive mean and standard deviation (observation noise included) of the scores at ``query``,
        conditioned on ``train``; in the scores' own units."""
        if train.y is None or len(train) < 1:
            raise ValueError("train: prediction needs at least one observation with a score")
        with torch.no_grad():
            mean, var = gp.posterior(self._phi(train), self._y(train), self._phi(query), self.hp, self.kernel,
                                     include_noise=True)
        mean = mean.numpy() * self.y_std + self.y_mean
        std = np.sqrt(var.numpy()) * self.y_std
        return mean, std

    # ---------------------------------------------------------------- state
    def get_state(self) -> dict:
        """Plain data (numpy arrays, floats): the weights, GP hyper-parameters and normalisation."""
        net = {} if self.net is None else {k: v.detach().numpy().copy() for k, v in self.net.state_dict().items()}
        return {
            "net": net,
            "hp": [float(t) for t in self.hp.tensors()],
            "y_mean": self.y_mean,
            "y_std": self.y_std,
            "y_low": self.y_low,
            "y_span": self.y_span,
            "n_fits": self.n_fits,
        }

    def set_state(self, state: dict) -> None:
        if self.net is not None:
            self.net.load_state_dict({k: torch.as_tensor(np.asarray(v), dtype=DTYPE) for k, v in state["net"].items()})
        self.hp = gp.GPParams(*(torch.tensor(float(v), dtype=DTYPE) for v in state["hp"]))
        self.y_mean, self.y_std = float(state["y_mean"]), float(state["y_std"])
        self.y_low, self.y_span = float(state["y_low"]), float(state["y_span"])
        self.n_fits = int(state["n_fits"])
