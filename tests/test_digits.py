import pytest
import torch

from vlmlearn.data import load_digits_split


def test_split_sizes_stratified_and_disjoint():
    s = load_digits_split(2, seed=0, image_size=16)
    assert s.labeled.images.shape == (20, 1, 16, 16)
    assert torch.equal(torch.bincount(s.labeled.labels), torch.full((10,), 2))
    assert torch.equal(torch.bincount(s.test.labels), torch.full((10,), 50))
    assert len(s.unlabeled) == 1797 - 500 - 20
    assert s.labeled.captions[0].startswith("a handwritten digit ")
    pools = [s.labeled.images, s.unlabeled, s.test.images]
    flat = [{x.numpy().tobytes() for x in p} for p in pools]
    # a handful of real digits are exact duplicates of each other in sklearn's set
    assert len(flat[0] & flat[2]) <= 2 and len(flat[1] & flat[2]) <= 10
    assert 0.0 <= s.unlabeled.min() and s.unlabeled.max() <= 1.0


def test_seeded():
    a, b, c = load_digits_split(1, seed=0), load_digits_split(1, seed=0), load_digits_split(1, seed=1)
    assert torch.equal(a.labeled.images, b.labeled.images)
    assert not torch.equal(a.labeled.images, c.labeled.images)


def test_unlabeled_pool_carries_no_labels():
    s = load_digits_split(5, seed=0, image_size=8)
    assert isinstance(s.unlabeled, torch.Tensor)  # images only: nothing to read labels from
    truth = s.reveal_unlabeled_labels()
    assert truth.shape == (len(s.unlabeled),)
    from sklearn.datasets import load_digits
    assert torch.equal(torch.bincount(truth) + 5 + 50, torch.bincount(torch.from_numpy(load_digits().target)))
    assert not hasattr(s.unlabeled, "labels")


def test_full_labels_and_bad_arguments():
    s = load_digits_split(10_000, seed=0)
    assert len(s.labeled) == 1297 and len(s.unlabeled) == 0
    with pytest.raises(ValueError, match="labels_per_class"):
        load_digits_split(0)
    with pytest.raises(ValueError, match="image_size"):
        load_digits_split(2, image_size=4)
