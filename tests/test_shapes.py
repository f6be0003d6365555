import numpy as np
import pytest
import torch

from vlmlearn.data import ANSWERS, COLORS, SHAPES, ShapesWorld, caption_matches, caption_vocabulary, parse_caption


def test_deterministic_per_index_whatever_the_batch(world):
    big = world.pairs(50, start=10)
    small = world.pairs(5, start=30)
    assert torch.equal(big.images[20:25], small.images)
    assert big.captions[20:25] == small.captions
    again = ShapesWorld(seed=0, image_size=32).pairs(50, start=10)
    assert torch.equal(again.images, big.images)
    other = ShapesWorld(seed=1, image_size=32).pairs(50, start=10)
    assert not torch.equal(other.images, big.images)


@pytest.mark.parametrize("size", [16, 24, 32, 64])
def test_image_sizes_and_value_range(size):
    b = ShapesWorld(seed=3, image_size=size).pairs(20)
    assert b.images.shape == (20, 3, size, size)
    assert b.images.dtype == torch.float32
    assert 0.0 <= b.images.min() and b.images.max() <= 1.0
    assert torch.equal(b.images, torch.round(b.images * 255) / 255)  # exact in 8-bit PNG


def test_bad_arguments_raise_clear_errors(world):
    with pytest.raises(ValueError, match="image_size"):
        ShapesWorld(image_size=8)
    with pytest.raises(ValueError, match="split"):
        world.pairs(3, split="training")
    with pytest.raises(ValueError, match="noise_rate"):
        world.noisy_pairs(3, noise_rate=1.5)
    with pytest.raises(ValueError, match="kinds"):
        world.noisy_pairs(3, kinds=("typo",))
    with pytest.raises(ValueError, match="attribute"):
        world.labeled(3, attribute="texture")


def test_objects_are_drawn_where_and_how_the_attributes_say():
    world = ShapesWorld(seed=0, image_size=32, background_noise=0.0)
    b = world.labeled(200, attribute="color")
    rgb = np.array([[220, 40, 40], [40, 180, 60], [50, 90, 235], [235, 215, 40],
                    [160, 60, 210], [245, 140, 30], [240, 240, 240], [40, 215, 215]]) / 255
    centres = {"left": (16, 8), "right": (16, 24), "top": (8, 16), "bottom": (24, 16), "center": (16, 16)}
    from vlmlearn.data import POSITIONS
    for i in range(len(b)):
        row, col = centres[POSITIONS[b.attributes["position"][i, 0]]]
        pixel = b.images[i, :, row, col].numpy()
        if SHAPES[b.attributes["shape"][i, 0]] not in ("triangle", "cross"):  # thin or off-centre at the centre
            assert np.abs(pixel - rgb[b.labels[i]]).max() < 0.06  # colour jitter is +-0.04


def test_captions_describe_the_attributes_exactly(world):
    b = world.pairs(300)
    assert all(caption_matches(c, b.attributes, i) for i, c in enumerate(b.captions))
    assert set(b.attributes["n_objects"]) == {1, 2}
    assert len(set(b.template)) == 4
    assert set(w for c in b.captions for w in c.split()) <= set(caption_vocabulary())
    two = b.attributes["n_objects"] == 2
    assert (b.attributes["color"][two, 0] != b.attributes["color"][two, 1]).all()
    assert (b.attributes["shape"][two, 0] != b.attributes["shape"][two, 1]).all()
    assert (b.attributes["shape"][~two, 1] == -1).all()


def test_parse_caption_round_trip_and_junk():
    assert parse_caption("on the left there is a large blue circle and on the right a small green square") == [
        {"size": "large", "color": "blue", "shape": "circle", "position": "left"},
        {"size": "small", "color": "green", "shape": "square", "position": "right"}]
    assert parse_caption("IMG_1234.jpg") == []


def test_splits_never_overlap(world):
    keys = {}
    for split in ("train", "val", "test"):
        b = world.pairs(400, split=split)
        keys[split] = {img.numpy().tobytes() for img in b.images}
        assert len(keys[split]) == 400
    assert not keys["train"] & keys["val"]
    assert not keys["train"] & keys["test"]
    assert not keys["val"] & keys["test"]


def test_heldout_combinations_only_in_the_heldout_view(world):
    held = {(COLORS.index(c), SHAPES.index(s)) for c, s in world.heldout_combos}
    assert len(held) == len(COLORS)
    for b in (world.pairs(500), world.images(300), world.labeled(300), world.vqa(300), world.binding_pairs(200)):
        a = b.attributes
        seen = {(c, s) for c, s in zip(a["color"].ravel(), a["shape"].ravel()) if s >= 0}
        assert not seen & held
    h = world.heldout_pairs(200)
    assert {(c, s) for c, s in zip(h.attributes["color"][:, 0], h.attributes["shape"][:, 0])} == held
    assert all(caption_matches(c, h.attributes, i) for i, c in enumerate(h.captions))


def test_noisy_pairs_rate_kinds_and_clean_twin(world):
    clean = world.pairs(2000)
    b = world.noisy_pairs(2000, noise_rate=0.4)
    assert torch.equal(b.images, clean.images) and b.clean_captions == clean.captions
    assert abs(b.is_noisy.mean() - 0.4) < 0.04
    assert {k for k in b.noise_kind if k} == {"swap", "attribute", "junk"}
    for i in range(len(b)):
        if not b.is_noisy[i]:
            assert b.captions[i] == clean.captions[i] and b.noise_kind[i] == ""
        elif b.noise_kind[i] == "attribute":
            assert not caption_matches(b.captions[i], b.attributes, i)
        elif b.noise_kind[i] == "junk":
            assert parse_caption(b.captions[i]) == []
    only_swap = world.noisy_pairs(500, noise_rate=1.0, kinds=("swap",))
    mismatched = np.mean([not caption_matches(c, only_swap.attributes, i) for i, c in enumerate(only_swap.captions)])
    assert mismatched > 0.9  # a random other caption almost never fits
    assert world.noisy_pairs(50, noise_rate=0.0).captions == world.pairs(50).captions


def test_unpaired_views(world):
    imgs = world.images(10)
    assert imgs.captions is None and imgs.images.shape == (10, 3, 32, 32)
    texts = world.texts(10)
    assert texts.images is None and len(texts.captions) == 10
    assert texts.captions != world.pairs(10).captions  # a different stream from the pairs


def test_labeled_sets_cover_every_attribute(world):
    for attribute, n_classes in (("shape", 5), ("color", 8), ("size", 2), ("position", 5)):
        b = world.labeled(400, attribute=attribute)
        assert b.labels.dtype == torch.int64 and len(b.classes) == n_classes
        assert set(b.labels.tolist()) == set(range(n_classes))
        assert (b.attributes["n_objects"] == 1).all()
        assert torch.equal(b.labels, torch.from_numpy(b.attributes[attribute][:, 0]))


def test_vqa_answers_are_correct(world):
    b = world.vqa(600)
    assert set(b.question_type) == set(range(6))
    assert all(a in ANSWERS for a in b.answers)
    assert [ANSWERS[i] for i in b.labels] == b.answers
    a = b.attributes
    for i, (q, ans) in enumerate(zip(b.questions, b.answers)):
        objs = [(COLORS[a["color"][i, k]], SHAPES[a["shape"][i, k]]) for k in range(a["n_objects"][i])]
        if q.startswith("how many"):
            assert ans == ("one", "two")[a["n_objects"][i] - 1]
        elif q.startswith("is there"):
            color, shape = q[len("is there a "):-1].split()
            assert ans == ("yes" if (color, shape) in objs else "no")
        elif q.startswith("what color is the"):
            shape = q.split()[-1][:-1]
            assert (ans, shape) in objs
    assert 0.3 < np.mean([x == "yes" for x, q in zip(b.answers, b.questions) if q.startswith("is there")]) < 0.7


def test_binding_pairs_swap_colors_between_objects(world):
    b = world.binding_pairs(100)
    assert (b.attributes["n_objects"] == 2).all()
    for i, (c, s) in enumerate(zip(b.captions, b.swapped_captions)):
        assert c != s and sorted(c.split()) == sorted(s.split())  # same bag of words
        assert caption_matches(c, b.attributes, i) and not caption_matches(s, b.attributes, i)


def test_batch_indexing_and_content_keys(world):
    b = world.noisy_pairs(20, noise_rate=0.5)
    sub = b[[3, 5, 7]]
    assert len(sub) == 3 and sub.captions == [b.captions[i] for i in (3, 5, 7)]
    assert torch.equal(sub.images, b.images[[3, 5, 7]])
    assert list(sub.is_noisy) == list(b.is_noisy[[3, 5, 7]])
    keys = world.pairs(2000).content_keys()
    assert 50 < len(set(keys)) < 2000  # identical content recurs, which retrieval must allow for
