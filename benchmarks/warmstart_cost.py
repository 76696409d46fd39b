"""What one OHGW warm-start costs in the real trainable: × one training step, and as a share of an epoch.

What it measures, all through :class:`trainables.classification.ClassificationRun` on
the ``synthetic`` data set (3×32×32, CIFAR-shaped, 4,096 train images), batch 128, at
the trainable's defaults for the device (CPU: channels_last, fp32; CUDA: channels_last,
bf16 autocast for training, fp32 for the warm-start):

- ``step``: :meth:`~ClassificationRun.train_pass` over ``--steps`` consecutive steps
  (crop/flip, magnitude augmentation, forward, backward, SGD with Nesterov), divided
  by the steps: the cost of one training step;
- ``eval``: :meth:`~ClassificationRun.evaluate` on the split's 1,024 val + test
  images, divided by the images;
- ``lr+wd k=1``, ``all five k=1`` (log-lr, log-wd, momentum, augment magnitude, label
  smoothing: the study's setting), ``all five k=2`` (two lookahead steps):
  :meth:`~ClassificationRun.warm_start` of a fresh run whose config carries the
  warm-start instruction, i.e. building the hyper-gradient problem and the batch pair
  plus one hyper-gradient and one ψ step, exactly what a trial pays.

Two epochs are reported, both *scaled from the measured steps, with the factor printed*:

- a 50,000-image train epoch: 390 steps (50,000 // 128; the trainable drops the short
  last batch); a window of ``--steps`` steps is timed and scaled by 390 / steps
  (``--steps 390``, the default without ``--quick``, times a whole epoch's worth of
  steps; the 4,096-image split is then cycled, and a separate line times the batch
  gather from a real 50,000×3×32×32 tensor against the 4,096-image one, to show the
  split's size does not change a step's cost);
- the trainable's CIFAR-10 epoch, the denominator of its ``ohgw/share_of_epoch``:
  351 train steps (45,000 train images after the 5,000-image validation split) plus
  evaluation of 5,000 val + 10,000 test images (eval per image × 15,000).

How: compute seconds as the trainable charges them (:class:`ohgw.cost.Stopwatch`: this
process's CPU seconds on CPU, synchronised wall seconds on CUDA) and wall seconds,
synchronised once at the end of each timed call. One untimed warm-up of every item
first (2 steps for ``step``); then ``--repeats`` rounds, each timing every item once in an order rotated per
round (interleaved, so load changes on a shared machine hit all of them). Printed:
medians over the rounds; × step and epoch shares are medians of the per-round (paired)
ratios. Peak RSS: each item runs once more (``step``: 2 steps) in its own fresh
subprocess, started through a small launcher process so that it does not inherit this
process's high-water mark, which reports its ``ru_maxrss`` (``tracemalloc`` does not see
torch tensors) and the growth over its peak right after building the run.

    python benchmarks/warmstart_cost.py --quick          # 20 steps x 3 rounds, <= 3 min on 2 cores
    python benchmarks/warmstart_cost.py                  # 390 steps x 3 rounds
    python benchmarks/warmstart_cost.py --device cuda --repeats 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import torch
from _machine import cpu_model, load_line, run_header

from ohgw.cost import Stopwatch, peak_rss_mib
from ohgw.space import SearchSpace
from ohgw.warmstart import WarmStartSettings, make_instruction
from trainables.classification import ClassificationRun
from trainables.classification.data import crop_flip, load_dataset, shuffled_batches
from trainables.classification.run import resolve_device

BATCH = 128
EPOCH_50K_STEPS = 50_000 // BATCH  # 390
CIFAR_TRAIN_STEPS = 45_000 // BATCH  # 351: the trainable's CIFAR-10 train split
CIFAR_EVAL_IMAGES = 5_000 + 10_000  # val + test, evaluated every epoch
WARM_STARTS = {  # name -> (ψ, lookahead k)
    "lr+wd k=1": (("lr", "wd"), 1),
    "all five k=1": (None, 1),
    "all five k=2": (None, 2),
}
ITEMS = ("step", "eval", *WARM_STARTS)
WARMUP_STEPS = 2
LAUNCHER = "import subprocess, sys; sys.exit(subprocess.run(sys.argv[1:]).returncode)"


# ---- header -------------------------------------------------------------------------------------------


def header(device: torch.device) -> str:
    gpu = f", GPU {torch.cuda.get_device_name(device)}" if device.type == "cuda" else ""
    return (
        f"torch {torch.__version__}, {torch.get_num_threads()} torch threads, CPU {cpu_model()} "
        f"({os.cpu_count()} CPUs){gpu}, device {device}\n{load_line('at start')}"
    )


# ---- the items ------------------------------------------------------------------------------------------


def _config(device: str, ws: str | None = None) -> dict:
    cfg = {"dataset": "synthetic", "batch_size": BATCH, "device": device, "seed": 0}
    if ws is not None:
        names, k = WARM_STARTS[ws]
        full = SearchSpace.default()
        space = full if names is None else SearchSpace([full[n] for n in names])
        cfg["ohgw"] = make_instruction(space, WarmStartSettings(lookahead=k, batch_size=BATCH))
    return cfg


def _steps(run: ClassificationRun, k: int) -> int:
    """k training steps (the synthetic split has 32 per pass, so passes repeat); returns images."""
    seen = 0
    while seen < k * BATCH:
        seen += run.train_pass(max_batches=k - seen // BATCH)[1]
    return seen


def _timed(device: torch.device, fn) -> tuple[float, float]:
    with Stopwatch(device) as sw:
        fn()
    return sw.cost.wall_s, sw.cost.compute_s


class Items:
    """Runs each item once (timed); the training run persists, each warm-start gets a fresh run."""

    def __init__(self, device: str, threads: int | None, steps: int) -> None:
        self.device_name, self.threads, self.steps = device, threads, steps
        self.train = ClassificationRun(_config(device), num_threads=threads)
        self.device = resolve_device(device)
        d = load_dataset("synthetic").to(self.device)
        self.eval_x, self.eval_y = torch.cat([d.val_x, d.test_x]), torch.cat([d.val_y, d.test_y])

    def run(self, item: str, warmup: bool = False) -> tuple[float, float]:
        if item == "step":
            k = WARMUP_STEPS if warmup else self.steps
            return _timed(self.device, lambda: _steps(self.train, k))
        if item == "eval":
            return _timed(self.device, lambda: self.train.evaluate(self.eval_x, self.eval_y))
        run = ClassificationRun(_config(self.device_name, item), num_threads=self.threads)  # not timed
        return _timed(self.device, run.warm_start)


def gather_check(device: torch.device, rounds: int, batches: int = 30) -> tuple[float, float]:
    """Median seconds per batch of index + crop_flip from a 50,000- vs a 4,096-image resident tensor."""
    g = torch.Generator().manual_seed(0)
    big = torch.randn(50_000, 3, 32, 32, generator=g).to(device)
    small = big[:4096].clone()
    out: dict[int, list[float]] = {50_000: [], 4096: []}
    for _ in range(rounds):
        for x in (big, small):
            idx = shuffled_batches(len(x), BATCH, g)[:batches]
            with Stopwatch(device) as sw:
                for i in idx:
                    crop_flip(x[i.to(device)], 4, True, g)
            out[len(x)].append(sw.cost.compute_s / len(idx))
    return statistics.median(out[50_000]), statistics.median(out[4096])


# ---- peak RSS in a fresh process ----------------------------------------------------------------------


def _child(item: str, device: str, threads: int | None) -> dict:
    cfg = _config(device, item if item in WARM_STARTS else None)
    run = ClassificationRun(cfg, num_threads=threads)
    rss0 = peak_rss_mib()
    if item == "step":
        _steps(run, 2)
    elif item == "eval":
        d = load_dataset("synthetic").to(resolve_device(device))
        run.evaluate(torch.cat([d.val_x, d.test_x]), torch.cat([d.val_y, d.test_y]))
    else:
        run.warm_start()
    return {"item": item, "peak_rss_mib": peak_rss_mib(), "growth_mib": peak_rss_mib() - rss0}


def rss_in_subprocess(item: str, device: str, threads: int | None) -> dict:
    # Through a small launcher: a child forked straight from this (large) process would inherit its
    # ru_maxrss high-water mark across exec; the launcher's own child starts from the launcher's small one.
    cmd = [
        sys.executable,
        "-c",
        LAUNCHER,
        sys.executable,
        os.path.abspath(__file__),
        "--child",
        item,
        "--device",
        device,
    ]
    if threads is not None:
        cmd += ["--threads", str(threads)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


# ---- main ---------------------------------------------------------------------------------------------


def _med_ratio(num: list[float], den: list[float], scale: float = 1.0) -> float:
    return statistics.median(a / (b * scale) for a, b in zip(num, den))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=None, help=f"timed steps per round (default {EPOCH_50K_STEPS})")
    p.add_argument("--repeats", type=int, default=3, help="interleaved rounds (medians over these)")
    p.add_argument("--quick", action="store_true", help="20 steps per round, 3 rounds (<= 3 min on 2 CPU cores)")
    p.add_argument("--device", default="cpu", help="cpu | cuda | auto")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's, all cores)")
    p.add_argument("--no-rss", action="store_true", help="skip the peak-RSS subprocesses")
    p.add_argument("--child", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.threads is not None:
        if a.threads < 1:
            p.error("--threads must be >= 1")
        torch.set_num_threads(a.threads)
    try:
        device = resolve_device(a.device)
    except ValueError as e:  # e.g. --device cuda without CUDA: one line
        print(f"warmstart_cost.py: error: {e}", file=sys.stderr)
        return 2
    if a.child:
        print(json.dumps(_child(a.child, str(device), a.threads)))
        return 0
    if a.quick:
        a.steps, a.repeats = a.steps or 20, 3
    a.steps = a.steps or EPOCH_50K_STEPS
    if a.steps < 1 or a.repeats < 1:
        p.error("--steps and --repeats must be >= 1")

    print(run_header(__file__, argv))
    print(header(device))
    t_start = time.perf_counter()
    items = Items(str(device), a.threads, a.steps)
    for item in ITEMS:  # untimed warm-up of every item
        items.run(item, warmup=True)
    wall: dict[str, list[float]] = {i: [] for i in ITEMS}
    comp: dict[str, list[float]] = {i: [] for i in ITEMS}
    for r in range(a.repeats):
        for item in ITEMS[r % len(ITEMS) :] + ITEMS[: r % len(ITEMS)]:
            w, c = items.run(item)
            wall[item].append(w)
            comp[item].append(c)
    # per round: one step, one eval image, and the two epochs
    n_eval = len(items.eval_y)
    step_w = [w / a.steps for w in wall["step"]]
    step_c = [c / a.steps for c in comp["step"]]
    img_w = [w / n_eval for w in wall["eval"]]
    img_c = [c / n_eval for c in comp["eval"]]
    ep50_c = [s * EPOCH_50K_STEPS for s in step_c]
    cifar_c = [s * CIFAR_TRAIN_STEPS + i * CIFAR_EVAL_IMAGES for s, i in zip(step_c, img_c)]
    cifar_w = [s * CIFAR_TRAIN_STEPS + i * CIFAR_EVAL_IMAGES for s, i in zip(step_w, img_w)]
    gather = gather_check(device, a.repeats)
    rss = {} if a.no_rss else {i: rss_in_subprocess(i, str(device), a.threads) for i in ITEMS}

    mode = "CPU-s of this process" if device.type == "cpu" else "synced wall s"
    print(
        f"ResNet-20 (trainable defaults), batch {BATCH}, 3x32x32 synthetic data, {a.repeats} interleaved rounds "
        f"after one warm-up; compute = {mode}; medians over rounds\n"
        f"step: measured {a.steps} consecutive steps per round; the 50,000-image epoch is "
        f"{EPOCH_50K_STEPS} steps, so scaled by {EPOCH_50K_STEPS}/{a.steps} = {EPOCH_50K_STEPS / a.steps:.2f}\n"
        f"eval: measured {n_eval} images per round; the trainable's CIFAR-10 epoch = {CIFAR_TRAIN_STEPS} steps "
        f"+ eval of {CIFAR_EVAL_IMAGES} images, so eval scaled by {CIFAR_EVAL_IMAGES}/{n_eval} = "
        f"{CIFAR_EVAL_IMAGES / n_eval:.2f}"
    )
    print(
        f"one step: {statistics.median(step_c) * 1e3:.1f} ms compute, {statistics.median(step_w) * 1e3:.1f} ms wall;"
        f" eval: {statistics.median(img_c) * 1e6:.0f} µs/image compute\n"
        f"50,000-image train epoch ({EPOCH_50K_STEPS} steps): {statistics.median(ep50_c):.1f} s compute; "
        f"trainable CIFAR-10 epoch: {statistics.median(cifar_c):.1f} s compute, {statistics.median(cifar_w):.1f} s wall"
    )
    print(
        f"batch gather + crop_flip from a 50,000-image vs a 4,096-image tensor: {gather[0] * 1e3:.2f} vs "
        f"{gather[1] * 1e3:.2f} ms compute per batch ({a.repeats} rounds, medians)"
    )
    print(
        f"\n{'item':<13} {'compute s':>9} {'wall s':>8} {'x step':>7} {'x step':>7} {'% 50k ep':>9} "
        f"{'% CIFAR ep':>10} {'% CIFAR ep':>10} {'peak RSS':>9} {'vs step':>8}\n"
        f"{'':<13} {'':>9} {'':>8} {'compute':>7} {'wall':>7} {'compute':>9} {'compute':>10} {'wall':>10} "
        f"{'MiB':>9} {'MiB':>8}"
    )
    for item in WARM_STARTS:
        c, w = comp[item], wall[item]
        line = (
            f"{item:<13} {statistics.median(c):>9.3f} {statistics.median(w):>8.3f} "
            f"{_med_ratio(c, step_c):>7.2f} {_med_ratio(w, step_w):>7.2f} "
            f"{100 * _med_ratio(c, ep50_c):>8.2f}% {100 * _med_ratio(c, cifar_c):>9.2f}% "
            f"{100 * _med_ratio(w, cifar_w):>9.2f}%"
        )
        if rss:
            line += (
                f" {rss[item]['peak_rss_mib']:>9.0f} {rss[item]['peak_rss_mib'] - rss['step']['peak_rss_mib']:>+8.0f}"
            )
        print(line)
    if rss:
        print("peak RSS of the fresh subprocess per item (MiB), and its growth over the run's construction:")
        print("  " + ", ".join(f"{i}: {v['peak_rss_mib']:.0f} (+{v['growth_mib']:.0f})" for i, v in rss.items()))
    print(f"{load_line('at end')}; total {time.perf_counter() - t_start:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
