"""A PNG of one window or of a batch of windows, for checking the windowing by eye.

    python -m trainables.ssl.visualize --mode sample --out window.png
    python -m trainables.ssl.visualize --mode batch --batch-sampling random --batch-size 8 --out batch.png

``--mode sample``: one window of the train split (``--index`` picks which), its frames in a row.
``--mode batch``: a grid, one row per window: ``contiguous`` takes consecutive windows of one clip
(what a sequential loader yields), ``random`` draws windows across the train split the way temporal
SimCLR's training does. Each frame is captioned with its clip and frame index; ``--augment`` shows
the training augmentation at ``--aug-strength``. Defaults read the embedded behaviour video.
Bad input: one line ``visualize: error: …``, exit status 2, nothing written.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

import numpy as np

MODES = ("sample", "batch")
SAMPLINGS = ("contiguous", "random")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="visualize", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mode", choices=MODES, default="sample")
    p.add_argument("--batch-sampling", choices=SAMPLINGS, default="contiguous")
    p.add_argument("--root-dir", default=None, help="clip folders (default: the behaviour video)")
    p.add_argument("--cache-dir", default=None, help="where the behaviour video is written")
    p.add_argument("--window-size", type=int, default=4)
    p.add_argument("--frame-step", type=int, default=2)
    p.add_argument("--window-stride", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=8, help="windows in a batch grid")
    p.add_argument("--index", type=int, default=0, help="sample mode: which window")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--split-seed", type=int, default=0)
    p.add_argument("--augment", action="store_true")
    p.add_argument("--aug-strength", type=float, default=0.5)
    p.add_argument("--scale", type=int, default=3, help="pixel magnification")
    p.add_argument("--out", default="ssl_windows.png")
    return p


def choose_windows(windows: np.ndarray, clip_of: np.ndarray, mode: str, sampling: str, n: int, index: int,
                   seed: int) -> np.ndarray:
    """Rows of ``windows`` [W, T] to draw: one (sample), n consecutive of one clip, or n random."""
    if len(windows) == 0:
        raise ValueError("the train split has no window")
    if mode == "sample":
        if not 0 <= index < len(windows):
            raise ValueError(f"--index must be in [0, {len(windows)}), got {index}")
        return windows[index:index + 1]
    if n < 1:
        raise ValueError(f"--batch-size must be >= 1, got {n}")
    rng = np.random.default_rng(seed)
    if sampling == "random":
        return windows[rng.choice(len(windows), size=min(n, len(windows)), replace=False)]
    clip = clip_of[windows[:, 0]]
    start = int(rng.integers(len(windows)))
    same = np.flatnonzero(clip == clip[start])
    first = same[same >= start][: n] if len(same[same >= start]) >= n else same[:n]
    return windows[first]


def render(frames: np.ndarray, captions: list[list[str]], scale: int) -> object:
    """frames uint8 [rows, T, C, H, W] → a PIL image grid with a caption over each frame."""
    from PIL import Image, ImageDraw

    rows, t, c, h, w = frames.shape
    cap, pad = 12, 2
    cell_w, cell_h = w * scale + pad, h * scale + cap + pad
    grid = Image.new("RGB", (t * cell_w, rows * cell_h), (255, 255, 255))
    draw = ImageDraw.Draw(grid)
    for r in range(rows):
        for k in range(t):
            a = frames[r, k]
            img = Image.fromarray(a[0] if c == 1 else a.transpose(1, 2, 0)).convert("RGB")
            img = img.resize((w * scale, h * scale), Image.NEAREST)
            grid.paste(img, (k * cell_w, r * cell_h + cap))
            draw.text((k * cell_w + 1, r * cell_h), captions[r][k], fill=(0, 0, 0))
    return grid


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        import torch

        from trainables.ssl.behaviour import ensure_video
        from trainables.ssl.frames import check_window, load_frames
        from trainables.ssl.views import apply_magnitude, augment

        check_window(args.window_size, args.frame_step, args.window_stride)
        if args.scale < 1:
            raise ValueError(f"--scale must be >= 1, got {args.scale}")
        if os.path.isdir(args.out):
            raise ValueError(f"--out {args.out!r} is a directory; give a file name")
        root = args.root_dir or ensure_video(args.cache_dir)
        index, store = load_frames(root, args.window_size, args.frame_step, args.split_seed, torch.device("cpu"))
        windows = index.windows("train", args.window_size, args.frame_step, args.window_stride)
        clip_of = index.clip_of_frame()
        pick = choose_windows(windows, clip_of, args.mode, args.batch_sampling, args.batch_size, args.index, args.seed)
    except ValueError as e:
        print(f"visualize: error: {e}", file=sys.stderr)
        return 2
    frames = store.get(torch.from_numpy(pick.reshape(-1)))
    if args.augment:
        gen = torch.Generator().manual_seed(args.seed)
        x, draws = augment(frames.float() / 255.0, args.aug_strength, False, gen)
        frames = (apply_magnitude(x, args.aug_strength, draws).clamp(0, 1) * 255).round().to(torch.uint8)
    arr = frames.numpy().reshape(*pick.shape, *frames.shape[1:])
    captions = [[f"{index.clips[clip_of[f]].name[-8:]}:{f - index.offsets[clip_of[f]]}" for f in row] for row in pick]
    image = render(arr, captions, args.scale)
    from ohgw.results import atomic_path

    with atomic_path(args.out) as tmp:
        image.save(tmp, format="PNG")
    print(f"wrote {args.out}: {len(pick)} window(s) × {args.window_size} frames", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
