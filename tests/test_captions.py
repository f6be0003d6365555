"""Captions and their rewrites: exact, and never naming a held-out colour x shape combination."""
import numpy as np
import pytest

from vlmlearn.data import (
    ANSWERS,
    COLORS,
    NOISE_KINDS,
    SHAPES,
    ShapesWorld,
    caption_matches,
    drop_function_words,
    hard_negative_captions,
    paraphrases,
    parse_caption,
    size_swapped_captions,
    vqa_statement,
)


def named_combinations(text: str) -> set[tuple[str, str]]:
    """Every (colour, shape) a text names, read with the same parser the metrics use."""
    return {(o["color"], o["shape"]) for o in parse_caption(text) if o["color"] is not None}


def training_texts(world: ShapesWorld, n: int) -> dict[str, list[str]]:
    """Every text a training path of the course can produce, by where it comes from."""
    pairs, texts, vqa = world.pairs(n), world.texts(n), world.vqa(n)
    binding = world.binding_pairs(n // 2)
    out = {"pairs": pairs.captions, "texts": texts.captions,
           "paraphrases": [c for caps in paraphrases(pairs.attributes) for c in caps],
           "dropped function words": drop_function_words(pairs.captions, 0.5),
           "vqa questions": vqa.questions,
           "vqa statements": [s for q in vqa.questions for a in ANSWERS
                              if (s := vqa_statement(q, a, world.heldout_mask)) is not None],
           "binding captions": binding.captions, "binding colour swaps": binding.swapped_captions,
           "binding size swaps": binding.size_swapped_captions}
    for name, batch in (("pairs", pairs), ("texts", texts), ("labeled", world.labeled(n)), ("vqa", vqa)):
        out[f"hard negatives of {name}"] = hard_negative_captions(batch)
    for kind in NOISE_KINDS:
        out[f"noise: {kind}"] = world.noisy_pairs(n, noise_rate=1.0, kinds=(kind,)).captions
    return out


@pytest.mark.parametrize("seed", [0, 3, 11])
def test_no_training_text_names_a_heldout_combination(seed):
    world = ShapesWorld(seed=seed, image_size=16)
    held = set(world.heldout_combos)
    for source, texts in training_texts(world, 1500).items():
        leaks = [t for t in texts if named_combinations(t) & held]
        assert not leaks, f"{source}: {len(leaks)} of {len(texts)} texts name a held-out combination, e.g. {leaks[0]!r}"
    heldout = world.heldout_pairs(300)  # the one view that may, and it does
    assert all(named_combinations(c) <= held for c in heldout.captions)


def test_the_leak_check_sees_a_leak():
    world = ShapesWorld(seed=0, image_size=16)
    color, shape = world.heldout_combos[0]
    assert named_combinations(f"is there a {color} {shape}?") == {(color, shape)}
    assert (named_combinations(f"a small green cross on the left and a large {color} {shape} at the top")
            & {(color, shape)})
    assert vqa_statement(f"what color is the {shape}?", color, world.heldout_mask) is None
    assert vqa_statement(f"what color is the {shape}?", color) == f"a {color} {shape}"


def test_hard_negatives_are_redrawn_never_dropped():
    world = ShapesWorld(seed=3, image_size=16)
    b = world.pairs(2000)
    negatives = hard_negative_captions(b)
    assert len(negatives) == len(b)
    two = b.attributes["n_objects"] == 2
    colour_swaps = 0
    for i, (c, neg) in enumerate(zip(b.captions, negatives)):
        assert neg != c and not caption_matches(neg, b.attributes, i)
        if two[i]:  # the same bag of words, bound differently: colours or positions swapped
            assert sorted(c.split()) == sorted(neg.split())
            colour_swaps += {o["color"] for o in parse_caption(neg)} == {o["color"] for o in parse_caption(c)} and \
                [o["position"] for o in parse_caption(neg)] == [o["position"] for o in parse_caption(c)]
        else:  # one word changed: the shape, the colour kept
            (o,), (p,) = parse_caption(c), parse_caption(neg)
            assert o["color"] == p["color"] and o["size"] == p["size"] and o["shape"] != p["shape"]
    assert 0.4 < colour_swaps / two.sum() < 0.9  # most two-object negatives are colour swaps


def test_wrong_attribute_noise_changes_exactly_one_word():
    world = ShapesWorld(seed=11, image_size=16)
    b = world.noisy_pairs(2000, noise_rate=1.0, kinds=("attribute",))
    assert b.is_noisy.all()
    changed = {"color": 0, "shape": 0, "size": 0}
    for i, (c, clean) in enumerate(zip(b.captions, b.clean_captions)):
        diff = [(x, y) for x, y in zip(c.split(), clean.split()) if x != y]
        assert len(diff) == 1 and not caption_matches(c, b.attributes, i)
        word = diff[0][0]
        changed["color" if word in COLORS else "shape" if word in SHAPES else "size"] += 1
    assert min(changed.values()) > 500  # all three kinds of wrong word, about a third each


def test_binding_pairs_size_twins_are_an_unseen_swap():
    world = ShapesWorld(seed=0, image_size=16)
    b = world.binding_pairs(300)
    assert (b.attributes["size"][:, 0] != b.attributes["size"][:, 1]).all()
    for i, (c, s) in enumerate(zip(b.captions, b.size_swapped_captions)):
        assert c != s and sorted(c.split()) == sorted(s.split())
        assert not caption_matches(s, b.attributes, i)
        assert [o["color"] for o in parse_caption(c)] == [o["color"] for o in parse_caption(s)]
    assert all(s != h for s, h in zip(b.size_swapped_captions, hard_negative_captions(b)))
    with pytest.raises(ValueError, match="two objects of different sizes"):
        size_swapped_captions(world.pairs(50))
    again = world.binding_pairs(10, start=5)  # redrawn scenes are still a function of the index
    assert again.captions == b.captions[5:15]
    assert np.array_equal(again.images.numpy(), b.images[5:15].numpy())
