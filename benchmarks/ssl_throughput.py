"""SSL trainable throughput vs a naive DataLoader loop; evaluation share of an epoch; frame-cache memory.

What it measures, in one run, on the embedded behaviour video (24 clips × 160 frames, 32×32 gray):

1. **Training frames/s** (frames through the online network per second of wall time, and per
   CPU-second of this process) of TW-BYOL steps, two variants with the *same* model
   (:class:`trainables.ssl.models.SSLNet`, same seed), the same precision (fp32) and memory format
   (NCHW), the same loss, optimizer, EMA update, batch size and augmentation parameters:

   - ``loader``: the naive path — a ``torch.utils.data.Dataset`` whose item is one view pair read from
     the PNG files (PIL decode of both frames), standardised and augmented per sample (the same
     crop / magnitude functions on a batch of one), collated by a ``DataLoader`` (shuffle,
     ``drop_last``, ``--workers`` processes, default 0);
   - ``trainable``: :meth:`trainables.ssl.run.SSLRun.train_pass` itself — frames resident as one uint8
     tensor, a batch is an index into it, pairs and augmentation batched on the device.

   Variants are interleaved over ``--repeats`` rounds (order rotated each round); printed: the median
   frames/s and the median of the per-round ratio trainable / loader with its min–max. Goal: ≥ 1.5× on the CPU.
2. **Evaluation share**, for each method: one full epoch of the trainable (the cpu preset's 25 steps
   of 64, and the default 40-step epoch) followed by its evaluation; the share is the evaluation's
   wall time over train + evaluation (the trainable's own ``eval_share``). Goal: ≤ 10 %. The
   evaluation embeds the same ~1,150 frames for every method, while a temporal SimCLR step costs
   about a quarter of a BYOL step, so its share is the largest.
3. **Frame cache memory per 1,000 frames**: bytes of the resident uint8 tensor / frames × 1,000, and
   the growth of this process's peak RSS (``ru_maxrss``) across loading, per 1,000 frames.

    python benchmarks/ssl_throughput.py                 # ≈ 2–4 min on 2 shared cores
    python benchmarks/ssl_throughput.py --steps 10 --repeats 3 --threads 1
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _machine import cpu_model, load_line, run_header  # noqa: E402


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class PairDataset(torch.utils.data.Dataset):
    """One (anchor, partner, Δt) pair per item, decoded from the PNG files and augmented per sample."""

    def __init__(self, run, strength: float, seed: int) -> None:
        self.run, self.s = run, strength
        d = run.data
        self.paths = [p for c in d.index.clips for p in c.frames]
        self.train = d.ids["train"]
        self.gen = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return len(self.train)

    def _load(self, f: int) -> torch.Tensor:
        from trainables.ssl.frames import decode
        from trainables.ssl.views import to_float

        x = torch.from_numpy(decode(self.paths[f], "L"))[None]
        return to_float(x, self.run.data.mean, self.run.data.std)

    def __getitem__(self, i):
        from trainables.ssl.views import apply_magnitude, augment, sample_pairs

        d, cfg = self.run.data, self.run.config
        a = self.train[i:i + 1]
        p, dt = sample_pairs(a, d.clip_start[a], d.clip_end[a], cfg["max_dt"], cfg["frame_step"], self.gen)
        views = []
        for f in (int(a[0]), int(p[0])):
            v, dr = augment(self._load(f), self.s, cfg["flip"], self.gen)
            views.append(apply_magnitude(v, self.s, dr)[0])
        return views[0], views[1], torch.tensor(float(dt[0]))


def loader_pass(run, loader, steps: int) -> int:
    """``steps`` TW-BYOL steps of ``run``'s model from a DataLoader; returns frames seen."""
    from trainables.ssl.losses import ema_momentum, ema_update, tw_byol_loss
    from trainables.ssl.run import cosine_lr

    net, opt, cfg, hp = run.net, run.optimizer, run.config, run.hp
    net.train()
    targets, onlines = net.target_pairs()
    seen, it = 0, iter(loader)
    loss_sum = torch.zeros((), dtype=torch.float64)
    for _ in range(steps):
        try:
            x1, x2, dt = next(it)
        except StopIteration:
            it = iter(loader)
            x1, x2, dt = next(it)
        for g in opt.param_groups:
            g["lr"] = cosine_lr(hp["lr"], run.step, run.total_steps)
        _, p1 = net(x1)
        _, p2 = net(x2)
        with torch.no_grad():
            t1, _ = net(x1, "target")
            t2, _ = net(x2, "target")
        loss = tw_byol_loss(p1, t2, p2, t1, dt, hp["tau"], cfg["weighting"], cfg["weight_norm"])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        ema_update(targets, onlines, ema_momentum(1 - hp["ema_gap"], run.step, run.total_steps, cfg["ema_schedule"]))
        run.step += 1
        loss_sum += loss.detach().double()
        seen += 2 * len(x1)
    float(loss_sum)
    return seen


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=15)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--cache-dir", default=None)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    from trainables.ssl import METHODS
    from trainables.ssl.run import SSLRun, clear_cache

    print(run_header(__file__, argv))
    print(f"ssl_throughput: torch {torch.__version__}, {args.threads} thread(s), CPU {cpu_model()}")
    print(load_line("at start"))
    base = {"method": "tw-byol", "batch_size": args.batch_size, "channels_last": False, "precision": "fp32",
            "cache_dir": args.cache_dir}
    # 3. cache memory (first, so the RSS growth is the load's)
    SSLRun({**base, "max_t": 1})  # writes the video if needed and imports everything
    clear_cache()
    rss0 = _rss_mib()
    run = SSLRun({**base, "max_t": 1})
    rss1 = _rss_mib()
    n = run.data.index.n_frames
    per_k = run.data.store.nbytes / n * 1000
    print(f"frame cache: {n} frames of {tuple(run.data.store.frames.shape[1:])} uint8 = "
          f"{run.data.store.nbytes / 2**20:.2f} MiB; {per_k / 1024:.1f} KiB per 1,000 frames (tensor bytes); "
          f"peak-RSS growth across a fresh load (decode + tensor): {(rss1 - rss0) * 1024 / n * 1000:.0f} KiB per "
          f"1,000 frames")
    # 1. throughput, interleaved
    rates: dict[str, list[float]] = {"loader": [], "trainable": []}
    cpu_rates: dict[str, list[float]] = {"loader": [], "trainable": []}
    ratios = []
    for rnd in range(args.repeats):
        order = ["loader", "trainable"] if rnd % 2 == 0 else ["trainable", "loader"]
        got = {}
        for v in order:
            r = SSLRun({**base, "max_t": 100})
            r.warm_start()
            if v == "loader":
                ds = PairDataset(r, r.hp["aug_strength"], seed=rnd)
                dl = torch.utils.data.DataLoader(ds, batch_size=args.batch_size, shuffle=True, drop_last=True,
                                                 num_workers=args.workers)
                loader_pass(r, dl, args.warmup)
                t0, c0 = time.perf_counter(), time.process_time()
                seen = loader_pass(r, dl, args.steps)
            else:
                r.train_pass(max_batches=args.warmup)
                t0, c0 = time.perf_counter(), time.process_time()
                _, seen = r.train_pass(max_batches=args.steps)
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            got[v] = seen / wall
            rates[v].append(seen / wall)
            cpu_rates[v].append(seen / cpu)
        ratios.append(got["trainable"] / got["loader"])
    for v in rates:
        print(f"{v:>10}: {statistics.median(rates[v]):8.0f} frames/s wall, {statistics.median(cpu_rates[v]):8.0f} "
              f"frames per CPU-second (median of {args.repeats})")
    print(f"trainable / loader: {statistics.median(ratios):.2f}× (min {min(ratios):.2f}, max {max(ratios):.2f}; "
          f"goal >= 1.5×)")
    # 2. evaluation share of an epoch
    for method in METHODS:  # a step's cost differs by method; the evaluation's does not
        for label, extra in (("cpu preset", {"steps_per_epoch": 25}), ("default epoch", {})):
            # temporal SimCLR's batch_size counts windows: the same frames per step as the BYOL methods' pairs
            per = {"batch_size": max(2, args.batch_size // 4), "window_size": 4} if method == "simclr-temporal" else {}
            r = SSLRun({**base, "method": method, "max_t": 2, **extra, **per})
            r.warm_start()
            shares = []
            for _ in range(2):
                r.train_epoch()
                shares.append(r.evaluate_epoch()["eval_share"])
            print(f"evaluation share, {method}, {label} ({r.steps_per_epoch} steps): epoch 1 {shares[0]:.1%}, "
                  f"epoch 2 {shares[1]:.1%} (goal <= 10 %)")
    print(load_line("at end"))
    return 0


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    sys.exit(main())
