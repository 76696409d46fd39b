"""Differentiable optimizer steps that match ``torch.optim.SGD``, ``torch.optim.Adam`` and ``torch.optim.AdamW``.

Each rule maps (params, grads, state, hyper-params) to (new params, new state)
with plain tensor algebra, so autograd can differentiate the step with respect
to the hyper-parameters. Hyper-parameters arrive as 0-dim tensors under the
names ``lr``, ``wd`` and ``momentum`` (β₁ for Adam and AdamW); a name that is absent
takes the rule's fixed value.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

Params = dict[str, torch.Tensor]


def _hp(hp: dict, name: str, default: float, like: torch.Tensor) -> torch.Tensor:
    v = hp.get(name, default)
    return torch.as_tensor(v, dtype=like.dtype, device=like.device)


@dataclass(frozen=True)
class SGD:
    """SGD with momentum, optional Nesterov and coupled L2 weight decay (PyTorch semantics).

    d = g + wd·θ;  b ← μ·b + d (b = d on the first step);  θ ← θ − lr·(d + μ·b if nesterov else b).
    With one lookahead step and no Nesterov, θ₁ does not depend on μ: its hyper-gradient is 0.
    """

    lr: float = 0.1
    wd: float = 0.0
    momentum: float = 0.0
    nesterov: bool = False

    hyperparameters = ("lr", "wd", "momentum")

    def init_state(self, params: Params) -> dict:
        return {"step": 0, "buf": None}

    def step(self, params: Params, grads: Params, state: dict, hp: dict) -> tuple[Params, dict]:
        any_p = next(iter(params.values()))
        lr = _hp(hp, "lr", self.lr, any_p)
        wd = _hp(hp, "wd", self.wd, any_p)
        mu = _hp(hp, "momentum", self.momentum, any_p)
        use_momentum = "momentum" in hp or self.momentum != 0
        new_p, new_buf = {}, {}
        for k, p in params.items():
            d = grads[k] + wd * p
            if use_momentum:
                b = d if state["buf"] is None else mu * state["buf"][k] + d
                new_buf[k] = b
                d = d + mu * b if self.nesterov else b
            new_p[k] = p - lr * d
        return new_p, {"step": state["step"] + 1, "buf": new_buf if use_momentum else None}


@dataclass(frozen=True)
class AdamW:
    """AdamW with decoupled weight decay (PyTorch semantics, no amsgrad).

    θ ← θ·(1 − lr·wd);  m ← β₁m + (1−β₁)g;  v ← β₂v + (1−β₂)g²;
    θ ← θ − lr·m̂/(√v̂ + eps) with bias-corrected m̂, v̂.
    """

    lr: float = 1e-3
    wd: float = 1e-2
    momentum: float = 0.9  # β₁
    beta2: float = 0.999
    eps: float = 1e-8

    hyperparameters = ("lr", "wd", "momentum")

    def init_state(self, params: Params) -> dict:
        return {"step": 0, "m": None, "v": None}

    def step(self, params: Params, grads: Params, state: dict, hp: dict) -> tuple[Params, dict]:
        any_p = next(iter(params.values()))
        lr = _hp(hp, "lr", self.lr, any_p)
        wd = _hp(hp, "wd", self.wd, any_p)
        b1 = _hp(hp, "momentum", self.momentum, any_p)
        b2 = self.beta2
        t = state["step"] + 1
        new_p, new_m, new_v = {}, {}, {}
        for k, p in params.items():
            g = grads[k]
            m_prev = state["m"][k] if state["m"] is not None else torch.zeros_like(g)
            v_prev = state["v"][k] if state["v"] is not None else torch.zeros_like(g)
            m = b1 * m_prev + (1 - b1) * g
            v = b2 * v_prev + (1 - b2) * g * g
            m_hat = m / (1 - b1**t)
            v_hat = v / (1 - b2**t)
            # clamp keeps d√v/dv finite where a gradient is exactly 0 (√0 has an infinite slope)
            denom = torch.sqrt(v_hat.clamp_min(1e-30)) + self.eps
            new_p[k] = p * (1 - lr * wd) - lr * m_hat / denom
            new_m[k], new_v[k] = m, v
        return new_p, {"step": t, "m": new_m, "v": new_v}


@dataclass(frozen=True)
class Adam(AdamW):
    """Adam with coupled L2 weight decay (``torch.optim.Adam(weight_decay=wd)``, no amsgrad).

    g ← g + wd·θ;  then AdamW's moments and step, without its decoupled decay.
    """

    wd: float = 0.0

    def step(self, params: Params, grads: Params, state: dict, hp: dict) -> tuple[Params, dict]:
        any_p = next(iter(params.values()))
        wd = _hp(hp, "wd", self.wd, any_p)
        coupled = {k: grads[k] + wd * p for k, p in params.items()}
        return super().step(params, coupled, state, {**hp, "wd": torch.zeros((), dtype=any_p.dtype,
                                                                                device=any_p.device)})


def from_name(name: str, **kwargs):
    """``"sgd"``, ``"nesterov"``, ``"adam"`` or ``"adamw"`` → an update rule."""
    name = name.lower()
    if name == "sgd":
        return SGD(**kwargs)
    if name == "nesterov":
        return SGD(nesterov=True, **kwargs)
    if name == "adam":
        return Adam(**kwargs)
    if name == "adamw":
        return AdamW(**kwargs)
    raise ValueError(f"update rule must be 'sgd', 'nesterov', 'adam' or 'adamw', got {name!r}")
