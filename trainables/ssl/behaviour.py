"""The embedded default data set: a synthetic "behaviour video" written as real frame folders.

Each clip shows one sprite, a real handwritten digit from scikit-learn's digits (its class is
the clip's *identity* label: slow, constant over the clip; :data:`IDENTITIES` classes with
:data:`INSTANCES` fixed handwritten instances each, dealt to the clips within each split of the
default split seed (:func:`deal_identities`), so held-out identities are also in the training
split, while recognising them across recordings needs more than matching pixels), moving on a ``CANVAS``×``CANVAS``
grayscale canvas. Per-frame *actions* come in piecewise-constant segments:

``still``, ``left``, ``right``, ``up``, ``down`` (drift by ``SPEED`` px per frame), ``jitter``
(random jumps), ``grow``, ``shrink`` (the sprite's size changes).

Segment lengths are heavy-tailed (Lomax / Pareto II, shape ``PARETO_SHAPE``, clipped to
[2, ``MAX_SEGMENT``]) and both the action frequencies and their length scales are unequal
(:data:`ACTIONS`): ``jitter``, ``grow`` and ``shrink`` are short, bursty and rare, ``still``
and the drifts are common and long. A drift that would leave the canvas, or a size change past
its limits, ends its segment early, so every label is true of its frame.

Frames are a tracked crop, as behaviour videos are often egocentrically aligned: the sprite stays
centred and its movement shows as a motion trail (as motion blur does in real video): the sprite
at its current state plus fading copies of its three previous states at their positions relative
to the current one (weights 1 and :data:`TRAIL`; max-blended), plus a little pixel noise.
A single frame therefore shows its action (trail direction, scattered ghosts, nested sizes) and
its identity, but not where the sprite is. Each clip is a separate "recording" with its own
lighting (background level, sprite contrast), and the tracker is off by up to :data:`TRACK_JITTER`
px per frame: nuisances that the augmentations (translation, brightness, contrast) teach an SSL
encoder to ignore. (A per-clip background texture was tried and dropped: nothing in the
augmentations removes it, so temporal SimCLR and BYOL learned the texture — a recording-identity
shortcut — and lost the sprite's identity.)

The video has a nominal frame rate of :data:`FPS` = 10 frames/s (a real 30 fps recording at
one third of the temporal resolution): a time constant of 15 / 30 / 60 frames at 30 fps is
5 / 10 / 20 frames here.

Written as ``<cache>/clip_000/frame_0.png …`` plus ``labels.csv`` (``frame,action,identity``),
deterministically for a seed, atomically (a temporary folder renamed into place; a concurrent
writer's finished copy is kept). The default, 24 clips × 160 frames, is about 3 MB and takes a
few seconds.

>>> frames = render_clip(np.random.default_rng(0), n_frames=30)[0]
>>> frames.shape, frames.dtype
((30, 32, 32), dtype('uint8'))
"""

from __future__ import annotations

import csv
import os
import shutil
import tempfile

import numpy as np

CANVAS = 32
FPS = 10.0
SPEED = 2.0  # px per frame for the drifts
SIZES = (10, 16)  # sprite size range in px
SIZE_RATE = 0.8  # px per frame for grow / shrink
TRAIL = (0.7, 0.45, 0.25)  # weights of the sprite's 1, 2, 3 frames old copies
NOISE = 4.0  # pixel noise std, in 0..255 units
PARETO_SHAPE = 1.5
MAX_SEGMENT = 80
# action → (probability of being drawn for a new segment, length scale of its heavy-tailed length)
ACTIONS: dict[str, tuple[float, float]] = {
    "still": (0.30, 5.0), "left": (0.13, 8.0), "right": (0.13, 8.0), "up": (0.13, 8.0), "down": (0.13, 8.0),
    "jitter": (0.06, 2.5), "grow": (0.06, 3.0), "shrink": (0.06, 3.0),
}  # fmt: skip
NAMES = tuple(ACTIONS)
DEFAULT_CLIPS = 24
DEFAULT_FRAMES = 160
IDENTITIES = 6  # digits 0–5: with the default 24 clips every identity has 4 clips
INSTANCES = 2  # handwritten instances per identity (its clips alternate between them)
BACKGROUND = (0.0, 60.0)  # per-clip background level, 0..255 units
GAIN = (0.6, 1.0)  # per-clip sprite contrast
TRACK_JITTER = 1  # px of tracking error per frame
VERSION = 10  # bump when the rendering changes (the cache folder's name includes it)


def _sprites() -> tuple[np.ndarray, np.ndarray]:
    from trainables.digits import read_digits  # sklearn's load_digits() images and targets, without importing it

    images, target = read_digits()
    return images.astype(np.float32) / 16.0, target.astype(np.int64)


def _resize(img: np.ndarray, size: int) -> np.ndarray:
    """Bilinear resize of a square image to ``size``×``size`` (pure NumPy)."""
    n = img.shape[0]
    c = (np.arange(size) + 0.5) * n / size - 0.5
    c = np.clip(c, 0, n - 1)
    i0 = np.floor(c).astype(int)
    i1 = np.minimum(i0 + 1, n - 1)
    f = c - i0
    rows = img[i0] * (1 - f)[:, None] + img[i1] * f[:, None]
    return rows[:, i0] * (1 - f)[None, :] + rows[:, i1] * f[None, :]


def _paste(canvas: np.ndarray, sprite: np.ndarray, cx: float, cy: float, weight: float) -> None:
    s = sprite.shape[0]
    x0, y0 = int(round(cx - s / 2)), int(round(cy - s / 2))
    xs, ys = max(0, x0), max(0, y0)
    xe, ye = min(CANVAS, x0 + s), min(CANVAS, y0 + s)
    if xe <= xs or ye <= ys:
        return
    patch = sprite[ys - y0:ye - y0, xs - x0:xe - x0] * weight
    np.maximum(canvas[ys:ye, xs:xe], patch, out=canvas[ys:ye, xs:xe])


def _segment_length(rng: np.random.Generator, scale: float) -> int:
    return int(np.clip(np.ceil(scale * rng.pareto(PARETO_SHAPE) + 1), 2, MAX_SEGMENT))


def _move(rng: np.random.Generator, action: str, x: float, y: float, size: float) -> tuple[float, float, float]:
    if action in ("left", "right", "up", "down"):
        dx, dy = {"left": (-SPEED, 0), "right": (SPEED, 0), "up": (0, -SPEED), "down": (0, SPEED)}[action]
        return x + dx, y + dy, size
    if action == "jitter":
        return x + rng.uniform(-3, 3), y + rng.uniform(-3, 3), size
    if action in ("grow", "shrink"):
        return x, y, size + (SIZE_RATE if action == "grow" else -SIZE_RATE)
    return x, y, size


def render_clip(rng: np.random.Generator, n_frames: int, image: np.ndarray | None = None
                ) -> tuple[np.ndarray, list[str]]:
    """One clip: uint8 frames [n_frames, CANVAS, CANVAS] and the per-frame action names."""
    if image is None:
        image = _sprites()[0][0]
    cache = {s: _resize(image, s) for s in range(SIZES[0], SIZES[1] + 1)}
    probs = np.array([p for p, _ in ACTIONS.values()])
    probs /= probs.sum()
    size = float(rng.uniform(10, 14))
    x, y = (float(v) for v in rng.uniform(10, CANVAS - 10, 2))
    states: list[tuple[float, float, float]] = []
    actions: list[str] = []
    action, left = "still", 0
    for _ in range(n_frames):
        for _attempt in range(20):  # a move that would leave its limits ends the segment: draw another
            if left <= 0:
                action = NAMES[rng.choice(len(NAMES), p=probs)]
                left = _segment_length(rng, ACTIONS[action][1])
            nx, ny, ns = _move(rng, action, x, y, size)
            half = ns / 2
            if half <= nx <= CANVAS - half and half <= ny <= CANVAS - half and SIZES[0] <= ns <= SIZES[1]:
                break
            left = 0
        else:
            action, nx, ny, ns, left = "still", x, y, size, 1
        x, y, size = nx, ny, ns
        states.append((x, y, size))
        actions.append(action)
        left -= 1
    frames = np.empty((n_frames, CANVAS, CANVAS), dtype=np.uint8)
    level, gain = rng.uniform(*BACKGROUND), rng.uniform(*GAIN)  # the recording's lighting, fixed over the clip
    for t in range(n_frames):
        canvas = np.zeros((CANVAS, CANVAS), dtype=np.float32)
        jx, jy = rng.integers(-TRACK_JITTER, TRACK_JITTER + 1, 2)  # the tracker's error
        ox, oy = CANVAS / 2 - states[t][0] + jx, CANVAS / 2 - states[t][1] + jy  # the tracked crop
        for lag, w in sorted(enumerate((1.0, *TRAIL)), reverse=True):
            if t - lag >= 0:
                sx, sy, ss = states[t - lag]
                _paste(canvas, cache[int(round(ss))], sx + ox, sy + oy, w)
        img = level + canvas * (255.0 - level) * gain + rng.normal(0.0, NOISE, canvas.shape)
        frames[t] = np.clip(np.round(img), 0, 255).astype(np.uint8)
    return frames, actions


def clip_name(c: int) -> str:
    return f"clip_{c:03d}"


def deal_identities(n_clips: int, rng: np.random.Generator) -> list[int]:
    """Identity of each clip, dealt round-robin (from a shuffled order) *within* each split of the default
    split seed (:func:`trainables.ssl.frames.split_clips` with seed 0), so every identity that can be is
    present in train, validation and test: otherwise the held-out identity metrics measure the split."""
    from .frames import split_clips

    split = split_clips([clip_name(c) for c in range(n_clips)], 0)
    out = [0] * n_clips
    for part in ("train", "val", "test"):
        order = rng.permutation(IDENTITIES)
        for j, c in enumerate(c for c in range(n_clips) if split[clip_name(c)] == part):
            out[c] = int(order[j % IDENTITIES])
    return out


def default_cache_dir() -> str:
    base = os.environ.get("OHGW_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "ohgw-tune")
    return os.path.join(base, "ssl")


def video_dir(cache_dir: str | os.PathLike | None = None, n_clips: int = DEFAULT_CLIPS,
              frames_per_clip: int = DEFAULT_FRAMES, seed: int = 0) -> str:
    """Where :func:`ensure_video` writes the video of these settings."""
    base = os.fspath(cache_dir) if cache_dir is not None else default_cache_dir()
    return os.path.join(base, f"behaviour-v{VERSION}-s{seed}-{n_clips}x{frames_per_clip}")


def ensure_video(cache_dir: str | os.PathLike | None = None, n_clips: int = DEFAULT_CLIPS,
                 frames_per_clip: int = DEFAULT_FRAMES, seed: int = 0) -> str:
    """The folder of the behaviour video for these settings, written on first use; returns its path."""
    for name, v, low in (("n_clips", n_clips, 1), ("frames_per_clip", frames_per_clip, 2), ("seed", seed, 0)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {v!r}")
    out = video_dir(cache_dir, n_clips, frames_per_clip, seed)
    if os.path.isdir(out):
        return out
    from PIL import Image

    parent = os.path.dirname(out)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".tmp-behaviour-", dir=parent)
    try:
        images, targets = _sprites()
        rng = np.random.default_rng(seed)
        pool = [rng.choice(np.flatnonzero(targets == c), INSTANCES, replace=False) for c in range(IDENTITIES)]
        identity = deal_identities(n_clips, rng)
        seen: dict[int, int] = {}
        for c in range(n_clips):
            i = identity[c]
            k = int(pool[i][seen.get(i, 0) % INSTANCES])  # the identity's clips alternate between its instances
            seen[i] = seen.get(i, 0) + 1
            frames, actions = render_clip(rng, frames_per_clip, images[k])
            folder = os.path.join(tmp, clip_name(c))
            os.makedirs(folder)
            with open(os.path.join(folder, "labels.csv"), "w", newline="") as f:
                w = csv.writer(f)
                w.writerow(["frame", "action", "identity"])
                for t, a in enumerate(actions):
                    name = f"frame_{t}.png"
                    Image.fromarray(frames[t], mode="L").save(os.path.join(folder, name), optimize=False)
                    w.writerow([name, a, str(int(targets[k]))])
        try:
            os.replace(tmp, out)
        except OSError:  # another process finished first: keep its copy
            if not os.path.isdir(out):
                raise
    finally:
        if os.path.isdir(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
    return out
