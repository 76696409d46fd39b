"""Tunable training runs: one shared Tune scaffold plus one subpackage per family.

- :mod:`trainables.classification`: ResNet-20 on CIFAR-10 / digits.

A family writes only its run object (config, data, model, losses, ``train_epoch``,
``evaluate``, state); the scaffold turns it into a Ray Tune function trainable that
honours :mod:`ohgw.protocol`.
"""
