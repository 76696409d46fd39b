"""Datasets as whole tensors on the trial's device, and the batched on-device data path.

Three datasets, each with a seeded train/validation split plus a test set, all
standardised per channel with the *training split's* mean and std:

- ``cifar10``: read through :class:`torchvision.datasets.CIFAR10` from ``data_dir``
  (the folder that holds ``cifar-10-batches-py``); it downloads only with
  ``download=True``. 45,000 train / 5,000 val (seeded) / 10,000 test.
- ``digits``: scikit-learn's real handwritten digits (:func:`sklearn.datasets.load_digits`,
  1,797 8×8 grayscale images, shipped with the package, no network): stratified,
  seeded 65 % train / 15 % val / 20 % test, exactly as ``train_test_split`` makes them.
  A trial reads them through :mod:`trainables.digits`, which imports scikit-learn only to
  compute a split its cache does not hold yet (once per machine and split seed).
- ``synthetic``: random tensors of CIFAR shape (3×32×32, 10 classes), for throughput
  benchmarks only: nothing in them can be learnt.

Loaded splits are cached per process (key: name, resolved path, split seed), so a
reused Ray actor does not load the data again; :meth:`Splits.to` caches the copy on
each device.

The data path follows fast CIFAR trainers such as airbench: no per-image Python
``DataLoader``. Each epoch draws one seeded index permutation; a batch is an index
into the resident tensor, and augmentation runs batched on the device:
:func:`crop_flip` (random crop after zero padding, plus a horizontal flip where the
dataset allows it) and then :func:`trainables.augment.magnitude_augment`, the same
differentiable function the warm-start differentiates.

>>> s = load_dataset("digits")
>>> (len(s.train_y), len(s.val_y), len(s.test_y)), s.image_shape, s.num_classes
((1167, 270, 360), (1, 8, 8), 10)
>>> g = torch.Generator().manual_seed(0)
>>> [len(b) for b in shuffled_batches(len(s.train_y), 512, g)]
[512, 512]
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from trainables.augment import AugDraws, sample_draws
from trainables.digits import read_digits, stratified_split

from .sources import CIFAR_FOLDER, DATASETS, check_source  # noqa: F401 - DATASETS is this module's too

CIFAR_VAL_SIZE = 5000
DIGITS_VAL_FRACTION = 0.15
DIGITS_TEST_FRACTION = 0.20
SYNTHETIC_SIZES = (4096, 512, 512)  # train, val, test
WARM_START_SEED_OFFSET = 7919  # separates the warm-start's batch stream from the data-order stream


@dataclass(frozen=True)
class Splits:
    """One dataset's standardised splits as float32 (N, C, H, W) tensors and int64 labels."""

    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    num_classes: int
    crop_padding: int  # pixels of zero padding before the random crop
    flip: bool  # whether a horizontal flip preserves the label
    _on_device: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.train_x.shape[1:])

    @property
    def in_channels(self) -> int:
        return int(self.train_x.shape[1])

    def to(self, device: torch.device | str) -> Splits:
        """The same splits on ``device`` (cached, so each device holds one copy)."""
        device = torch.device(device)
        if self.train_x.device == device:
            return self
        key = str(device)
        if key not in self._on_device:
            moved = {
                k: getattr(self, k).to(device) for k in ("train_x", "train_y", "val_x", "val_y", "test_x", "test_y")
            }
            self._on_device[key] = replace(self, _on_device={}, **moved)
        return self._on_device[key]


_CACHE: dict[tuple, Splits] = {}


def clear_cache() -> None:
    """Forget every loaded dataset of this process."""
    _CACHE.clear()


def load_dataset(
    name: str, data_dir: str | os.PathLike | None = None, download: bool = False, split_seed: int = 0
) -> Splits:
    """The dataset's splits on the CPU, loaded once per process."""
    check_source(name, data_dir, download)
    path = os.path.abspath(os.fspath(data_dir)) if (name == "cifar10" and data_dir is not None) else None
    key = (name, path, int(split_seed))
    if key not in _CACHE:
        loader = {"cifar10": _load_cifar10, "digits": _load_digits, "synthetic": _load_synthetic}[name]
        _CACHE[key] = loader(path, download, int(split_seed))
    return _CACHE[key]


def _standardise(train_x: torch.Tensor, *others: torch.Tensor) -> list[torch.Tensor]:
    mean = train_x.mean(dim=(0, 2, 3), keepdim=True)
    std = train_x.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-6)
    return [((t - mean) / std).contiguous() for t in (train_x, *others)]


def _load_cifar10(path: str | None, download: bool, split_seed: int) -> Splits:
    if path is None:
        raise ValueError("dataset 'cifar10' with download=True still needs data_dir: where to put the files")
    from torchvision.datasets import CIFAR10

    try:
        train = CIFAR10(path, train=True, download=download)
        test = CIFAR10(path, train=False, download=download)
    except RuntimeError as e:  # torchvision: "Dataset not found or corrupted"
        raise ValueError(
            f"dataset 'cifar10': could not read {os.path.join(path, CIFAR_FOLDER)} ({e}); "
            "fix data_dir or set download=True"
        ) from e

    def as_tensor(ds) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.from_numpy(np.ascontiguousarray(ds.data)).permute(0, 3, 1, 2).float().div_(255.0)
        return x, torch.as_tensor(ds.targets, dtype=torch.int64)

    x, y = as_tensor(train)
    test_x, test_y = as_tensor(test)
    n_val = min(CIFAR_VAL_SIZE, len(y) // 10)  # 5,000 of the real 50,000; 10 % of a smaller folder
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(split_seed))
    val_idx, train_idx = perm[:n_val], perm[n_val:]
    train_x, val_x, test_x = _standardise(x[train_idx], x[val_idx], test_x)
    return Splits("cifar10", train_x, y[train_idx], val_x, y[val_idx], test_x, test_y, 10, crop_padding=4, flip=True)


def _load_digits(path: str | None, download: bool, split_seed: int) -> Splits:
    images, target = read_digits()  # load_digits()' arrays, read without importing scikit-learn
    x = images.astype(np.float32) / 16.0  # (1797, 8, 8), pixel values 0..16
    y = target.astype(np.int64)
    split = stratified_split(y, DIGITS_TEST_FRACTION, DIGITS_VAL_FRACTION, split_seed)  # cached per machine
    train_idx, val_idx, test_idx = split["train"], split["val"], split["test"]
    xt = torch.from_numpy(x).unsqueeze(1)
    yt = torch.from_numpy(y)
    train_x, val_x, test_x = _standardise(xt[train_idx], xt[val_idx], xt[test_idx])
    # A mirrored digit is not the same digit: no flips; 1 px of padding suits 8×8 images.
    return Splits(
        "digits", train_x, yt[train_idx], val_x, yt[val_idx], test_x, yt[test_idx], 10, crop_padding=1, flip=False
    )


def _load_synthetic(path: str | None, download: bool, split_seed: int) -> Splits:
    g = torch.Generator().manual_seed(split_seed)
    parts = []
    for n in SYNTHETIC_SIZES:
        parts.append(torch.randn(n, 3, 32, 32, generator=g))
        parts.append(torch.randint(0, 10, (n,), generator=g))
    return Splits("synthetic", *parts, num_classes=10, crop_padding=4, flip=True)


# ---- the on-device data path ---------------------------------------------------------------------


def shuffled_batches(n: int, batch_size: int, generator: torch.Generator, drop_last: bool = True) -> list[torch.Tensor]:
    """One epoch's batches of indices from a seeded permutation (CPU int64 tensors).

    ``drop_last`` drops the short last batch (its images come round in another epoch's
    permutation); it keeps BatchNorm away from tiny batches and every step the same size.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if batch_size > n:
        raise ValueError(f"batch_size {batch_size} is larger than the {n} samples to draw from")
    perm = torch.randperm(n, generator=generator)
    stop = n - n % batch_size if drop_last else n
    return list(perm[:stop].split(batch_size))


def crop_flip(x: torch.Tensor, padding: int, flip: bool, generator: torch.Generator) -> torch.Tensor:
    """Random crop of every image after ``padding`` px of zero padding, plus a random horizontal flip.

    Batched on ``x``'s device with one gather; the random offsets come from the CPU
    ``generator`` (so the stream is the same on every device).
    """
    n, c, h, w = x.shape
    dev = x.device
    if padding > 0:
        offsets = torch.randint(0, 2 * padding + 1, (n, 2), generator=generator).to(dev)
        padded = torch.nn.functional.pad(x, (padding, padding, padding, padding))
        rows = (offsets[:, 0:1] + torch.arange(h, device=dev)).view(n, 1, h, 1)
        cols = (offsets[:, 1:2] + torch.arange(w, device=dev)).view(n, 1, 1, w)
        x = padded[
            torch.arange(n, device=dev).view(n, 1, 1, 1), torch.arange(c, device=dev).view(1, c, 1, 1), rows, cols
        ]
    if flip:
        mask = (torch.rand(n, generator=generator) < 0.5).to(dev).view(n, 1, 1, 1)
        x = torch.where(mask, x.flip(-1), x)
    return x


def eval_batches(
    x: torch.Tensor, y: torch.Tensor, batch_size: int = 1024
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    for i in range(0, len(y), batch_size):
        yield x[i : i + batch_size], y[i : i + batch_size]


def warm_start_batches(
    splits: Splits, batch_size: int, seed: int, device: torch.device | str | None = None
) -> Callable[[int], tuple[tuple[torch.Tensor, torch.Tensor, AugDraws], tuple[torch.Tensor, torch.Tensor]]]:
    """A batch source for :func:`ohgw.warmstart.warm_start`: hyper-step → (train batch, val batch).

    The train batch is ``(x, y, draws)``: ``batch_size`` training images with the
    dataset's crop/flip applied, and fixed magnitude-augment draws for the train loss
    to apply at the (differentiable) magnitude. The val batch ``(x, y)`` is clean and
    comes from the validation split. Batches come from their own generator seeded
    with ``seed + WARM_START_SEED_OFFSET``, so the trial's data-order stream is the
    same with and without a warm-start (the paired design); each hyper-step gets a
    fresh pair, and asking for a step again returns the same pair.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    dev = torch.device(device) if device is not None else splits.train_x.device
    data = splits.to(dev)
    gen = torch.Generator().manual_seed(int(seed) + WARM_START_SEED_OFFSET)
    n_train = min(batch_size, len(data.train_y))
    n_val = min(batch_size, len(data.val_y))
    made: list = []

    def source(step: int):
        while len(made) <= step:
            ti = torch.randperm(len(data.train_y), generator=gen)[:n_train].to(dev)
            vi = torch.randperm(len(data.val_y), generator=gen)[:n_val].to(dev)
            x = crop_flip(data.train_x[ti], data.crop_padding, data.flip, gen)
            draws = sample_draws(n_train, generator=gen, device=dev)
            made.append(((x, data.train_y[ti], draws), (data.val_x[vi], data.val_y[vi])))
        return made[step]

    return source
