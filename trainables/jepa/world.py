"""The moving-dot world: seeded, finite, batched sequences of 28×28 frames, dot positions and actions.

After the ``ContinuousMotionDataset`` of Sobal et al. 2022 ("Joint Embedding Predictive
Architectures Focus on Slow Features", arXiv:2211.10831), generated here on the device, with
our own seeded random streams:

- A dot is a normalised 2-D Gaussian blob of std ``std`` (1.3 px) rendered on the pixel grid
  (pixel centres 0 … 27; position (x, y) = (column, row)). Frames are in *peak units*: the blob
  1/(2πσ²)·exp(−d²/2σ²) divided by its peak 1/(2πσ²), so a dot's centre is 1 and the noise
  coefficients below are relative to it (the paper's noise is also scaled by the frame's peak).
- The start position is uniform in the box [2σ, 27 − 2σ]² (the dot stays 2σ from the border).
- Each of the 16 steps moves by an action a_t = L_t·(cos θ_t, sin θ_t): L_t ~ U[0, ``max_step``]
  (4 px), θ_t ~ von Mises(θ̄, κ = ``concentration`` 0.2) around a per-sequence mean direction
  θ̄ ~ U[0, 2π); the next position is clamped into the box (so positions integrate the actions
  exactly until a clamp). The von Mises draws use Best & Fisher's (1979) rejection sampler on a
  ``torch.Generator`` (torch's own ``VonMises`` cannot take one).
- ``Single``: one dot. ``Multiple``: three dots; dot 0 follows the actions, dots 1 and 2 are
  distractors that move by their own unobserved actions of the same law (our reading of the
  three-dot mode; the probe target is always dot 0).
- Noise, added to the rendered dots: ``noise`` × a fresh overlay per frame (*changing*), and
  ``static_noise`` × one overlay per sequence, identical in all 17 frames (*static*). Overlays are
  uniform [0, 1) images, or with ``structured_noise`` images of a fixed, seeded bank of textures
  (:func:`texture_bank`: oriented gratings under smooth envelopes plus smoothed noise, in [0, 1];
  the paper used CIFAR-10 images; this bank needs no download). Training sets draw textures from
  the first half of the bank, held-out sets from the second half.

:func:`generate` returns a :class:`Sequences` (frames [B, 17, 1, 28, 28], positions [B, 17, K, 2],
actions [B, 16, 2]); :func:`make_world` builds the fixed train / probe / val / test sets of a
:class:`WorldSpec` from one data seed (cached per process).

>>> s = generate(WorldSpec(), 4, seed=0)
>>> tuple(s.frames.shape), tuple(s.positions.shape), tuple(s.actions.shape)
((4, 17, 1, 28, 28), (4, 17, 1, 2), (4, 16, 2))
>>> bool(s.actions.norm(dim=-1).max() <= 4.0), round(float(s.frames.max()), 2) <= 1.0
(True, True)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple

import torch

WORLD_TYPES = ("Single", "Multiple")
DOTS = {"Single": 1, "Multiple": 3}
TEXTURES = 256  # size of the structured-noise bank (half for training sets, half for held-out sets)
TEXTURE_SEED = 20221121
CHUNK = 1024  # sequences rendered at once


@dataclass(frozen=True)
class WorldSpec:
    """The law of one world: mode, noise, geometry. ValueError (naming the field) on bad values."""

    kind: str = "Single"  # "Single" | "Multiple"
    noise: float = 0.0  # changing-noise coefficient, × the dot's peak (≥ 0)
    static_noise: float = 0.0  # static-noise coefficient, × the dot's peak (≥ 0)
    structured_noise: bool = False  # overlays from the texture bank instead of uniform noise
    n_steps: int = 17  # frames per sequence (n_steps − 1 actions)
    size: int = 28  # frame side, pixels
    std: float = 1.3  # blob std, pixels
    max_step: float = 4.0  # action length ~ U[0, max_step], pixels
    concentration: float = 0.2  # von Mises κ of the step directions around the sequence's mean

    def __post_init__(self) -> None:
        if self.kind not in WORLD_TYPES:
            raise ValueError(f"dataset_type must be one of {WORLD_TYPES}, got {self.kind!r}")
        for name, attr in (("dataset_noise", "noise"), ("dataset_static_noise", "static_noise")):
            v = getattr(self, attr)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise ValueError(f"{name} must be a number >= 0, got {v!r}")
        if not isinstance(self.structured_noise, bool):
            raise ValueError(f"dataset_structured_noise must be True or False, got {self.structured_noise!r}")
        if not isinstance(self.n_steps, int) or self.n_steps < 2:
            raise ValueError(f"n_steps must be an integer >= 2, got {self.n_steps!r}")
        if self.std <= 0 or self.max_step < 0 or self.concentration < 0:
            raise ValueError("std must be > 0, max_step and concentration >= 0")
        if self.size - 1 - 4 * self.std <= 0:
            raise ValueError(f"size {self.size} leaves no room 2σ from the border (std {self.std})")

    @property
    def dots(self) -> int:
        return DOTS[self.kind]

    @property
    def low(self) -> float:  # the box the dots stay in: [low, high]² pixels
        return 2 * self.std

    @property
    def high(self) -> float:
        return self.size - 1 - 2 * self.std


class Sequences(NamedTuple):
    """A batch of sequences: frames [B, T, 1, S, S] (peak units), positions [B, T, K, 2] px, actions [B, T−1, 2] px."""

    frames: torch.Tensor
    positions: torch.Tensor
    actions: torch.Tensor

    def __len__(self) -> int:
        return self.frames.shape[0]

    def index(self, idx) -> Sequences:
        return Sequences(self.frames[idx], self.positions[idx], self.actions[idx])

    def to(self, device) -> Sequences:
        return Sequences(*(t.to(device) for t in self))

    @property
    def target(self) -> torch.Tensor:
        """The probe target: dot 0's (x, y) per frame, [B, T, 2]."""
        return self.positions[:, :, 0]


def von_mises(mu: torch.Tensor, kappa: float, generator: torch.Generator) -> torch.Tensor:
    """Angles ~ von Mises(mu, kappa) in (−π, π] around each entry of ``mu`` (Best & Fisher 1979).

    Vectorised rejection: every entry draws until accepted (acceptance > 0.65 for any κ).
    κ = 0 is the uniform distribution.
    """
    shape, dev = mu.shape, mu.device
    if kappa < 1e-8:
        theta = (torch.rand(shape, generator=generator, device=dev) * 2 - 1) * math.pi
        return torch.remainder(mu + theta + math.pi, 2 * math.pi) - math.pi
    tau = 1 + math.sqrt(1 + 4 * kappa**2)
    rho = (tau - math.sqrt(2 * tau)) / (2 * kappa)
    r = (1 + rho**2) / (2 * rho)
    out = torch.empty(shape, device=dev).flatten()
    todo = torch.arange(out.numel(), device=dev)
    while todo.numel():
        u1, u2, u3 = torch.rand((3, todo.numel()), generator=generator, device=dev)
        z = torch.cos(math.pi * u1)
        f = (1 + r * z) / (r + z)
        c = kappa * (r - f)
        ok = (c * (2 - c) - u2 > 0) | (torch.log(c / u2) + 1 - c >= 0)
        theta = torch.sign(u3 - 0.5) * torch.acos(f.clamp(-1, 1))
        out[todo[ok]] = theta[ok]
        todo = todo[~ok]
    return torch.remainder(mu + out.view(shape) + math.pi, 2 * math.pi) - math.pi


def sample_actions(spec: WorldSpec, shape: tuple[int, ...], generator: torch.Generator, device) -> torch.Tensor:
    """Actions [*shape, n_steps − 1, 2]: per-sequence mean direction, von Mises spread, U[0, max_step] length."""
    mean = torch.rand(shape, generator=generator, device=device) * 2 * math.pi
    theta = von_mises(mean[..., None].expand(*shape, spec.n_steps - 1).contiguous(), spec.concentration, generator)
    length = torch.rand((*shape, spec.n_steps - 1), generator=generator, device=device) * spec.max_step
    return torch.stack([torch.cos(theta), torch.sin(theta)], dim=-1) * length[..., None]


def integrate(spec: WorldSpec, start: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """Positions [..., T, 2] from start [..., 2] and actions [..., T−1, 2], clamped into the box each step."""
    pos = [start]
    for t in range(actions.shape[-2]):
        pos.append((pos[-1] + actions[..., t, :]).clamp(spec.low, spec.high))
    return torch.stack(pos, dim=-2)


def render(spec: WorldSpec, positions: torch.Tensor) -> torch.Tensor:
    """Frames [B, T, 1, S, S] in peak units: the sum over the K dots of exp(−d²/2σ²), positions [B, T, K, 2]."""
    grid = torch.arange(spec.size, dtype=positions.dtype, device=positions.device)
    dx = grid[None, None, None, None, :] - positions[..., 0, None, None]  # [B, T, K, 1, S]
    dy = grid[None, None, None, :, None] - positions[..., 1, None, None]  # [B, T, K, S, 1]
    img = torch.exp(-(dx**2 + dy**2) / (2 * spec.std**2)).sum(dim=2)
    return img[:, :, None]


@lru_cache(maxsize=4)
def _bank(n: int, size: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    coords = torch.arange(size, dtype=torch.float32)
    yy, xx = coords[:, None], coords[None, :]
    # three oriented gratings per texture, each under a smooth Gaussian envelope: params [n, 3, 1, 1]
    ang, freq, phase, cx, cy, width = (torch.rand((6, n, 3, 1, 1), generator=g)
                                       * torch.tensor([math.pi, 0.35, 2 * math.pi, size, size, 10.0])[:, None, None,
                                                                                                   None, None])
    wave = torch.cos(2 * math.pi * (freq + 0.05) * (xx * torch.cos(ang) + yy * torch.sin(ang)) + phase)
    img = (wave * torch.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * (width + 4) ** 2))).sum(1)
    blur = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0])
    kernel = (blur[:, None] * blur[None, :] / 256.0)[None, None]
    smooth = torch.rand((n, 1, size, size), generator=g)
    for _ in range(2):  # smoothed noise: blotches
        smooth = torch.nn.functional.conv2d(smooth, kernel, padding=2)
    img = img + 3 * (smooth[:, 0] - smooth.mean(dim=(1, 2, 3))[:, None, None])
    low, high = img.amin(dim=(1, 2), keepdim=True), img.amax(dim=(1, 2), keepdim=True)
    return (img - low) / (high - low)


def texture_bank(n: int = TEXTURES, size: int = 28, seed: int = TEXTURE_SEED) -> torch.Tensor:
    """The structured-noise bank: ``n`` seeded texture images [n, size, size] in [0, 1] (built once per process)."""
    return _bank(n, size, seed).clone()


def _overlays(spec: WorldSpec, count: tuple[int, ...], held_out: bool, generator: torch.Generator, device):
    """Overlay images [*count, 1, S, S]: uniform noise, or textures from the split's half of the bank."""
    s = spec.size
    if not spec.structured_noise:
        return torch.rand((*count, 1, s, s), generator=generator, device=device)
    bank = _bank(TEXTURES, s, TEXTURE_SEED).to(device)
    half = TEXTURES // 2
    idx = torch.randint(half, count, generator=generator, device=device) + (half if held_out else 0)
    return bank[idx][..., None, :, :]


def generate(spec: WorldSpec, n: int, seed: int, device="cpu", held_out: bool = False) -> Sequences:
    """``n`` sequences of ``spec`` from ``seed`` (deterministic per device), rendered in chunks of :data:`CHUNK`."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be an integer >= 1, got {n!r}")
    device = torch.device(device)
    g = torch.Generator(device=device).manual_seed(int(seed))
    parts = []
    for start in range(0, n, CHUNK):
        b = min(CHUNK, n - start)
        k, t = spec.dots, spec.n_steps
        pos0 = spec.low + torch.rand((b, k, 2), generator=g, device=device) * (spec.high - spec.low)
        acts = sample_actions(spec, (b, k), g, device)  # [b, k, T−1, 2]; dot 0's are the observed actions
        positions = integrate(spec, pos0, acts).transpose(1, 2).contiguous()  # [b, T, k, 2]
        frames = render(spec, positions)
        if spec.noise > 0:
            frames = frames + spec.noise * _overlays(spec, (b, t), held_out, g, device)
        if spec.static_noise > 0:
            frames = frames + spec.static_noise * _overlays(spec, (b,), held_out, g, device)[:, None]
        parts.append(Sequences(frames, positions, acts[:, 0].contiguous()))
    return Sequences(*(torch.cat(ts) for ts in zip(*parts)))


class World(NamedTuple):
    """The fixed sets of one world: ``train`` (epochs), ``probe`` (fits the ridge probe), ``val`` (the tuned
    metric, a warm-start's held-out batch comes from ``probe``), ``test`` (the held-out twin)."""

    train: Sequences
    probe: Sequences
    val: Sequences
    test: Sequences


SPLIT_OFFSETS = {"train": 0, "probe": 1, "val": 2, "test": 3}


@lru_cache(maxsize=4)
def _world(spec: WorldSpec, sizes: tuple[int, int, int, int], data_seed: int, device: str) -> World:
    sets = {name: generate(spec, n, seed=data_seed * 10 + SPLIT_OFFSETS[name], device=device,
                           held_out=name != "train") for name, n in zip(SPLIT_OFFSETS, sizes)}
    return World(**sets)


def make_world(spec: WorldSpec, sizes: tuple[int, int, int, int], data_seed: int, device="cpu") -> World:
    """The train / probe / val / test sets (sizes in sequences) of ``spec`` from ``data_seed``, cached per process."""
    for name, n in zip(SPLIT_OFFSETS, sizes):
        if isinstance(n, bool) or not isinstance(n, int) or n < 2:
            raise ValueError(f"the {name} set needs an integer >= 2 sequences, got {n!r}")
    return _world(spec, tuple(sizes), int(data_seed), str(torch.device(device)))
