import functools

import pytest
import torch
import torch.nn.functional as F

from vlmlearn.mlm import MaskedCaptionModel, mask_tokens, mlm_loss, mlm_step
from vlmlearn.models import SmallCNN


def test_mask_tokens_proportions_on_a_large_sample():
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(5, 40, (4000, 20), generator=g)
    ids[:, 0], ids[:, -3], ids[:, -2:] = 2, 3, 0  # bos ... eos pad pad
    inputs, labels = mask_tokens(ids, mask_id=4, vocab_size=40, generator=g)
    special = (ids < 5)
    chosen = labels != -100
    assert not (chosen & special).any() and torch.equal(inputs[special], ids[special])
    assert torch.equal(labels[chosen], ids[chosen])
    rate = chosen.sum() / (~special).sum()
    assert abs(rate - 0.15) < 0.005
    as_mask = (inputs[chosen] == 4).float().mean()
    kept = (inputs[chosen] == ids[chosen]).float().mean()
    random_word = 1 - as_mask - kept
    assert abs(as_mask - 0.8) < 0.01 and abs(kept - 0.1 - 0.1 / 35) < 0.01 and abs(random_word - 0.1 + 0.1 / 35) < 0.01
    assert inputs[chosen & (inputs != 4) & (inputs != ids)].min() >= 5  # random words are never special tokens
    assert torch.equal(inputs[~chosen], ids[~chosen])


def test_masked_caption_model_text_only_and_with_image():
    ids = torch.randint(5, 30, (3, 12))
    ids[:, -2:] = 0
    labels = torch.full_like(ids, -100)
    labels[:, 3] = ids[:, 3]
    text = MaskedCaptionModel(vocab_size=30, context_length=12, width=32, layers=1, heads=2)
    logits = text(ids)
    assert logits.shape == (3, 12, 30)
    mlm_loss(logits, labels).backward()
    cnn = SmallCNN(image_size=16, widths=(8, 16), embed_dim=8)
    both = MaskedCaptionModel(vocab_size=30, context_length=12, width=32, layers=1, heads=2, image_encoder=cnn.features,
                              image_channels=16, image_tokens=16)
    loss = mlm_loss(both(ids, torch.rand(3, 3, 16, 16)), labels)
    loss.backward()
    assert cnn.features[0].weight.grad is not None and torch.isfinite(loss)
    with pytest.raises(ValueError, match="images exactly"):
        both(ids)


def test_masked_word_predictions_for_the_explorer(world):
    from vlmlearn.data import WordTokenizer, caption_vocabulary
    from vlmlearn.widgets import masked_word_predictions

    tok = WordTokenizer(caption_vocabulary(), context_length=20)
    text = MaskedCaptionModel(vocab_size=tok.vocab_size, context_length=20, width=32, layers=1, heads=2)
    out = masked_word_predictions({"text": (text, False)}, tok, world.images(1).images[0],
                                  "a small red circle on the left", 2, k=3)
    assert len(out["text"]) == 3 and all(w in tok.itos for w, _ in out["text"])
    assert abs(sum(p for _, p in out["text"])) <= 1.0
    with pytest.raises(ValueError, match="position"):
        masked_word_predictions({"text": (text, False)}, tok, None, "a red circle", 3)


def test_mlm_loss_is_the_mean_over_the_masked_positions_exactly():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(5, 9, 20, generator=g)
    labels = torch.randint(0, 20, (5, 9), generator=g).masked_fill(torch.rand(5, 9, generator=g) < 0.7, -100)
    mean = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-100)
    assert torch.equal(mlm_loss(logits, labels), mean)  # bit for bit: the trained models are unchanged
    with pytest.raises(ValueError, match=r"labels \(B, L\), got \(5, 9, 20\) and \(5, 8\)"):
        mlm_loss(logits, labels[:, :8])


def test_mlm_loss_with_nothing_masked_is_zero_with_zero_gradients_not_nan():
    logits = torch.randn(3, 6, 20, requires_grad=True)
    loss = mlm_loss(logits, torch.full((3, 6), -100))
    assert loss.item() == 0.0  # F.cross_entropy's mean would be 0 / 0 = NaN, and train() would stop the run
    loss.backward()
    assert torch.equal(logits.grad, torch.zeros_like(logits))


def test_mlm_step_corrupts_predicts_and_scores_with_the_given_masking():
    torch.manual_seed(0)
    model = MaskedCaptionModel(vocab_size=30, context_length=12, width=16, layers=1, heads=2)
    ids = torch.randint(5, 30, (8, 12))
    ids[:, 0], ids[:, -1] = 2, 3
    calls = []

    def masking(ids, mask_id, vocab_size, mask_prob=0.15, generator=None):  # a learner's, with mask_tokens' contract
        calls.append((mask_id, vocab_size, mask_prob))
        return mask_tokens(ids, mask_id, vocab_size, mask_prob=mask_prob, generator=generator)

    step = functools.partial(mlm_step, mask_id=4, vocab_size=30, mask_prob=0.3)
    loss, metrics = step(model, (ids,), masking=masking, generator=torch.Generator().manual_seed(1))
    assert calls == [(4, 30, 0.3)]
    inputs, labels = mask_tokens(ids, 4, 30, mask_prob=0.3, generator=torch.Generator().manual_seed(1))
    logits = model(inputs)
    assert torch.equal(loss, mlm_loss(logits, labels))
    hit = logits.argmax(-1)[labels != -100] == labels[labels != -100]
    assert metrics == {"acc": hit.float().mean().item()}
    torch.manual_seed(2)
    default, _ = step(model, (ids,))  # mask_tokens on the global generator, as notebook 04's training does
    torch.manual_seed(2)
    inputs, labels = mask_tokens(ids, 4, 30, mask_prob=0.3)
    assert torch.equal(default, mlm_loss(model(inputs), labels))
