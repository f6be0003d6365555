import pytest
import torch

from vlmlearn.data import first_per_class, load_digits_split


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


def test_first_per_class_takes_the_first_k_of_each_class_in_pool_order():
    labels = torch.tensor([2, 0, 2, 2, 0, 3, 2])
    assert first_per_class(labels, 2).tolist() == [1, 4, 0, 2, 5]  # class 0, then 2, then 3; class 1 has none
    assert first_per_class(labels, 10).tolist() == [1, 4, 0, 2, 3, 6, 5]  # fewer than k: all of them
    g = torch.Generator().manual_seed(0)
    pool = torch.randint(5, (300,), generator=g)
    expected = torch.cat([torch.nonzero(pool == c)[:7, 0] for c in range(5)])
    assert torch.equal(first_per_class(pool, 7), expected) and first_per_class(pool, 7).dtype == torch.long
    assert first_per_class(torch.zeros(0, dtype=torch.long), 3).tolist() == []
    with pytest.raises(ValueError, match="k >= 1"):
        first_per_class(labels, 0)
    with pytest.raises(ValueError, match="1-d integer tensor"):
        first_per_class(labels.float(), 2)
    with pytest.raises(ValueError, match="class ids >= 0"):
        first_per_class(torch.tensor([0, -1]), 2)
