"""Training throughput of ResNet-20, one speed-up at a time: data path, memory format, precision.

What it measures: training images per second (wall) and per CPU-second of this
process, for the same ResNet-20 (same seed, width, batch size, SGD with Nesterov
momentum, label-smoothed loss, magnitude augmentation at the trainable's default
magnitude), the same number of warm-up and timed steps, on each data set. The
variants form a chain in which each link changes exactly one thing:

==================  ==========================================================  ======  =====
variant             data path                                                   format  dtype
==================  ==========================================================  ======  =====
``loader``          ``DataLoader`` (shuffle, ``drop_last``) over a               NCHW    fp32
                    ``TensorDataset`` of the standardised images; per sample:
                    torchvision ``RandomCrop(padding)``, ``RandomHorizontalFlip``
                    (where the data set allows it) and ``magnitude_augment`` on a
                    batch of one; default collate
``loader+batchaug`` the same, but ``magnitude_augment`` runs once per batch         NCHW    fp32
                    after collation (only where the magnitude op runs differs)
``device``          ours: the split is one resident tensor, a batch is an index  NCHW    fp32
                    into it (``shuffled_batches``), then batched ``crop_flip``
                    and ``magnitude_augment``
``device+cl``       ``device`` with model and input in channels_last            NHWC    fp32
``device+cl+bf16``  ``device+cl`` with the forward under bf16 autocast           NHWC    bf16
==================  ==========================================================  ======  =====

The ratios printed are (a1) loader+batchaug / loader, (a2) device / loader+batchaug,
(a) device / loader (the whole data path), (b) device+cl / device, (c)
device+cl+bf16 / device+cl, and all / loader. A sixth row, ``trainable``, times
:meth:`trainables.classification.ClassificationRun.train_pass` itself at its
default for the device (CPU: channels_last, fp32; CUDA: channels_last, bf16) as a
check that the hand-written loop matches the real trainable (its ratio to the
matching loop variant is printed too). bf16 is the trainable's default on CUDA
only; on the CPU it is opt-in (``precision="bf16"``), and it is measured here anyway.

How: every measurement builds a fresh model and optimizer from the same seed, runs
``--warmup`` untimed steps, then times ``--steps`` steps. Steps never synchronise:
the loss is accumulated on the device and read once, and CUDA is synchronised once,
at the end of the timed window, on every variant alike. Variants are interleaved:
each of the ``--repeats`` rounds runs every variant once, in an order rotated by one
per round, so drifting load from other processes hits all of them. Printed: the
median images/s over the rounds, and for each ratio the median of the per-round
(paired) ratios with their min–max. CPU-seconds are this process's (all threads);
they are steadier than wall seconds on a shared machine and fair only with
``--workers 0`` (the default); on CUDA read the wall columns.

    python benchmarks/trainable_throughput.py --quick             # digits + synthetic 32x32, <= 2 min
    python benchmarks/trainable_throughput.py --steps 40 --repeats 5 --threads 1
    python benchmarks/trainable_throughput.py --device cuda --steps 100
    python benchmarks/trainable_throughput.py --datasets cifar10 --data-dir ~/data
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator

import torch
from _machine import cpu_model, load_line, run_header
from torch.utils.data import DataLoader, Dataset, TensorDataset
from torchvision import transforms

from trainables.augment import magnitude_augment, sample_draws
from trainables.classification import ClassificationRun, resolve_config
from trainables.classification.data import Splits, crop_flip, load_dataset, shuffled_batches
from trainables.classification.losses import smoothed_cross_entropy
from trainables.classification.run import resolve_device
from trainables.nets import resnet20

# name -> (data path, channels_last, bf16)
VARIANTS: dict[str, tuple[str, bool, bool]] = {
    "loader": ("loader", False, False),
    "loader+batchaug": ("loader+batchaug", False, False),
    "device": ("device", False, False),
    "device+cl": ("device", True, False),
    "device+cl+bf16": ("device", True, True),
}
TRAINABLE = "trainable"
# (label, faster variant, slower variant): each changes one thing, except "(a)" and "all"
RATIOS = (
    ("(a1) magnitude aug per batch, not per sample", "loader+batchaug", "loader"),
    ("(a2) resident tensor + batched crop/flip vs DataLoader", "device", "loader+batchaug"),
    ("(a)  whole data path: device / loader", "device", "loader"),
    ("(b)  channels_last / NCHW (device, fp32)", "device+cl", "device"),
    ("(c)  bf16 autocast / fp32 (device, channels_last)", "device+cl+bf16", "device+cl"),
    ("all: device+cl+bf16 / loader", "device+cl+bf16", "loader"),
)


# ---- header -------------------------------------------------------------------------------------------


def header(device: torch.device) -> str:
    gpu = f", GPU {torch.cuda.get_device_name(device)}" if device.type == "cuda" else ""
    return (
        f"torch {torch.__version__}, {torch.get_num_threads()} torch threads, CPU {cpu_model()} "
        f"({os.cpu_count()} CPUs){gpu}, device {device}\n{load_line('at start')}"
    )


# ---- the two data paths -------------------------------------------------------------------------------


class PerSample(Dataset):
    """A ``TensorDataset`` with per-image transforms applied in ``__getitem__`` (the torchvision recipe)."""

    def __init__(self, base: TensorDataset, d: Splits, magnitude: float | None, seed: int) -> None:
        _, h, w = d.image_shape
        self.base = base
        self.crop = transforms.RandomCrop((h, w), padding=d.crop_padding)  # zero padding, as crop_flip
        self.flip = transforms.RandomHorizontalFlip() if d.flip else None
        self.magnitude = magnitude
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int):
        x, y = self.base[i]
        x = self.crop(x)
        if self.flip is not None:
            x = self.flip(x)
        if self.magnitude:  # the same function as the batched path, on a batch of one
            x = magnitude_augment(x.unsqueeze(0), self.magnitude, sample_draws(1, generator=self.generator))[0]
        return x, y


def loader_batches(
    d: Splits, bs: int, magnitude: float, per_sample_aug: bool, workers: int, device: torch.device, seed: int
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Endless batches from a DataLoader: per-sample crop/flip (+ magnitude aug if ``per_sample_aug``)."""
    cpu = d.to("cpu")
    ds = PerSample(TensorDataset(cpu.train_x, cpu.train_y), d, magnitude if per_sample_aug else None, seed)
    g = torch.Generator().manual_seed(seed)
    loader = DataLoader(
        ds,
        batch_size=bs,
        shuffle=True,
        drop_last=True,
        num_workers=workers,
        generator=g,
        pin_memory=device.type == "cuda",
    )
    while True:
        for x, y in loader:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            if not per_sample_aug and magnitude > 0:
                x = magnitude_augment(x, magnitude, sample_draws(len(x), generator=g, device=device))
            yield x, y


def device_batches(
    d: Splits, bs: int, magnitude: float, device: torch.device, seed: int
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Endless batches the trainable's way: index into the resident split, batched crop/flip + magnitude aug."""
    d = d.to(device)
    g = torch.Generator().manual_seed(seed)
    while True:
        for idx in shuffled_batches(len(d.train_y), bs, g):
            idx = idx.to(device)
            x = crop_flip(d.train_x[idx], d.crop_padding, d.flip, g)
            if magnitude > 0:
                x = magnitude_augment(x, magnitude, sample_draws(len(x), generator=g, device=device))
            yield x, d.train_y[idx]


# ---- timing -------------------------------------------------------------------------------------------


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _window(device: torch.device, body: Callable[[], int]) -> tuple[float, float, int]:
    """(wall s, CPU s, images) of ``body``; CUDA is synchronised before and after, never inside."""
    _sync(device)
    t0, c0 = time.perf_counter(), time.process_time()
    n = body()
    _sync(device)
    return time.perf_counter() - t0, time.process_time() - c0, n


def time_loop(variant: str, d: Splits, cfg: dict, args, device: torch.device) -> tuple[float, float, int]:
    path, channels_last, bf16 = VARIANTS[variant]
    bs, m, seed = cfg["batch_size"], cfg["aug_magnitude"], cfg["seed"]
    if path == "device":
        batches = device_batches(d, bs, m, device, seed)
    else:
        batches = loader_batches(d, bs, m, path == "loader", args.workers, device, seed)
    torch.manual_seed(seed)
    model = resnet20(d.num_classes, d.in_channels, cfg["width"]).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    model.train()
    opt = torch.optim.SGD(
        model.parameters(), lr=cfg["lr"], momentum=cfg["momentum"], weight_decay=cfg["wd"], nesterov=True
    )
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)

    def steps(k: int) -> int:
        seen = 0
        for _ in range(k):
            x, y = next(batches)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                logits = model(x)
            loss = smoothed_cross_entropy(logits, y, cfg["label_smoothing"])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum.add_(loss.detach().double())  # no sync per step
            seen += len(y)
        float(loss_sum)  # the one read of the loss: forces the window's work to finish
        return seen

    steps(args.warmup)
    return _window(device, lambda: steps(args.steps))


def time_trainable(dataset: str, args, device: torch.device) -> tuple[float, float, int]:
    """ClassificationRun.train_pass at its device default (one loss read per call, i.e. per epoch)."""
    cfg = {
        "dataset": dataset,
        "batch_size": args.batch_size,
        "device": str(device),
        "seed": 0,
        "channels_last": True,
        "precision": "auto",
    }
    if dataset == "cifar10":
        cfg["data_dir"] = args.data_dir
    run = ClassificationRun(cfg, num_threads=args.threads)

    def passes(k: int) -> int:
        seen = 0
        while seen < k * args.batch_size:
            seen += run.train_pass(max_batches=k - seen // args.batch_size)[1]
        return seen

    passes(args.warmup)
    return _window(device, lambda: passes(args.steps))


def measure(dataset: str, args, device: torch.device) -> dict:
    base = {"dataset": dataset, "batch_size": args.batch_size, "device": str(device), "seed": 0}
    if dataset == "cifar10":
        base["data_dir"] = args.data_dir
    cfg = resolve_config(base)  # the trainable's defaults: lr, wd, momentum, magnitude, smoothing, width
    d = load_dataset(dataset, cfg["data_dir"], False, cfg["split_seed"])
    if args.batch_size > len(d.train_y):
        raise ValueError(f"batch size {args.batch_size} is larger than {dataset}'s {len(d.train_y)} train images")
    names = list(VARIANTS) + [TRAINABLE]
    if args.no_bf16:
        names.remove("device+cl+bf16")
    rates: dict[str, list[tuple[float, float]]] = {n: [] for n in names}
    for r in range(args.repeats):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            if name == TRAINABLE:
                wall, cpu, n = time_trainable(dataset, args, device)
            else:
                wall, cpu, n = time_loop(name, d, cfg, args, device)
            rates[name].append((n / wall, n / cpu))
    return {"dataset": dataset, "shape": d.image_shape, "n_train": len(d.train_y), "rates": rates}


def _paired(rates: dict, a: str, b: str, col: int) -> tuple[float, float, float]:
    rs = [x[col] / y[col] for x, y in zip(rates[a], rates[b])]
    return statistics.median(rs), min(rs), max(rs)


def report(row: dict, device: torch.device) -> None:
    rates = row["rates"]
    c, h, w = row["shape"]
    print(f"\n{row['dataset']} ({c}x{h}x{w}, {row['n_train']} train images)")
    print(f"  {'variant':<17} {'img/s':>8} {'img/CPU-s':>10}   (medians of {len(rates['loader'])} rounds)")
    for name, rs in rates.items():
        print(f"  {name:<17} {statistics.median(x for x, _ in rs):>8.0f} {statistics.median(x for _, x in rs):>10.0f}")
    print(f"  {'ratio (median of paired rounds, [min-max])':<56} {'wall':>18} {'CPU-time':>18}")
    matching = "device+cl+bf16" if device.type == "cuda" else "device+cl"
    ratios = [*RATIOS, ("check: trainable / " + matching + " (expect ~1)", TRAINABLE, matching)]
    for label, a, b in ratios:
        if a not in rates or b not in rates:
            continue
        cells = []
        for col in (0, 1):
            med, lo, hi = _paired(rates, a, b, col)
            cells.append(f"{med:5.2f} [{lo:4.2f}-{hi:4.2f}]")
        print(f"  {label:<56} {cells[0]:>18} {cells[1]:>18}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--datasets", default="digits,synthetic", help="comma-separated: digits, synthetic, cifar10")
    p.add_argument("--data-dir", default=None, help="cifar10: the folder that holds cifar-10-batches-py")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--steps", type=int, default=None, help="timed steps per measurement (default 20 CPU, 100 CUDA)")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps before each measurement")
    p.add_argument("--repeats", type=int, default=5, help="interleaved rounds (medians over these)")
    p.add_argument("--quick", action="store_true", help="6 steps, 3 rounds (<= 2 min on 2 CPU cores)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's, all cores)")
    p.add_argument("--workers", type=int, default=0, help="DataLoader workers of the loader variants")
    p.add_argument("--no-bf16", action="store_true", help="skip the bf16 variant (CPUs without bf16 support)")
    args = p.parse_args(argv)
    if args.quick:
        args.steps = args.steps or 6
        args.repeats = 3
    for name in ("batch_size", "repeats"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.steps is not None and args.steps < 1:
        p.error("--steps must be >= 1")
    if args.warmup < 0 or args.workers < 0:
        p.error("--warmup and --workers must be >= 0")
    if args.threads is not None:
        if args.threads < 1:
            p.error("--threads must be >= 1")
        torch.set_num_threads(args.threads)
    datasets = [s.strip() for s in args.datasets.split(",") if s.strip()]
    try:
        dev = resolve_device(args.device)
        if args.steps is None:
            args.steps = 100 if dev.type == "cuda" else 20
        print(run_header(__file__, argv))
        print(header(dev))
        print(
            f"batch {args.batch_size}, {args.warmup} warm-up + {args.steps} timed steps per measurement, "
            f"{args.repeats} interleaved rounds, DataLoader workers {args.workers}; sync: once at the end "
            "of each timed window (no per-step sync on any variant)"
        )
        t0 = time.perf_counter()
        for dataset in datasets:
            report(measure(dataset, args, dev), dev)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"\n{load_line('at end')}; total {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
