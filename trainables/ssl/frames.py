"""Frame-folder clips: scanning, windows, the split by clip, and the frame store (device cache or streaming).

Layout: a root directory of clips; each clip is a folder of frame images (``.png``, ``.jpg``,
``.jpeg``, any case). Frames are ordered by natural sort (``frame_2`` before ``frame_10``);
hidden files (names starting with ``.``: macOS ``._*`` sidecars, ``.DS_Store``) and other
files are ignored. An optional ``labels.csv`` in a clip folder gives per-frame labels: a
header row whose first column names the frame file, with or without its extension (e.g.
``frame,label`` or ``frame,action,identity``), then one row per frame; every further column is one label kind.
Labels are used only by the evaluation. A frame missing from ``labels.csv`` gets label −1
(left out of the label metrics).

Windows: ``[t, t+frame_step, …, t+(window_size−1)·frame_step]``, the next one starting at
``t+window_stride`` (``window_stride=1``: dense, overlapping windows). A clip shorter than
one window is skipped and counted in one log line, never silently.

Split: by clip, seeded (``split_seed``), fixed across trials and methods: clips sorted by
name, permuted by the seed, then cut into test / val / train (``VAL_FRACTION`` and
``TEST_FRACTION`` of the clips, at least one clip each when there are 3 or more). Frames of
one clip never appear in two splits.

Frames: decoded once into one uint8 tensor ``[N, C, H, W]`` (grayscale → C = 1, else RGB)
kept on the trial's device, like the ResNet-20 path, when it fits: at most
``CACHE_FRACTION`` of the memory available there (``/proc/meminfo`` MemAvailable on the CPU,
``torch.cuda.mem_get_info`` on CUDA). Otherwise one log line says so and a streaming store
decodes each batch's frames from disk (same interface, same results, slower).

Undecodable images (documented policy): with the cache, a clip holding a frame that cannot be
decoded is skipped, its path named in a log line and counted; with the streaming store the
frames are read lazily, so a bad frame stops the run with a ValueError naming its path. A skipped
clip that leaves the train or validation split empty is one ValueError naming the frame and that consequence.

>>> natural_key("frame_10.png") > natural_key("frame_2.png")
True
>>> window_starts(10, window_size=3, frame_step=2, window_stride=3)
[0, 3]
"""

from __future__ import annotations

import csv
import logging
import os
import re
from dataclasses import dataclass, field

import numpy as np
import torch

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")
LABELS_FILE = "labels.csv"
VAL_FRACTION = 0.15
TEST_FRACTION = 0.15
CACHE_FRACTION = 0.5  # the cache may use at most this share of the memory available on its device
SPLITS = ("train", "val", "test")


def natural_key(name: str) -> list:
    """Sort key that orders embedded integers numerically: ``frame_2`` < ``frame_10``."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def window_starts(n_frames: int, window_size: int, frame_step: int, window_stride: int) -> list[int]:
    """Start indices t of every full window ``[t, t+step, …, t+(size−1)·step]`` in a clip of ``n_frames``."""
    check_window(window_size, frame_step, window_stride)
    span = (window_size - 1) * frame_step
    return list(range(0, n_frames - span, window_stride))


def check_window(window_size: int, frame_step: int, window_stride: int) -> None:
    for name, v, low in (("window_size", window_size, 2), ("frame_step", frame_step, 1),
                         ("window_stride", window_stride, 1)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {v!r}")


@dataclass(frozen=True)
class Clip:
    """One clip folder: its frame files in natural order and their labels (column → list of str or None)."""

    name: str
    frames: tuple[str, ...]  # absolute paths
    labels: dict[str, list] = field(default_factory=dict)


def _read_labels(folder: str, frames: list[str]) -> dict[str, list]:
    path = os.path.join(folder, LABELS_FILE)
    if not os.path.isfile(path):
        return {}
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows or len(rows[0]) < 2:
        raise ValueError(f"{path}: needs a header row 'frame,<label>[,<label>…]'")
    columns = [c.strip() for c in rows[0][1:]]
    by_frame = {r[0].strip(): r[1:] for r in rows[1:] if r}
    rows_of = [by_frame.get(os.path.basename(p), by_frame.get(os.path.splitext(os.path.basename(p))[0]))
               for p in frames]  # a row names the frame file, with or without its extension
    return {c: [(r[i].strip() if r is not None and i < len(r) else None) for r in rows_of]
            for i, c in enumerate(columns)}


def scan_clips(root: str | os.PathLike) -> list[Clip]:
    """Every clip folder under ``root`` (sorted naturally), frames in natural order; ValueError if none."""
    root = os.fspath(root)
    if not os.path.isdir(root):
        raise ValueError(f"root_dir {root!r} does not exist or is not a directory")
    clips = []
    for entry in sorted(os.listdir(root), key=natural_key):
        folder = os.path.join(root, entry)
        if entry.startswith(".") or not os.path.isdir(folder):
            continue
        frames = sorted((f for f in os.listdir(folder)
                         if not f.startswith(".") and f.lower().endswith(IMAGE_EXTENSIONS)), key=natural_key)
        if frames:
            paths = [os.path.join(folder, f) for f in frames]
            clips.append(Clip(entry, tuple(paths), _read_labels(folder, paths)))
    if not clips:
        raise ValueError(f"root_dir {root!r} holds no clip folder with frame images ({', '.join(IMAGE_EXTENSIONS)})")
    return clips


def split_clips(names: list[str], split_seed: int) -> dict[str, str]:
    """Clip name → split, seeded and fixed: the same names and seed always give the same split."""
    order = sorted(names, key=natural_key)
    perm = np.random.default_rng(split_seed).permutation(len(order))
    n = len(order)
    n_val = max(1, round(VAL_FRACTION * n)) if n >= 3 else 0
    n_test = max(1, round(TEST_FRACTION * n)) if n >= 3 else 0
    out = {}
    for rank, i in enumerate(perm):
        out[order[i]] = "test" if rank < n_test else ("val" if rank < n_test + n_val else "train")
    return out


def decode(path: str, mode: str | None = None) -> np.ndarray:
    """One frame as uint8 [C, H, W] (mode "L" or "RGB"; None: L if the file is grayscale, else RGB)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.load()
            m = mode or ("L" if im.mode in ("L", "LA", "I", "I;16", "1") else "RGB")  # palette images: RGB
            a = np.array(im.convert(m), dtype=np.uint8)  # a writable copy
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise ValueError(f"cannot decode image {path!r}: {e}") from e
    return a[None] if a.ndim == 2 else a.transpose(2, 0, 1)


def available_bytes(device: torch.device) -> int:
    """Memory available for a cache on ``device`` (CUDA: free memory; CPU: MemAvailable, else free pages)."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


@dataclass
class FrameIndex:
    """The kept clips, flattened: frame f of the data set is ``clip_of[f]``'s frame ``pos[f]``."""

    clips: list[Clip]
    split: dict[str, str]  # clip name → split
    offsets: np.ndarray  # [n_clips + 1] first global frame id of each clip
    label_columns: list[str]
    labels: dict[str, np.ndarray]  # column → int64 [N] (−1: unlabelled)
    classes: dict[str, list[str]]  # column → class names (index = label id)
    skipped_short: int = 0
    skipped_bad: int = 0

    @property
    def n_frames(self) -> int:
        return int(self.offsets[-1])

    def clip_ids(self, split: str) -> list[int]:
        return [i for i, c in enumerate(self.clips) if self.split[c.name] == split]

    def frames_of(self, split: str) -> np.ndarray:
        """Global frame ids of one split, clip by clip, in temporal order."""
        ids = [np.arange(self.offsets[i], self.offsets[i + 1]) for i in self.clip_ids(split)]
        return np.concatenate(ids) if ids else np.zeros(0, dtype=np.int64)

    def clip_of_frame(self) -> np.ndarray:
        return np.repeat(np.arange(len(self.clips)), np.diff(self.offsets))

    def windows(self, split: str, window_size: int, frame_step: int, window_stride: int) -> np.ndarray:
        """[n_windows, window_size] global frame ids of every window of one split."""
        out = []
        for i in self.clip_ids(split):
            n = int(self.offsets[i + 1] - self.offsets[i])
            for t in window_starts(n, window_size, frame_step, window_stride):
                out.append(self.offsets[i] + t + frame_step * np.arange(window_size))
        return np.asarray(out, dtype=np.int64).reshape(-1, window_size)


def build_index(clips: list[Clip], min_frames: int, split_seed: int) -> FrameIndex:
    """Keep clips of at least ``min_frames`` frames (one log line counts the rest); labels to ids; the split."""
    kept = [c for c in clips if len(c.frames) >= min_frames]
    short = len(clips) - len(kept)
    if short:
        log.warning("frames: skipped %d of %d clips shorter than one window (%d frames)", short, len(clips),
                    min_frames)
    if not kept:
        raise ValueError(f"no clip is long enough for one window ({min_frames} frames); {len(clips)} clips found")
    offsets = np.concatenate([[0], np.cumsum([len(c.frames) for c in kept])]).astype(np.int64)
    columns = list(dict.fromkeys(k for c in kept for k in c.labels))  # in order of first appearance
    labels, classes = {}, {}
    for col in columns:
        values = [v for c in kept for v in c.labels.get(col, [None] * len(c.frames))]
        names = sorted({v for v in values if v not in (None, "")}, key=natural_key)
        lookup = {v: i for i, v in enumerate(names)}
        labels[col] = np.asarray([lookup.get(v, -1) for v in values], dtype=np.int64)
        classes[col] = names
    split = split_clips([c.name for c in kept], split_seed)
    return FrameIndex(kept, split, offsets, columns, labels, classes, skipped_short=short)


class CachedStore:
    """All frames as one uint8 tensor on the device; a batch is an index into it."""

    streaming = False

    def __init__(self, frames: torch.Tensor) -> None:
        self.frames = frames

    def get(self, ids: torch.Tensor) -> torch.Tensor:
        return self.frames[ids.to(self.frames.device)]

    @property
    def nbytes(self) -> int:
        return self.frames.numel() * self.frames.element_size()


class StreamingStore:
    """Frames decoded from disk for each batch (for data sets bigger than the memory); same interface."""

    streaming = True

    def __init__(self, paths: list[str], mode: str, device: torch.device) -> None:
        self.paths, self.mode, self.device = paths, mode, device

    def get(self, ids: torch.Tensor) -> torch.Tensor:
        arr = np.stack([decode(self.paths[int(i)], self.mode) for i in ids.cpu()])
        return torch.from_numpy(arr).to(self.device)

    nbytes = 0


def load_frames(root: str | os.PathLike, window_size: int, frame_step: int, split_seed: int,
                device: torch.device, cache: str = "auto") -> tuple[FrameIndex, CachedStore | StreamingStore]:
    """Scan ``root``, keep clips long enough for one window, split them, and cache (or stream) the frames.

    ``cache``: "auto" (cache if it fits, else stream with one log line), "device" (always cache),
    "stream" (never cache).
    """
    if cache not in ("auto", "device", "stream"):
        raise ValueError(f"cache must be 'auto', 'device' or 'stream', got {cache!r}")
    check_window(window_size, frame_step, 1)
    clips = scan_clips(root)
    min_frames = (window_size - 1) * frame_step + 1
    first = decode(next(p for c in clips if len(c.frames) >= min_frames for p in c.frames)
                   if any(len(c.frames) >= min_frames for c in clips) else clips[0].frames[0])
    mode = "L" if first.shape[0] == 1 else "RGB"
    n_est = sum(len(c.frames) for c in clips if len(c.frames) >= min_frames)
    need = n_est * first.size
    stream = cache == "stream" or (cache == "auto" and need > CACHE_FRACTION * available_bytes(device))
    if stream:
        if cache == "auto":
            log.warning("frames: %d frames need %.1f GiB, more than %.0f%% of the memory available on %s: "
                        "streaming from disk instead of caching", n_est, need / 2**30, 100 * CACHE_FRACTION, device)
        index = build_index(clips, min_frames, split_seed)
        paths = [p for c in index.clips for p in c.frames]
        return index, StreamingStore(paths, mode, device)
    good, arrays, bad = [], [], []
    for c in clips:
        if len(c.frames) < min_frames:
            good.append(c)  # counted as short by build_index
            continue
        try:
            a = np.stack([_checked(decode(p, mode), first.shape, p) for p in c.frames])
        except ValueError as e:
            bad.append(str(e))
            continue
        good.append(c)
        arrays.append(a)
    if not any(len(c.frames) >= min_frames for c in good):
        short = sum(len(c.frames) < min_frames for c in clips)
        raise ValueError(f"root_dir {os.fspath(root)!r}: no clip is long enough for one window ({min_frames} "
                         f"frames): {len(clips)} clip(s), {short} too short, {len(bad)} with undecodable frames")
    index = build_index(good, min_frames, split_seed)
    index.skipped_bad = len(bad)
    if bad:
        empty = [s for s in ("train", "val") if not len(index.frames_of(s))]
        if empty:  # one line: the file, and what skipping its clip did
            raise ValueError(f"root_dir {os.fspath(root)!r}: {'; '.join(bad)}: its clip was skipped, which leaves "
                             f"{len(index.clips)} usable clips and an empty {' and '.join(empty)} split (at least 3 "
                             "clips are needed for train / val / test)")
        log.warning("frames: skipped %d clip(s) with a frame that cannot be decoded: %s", len(bad), "; ".join(bad))
    frames = torch.from_numpy(np.concatenate(arrays)).to(device)
    return index, CachedStore(frames)


def _checked(a: np.ndarray, shape: tuple, path: str) -> np.ndarray:
    if a.shape != shape:
        raise ValueError(f"frame {path!r} has shape {a.shape[1:]}x{a.shape[0]}, the first frame {shape[1:]}x{shape[0]}")
    return a


def frame_stats(store, ids: np.ndarray, max_frames: int = 2048) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std (in [0, 1] units) of up to ``max_frames`` evenly spaced frames of ``ids``."""
    pick = ids[np.linspace(0, len(ids) - 1, min(len(ids), max_frames)).astype(np.int64)]
    x = store.get(torch.from_numpy(pick)).float().div_(255.0)
    mean = x.mean(dim=(0, 2, 3))
    std = x.std(dim=(0, 2, 3)).clamp_min(1e-3)
    return mean, std


__all__ = ["CachedStore", "Clip", "FrameIndex", "StreamingStore", "build_index", "decode", "load_frames",
           "natural_key", "scan_clips", "split_clips", "window_starts"]
