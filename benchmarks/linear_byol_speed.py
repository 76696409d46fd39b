"""Training steps per second of the linear BYOL toy's engine vs a naive ``torch.optim`` loop, d_obs 100 and 1,000.

Both loops do the same work per step on the same problem (d_latent 10, σ_n 0.5, batch ``--batch``,
linear encoder and predictor): draw a batch of fresh latents and two noisy views, the BYOL MSE,
an SGD-with-momentum step of the predictor (lr α) and of the encoder (lr β), then the EMA of the target:

- ``engine``: :class:`trainables.linear_byol.engine.Trainer` ``.train_step`` (written-out linear
  gradients, ``torch._foreach`` updates, no host sync inside the timed window);
- ``naive``: three separate ``nn.Linear`` modules (encoder, predictor, target), two
  ``torch.optim.SGD`` optimisers (momentum 0.9 each, as the engine here), ``loss.backward()``,
  ``zero_grad``, and a Python loop over the target's parameters for the EMA.

How: ``--steps`` steps per timed window, one synchronisation at its end (CUDA); one untimed
warm-up window per variant; then ``--repeats`` rounds, each timing every (d_obs, variant) once, in
an order rotated per round (interleaved, so load changes on a shared machine hit both). Printed:
the median steps/s per variant and the median over rounds of the paired ratio engine / naive.
Both loops are also checked to compute the same thing: from the same weights and the same views,
one step of each gives the same weights (max abs difference printed).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _machine import cpu_model, load_line, run_header  # noqa: E402

from trainables.checks import resolve_device  # noqa: E402
from trainables.linear_byol.config import resolve_config  # noqa: E402
from trainables.linear_byol.engine import Trainer  # noqa: E402

LR, MOM, TAU = 0.05, 0.9, 0.01


class Naive:
    """The straightforward loop: separate modules, torch.optim.SGD ×2, autograd, a Python EMA loop."""

    def __init__(self, trainer: Trainer) -> None:
        m = trainer.model
        self.data, self.gen, self.bs = trainer.data, torch.Generator(trainer.device).manual_seed(5), trainer.cfg["batch_size"]
        self.enc, self.pred, self.target = (nn.Linear(w.shape[1], w.shape[0], bias=False).to(trainer.device) for w in
                                            (m.encoder.weight, m.predictor.weight, m.target.weight))
        with torch.no_grad():
            for mod, w in ((self.enc, m.encoder.weight), (self.pred, m.predictor.weight), (self.target, m.target.weight)):
                mod.weight.copy_(w)
        self.target.requires_grad_(False)
        self.opt_p = torch.optim.SGD(self.pred.parameters(), lr=LR, momentum=MOM)
        self.opt_e = torch.optim.SGD(self.enc.parameters(), lr=LR, momentum=MOM)

    def step(self, views=None) -> torch.Tensor:
        x1, x2 = views if views is not None else self.data.sample(self.bs, self.gen)
        self.opt_p.zero_grad()
        self.opt_e.zero_grad()
        p = self.pred(self.enc(x1))
        with torch.no_grad():
            t = self.target(x2)
        loss = 0.5 * (p - t).pow(2).sum(dim=1).mean()
        loss.backward()
        self.opt_p.step()
        self.opt_e.step()
        with torch.no_grad():
            for pt, po in zip(self.target.parameters(), self.enc.parameters()):
                pt.mul_(1 - TAU).add_(po, alpha=TAU)
        return loss.detach()


def make(d_obs: int, batch: int, device: str) -> tuple[Trainer, Naive]:
    cfg = resolve_config({"d_obs": d_obs, "batch_size": batch, "lr_pred": LR, "lr_enc": LR, "mom_pred": MOM,
                          "mom_enc": MOM, "tau": TAU, "device": device})
    trainer = Trainer(cfg)
    return trainer, Naive(trainer)


class _FixedViews:
    def __init__(self, views) -> None:
        self.views = views

    def sample(self, n, generator):
        return self.views


def agreement(d_obs: int, batch: int, device: str) -> float:
    """Max |Δw| after one step of each loop from the same weights on the same views."""
    trainer, naive = make(d_obs, batch, device)
    views = trainer.data.sample(batch, torch.Generator(trainer.device).manual_seed(9))
    trainer.data = _FixedViews(views)  # feed both loops the same views
    trainer.train_step()
    naive.step(views)
    m = trainer.model
    return max(float((a.weight - b.weight).detach().abs().max()) for a, b in
               ((m.encoder, naive.enc), (m.predictor, naive.pred), (m.target, naive.target)))


def timed(fn, steps: int, device: torch.device) -> float:
    t0 = time.perf_counter()
    for _ in range(steps):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return steps / (time.perf_counter() - t0)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--d_obs", type=int, nargs="+", default=[100, 1000])
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--quick", action="store_true", help="--steps 50 --repeats 3")
    a = p.parse_args(argv)
    if a.quick:
        a.steps, a.repeats = 50, 3
    try:
        resolve_device(a.device)
    except ValueError as e:  # e.g. --device cuda without CUDA: one line
        print(f"linear_byol_speed.py: error: {e}", file=sys.stderr)
        return 2
    torch.set_num_threads(a.threads)
    print(run_header(__file__, argv))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), {cpu_model()}, device {a.device}")
    print(load_line("at start"))
    variants = {}
    for d in a.d_obs:
        trainer, naive = make(d, a.batch, a.device)
        variants[(d, "engine")] = (trainer.train_step, trainer.device)
        variants[(d, "naive")] = (naive.step, trainer.device)
        print(f"d_obs {d}: one step of each from the same weights and views, max |Δw| = "
              f"{agreement(d, a.batch, a.device):.2e}")
    keys = list(variants)
    for k in keys:
        timed(variants[k][0], a.steps, variants[k][1])  # warm-up
    rates = {k: [] for k in keys}
    for r in range(a.repeats):
        for k in keys[r % len(keys):] + keys[: r % len(keys)]:
            rates[k].append(timed(variants[k][0], a.steps, variants[k][1]))
    print(f"batch {a.batch}, {a.steps} steps per window, {a.repeats} rounds (medians)")
    print(f"{'d_obs':>6} {'engine steps/s':>15} {'naive steps/s':>14} {'engine/naive':>13}")
    for d in a.d_obs:
        e, n = rates[(d, "engine")], rates[(d, "naive")]
        ratio = statistics.median(x / y for x, y in zip(e, n))
        print(f"{d:>6} {statistics.median(e):>15.0f} {statistics.median(n):>14.0f} {ratio:>12.2f}×")
    print(load_line("at end"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
