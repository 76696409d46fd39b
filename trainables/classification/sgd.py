"""``torch.optim.SGD``'s CPU step without ``torch.optim``: the same arithmetic, the same state dict.

The first ``torch.optim`` optimizer a process builds imports ``torch._dynamo`` (``add_param_group``
and ``step`` are wrapped to keep the compiler out): ~900 modules, sympy included, about 2.4 s of CPU.
A digits study pays that once per trial process, more than two epochs of its ResNet-20. On the CPU,
``torch.optim.SGD`` runs its single-tensor path (foreach kernels are for CUDA); :class:`PlainSGD`
performs exactly those tensor operations in the same order, so the weights are bit-identical
(``tests/test_classification.py`` checks it against ``torch.optim.SGD``), and its
:meth:`~PlainSGD.state_dict` has ``torch.optim.SGD``'s layout: a checkpoint written by either loads
into the other (a CUDA run keeps ``torch.optim.SGD``, and its checkpoints restore on the CPU).

>>> w = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
>>> opt = PlainSGD([w], lr=0.1, momentum=0.9, weight_decay=0.01, nesterov=True)
>>> ref_w = torch.nn.Parameter(w.detach().clone())
>>> ref = torch.optim.SGD([ref_w], lr=0.1, momentum=0.9, weight_decay=0.01, nesterov=True)
>>> for _ in range(3):
...     for p, o in ((w, opt), (ref_w, ref)):
...         o.zero_grad(set_to_none=True)
...         (p ** 2).sum().backward()
...         o.step()
>>> bool(torch.equal(w, ref_w)), sorted(opt.state_dict()) == sorted(ref.state_dict())
(True, True)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch


class PlainSGD:
    """SGD with momentum, optional Nesterov and coupled weight decay (no dampening, minimising), one param group.

    The members a run uses of ``torch.optim.SGD``: ``param_groups`` (set ``"lr"`` per step),
    ``zero_grad``, ``step``, ``state_dict`` and ``load_state_dict``.
    """

    def __init__(self, params: Iterable[torch.nn.Parameter], lr: float, momentum: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False) -> None:
        self.params = list(params)
        if not self.params:
            raise ValueError("params must hold at least one parameter, got none")
        if lr < 0:
            raise ValueError(f"lr must be >= 0, got {lr}")
        if momentum < 0:
            raise ValueError(f"momentum must be >= 0, got {momentum}")
        if weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
        if nesterov and momentum <= 0:
            raise ValueError("nesterov needs momentum > 0")
        # torch.optim.SGD's param group, key for key (its state dict carries them)
        self.param_groups = [{"lr": lr, "momentum": momentum, "dampening": 0, "weight_decay": weight_decay,
                              "nesterov": nesterov, "maximize": False, "foreach": None, "differentiable": False,
                              "fused": None}]
        self.buffers: list[torch.Tensor | None] = [None] * len(self.params)

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            if p.grad is None:
                continue
            if set_to_none:
                p.grad = None
            else:
                p.grad.detach_().zero_()

    @torch.no_grad()
    def step(self) -> None:
        """One step of ``torch.optim.sgd._single_tensor_sgd``'s operations, in its order."""
        g = self.param_groups[0]
        lr, mu, wd, nesterov = g["lr"], g["momentum"], g["weight_decay"], g["nesterov"]
        for i, p in enumerate(self.params):
            if p.grad is None:
                continue
            grad = p.grad
            if wd != 0:
                grad = grad.add(p, alpha=wd)
            if mu != 0:
                buf = self.buffers[i]
                if buf is None:
                    buf = grad.detach().clone()
                    self.buffers[i] = buf
                else:
                    buf.mul_(mu).add_(grad, alpha=1)
                grad = grad.add(buf, alpha=mu) if nesterov else buf
            p.add_(grad, alpha=-lr)

    def state_dict(self) -> dict[str, Any]:
        """``torch.optim.SGD.state_dict()``'s layout: momentum buffers by parameter index, the param group."""
        state = {i: {"momentum_buffer": b} for i, b in enumerate(self.buffers) if b is not None}
        return {"state": state, "param_groups": [{**self.param_groups[0], "params": list(range(len(self.params)))}]}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Load what :meth:`state_dict` or ``torch.optim.SGD.state_dict()`` wrote for the same parameters."""
        (group,) = state_dict["param_groups"]
        if len(group["params"]) != len(self.params):
            raise ValueError(f"state_dict holds {len(group['params'])} parameters, this optimizer {len(self.params)}")
        self.param_groups[0].update({k: v for k, v in group.items() if k != "params"})
        index = {pid: i for i, pid in enumerate(group["params"])}
        self.buffers = [None] * len(self.params)
        for pid, s in state_dict["state"].items():
            buf = s.get("momentum_buffer")
            if buf is not None:
                p = self.params[index[pid]]
                self.buffers[index[pid]] = buf.detach().clone().to(device=p.device, dtype=p.dtype)


__all__ = ["PlainSGD"]
