import pytest
import torch

from vlmlearn.data import ANSWERS, QUESTION_TYPES, ShapesWorld, WordTokenizer, caption_vocabulary
from vlmlearn.generative import (
    Captioner,
    CaptionToImage,
    caption_attribute_accuracy,
    captioning_step,
    corpus_bleu,
    text_to_image_step,
)


@pytest.fixture(scope="module")
def tok():
    return WordTokenizer(caption_vocabulary(), context_length=20)


def test_captioner_forward_backward(tok, world):
    model = Captioner(vocab_size=tok.vocab_size, width=32, layers=1, heads=2, widths=(8, 16, 16))
    b = world.pairs(6)
    ids = tok(b.captions)
    assert model(b.images, ids).shape == (6, 19, tok.vocab_size)
    loss, _ = captioning_step(model, (b.images, ids))
    loss.backward()
    assert torch.isfinite(loss) and model.features[0].weight.grad is not None
    with pytest.raises(ValueError, match="caption ids"):
        model(b.images, ids[:, :1])


def test_generate_stops_at_the_end_token(tok, world):
    torch.manual_seed(0)
    model = Captioner(vocab_size=tok.vocab_size, width=32, layers=1, heads=2, widths=(8, 16, 16))
    with torch.no_grad():  # make the end token the most likely next word after two words
        model.head.bias.zero_()
        model.head.bias[tok.eos_id] = 5.0
    images = world.images(4).images
    for kwargs in ({}, {"temperature": 1.0, "generator": torch.Generator().manual_seed(0)}):
        ids = model.generate(images, **kwargs)
        assert ids.shape == (4, tok.context_length) and (ids[:, 0] == tok.bos_id).all()
        for row in ids.tolist():
            end = row.index(tok.eos_id)  # every caption ends...
            assert all(i == tok.pad_id for i in row[end + 1:])  # ...and nothing follows the end token
    with torch.no_grad():
        model.head.bias[tok.eos_id] = -50.0
    ids = model.generate(images, max_length=7)
    assert ids.shape == (4, 7) and not (ids == tok.eos_id).any()  # no end token: stops at max_length
    with pytest.raises(ValueError, match="temperature"):
        model.generate(images, temperature=-1)


def test_caption_to_image_shapes_and_range(tok, world):
    model = CaptionToImage(vocab_size=tok.vocab_size, width=32, layers=1, channels=16)
    b = world.pairs(5)
    out = model(tok(b.captions))
    assert out.shape == (5, 3, 32, 32) and out.min() >= 0 and out.max() <= 1
    loss, _ = text_to_image_step(model, (b.images, tok(b.captions)))
    loss.backward()
    assert model.text.token_embed.weight.grad is not None


def test_corpus_bleu_matches_the_reference_example():
    # The example from NLTK's corpus_bleu documentation (Papineni et al.'s sentences); NLTK gives 0.5920778868801042.
    hyp1 = "It is a guide to action which ensures that the military always obeys the commands of the party".split()
    refs1 = ["It is a guide to action that ensures that the military will forever heed Party commands".split(),
             ("It is the guiding principle which guarantees the military forces always being under the command of "
              "the Party").split(),
             "It is the practical guide for the army always to heed the directions of the party".split()]
    hyp2 = "he read the book because he was interested in world history".split()
    refs2 = ["he was interested in world history because he read the book".split()]
    assert corpus_bleu([refs1, refs2], [hyp1, hyp2]) == pytest.approx(0.5920778868801042, abs=1e-12)
    assert corpus_bleu([[hyp2]], [hyp2]) == pytest.approx(1.0)
    assert corpus_bleu([[hyp2]], [hyp2[:5]]) == pytest.approx(1.0 * torch.tensor(1 - 11 / 5).exp().item())  # brevity
    assert corpus_bleu([[["a", "b", "c", "d"]]], [["d", "c", "b", "a"]]) == 0.0
    with pytest.raises(ValueError, match="one reference list per hypothesis"):
        corpus_bleu([[hyp1]], [hyp1, hyp2])


def test_caption_attribute_accuracy(world):
    b = world.pairs(50)
    perfect = caption_attribute_accuracy(b.captions, b.attributes)
    assert all(v == 1.0 for v in perfect.values())
    shifted = caption_attribute_accuracy(b.captions[1:] + b.captions[:1], b.attributes)
    assert shifted["exact"] < 0.2 and shifted["color"] < 0.5
    assert caption_attribute_accuracy(["stock photo 3"] * 50, b.attributes)["count"] == 0.0


def test_answer_vocabulary_covers_every_question_type(world):
    b = world.vqa(600)
    seen = {t: set() for t in QUESTION_TYPES}
    for t, a in zip(b.question_type, b.answers):
        seen[QUESTION_TYPES[t]].add(a)
    assert all(seen[t] for t in QUESTION_TYPES), "every question type must occur"
    assert set().union(*seen.values()) <= set(ANSWERS)
    assert b.labels.max() < len(ANSWERS) and [ANSWERS[i] for i in b.labels] == b.answers
    assert {"yes", "no"} <= seen["exists"] and len(seen["color"]) > 1 and len(seen["count"]) == 2


def test_caption_attribute_accuracy_ignores_the_order_of_objects(world):
    from vlmlearn.data import caption_from_attributes

    b = world.pairs(200)
    two = b.attributes["n_objects"] == 2
    swapped = {k: (v[:, ::-1].copy() if v.ndim == 2 else v) for k, v in b.attributes.items()}
    flipped = caption_from_attributes(swapped, b.template)  # the same scenes, objects named in the other order
    assert two.any() and flipped != b.captions
    assert all(v == 1.0 for v in caption_attribute_accuracy(
        [c if t else o for c, o, t in zip(flipped, b.captions, two)], b.attributes).values())


def test_color_reader_reads_real_and_blurred_objects():
    import torch.nn.functional as F

    from vlmlearn.generative import read_colors

    for size in (16, 32):
        b = ShapesWorld(seed=2, image_size=size).labeled(600, attribute="color")
        assert (read_colors(b.images) == b.labels).float().mean() > 0.98
        blurred = F.avg_pool2d(b.images, 5, stride=1, padding=2, count_include_pad=False)  # what a painter makes
        assert (read_colors(blurred) == b.labels).float().mean() > 0.95
    grey_mix = 0.2 + 0.4 * (b.images - 0.2)  # a washed-out painting: white must not turn into cyan or green
    assert (read_colors(grey_mix) == b.labels).float().mean() > 0.95
    with pytest.raises(ValueError, match=r"\(N, 3, S, S\)"):
        read_colors(b.images[0])
