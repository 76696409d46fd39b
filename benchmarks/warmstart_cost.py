"""What one warm-start costs, as a multiple of one training step and as a share of a CIFAR epoch.

ResNet-20 (0.27 M parameters) at batch 128 on 32×32×3 inputs, on this machine's
device. Each setting runs in a fresh subprocess so its peak RSS (``ru_maxrss``;
``tracemalloc`` does not see torch tensors) belongs to it alone:

- ``step``: one ordinary training step (forward, backward, SGD with Nesterov);
- ``lr+wd k=1``: the first-order hyper-gradients only;
- ``all five k=1``: log-lr, log-wd, momentum, augment magnitude, label smoothing,
  one lookahead step (the study's setting; target ≤ 6× a step, ≤ 1 % of an epoch);
- ``all five k=2``: two lookahead steps.

    python benchmarks/warmstart_cost.py [--repeats 5] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

CIFAR_STEPS_PER_EPOCH = 50_000 // 128  # 390 full batches at batch 128 (the trainable drops the last)


def _child(setting: str, repeats: int, device: str) -> dict:
    import torch

    from ohgw.cost import peak_rss_mib
    from ohgw.space import SearchSpace
    from ohgw.warmstart import WarmStartSettings, warm_start
    from trainables.classification import make_problem
    from trainables.classification.augment import magnitude_augment, sample_draws
    from trainables.classification.losses import smoothed_cross_entropy
    from trainables.classification.models import resnet20

    torch.manual_seed(0)
    dev = torch.device(device)
    model = resnet20(num_classes=10).to(dev)
    g = torch.Generator().manual_seed(0)
    xb, yb = torch.randn(128, 3, 32, 32, generator=g).to(dev), torch.randint(0, 10, (128,), generator=g).to(dev)
    xv, yv = torch.randn(128, 3, 32, 32, generator=g).to(dev), torch.randint(0, 10, (128,), generator=g).to(dev)
    config = {"lr": 0.1, "wd": 5e-4, "momentum": 0.9, "aug_magnitude": 0.2, "label_smoothing": 0.1}
    rss0 = peak_rss_mib()

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    if setting == "step":
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
        draws = sample_draws(128, g, device=dev)

        def run():
            opt.zero_grad(set_to_none=True)
            x = magnitude_augment(xb, 0.2, draws)
            smoothed_cross_entropy(model(x), yb, 0.1).backward()
            opt.step()
    else:
        names = ("lr", "wd") if setting == "lr+wd k=1" else tuple(config)
        full = SearchSpace.default()
        space = SearchSpace([full[k] for k in names])
        problem = make_problem(model, nesterov=True)
        batch = ((xb, yb, sample_draws(128, g, device=dev)), (xv, yv))  # the trainable's batch format
        lookahead = 2 if setting.endswith("k=2") else 1
        settings = WarmStartSettings(lookahead=lookahead, step_rule="normalized")

        def run():
            warm_start(problem, space, config, batch, settings)

    run()  # warm-up
    sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        run()
        sync()
        times.append(time.perf_counter() - t0)
    times.sort()
    return {"setting": setting, "median_s": times[len(times) // 2], "peak_rss_mib": peak_rss_mib(),
            "rss_growth_mib": peak_rss_mib() - rss0}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--device", default="cpu")
    p.add_argument("--child", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child:
        print(json.dumps(_child(a.child, a.repeats, a.device)))
        return
    rows = []
    for setting in ("step", "lr+wd k=1", "all five k=1", "all five k=2"):
        out = subprocess.run([sys.executable, __file__, "--child", setting, "--repeats", str(a.repeats),
                              "--device", a.device], capture_output=True, text=True, check=True).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
    step = rows[0]["median_s"]
    print(f"ResNet-20, batch 128, 32x32x3, device {a.device}, median of {a.repeats}")
    print(f"{'setting':<14} {'seconds':>8} {'x step':>7} {'% CIFAR epoch':>14} {'peak RSS MiB':>13} {'vs step MiB':>12}")
    for r in rows:
        print(f"{r['setting']:<14} {r['median_s']:>8.3f} {r['median_s'] / step:>7.2f} "
              f"{100 * r['median_s'] / (step * CIFAR_STEPS_PER_EPOCH):>13.2f}% {r['peak_rss_mib']:>13.0f} "
              f"{r['peak_rss_mib'] - rows[0]['peak_rss_mib']:>+12.0f}")


if __name__ == "__main__":
    main()
