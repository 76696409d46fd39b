import numpy as np
import pytest
import torch

from trainables.classification import data
from trainables.classification.data import (
    check_source,
    crop_flip,
    eval_batches,
    load_dataset,
    shuffled_batches,
    warm_start_batches,
)


def _rows(x: torch.Tensor) -> set[bytes]:
    return {r.numpy().tobytes() for r in x.reshape(len(x), -1)}


def test_digits_splits_are_the_real_digits_stratified_and_disjoint():
    s = load_dataset("digits")
    assert (len(s.train_y), len(s.val_y), len(s.test_y)) == (1167, 270, 360)
    assert s.image_shape == (1, 8, 8) and s.num_classes == 10
    assert s.crop_padding == 1 and s.flip is False
    # standardised with the training split's statistics
    assert abs(float(s.train_x.mean())) < 1e-5
    assert abs(float(s.train_x.std()) - 1.0) < 1e-3
    # stratified: every class in every split, in proportions close to the whole
    for y in (s.train_y, s.val_y, s.test_y):
        counts = torch.bincount(y, minlength=10).double() / len(y)
        assert float((counts - 0.1).abs().max()) < 0.015
    # disjoint (digits has a few duplicate images; compare with them removed)
    tr, va, te = _rows(s.train_x), _rows(s.val_x), _rows(s.test_x)
    assert len(tr & va) <= 3 and len(tr & te) <= 3 and len(va & te) <= 3
    assert len(tr | va | te) >= 1790


def test_loading_is_cached_per_process_and_seeded():
    a = load_dataset("digits", split_seed=0)
    assert load_dataset("digits", split_seed=0) is a
    b = load_dataset("digits", split_seed=1)
    assert b is not a
    assert not torch.equal(a.val_y, b.val_y)
    data.clear_cache()
    c = load_dataset("digits", split_seed=0)
    assert c is not a and torch.equal(c.train_x, a.train_x) and torch.equal(c.val_y, a.val_y)


def test_synthetic_has_cifar_shape():
    s = load_dataset("synthetic")
    assert s.image_shape == (3, 32, 32)
    assert (len(s.train_y), len(s.val_y), len(s.test_y)) == data.SYNTHETIC_SIZES
    assert int(s.train_y.max()) == 9 and int(s.train_y.min()) == 0


def test_to_device_keeps_one_copy_per_device():
    s = load_dataset("digits")
    assert s.to("cpu") is s


def test_check_source_errors():
    with pytest.raises(ValueError, match="dataset must be one of"):
        check_source("mnist")
    with pytest.raises(ValueError, match="needs data_dir"):
        check_source("cifar10", None)
    with pytest.raises(ValueError, match=r"no cifar-10-batches-py.*download=True"):
        check_source("cifar10", "/nonexistent/ohgw-data")
    check_source("cifar10", None, download=True)  # the loader then asks where to put it
    with pytest.raises(ValueError, match="download=True still needs data_dir"):
        load_dataset("cifar10", None, download=True)


def test_shuffled_batches_are_seeded_permutations():
    a = shuffled_batches(100, 32, torch.Generator().manual_seed(1))
    b = shuffled_batches(100, 32, torch.Generator().manual_seed(1))
    c = shuffled_batches(100, 32, torch.Generator().manual_seed(2))
    assert [len(x) for x in a] == [32, 32, 32]  # the short last batch is dropped
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not all(torch.equal(x, y) for x, y in zip(a, c))
    assert len(set(torch.cat(a).tolist())) == 96
    full = shuffled_batches(100, 32, torch.Generator().manual_seed(1), drop_last=False)
    assert sorted(torch.cat(full).tolist()) == list(range(100))
    with pytest.raises(ValueError, match="batch_size"):
        shuffled_batches(10, 11, torch.Generator())
    with pytest.raises(ValueError, match="batch_size"):
        shuffled_batches(10, 0, torch.Generator())


def test_crop_flip_matches_a_per_image_reference():
    x = torch.randn(16, 3, 8, 8)
    padding = 2
    out = crop_flip(x, padding, flip=True, generator=torch.Generator().manual_seed(5))
    # replay the same random stream and crop image by image
    g = torch.Generator().manual_seed(5)
    offsets = torch.randint(0, 2 * padding + 1, (16, 2), generator=g)
    flips = torch.rand(16, generator=g) < 0.5
    padded = torch.nn.functional.pad(x, (padding,) * 4)
    for i in range(16):
        dy, dx = offsets[i].tolist()
        ref = padded[i, :, dy : dy + 8, dx : dx + 8]
        if flips[i]:
            ref = ref.flip(-1)
        assert torch.equal(out[i], ref)
    assert 0 < int(flips.sum()) < 16
    # no padding and no flip: the identity
    assert torch.equal(crop_flip(x, 0, False, torch.Generator()), x)


def test_eval_batches_cover_everything_in_order():
    x, y = torch.arange(10).float().view(10, 1, 1, 1), torch.arange(10)
    got = list(eval_batches(x, y, 4))
    assert [len(b[1]) for b in got] == [4, 4, 2]
    assert torch.equal(torch.cat([b[1] for b in got]), y)


def test_warm_start_batches():
    s = load_dataset("digits")
    source = warm_start_batches(s, 128, seed=0)
    (x, y, draws), (xv, yv) = source(0)
    assert x.shape == (128, 1, 8, 8) and y.shape == (128,)
    assert draws.shift.shape == (128, 2) and draws.brightness.shape == (128,)
    assert xv.shape == (128, 1, 8, 8)
    assert source(0)[0][0] is x  # asking again gives the same pair
    assert not torch.equal(source(1)[1][0], xv)  # a fresh pair per hyper-step
    # the validation batch is clean rows of the validation split
    assert _rows(xv) <= _rows(s.val_x)
    # same seed, same batches; another seed, other batches
    again = warm_start_batches(s, 128, seed=0)(0)
    assert torch.equal(again[0][0], x) and torch.equal(again[1][1], yv)
    other = warm_start_batches(s, 128, seed=1)(0)
    assert not torch.equal(other[0][1], y)
    # batch sizes beyond the split are clipped to it
    assert len(warm_start_batches(s, 5000, seed=0)(0)[1][1]) == len(s.val_y)
    with pytest.raises(ValueError, match="batch_size"):
        warm_start_batches(s, 0, seed=0)


def test_digits_are_learnable_by_a_linear_probe():
    # sanity of labels and standardisation: a least-squares linear classifier beats 90 %
    s = load_dataset("digits")
    X = np.c_[s.train_x.reshape(len(s.train_y), -1).numpy(), np.ones(len(s.train_y))]
    Y = np.eye(10)[s.train_y.numpy()]
    W = np.linalg.lstsq(X, Y, rcond=None)[0]
    Xv = np.c_[s.val_x.reshape(len(s.val_y), -1).numpy(), np.ones(len(s.val_y))]
    assert (np.argmax(Xv @ W, 1) == s.val_y.numpy()).mean() > 0.9
