"""Losses written out so that every hyper-parameter in them is differentiable.

``F.cross_entropy(label_smoothing=eps)`` takes a Python float, so its gradient
with respect to eps is silently zero; :func:`smoothed_cross_entropy` takes a
tensor and is differentiable in it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def smoothed_cross_entropy(logits: torch.Tensor, target: torch.Tensor, smoothing=0.0) -> torch.Tensor:
    """(1 − ε)·CE + ε·U with U = −mean_k log p_k; equal to PyTorch's label smoothing."""
    logp = F.log_softmax(logits.float() if logits.dtype in (torch.float16, torch.bfloat16) else logits, dim=-1)
    nll = -logp.gather(-1, target.unsqueeze(-1)).squeeze(-1).mean()
    uniform = -logp.mean(dim=-1).mean()
    eps = torch.as_tensor(smoothing, dtype=logp.dtype, device=logp.device)
    return (1 - eps) * nll + eps * uniform
