"""Frame folders: natural order, windows by formula, sidecars ignored, short / broken clips counted, split by clip."""

import logging
import os

import numpy as np
import pytest
import torch
from PIL import Image

from trainables.ssl.behaviour import ensure_video, render_clip
from trainables.ssl.frames import build_index, load_frames, natural_key, scan_clips, split_clips, window_starts

CPU = torch.device("cpu")


def _clip(root, name, n, value=None, labels=None, ext="png"):
    """A clip folder of n 6×5 grayscale frames named frame_1 … frame_n (not zero-padded); pixel = frame number."""
    folder = root / name
    folder.mkdir(parents=True)
    for t in range(1, n + 1):
        Image.fromarray(np.full((5, 6), t if value is None else value, dtype=np.uint8), mode="L").save(
            folder / f"frame_{t}.{ext}")
    if labels is not None:
        (folder / "labels.csv").write_text("frame,action\n" + "".join(f"frame_{t},{labels[t - 1]}\n"
                                                                    for t in range(1, n + 1)))
    return folder


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "clips"
    a = _clip(root, "clip_a", 12, labels=["walk"] * 6 + ["run"] * 6)
    (a / "._frame_3.png").write_bytes(b"\x00\x05\x16\x07 AppleDouble sidecar")  # macOS sidecar: not an image
    (a / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    (a / "notes.txt").write_text("not a frame")
    _clip(root, "clip_b", 10)
    _clip(root, "clip_c", 3)  # shorter than one window of span 4·… below
    for name in ("clip_d", "clip_e", "clip_f"):
        _clip(root, name, 9)
    (root / ".hidden_clip").mkdir()
    return root


def test_natural_order_and_sidecars(folder):
    clips = scan_clips(folder)
    assert [c.name for c in clips] == ["clip_a", "clip_b", "clip_c", "clip_d", "clip_e", "clip_f"]
    names = [os.path.basename(p) for p in clips[0].frames]
    assert names == [f"frame_{t}.png" for t in range(1, 13)]  # frame_2 before frame_10, no sidecars
    assert clips[0].labels["action"][:7] == ["walk"] * 6 + ["run"]
    assert sorted(natural_key(n) for n in ["f10", "f9", "f100"]) == [natural_key("f9"), natural_key("f10"),
                                                                     natural_key("f100")]


def test_windows_follow_the_formula_on_the_frames_themselves(folder):
    index, store = load_frames(folder, window_size=3, frame_step=2, split_seed=0, device=CPU)
    a = index.clips.index(next(c for c in index.clips if c.name == "clip_a"))
    split = index.split["clip_a"]
    w = index.windows(split, 3, 2, 3)
    rows = [r for r in w if index.offsets[a] <= r[0] < index.offsets[a + 1]]
    # pixel value = 1-based frame number: windows [t, t+2, t+4] start at t = 0, 3, 6 (12 frames, span 4)
    values = [store.get(torch.from_numpy(r))[:, 0, 0, 0].tolist() for r in rows]
    assert values == [[1, 3, 5], [4, 6, 8], [7, 9, 11]]
    for n, size, step, stride in [(12, 3, 2, 3), (9, 4, 1, 1), (10, 2, 3, 4), (5, 5, 1, 1), (4, 5, 1, 1)]:
        span = (size - 1) * step
        assert window_starts(n, size, step, stride) == [t for t in range(0, n, stride) if t + span <= n - 1]


def test_short_clips_are_skipped_with_a_count(folder, caplog):
    with caplog.at_level(logging.WARNING):
        index, _ = load_frames(folder, window_size=4, frame_step=2, split_seed=0, device=CPU)  # needs 7 frames
    assert "clip_c" not in index.split and index.skipped_short == 1
    assert "skipped 1 of 6 clips shorter than one window (7 frames)" in caplog.text


def test_no_frame_is_in_two_splits_and_the_split_is_fixed(folder):
    index, _ = load_frames(folder, window_size=2, frame_step=1, split_seed=3, device=CPU)
    parts = [set(index.frames_of(s).tolist()) for s in ("train", "val", "test")]
    assert all(p for p in parts) and not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    assert set().union(*parts) == set(range(index.n_frames))
    clip_of = index.clip_of_frame()
    for s, p in zip(("train", "val", "test"), parts):
        assert {index.split[index.clips[clip_of[f]].name] for f in p} == {s}
    assert split_clips([c.name for c in index.clips], 3) == index.split  # seeded: the same again
    assert split_clips(list(reversed([c.name for c in index.clips])), 3) == index.split  # order-free


def test_labels_become_ids_and_unlabelled_frames_are_minus_one(folder):
    index, _ = load_frames(folder, window_size=2, frame_step=1, split_seed=0, device=CPU)
    assert index.classes["action"] == ["run", "walk"]
    a = [c.name for c in index.clips].index("clip_a")
    lab = index.labels["action"]
    assert lab[index.offsets[a]:index.offsets[a + 1]].tolist() == [1] * 6 + [0] * 6
    assert (np.delete(lab, np.arange(index.offsets[a], index.offsets[a + 1])) == -1).all()


def test_an_undecodable_frame_skips_its_clip_with_its_path_named(folder, caplog):
    bad = folder / "clip_b" / "frame_4.png"
    bad.write_bytes(b"not a png at all")
    with caplog.at_level(logging.WARNING):
        index, _ = load_frames(folder, window_size=2, frame_step=1, split_seed=0, device=CPU)
    assert "clip_b" not in index.split and index.skipped_bad == 1
    assert str(bad) in caplog.text and "cannot be decoded" in caplog.text
    # the streaming store reads lazily: the same frame stops the run with its path named
    index, store = load_frames(folder, window_size=2, frame_step=1, split_seed=0, device=CPU, cache="stream")
    b = [c.name for c in index.clips].index("clip_b")
    with pytest.raises(ValueError, match="cannot decode image .*frame_4.png"):
        store.get(torch.arange(index.offsets[b], index.offsets[b + 1]))


def test_streaming_store_returns_what_the_cache_holds(folder):
    i1, cached = load_frames(folder, window_size=2, frame_step=1, split_seed=0, device=CPU)
    i2, streamed = load_frames(folder, window_size=2, frame_step=1, split_seed=0, device=CPU, cache="stream")
    ids = torch.tensor([0, 5, 11, 20, i1.n_frames - 1])
    assert i1.n_frames == i2.n_frames and torch.equal(cached.get(ids), streamed.get(ids))
    assert cached.nbytes == i1.n_frames * 30 and streamed.streaming


def test_cache_falls_back_to_streaming_when_memory_is_short(folder, monkeypatch, caplog):
    import trainables.ssl.frames as fr

    monkeypatch.setattr(fr, "available_bytes", lambda device: 100)
    with caplog.at_level(logging.WARNING):
        _, store = load_frames(folder, window_size=2, frame_step=1, split_seed=0, device=CPU)
    assert store.streaming and "streaming from disk instead of caching" in caplog.text
    assert len(caplog.records) == 1


@pytest.mark.parametrize("make, kwargs, match", [
    (lambda p: p / "missing", {}, "does not exist"),
    (lambda p: p, {}, "holds no clip folder"),
    (lambda p: _clip(p, "c", 3).parent, {}, r"no clip is long enough for one window \(7 frames\)"),
    (lambda p: _clip(p, "c", 9).parent, {"window_size": 1}, "window_size must be an integer >= 2"),
    (lambda p: _clip(p, "c", 9).parent, {"frame_step": 0}, "frame_step must be an integer >= 1"),
    (lambda p: _clip(p, "c", 9).parent, {"cache": "ram"}, "cache must be"),
])  # fmt: skip
def test_bad_roots_and_windows_name_the_value(tmp_path, make, kwargs, match):
    kw = {"window_size": 4, "frame_step": 2, "split_seed": 0, "device": CPU, **kwargs}
    with pytest.raises(ValueError, match=match):
        load_frames(make(tmp_path), **kw)
    with pytest.raises(ValueError, match="window_stride must be an integer >= 1"):
        window_starts(10, 2, 1, 0)


def test_build_index_refuses_when_every_clip_is_short(folder):
    with pytest.raises(ValueError, match="no clip is long enough"):
        build_index(scan_clips(folder), 100, 0)


def test_behaviour_video_is_deterministic_small_and_labelled(tmp_path):
    a, _ = render_clip(np.random.default_rng(5), 60)
    b, acts = render_clip(np.random.default_rng(5), 60)
    assert np.array_equal(a, b) and len(acts) == 60
    root = ensure_video(tmp_path, n_clips=4, frames_per_clip=30, seed=1)
    assert ensure_video(tmp_path, n_clips=4, frames_per_clip=30, seed=1) == root  # written once
    index, store = load_frames(root, 4, 2, 0, CPU)
    assert index.n_frames == 120 and index.label_columns == ["action", "identity"]
    assert store.frames.shape == (120, 1, 32, 32)
    sizes = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(root) for f in fs)
    assert sizes < 120 * 2000  # well under 2 kB per frame: the default 3,840 frames stay a few MB
    # identity is constant within a clip; actions change
    for i in range(4):
        s = slice(index.offsets[i], index.offsets[i + 1])
        assert len(set(index.labels["identity"][s].tolist())) == 1


def test_colour_jpeg_clips_load_as_three_channels(tmp_path):
    folder = tmp_path / "rgb" / "clip"
    folder.mkdir(parents=True)
    for t in range(1, 6):
        Image.fromarray(np.full((4, 7, 3), (200, 30, 10 * t), dtype=np.uint8), mode="RGB").save(folder / f"f{t}.JPG")
    index, store = load_frames(tmp_path / "rgb", window_size=2, frame_step=1, split_seed=0, device=CPU)
    x = store.get(torch.arange(index.n_frames))
    assert x.shape == (5, 3, 4, 7) and abs(int(x[0, 0, 0, 0]) - 200) <= 3  # JPEG is lossy: within a few levels


def test_a_corrupt_frame_that_empties_the_validation_split_is_one_line_naming_it(tmp_path, caplog):
    root = tmp_path / "three"
    for name in ("clip_a", "clip_b", "clip_c"):
        _clip(root, name, 8)
    index, _ = load_frames(root, window_size=2, frame_step=1, split_seed=0, device=CPU)
    victim = next(c for c in index.clips if index.split[c.name] == "val")
    bad = root / victim.name / "frame_5.png"
    bad.write_bytes(b"not a png at all")
    with caplog.at_level(logging.WARNING), pytest.raises(ValueError) as e:
        load_frames(root, window_size=2, frame_step=1, split_seed=0, device=CPU)
    msg = str(e.value)
    assert len(msg.splitlines()) == 1 and str(bad) in msg
    assert "its clip was skipped" in msg and "empty val split" in msg and "2 usable clips" in msg
    assert "frames:" not in caplog.text  # no second, unrelated line
