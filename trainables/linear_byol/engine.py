"""The training engine: fresh views, the BYOL loss, two momentum-SGD optimisers, the EMA, the auto schedule.

One step on a batch of n fresh latents (two noisy views each):

1. o = f(x₁), p = g(o), t = f_target(x₂) (no gradient through t); L = ½·mean‖p − t‖² (:func:`byol_mse`);
2. predictor (lr α) and encoder (lr β) take separate SGD-with-momentum steps (PyTorch's rule:
   b ← μb + ∇, b = ∇ on the first update; θ ← θ − lr·b), each only every k-th step
   (``pred_update_every`` / ``enc_update_every``; momentum advances only when its group updates);
3. target ← target + τ·(encoder − target) (BYOL's EMA, after the optimiser step; τ = 1 − m).

For linear networks the gradients are written out (∇_P = rᵀo/n, ∇_B = Pᵀrᵀx₁/n with r = p − t): no
autograd graph, which is most of this engine's speed over a plain ``torch.optim`` loop
(``benchmarks/linear_byol_speed.py``); MLPs use autograd. Parameter updates use ``torch._foreach``
kernels, and nothing synchronises with the device inside an epoch.

**Auto schedule** (``auto_alpha_c`` / ``auto_beta_c`` > 0): α_t = c_α·τ/H_t, β_t = c_β·τ/H_t, where H_t is
the top eigenvalue of the online feature covariance C_oo = oᵀo/n, estimated by ``power_iters`` power
iterations per step, warm-started from the previous step's vector. Why: with this loss the
predictor's Hessian is C_oo, so α·H is the predictor's step in units of its curvature, and the EMA
moves the target at rate τ. In a linearised scalar model of the student–teacher pair (student
s ← s − α·h·(s − t), teacher t ← t + τ(s − t), driven by gradient noise of unit variance) the
stationary gap E(s − t)² grows like α²/(2(α + τ)) (in units of h): once α·h ≫ τ the student outruns a
teacher that cannot follow and the gap, not the signal, dominates the loss. A useful regime is
therefore α·h ≲ c·τ with c of order one (the sweep's heatmaps show where it breaks), and the auto
schedule pins α_t to its edge as the features (and H_t) grow or shrink.

**No bf16 path** (the other families have ``precision``; this one has ``dtype``, float32 or float64). A step
is a handful of matrix products of at most [batch × 100]·[100 × 64]: on a GPU its time is kernel launches,
not arithmetic, so bf16 autocast would save nothing. It would cost what the toy is for: every product (the
written-out gradients, the features, H_t) rounded to bf16's 8 significant bits (relative error up to
2⁻⁹ ≈ 0.2 %), where the toy's dynamics are compared with closed forms in float32 or float64.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch

from trainables.checks import resolve_device

from .config import steps_per_epoch
from .data import LatentData
from .models import BYOLToy, byol_mse, random_rotation

DTYPES = {"float32": torch.float32, "float64": torch.float64}


def _is_linear(module: torch.nn.Module) -> bool:
    return isinstance(module, torch.nn.Linear)


class Trainer:
    """One run's networks, optimiser states, EMA and random streams; ``train_epoch`` advances one epoch.

    ``hp`` holds the tuned values (``lr_pred``, ``lr_enc``, ``tau``); set them before training
    (the warm-start may change them). Everything, random streams included, is in :meth:`state_dict`.
    """

    def __init__(self, cfg: Mapping[str, Any]) -> None:
        self.cfg = dict(cfg)
        self.device = resolve_device(cfg["device"])
        self.dtype = DTYPES[cfg["dtype"]]
        seed = int(cfg["seed"])
        data_seed = seed if cfg["data_seed"] is None else int(cfg["data_seed"])
        self.data = LatentData.make(cfg["d_obs"], cfg["d_latent"], cfg["sigma_n"], data_seed, self.dtype, self.device)
        g = torch.Generator().manual_seed(seed)
        enc_weight = None
        if cfg["enc_init"] == "pinv":
            enc_weight = random_rotation(cfg["d_latent"], g) @ self.data.a_pinv.double().cpu()
        self.model = BYOLToy(cfg["enc"], cfg["pred"], cfg["d_obs"], cfg["d_latent"], cfg["hidden"],
                             cfg["init_scale"], g, enc_weight).to(device=self.device, dtype=self.dtype)
        self.pred_params, self.enc_params = self.model.online_parameters()
        self.target_params = list(self.model.target.parameters())
        self.pred_buf: list[torch.Tensor] | None = None
        self.enc_buf: list[torch.Tensor] | None = None
        self.generator = torch.Generator(self.device).manual_seed(seed + 1)  # training views
        self.eval_generator = torch.Generator(self.device).manual_seed(seed + 2)  # evaluation views
        self.power_vec = torch.ones(cfg["d_latent"], device=self.device, dtype=self.dtype) / cfg["d_latent"] ** 0.5
        self.h_t = torch.tensor(math.nan, device=self.device, dtype=self.dtype)
        self.alpha_t = torch.tensor(cfg["lr_pred"], device=self.device, dtype=self.dtype)
        self.beta_t = torch.tensor(cfg["lr_enc"], device=self.device, dtype=self.dtype)
        self.hp = {"lr_pred": float(cfg["lr_pred"]), "lr_enc": float(cfg["lr_enc"]), "tau": float(cfg["tau"])}
        self.step = 0
        self.fast = _is_linear(self.model.encoder) and _is_linear(self.model.predictor)

    # ---- one step ----------------------------------------------------------------------------------
    def _power(self, o: torch.Tensor) -> torch.Tensor:
        """H_t: the top eigenvalue of oᵀo/n by warm-started power iteration (no host sync)."""
        c = o.T @ o / o.shape[0]
        v = self.power_vec
        for _ in range(self.cfg["power_iters"]):
            w = c @ v
            v = w / w.norm().clamp_min(1e-30)
        self.power_vec = v
        return v @ (c @ v)

    def _rates(self, o: torch.Tensor) -> tuple[torch.Tensor | float, torch.Tensor | float]:
        cfg, tau = self.cfg, self.hp["tau"]
        ca, cb = cfg["auto_alpha_c"], cfg["auto_beta_c"]
        alpha: torch.Tensor | float = self.hp["lr_pred"]
        beta: torch.Tensor | float = self.hp["lr_enc"]
        if ca > 0 or cb > 0:
            self.h_t = self._power(o.detach())
            inv = tau / self.h_t.clamp_min(1e-12)
            alpha = ca * inv if ca > 0 else alpha
            beta = cb * inv if cb > 0 else beta
        return alpha, beta

    @staticmethod
    def _sgd(params: list[torch.Tensor], grads: list[torch.Tensor], buf: list[torch.Tensor] | None,
             lr: torch.Tensor | float, mu: float) -> list[torch.Tensor] | None:
        if mu > 0:
            if buf is None:
                buf = [g.clone() for g in grads]
            else:
                torch._foreach_mul_(buf, mu)
                torch._foreach_add_(buf, grads)
            grads = buf
        if isinstance(lr, torch.Tensor):
            torch._foreach_sub_(params, torch._foreach_mul(grads, lr))
        else:
            torch._foreach_add_(params, grads, alpha=-lr)
        return buf

    def train_step(self) -> torch.Tensor:
        """One step on a fresh batch; returns the loss (a 0-dim tensor, not synchronised)."""
        cfg, m = self.cfg, self.model
        x1, x2 = self.data.sample(cfg["batch_size"], self.generator)
        upd_p = self.step % cfg["pred_update_every"] == 0
        upd_e = self.step % cfg["enc_update_every"] == 0 and not cfg["freeze_enc"]
        with torch.no_grad():
            if self.fast:
                b, p, bt = m.encoder.weight, m.predictor.weight, m.target.weight
                o = x1 @ b.T
                r = o @ p.T - x2 @ bt.T
                loss = 0.5 * r.pow(2).sum(dim=1).mean()
                n = x1.shape[0]
                g_pred = [r.T @ o / n] if upd_p else []
                g_enc = [(r @ p).T @ x1 / n] if upd_e else []
            else:
                with torch.enable_grad():
                    o, pr, t = m(x1, x2)
                    loss = byol_mse(pr, t.detach())
                    wanted = (self.pred_params if upd_p else []) + (self.enc_params if upd_e else [])
                    grads = torch.autograd.grad(loss, wanted) if wanted else ()
                g_pred = list(grads[: len(self.pred_params)]) if upd_p else []
                g_enc = list(grads[len(g_pred):]) if upd_e else []
                loss = loss.detach()
            alpha, beta = self._rates(o)
            if upd_p:
                self.pred_buf = self._sgd(self.pred_params, g_pred, self.pred_buf, alpha, cfg["mom_pred"])
            if upd_e:
                self.enc_buf = self._sgd(self.enc_params, g_enc, self.enc_buf, beta, cfg["mom_enc"])
            torch._foreach_lerp_(self.target_params, self.enc_params, self.hp["tau"])
        self.alpha_t, self.beta_t = alpha, beta
        self.step += 1
        return loss

    def train_epoch(self) -> float:
        """``steps_per_epoch`` steps; the mean loss (one host sync per epoch)."""
        total = torch.zeros((), dtype=torch.float64, device=self.device)
        n = steps_per_epoch(self.cfg)
        for _ in range(n):
            total += self.train_step().double()
        return float(total) / n

    # ---- evaluation ----------------------------------------------------------------------------------
    @torch.no_grad()
    def eval_views(self, n: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        return self.data.sample(n or self.cfg["eval_samples"], self.eval_generator)

    @torch.no_grad()
    def eval_loss(self, x1: torch.Tensor, x2: torch.Tensor) -> float:
        _, p, t = self.model(x1, x2)
        return float(byol_mse(p, t))

    def used_rates(self) -> dict[str, float]:
        f = lambda v: float(v) if not isinstance(v, torch.Tensor) else float(v.detach())  # noqa: E731
        return {"alpha_t": f(self.alpha_t), "beta_t": f(self.beta_t)}

    # ---- state ------------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(), "pred_buf": self.pred_buf, "enc_buf": self.enc_buf,
            "generator": self.generator.get_state(), "eval_generator": self.eval_generator.get_state(),
            "power_vec": self.power_vec, "h_t": self.h_t, "alpha_t": self.alpha_t, "beta_t": self.beta_t,
            "hp": dict(self.hp), "step": self.step,
        }  # fmt: skip

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        dev = lambda v: None if v is None else [t.to(self.device) for t in v]  # noqa: E731
        self.pred_buf, self.enc_buf = dev(state["pred_buf"]), dev(state["enc_buf"])
        self.generator.set_state(state["generator"])
        self.eval_generator.set_state(state["eval_generator"])
        self.power_vec = state["power_vec"].to(self.device)
        self.h_t = state["h_t"].to(self.device) if isinstance(state["h_t"], torch.Tensor) else state["h_t"]
        to = lambda v: v.to(self.device) if isinstance(v, torch.Tensor) else v  # noqa: E731
        self.alpha_t, self.beta_t = to(state["alpha_t"]), to(state["beta_t"])
        self.hp, self.step = dict(state["hp"]), int(state["step"])
