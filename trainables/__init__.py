"""Tunable training runs: one shared Tune scaffold plus one subpackage per family.

- :mod:`trainables.scaffold`: the Ray Tune function-trainable adapter every family reuses
  (restore, warm-start once, one report + checkpoint per epoch, cost accounting, the
  divergence and collapse endings, every key of :mod:`ohgw.protocol`), and a plain-Python
  driver for tests and scripts;
- :mod:`trainables.classification`: ResNet-20 on CIFAR-10 / digits.

A family writes only its run object (:class:`trainables.scaffold.Run`: config, data,
model, losses, ``train_epoch``, ``evaluate_epoch``, state) and names only its own metrics.
"""
