"""Training throughput: our on-device data path vs a naive torchvision DataLoader loop, side by side.

Both sides train the same ResNet-20 (same seed, same batch size, same SGD, the same
label-smoothed loss and the same batched magnitude augmentation); they differ only
in how batches are made:

- ours: :meth:`trainables.classification.ClassificationRun.train_pass`: the whole
  split is a tensor on the device, a batch is an index into it, crop/flip run batched
  on the device, channels_last (``--channels-last``), and bf16 autocast on CUDA
  (``--precision``; on the CPU, fp32 unless asked);
- naive: the textbook pipeline: a ``Dataset`` of uint8 images, per-sample
  torchvision transforms (PIL ``RandomCrop(padding)``, ``RandomHorizontalFlip`` where
  the dataset allows it, ``ToTensor``, ``Normalize``), ``DataLoader(shuffle=True)``
  collating per batch, float32 model.

Each measurement is repeated (ours and naive alternate, so load changes on a shared
machine hit both) and the median images/s is printed with the ratio, both per wall
second and per CPU second of this process (the CPU-time figures are steady on a
shared machine, and fair only with ``--workers 0``, the default; on CUDA read the
wall columns), e.g.::

    python benchmarks/trainable_throughput.py                     # digits + synthetic on CPU
    python benchmarks/trainable_throughput.py --device cuda --batches 50
    python benchmarks/trainable_throughput.py --datasets cifar10 --data-dir ~/data

Goals (issue 3): ratio >= 1.5 on CPU (digits, 32×32 synthetic), >= 3 on GPU.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from trainables.classification import ClassificationRun, resolve_device
from trainables.classification.augment import magnitude_augment, sample_draws
from trainables.classification.losses import smoothed_cross_entropy
from trainables.classification.models import resnet20


class UInt8Images(Dataset):
    """Images as uint8 HWC arrays with per-sample PIL transforms: the usual torchvision recipe."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, transform) -> None:
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        img = self.images[i]
        pil = Image.fromarray(img[:, :, 0] if img.shape[2] == 1 else img)
        return self.transform(pil), int(self.labels[i])


def _as_uint8(x: torch.Tensor) -> np.ndarray:
    """Standardised (N, C, H, W) float images back to uint8 HWC (min-max per dataset)."""
    lo, hi = float(x.min()), float(x.max())
    u8 = ((x - lo) / (hi - lo) * 255).round().clamp(0, 255).to(torch.uint8)
    return u8.permute(0, 2, 3, 1).contiguous().numpy()


def naive_loop(run: ClassificationRun, n_batches: int, workers: int) -> tuple[float, float, int]:
    """Train ``n_batches`` through a torchvision DataLoader; returns (wall s, CPU s, images)."""
    d, cfg, device = run.data, run.config, run.device
    images = _as_uint8(d.train_x.cpu())
    c, h, w = d.image_shape
    steps = [transforms.RandomCrop((h, w), padding=d.crop_padding)]
    if d.flip:
        steps.append(transforms.RandomHorizontalFlip())
    mean = images.reshape(-1, c).mean(0) / 255
    std = images.reshape(-1, c).std(0) / 255
    steps += [transforms.ToTensor(), transforms.Normalize(mean.tolist(), std.tolist())]
    ds = UInt8Images(images, d.train_y.cpu().numpy(), transforms.Compose(steps))
    g = torch.Generator().manual_seed(cfg["seed"])
    loader = DataLoader(
        ds, batch_size=cfg["batch_size"], shuffle=True, drop_last=True, num_workers=workers, generator=g
    )
    torch.manual_seed(cfg["seed"])
    model = resnet20(d.num_classes, d.in_channels, cfg["width"]).to(device)
    nesterov = cfg["nesterov"] and cfg["momentum"] > 0
    opt = torch.optim.SGD(
        model.parameters(), lr=cfg["lr"], momentum=cfg["momentum"], weight_decay=cfg["wd"], nesterov=nesterov
    )
    model.train()
    seen, t0 = 0, None
    done = 0
    while done < n_batches + 1:
        for x, y in loader:
            if done == 1:  # the first batch warms up allocators and caches; it is not timed
                _sync(device)
                t0, c0 = time.perf_counter(), time.process_time()
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            x = magnitude_augment(x, cfg["aug_magnitude"], sample_draws(len(x), generator=g, device=device))
            loss = smoothed_cross_entropy(model(x), y, cfg["label_smoothing"])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss.detach().item()
            if done >= 1:
                seen += len(y)
            done += 1
            if done >= n_batches + 1:
                break
    _sync(device)
    return time.perf_counter() - t0, time.process_time() - c0, seen


def ours_loop(run: ClassificationRun, n_batches: int) -> tuple[float, float, int]:
    run.train_pass(max_batches=1)  # warm-up, not timed
    _sync(run.device)
    t0, c0 = time.perf_counter(), time.process_time()
    seen = 0
    while seen < n_batches * run.config["batch_size"]:
        left = n_batches - seen // run.config["batch_size"]
        _, k = run.train_pass(max_batches=left)
        seen += k
    _sync(run.device)
    return time.perf_counter() - t0, time.process_time() - c0, seen


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(dataset: str, args) -> dict:
    cfg = {"dataset": dataset, "batch_size": args.batch_size, "device": args.device, "seed": 0, "max_t": 10}
    cfg.update(precision=args.precision, channels_last=args.channels_last == "on")
    if dataset == "cifar10":
        cfg["data_dir"] = args.data_dir
    ours, naive = [], []
    for _ in range(args.repeats):
        run = ClassificationRun(cfg, num_threads=args.threads)
        s, c, n = ours_loop(run, args.batches)
        ours.append((n / s, n / c))
        run = ClassificationRun(cfg, num_threads=args.threads)
        s, c, n = naive_loop(run, args.batches, args.workers)
        naive.append((n / s, n / c))
    o, v = statistics.median(w for w, _ in ours), statistics.median(w for w, _ in naive)
    oc, vc = statistics.median(c for _, c in ours), statistics.median(c for _, c in naive)
    return {
        "dataset": dataset,
        "ours": o,
        "naive": v,
        "ratio": o / v,
        "ours_cpu": oc,
        "naive_cpu": vc,
        "ratio_cpu": oc / vc,
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--datasets", default="digits,synthetic", help="comma-separated: digits, synthetic, cifar10")
    p.add_argument("--data-dir", default=None, help="cifar10: the folder that holds cifar-10-batches-py")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--batches", type=int, default=None, help="timed batches per measurement (default 16 CPU, 100 CUDA)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: all cores)")
    p.add_argument("--workers", type=int, default=0, help="DataLoader workers of the naive loop")
    p.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"), help="ours only (naive: fp32)")
    p.add_argument("--channels-last", default="on", choices=("on", "off"), help="ours only (naive: off)")
    args = p.parse_args(argv)
    for name in ("batch_size", "repeats"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.batches is not None and args.batches < 1:
        p.error("--batches must be >= 1")
    if args.workers < 0:
        p.error("--workers must be >= 0")
    datasets = [s.strip() for s in args.datasets.split(",") if s.strip()]
    try:
        dev = resolve_device(args.device)
        if args.batches is None:
            args.batches = 100 if dev.type == "cuda" else 16
        rows = [measure(d, args) for d in datasets]
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(
        f"device={dev} threads={torch.get_num_threads()} batch={args.batch_size} batches={args.batches} "
        f"repeats={args.repeats} workers={args.workers} ours: precision={args.precision} "
        f"channels_last={args.channels_last}"
    )
    print(
        f"{'dataset':<10} {'ours img/s':>11} {'naive img/s':>12} {'ratio':>6}   "
        f"{'ours img/CPU-s':>14} {'naive img/CPU-s':>15} {'ratio':>6}"
    )
    for r in rows:
        print(
            f"{r['dataset']:<10} {r['ours']:>11.0f} {r['naive']:>12.0f} {r['ratio']:>6.2f}   "
            f"{r['ours_cpu']:>14.0f} {r['naive_cpu']:>15.0f} {r['ratio_cpu']:>6.2f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
