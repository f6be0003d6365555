import pytest
import torch

from vlmlearn.contrastive import DualEncoder
from vlmlearn.data import ANSWERS, WordTokenizer, caption_vocabulary
from vlmlearn.models import SmallCNN, TextTransformer
from vlmlearn.vqa import VQAModel, vqa_accuracy, vqa_step


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
