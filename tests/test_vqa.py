import pytest
import torch

from vlmlearn.contrastive import DualEncoder
from vlmlearn.data import (
    ANSWERS,
    ANSWERS_BY_TYPE,
    QUESTION_TYPES,
    WordTokenizer,
    caption_vocabulary,
    trim_padding,
    vqa_statement,
)
from vlmlearn.models import SmallCNN, TextTransformer
from vlmlearn.vqa import VQAByMatching, VQAModel, answer_candidates, answer_statements, vqa_accuracy, vqa_step


def test_vqa_model_from_dual_encoder_trains_copies(world):
    b = world.vqa(16)
    tok = WordTokenizer.from_texts(caption_vocabulary() + b.questions, context_length=20)
    dual = DualEncoder(SmallCNN(image_size=32, widths=(8, 16), embed_dim=16),
                       TextTransformer(vocab_size=tok.vocab_size, context_length=20, width=16, layers=1, heads=2,
                                       embed_dim=16))
    before = [p.detach().clone() for p in dual.parameters()]
    model = VQAModel.from_dual_encoder(dual, num_answers=len(ANSWERS), hidden=32)
    ids = tok(b.questions)
    assert model(b.images, ids).shape == (16, len(ANSWERS))
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    loss, metrics = vqa_step(model, (b.images, ids, b.labels))
    loss.backward()
    opt.step()
    assert all(torch.equal(a, p) for a, p in zip(before, dual.parameters()))  # the pretrained model is untouched
    assert not torch.equal(model.image_encoder.proj.weight, dual.image_encoder.proj.weight)
    assert 0.0 <= metrics["acc"] <= 1.0 and 0.0 <= vqa_accuracy(model, b.images, ids, b.labels) <= 1.0
    with pytest.raises(ValueError, match="questions"):
        model(b.images, ids[:3])


def _tiny_dual(tok):
    return DualEncoder(SmallCNN(image_size=32, widths=(8, 16), embed_dim=16),
                       TextTransformer(vocab_size=tok.vocab_size, context_length=20, width=16, layers=1, heads=2,
                                       embed_dim=16))


def test_vqa_statement_rewrites_every_question_type_with_its_answers(world):
    b = world.vqa(300)
    for q, t, answer in zip(b.questions, b.question_type, b.answers):
        fits = [a for a in ANSWERS if vqa_statement(q, a) is not None]
        assert fits == list(ANSWERS_BY_TYPE[QUESTION_TYPES[t]]) and answer in fits
    assert set(b.question_type) == set(range(len(QUESTION_TYPES)))
    assert vqa_statement("what color is the square?", "red") == "a red square"
    assert vqa_statement("what shape is at the top?", "circle") == "a circle at the top"
    assert vqa_statement("where is the red circle?", "left") == "a red circle on the left"
    assert vqa_statement("how many shapes are there?", "two") == "two shapes"
    assert vqa_statement("is there a red circle?", "no") == "no red circle"
    assert vqa_statement("what color is the square?", "yes") is None
    with pytest.raises(ValueError, match="not a ShapesWorld question"):
        vqa_statement("why is the sky blue?", "red")


def test_answer_statements_pads_answers_that_do_not_fit(world):
    b = world.vqa(40)
    tok = WordTokenizer.from_texts(caption_vocabulary() + b.questions + list(ANSWERS), context_length=20)
    ids = answer_statements(b.questions, tok)
    assert ids.shape[:2] == (40, len(ANSWERS)) and ids.shape[2] < 20  # trimmed to the longest statement
    candidate = (ids != tok.pad_id).any(-1)
    for i, q in enumerate(b.questions):
        for a, answer in enumerate(ANSWERS):
            statement = vqa_statement(q, answer)
            assert candidate[i, a] == (statement is not None)
            if statement is not None:
                assert tok.decode(ids[i, a][None])[0] == statement
    assert (tok(b.questions[:3]) != tok.pad_id).sum() == (trim_padding(tok(b.questions[:3])) != tok.pad_id).sum()
    without_answers = WordTokenizer.from_texts(caption_vocabulary() + b.questions, context_length=20)
    with pytest.raises(ValueError, match="'no'"):
        answer_statements(["is there a red circle?"], without_answers)


def test_vqa_by_matching_scores_only_candidates_and_trains(world):
    b = world.vqa(32)
    tok = WordTokenizer.from_texts(caption_vocabulary() + b.questions + list(ANSWERS), context_length=20)
    dual = _tiny_dual(tok)
    model = VQAByMatching.from_dual_encoder(dual)
    statements = answer_statements(b.questions, tok)
    logits = model.eval()(b.images, statements)
    candidate = (statements != tok.pad_id).any(-1)
    assert logits.shape == (32, len(ANSWERS))
    assert torch.isinf(logits[~candidate]).all() and torch.isfinite(logits[candidate]).all()
    # logit = scale * cos(image, statement) + bias: check one entry against the dual encoder directly
    i, a = 0, int(b.labels[0])
    expected = dual.eval().scale() * (dual.encode_image(b.images[:1]) @ dual.encode_text(statements[0, a][None]).T)
    assert torch.allclose(logits[i, a], expected.squeeze(), atol=1e-5)
    loss, _ = vqa_step(model.train(), (b.images, statements, b.labels))
    assert torch.isfinite(loss)
    loss.backward()
    assert model.answer_bias.grad is not None and model.image_encoder.proj.weight.grad is not None
    assert len(model.towers()) == len(list(dual.parameters())) - 1  # both towers, not the temperature or the biases
    assert 0.0 <= vqa_accuracy(model, b.images, statements, b.labels) <= 1.0
    with pytest.raises(ValueError, match="answer_statements"):
        model(b.images, tok(b.questions))
    with pytest.raises(ValueError, match="no candidate"):
        model(b.images[:1], torch.zeros_like(statements[:1]))


def test_a_classifier_head_can_choose_among_the_matchers_answers(world):
    b = world.vqa(64)
    tok = WordTokenizer.from_texts(caption_vocabulary() + b.questions + list(ANSWERS), context_length=20)
    candidates = answer_candidates(b.questions, heldout=world.heldout_mask)
    statements = answer_statements(b.questions, tok, heldout=world.heldout_mask)
    assert torch.equal(candidates, (statements != tok.pad_id).any(-1))  # the same answer set as VQAByMatching
    assert candidates[torch.arange(64), b.labels].all()  # the true answer is always a candidate
    color, shape = world.heldout_combos[0]
    held = answer_candidates([f"what color is the {shape}?"], heldout=world.heldout_mask)[0]
    seen_colours = [c for c in ANSWERS_BY_TYPE["color"] if (c, shape) not in world.heldout_combos]
    assert not held[ANSWERS.index(color)] and held.sum() == len(seen_colours) < len(ANSWERS_BY_TYPE["color"])

    class Fixed(torch.nn.Module):  # a "model" whose logits favour a wrong answer outside the candidates
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(()))

        def forward(self, images, ids):
            logits = torch.zeros(len(images), len(ANSWERS)) + self.w
            logits[torch.arange(len(images)), b.labels[: len(images)]] = 1.0
            logits[:, ANSWERS.index("yes")] = 5.0  # "yes" is wrong for every non-yes/no question
            return logits

    model, ids = Fixed(), tok(b.questions)
    yes_no = torch.tensor([q.startswith("is there") for q in b.questions])
    assert vqa_accuracy(model, b.images, ids, b.labels) == pytest.approx(
        (b.labels == ANSWERS.index("yes")).float().mean().item())
    assert vqa_accuracy(model, b.images, ids, b.labels, candidates) == pytest.approx(
        ((~yes_no) | (b.labels == ANSWERS.index("yes"))).float().mean().item())
    loss, metrics = vqa_step(model, (b.images, ids, b.labels, candidates))
    assert torch.isfinite(loss) and metrics["acc"] == pytest.approx(
        vqa_accuracy(model, b.images, ids, b.labels, candidates))
    with pytest.raises(ValueError, match="answer_candidates"):
        vqa_step(model, (b.images, ids, b.labels, candidates[:, :3]))
