"""The classifier's hyper-gradient problem: what :mod:`ohgw.warmstart` differentiates.

The train loss applies :func:`~trainables.augment.magnitude_augment` at the
differentiable magnitude with fixed draws and the written-out label-smoothed loss
:func:`~trainables.classification.losses.smoothed_cross_entropy`; the validation loss is
plain cross-entropy on a clean batch; the update rule is :class:`ohgw.update_rules.SGD`
with the real optimizer's Nesterov flag, so lr, wd and momentum are differentiable too.

>>> from trainables.nets import resnet20
>>> make_problem(resnet20(10, in_channels=1), nesterov=True).known_hyperparameters
('lr', 'wd', 'momentum', 'aug_magnitude', 'label_smoothing')
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.func import functional_call

from ohgw.hypergrad import HyperGradProblem
from ohgw.update_rules import SGD
from trainables.augment import magnitude_augment

from .losses import smoothed_cross_entropy


def make_problem(model: torch.nn.Module, nesterov: bool = False) -> HyperGradProblem:
    """The classifier's hyper-gradient problem.

    Train loss on a batch ``(x, y, draws)``: smoothed CE (``label_smoothing``) of the
    model on ``magnitude_augment(x, aug_magnitude, draws)``. Validation loss on a clean
    batch ``(x, y)``: plain CE. Update rule: :class:`ohgw.update_rules.SGD` with the
    real optimizer's Nesterov flag.
    """

    def train_loss(params, buffers, batch, hp):
        x, y, draws = batch
        if "aug_magnitude" in hp:
            x = magnitude_augment(x, hp["aug_magnitude"], draws)
        logits = functional_call(model, (params, buffers), (x,))
        return smoothed_cross_entropy(logits, y, hp.get("label_smoothing", 0.0))

    def val_loss(params, buffers, batch):
        x, y = batch
        return F.cross_entropy(functional_call(model, (params, buffers), (x,)), y)

    return HyperGradProblem(
        model=model,
        train_loss=train_loss,
        val_loss=val_loss,
        update_rule=SGD(nesterov=nesterov),
        loss_hyperparameters=("aug_magnitude", "label_smoothing"),
    )
