"""Pins the loss of every step function, `step_fn(model, batch) -> (loss, metrics)`, on a fixed tiny batch.

Each test computes the expected loss with its own arithmetic (plain torch ops: log_softmax, logsigmoid, squares,
means), never with the package's loss helpers (clip_loss, siglip_loss, mlm_loss, fixmatch_unlabeled_loss, ...), from
the model's own forward outputs. So a refactor that moves the step code around cannot silently change what it
computes: a dropped weight, a loss on the wrong views, a missing bias or a different normalisation fails here.

Randomness: the steps that draw random numbers (augmentations, MAE's masking noise, the image shift of
consistency_clip_step) draw them from torch's global generator. Each test seeds it right before calling the step,
then seeds it again and redraws the same numbers in the same order by calling the same augmentation functions
(weak_augment, strong_augment, random_shift) or the model's own forward (MAE): the views are the package's, the
loss arithmetic is the test's. Models are tiny, seeded, without dropout, and every forward is deterministic.
"""
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from vlmlearn.augment import strong_augment, weak_augment
from vlmlearn.contrastive import DualEncoder, clip_step, consistency_clip_step, siglip_step
from vlmlearn.generative import Captioner, CaptionToImage, captioning_step, text_to_image_step
from vlmlearn.mae import MaskedAutoencoder, mae_step
from vlmlearn.mlm import MaskedCaptionModel, mask_tokens, mlm_step
from vlmlearn.models import SmallCNN, TextTransformer
from vlmlearn.semi import (
    Ramp,
    ema_teacher,
    fixmatch_step,
    mean_teacher_step,
    pi_model_step,
    pseudo_label_step,
    supervised_step,
)
from vlmlearn.vqa import VQAByMatching, VQAModel, vqa_step

VOCAB, LENGTH, SEED = 14, 7, 1234  # ids 0-4 are special (pad, unk, bos, eos, mask), 5-13 are words


def close(actual, expected, tol=1e-5):
    def as64(t):
        return torch.as_tensor(t).detach().to(torch.float64)

    torch.testing.assert_close(as64(actual), as64(expected), rtol=tol, atol=tol)


def differs(a, b, by=1e-3):
    """The test's sensitivity: a plausible wrong formula lands far outside the tolerance of `close`."""
    a, b = float(torch.as_tensor(a).detach()), float(torch.as_tensor(b).detach())
    assert abs(a - b) > by, (a, b)


def cross_entropy(logits, labels):
    """Mean over rows of -log softmax(logits)[label], written out (no F.cross_entropy)."""
    logp = logits - logits.logsumexp(-1, keepdim=True)
    return -logp[torch.arange(len(labels)), labels].mean()


def captions(b, generator, *, min_words=1):
    """(b, LENGTH) right-padded ids: bos, 1 to LENGTH - 2 words, eos, padding."""
    ids = torch.zeros(b, LENGTH, dtype=torch.long)
    for i in range(b):
        n = int(torch.randint(min_words, LENGTH - 1, (1,), generator=generator))
        ids[i, 0] = 2
        ids[i, 1:1 + n] = torch.randint(5, VOCAB, (n,), generator=generator)
        ids[i, 1 + n] = 3
    return ids


# ------------------------------------------------------------------------------ contrastive
@pytest.fixture
def dual():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    model = DualEncoder(SmallCNN(image_size=8, widths=(4,), embed_dim=8),
                        TextTransformer(vocab_size=VOCAB, context_length=LENGTH, width=8, layers=1, heads=2,
                                        embed_dim=8, token_init_std=1.0),
                        init_temperature=0.1, logit_bias=-3.0)
    images, ids, other = torch.rand(5, 3, 8, 8, generator=g), captions(5, g), captions(5, g)
    return model, images, ids, other


def test_clip_step_is_symmetric_infonce_at_the_models_scale(dual):
    model, images, ids, _ = dual
    loss, metrics = clip_step(model, (images, ids))
    img, txt = F.normalize(model.image_encoder(images), dim=-1), F.normalize(model.text_encoder(ids), dim=-1)
    scale = model.logit_scale.exp()
    labels = torch.arange(5)
    expected = (cross_entropy(scale * img @ txt.T, labels) + cross_entropy(scale * txt @ img.T, labels)) / 2
    close(loss, expected)
    assert metrics == {"temperature": pytest.approx(1 / scale.item(), rel=1e-6)}
    assert metrics["temperature"] == pytest.approx(0.1, rel=1e-6)
    differs(loss, cross_entropy(scale * img @ txt.T, labels))          # one direction only
    differs(loss, (cross_entropy(img @ txt.T, labels) + cross_entropy(txt @ img.T, labels)) / 2)  # scale dropped


def test_clip_step_with_hard_negative_captions_adds_them_to_the_image_side_only(dual):
    model, images, ids, other = dual
    negatives = other[:3]  # M = 3 extra captions for B = 5 images
    loss, metrics = clip_step(model, (images, ids, negatives))
    img, txt = F.normalize(model.image_encoder(images), dim=-1), F.normalize(model.text_encoder(ids), dim=-1)
    neg = F.normalize(model.text_encoder(negatives), dim=-1)
    scale, labels = model.logit_scale.exp(), torch.arange(5)
    per_image = scale * img @ torch.cat([txt, neg]).T   # (5, 8): each image picks its caption among 5 + 3
    per_text = scale * txt @ img.T                      # (5, 5): negatives describe no image, so no rows here
    close(loss, (cross_entropy(per_image, labels) + cross_entropy(per_text, labels)) / 2)
    assert metrics["temperature"] == pytest.approx(1 / scale.item(), rel=1e-6)
    differs(loss, clip_step(model, (images, ids))[0])  # the negatives ignored


def test_siglip_step_is_the_sigmoid_loss_summed_over_pairs_and_divided_by_the_batch(dual):
    model, images, ids, _ = dual
    loss, metrics = siglip_step(model, (images, ids))
    img, txt = F.normalize(model.image_encoder(images), dim=-1), F.normalize(model.text_encoder(ids), dim=-1)
    scale, bias = model.logit_scale.exp(), model.logit_bias
    assert bias.item() == -3.0 and scale.item() == pytest.approx(10.0)
    logits = scale * img @ txt.T + bias
    label = 2 * torch.eye(5) - 1  # +1 on the matching pairs, -1 elsewhere
    # Zhai et al. 2023: -1/|B| sum over images of sum over texts of log sigmoid(z_ij (t x_i.y_j + b))
    expected = -sum(F.logsigmoid(label[i, j] * logits[i, j]) for i in range(5) for j in range(5)) / 5
    close(loss, expected)
    assert metrics == {"temperature": pytest.approx(1 / scale.item(), rel=1e-6)}
    differs(loss, -F.logsigmoid(label * (scale * img @ txt.T)).sum() / 5)   # bias dropped
    differs(loss, -F.logsigmoid(label * logits).mean())                     # mean over all 25 pairs
    with pytest.raises(ValueError, match="logit_bias"):
        siglip_step(DualEncoder(model.image_encoder, model.text_encoder), (images, ids))


@pytest.mark.parametrize("weight", [0.3, 2.0])
def test_consistency_clip_step_adds_weighted_one_minus_cosine_gaps(dual, weight):
    from vlmlearn.augment import random_shift

    model, images, ids, perturbed = dual
    kwargs = {} if weight == 0.3 else {"weight": weight}  # 0.3 is the default
    torch.manual_seed(SEED)
    loss, metrics = consistency_clip_step(model, (images, ids, perturbed), **kwargs)
    torch.manual_seed(SEED)
    shifted = random_shift(images, 1)  # the step's only random draw: a 1-pixel shift per image
    img, txt = F.normalize(model.image_encoder(images), dim=-1), F.normalize(model.text_encoder(ids), dim=-1)
    scale, labels = model.logit_scale.exp(), torch.arange(5)
    infonce = (cross_entropy(scale * img @ txt.T, labels) + cross_entropy(scale * txt @ img.T, labels)) / 2
    text_gap = 1 - F.cosine_similarity(txt, model.text_encoder(perturbed), dim=-1).mean()
    image_gap = 1 - F.cosine_similarity(img, model.image_encoder(shifted), dim=-1).mean()
    close(loss, infonce + weight * (text_gap + image_gap))
    assert metrics["text_gap"] == pytest.approx(text_gap.item(), abs=1e-5)
    assert metrics["image_gap"] == pytest.approx(image_gap.item(), abs=1e-5)
    assert text_gap > 1e-2 and image_gap > 1e-4  # both terms are live on this batch
    differs(loss, infonce + weight * text_gap, by=1e-4)


# ------------------------------------------------------------------------------ semi-supervised
# A BatchNorm-free classifier: each image's logits depend on that image only, so recomputing the views one by one
# gives the same logits as the step's single forward over the concatenated batch.
def classifier(seed=0):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16 * 16, 16), nn.Tanh(), nn.Linear(16, 4))
    with torch.no_grad():
        model[3].weight.mul_(6.0)  # confident enough that the top probabilities spread out
    return model


@pytest.fixture
def semi_batch():
    g = torch.Generator().manual_seed(2)
    return torch.rand(4, 1, 16, 16, generator=g), torch.tensor([0, 3, 1, 2]), torch.rand(6, 1, 16, 16, generator=g)


def test_supervised_step_is_cross_entropy_on_a_weak_view(semi_batch):
    model = classifier()
    x, y, u = semi_batch
    torch.manual_seed(SEED)
    loss, metrics = supervised_step(model, (x, y, u))
    torch.manual_seed(SEED)
    xw = weak_augment(x)
    close(loss, cross_entropy(model(xw), y))
    assert metrics == {}
    differs(loss, cross_entropy(model(x), y), by=1e-4)  # without the augmentation


def pi_expected(model, x, y, u, w):
    """The Π-model with the step's draws: weak(x), weak(u), weak(u), in that order."""
    torch.manual_seed(SEED)
    xw, u1, u2 = weak_augment(x), weak_augment(u), weak_augment(u)
    p1, p2 = model(u1).softmax(-1), model(u2).softmax(-1)
    consistency = ((p1 - p2) ** 2).mean()  # mean over images and classes, on probabilities
    logit_consistency = ((model(u1) - model(u2)) ** 2).mean()
    return cross_entropy(model(xw), y), consistency, logit_consistency


@pytest.mark.parametrize("weight", ["default", 3.0, "ramp"])
def test_pi_model_step_penalises_squared_differences_of_probabilities(semi_batch, weight):
    model = classifier()
    x, y, u = semi_batch
    if weight == "default":
        kwargs, w = {}, 10.0
    elif weight == "ramp":
        ramp = Ramp.sigmoid(10.0, end=100)
        ramp.step = 40
        kwargs, w = {"weight": ramp}, 10.0 * math.exp(-5.0 * (1 - 40 / 100) ** 2)
    else:
        kwargs, w = {"weight": weight}, weight
    torch.manual_seed(SEED)
    loss, metrics = pi_model_step(model, (x, y, u), **kwargs)
    ce, consistency, logit_consistency = pi_expected(model, x, y, u, w)
    close(loss, ce + w * consistency)
    assert metrics["weight"] == pytest.approx(w, rel=1e-9)
    assert metrics["consistency"] == pytest.approx(consistency.item(), rel=1e-5, abs=1e-7)
    assert consistency > 1e-3
    differs(loss, ce + w * logit_consistency)  # the same penalty on logits
    differs(loss, ce + consistency)            # the weight dropped


def test_mean_teacher_step_matches_student_probabilities_to_the_teachers_on_another_view(semi_batch):
    model = classifier()
    x, y, u = semi_batch
    teacher = ema_teacher(model, decay=0.9)
    with torch.no_grad():  # the student has moved on since the teacher's copy
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    ramp = Ramp.linear(4.0, start=10, end=30)
    ramp.step = 25
    torch.manual_seed(SEED)
    loss, metrics = mean_teacher_step(model, (x, y, u), teacher=teacher, weight=ramp)
    torch.manual_seed(SEED)
    xw, us, ut = weak_augment(x), weak_augment(u), weak_augment(u)  # student's views, then the teacher's
    target = teacher.module(ut).softmax(-1).detach()
    consistency = ((model(us).softmax(-1) - target) ** 2).mean()
    w = 4.0 * (25 - 10) / (30 - 10)
    close(loss, cross_entropy(model(xw), y) + w * consistency)
    assert (metrics["weight"] == pytest.approx(w)
            and metrics["consistency"] == pytest.approx(consistency.item(), rel=1e-5))
    same_view = ((model(us).softmax(-1) - teacher.module(us).softmax(-1)) ** 2).mean()
    differs(loss, cross_entropy(model(xw), y) + w * same_view)
    loss.backward()
    assert all(p.grad is None for p in teacher.parameters())  # no gradient into the teacher


def fixmatch_views(x, u):
    torch.manual_seed(SEED)
    return weak_augment(x), weak_augment(u), strong_augment(u)  # the step's draws, in its order


def threshold_between(top, k):
    """A threshold that keeps exactly the k most confident of the (distinct) top probabilities."""
    s = top.sort(descending=True).values
    return float((s[k - 1] + s[k]) / 2)


@pytest.mark.parametrize("weight", [1.0, 2.5])
def test_fixmatch_step_pseudo_labels_the_weak_view_and_trains_the_strong_view(semi_batch, weight):
    model = classifier()
    x, y, u = semi_batch
    xw, uw, us = fixmatch_views(x, u)
    probs_weak = model(uw).detach().softmax(-1)
    threshold = threshold_between(probs_weak.max(-1).values, 3)  # 3 of the 6 unlabeled images count
    torch.manual_seed(SEED)
    loss, metrics = fixmatch_step(model, (x, y, u), threshold=threshold, weight=weight)
    mask = (probs_weak.max(-1).values >= threshold).float()
    logits_strong = model(us)
    logp = logits_strong.log_softmax(-1)
    unsup = -(logp[torch.arange(6), probs_weak.argmax(-1)] * mask).sum() / 6  # averaged over all 6 images
    close(loss, cross_entropy(model(xw), y) + weight * unsup)
    assert metrics == {"mask_rate": pytest.approx(0.5)}
    assert unsup > 1e-2
    # the views swapped: labels from the strong view, learned on the weak
    probs_strong = logits_strong.detach().softmax(-1)
    flipped_mask = (probs_strong.max(-1).values >= threshold).float()
    flipped = -(model(uw).log_softmax(-1)[torch.arange(6), probs_strong.argmax(-1)] * flipped_mask).sum() / 6
    differs(loss, cross_entropy(model(xw), y) + weight * flipped)
    differs(loss, cross_entropy(model(xw), y) + weight * unsup * 6 / mask.sum())  # averaged over confident ones only


def test_fixmatch_step_default_threshold_is_095(semi_batch):
    model = classifier()
    with torch.no_grad():
        model[3].weight.mul_(4.0)  # confident enough that 2 of the 6 weak views reach 0.95 (0.996 and 0.976)
    x, y, u = semi_batch
    xw, uw, us = fixmatch_views(x, u)
    probs_weak = model(uw).detach().softmax(-1)
    mask = (probs_weak.max(-1).values >= 0.95).float()
    torch.manual_seed(SEED)
    loss, metrics = fixmatch_step(model, (x, y, u))
    unsup = -(model(us).log_softmax(-1)[torch.arange(6), probs_weak.argmax(-1)] * mask).mean()
    close(loss, cross_entropy(model(xw), y) + unsup)
    assert metrics["mask_rate"] == pytest.approx(2 / 6) and mask.sum() == 2


@pytest.mark.parametrize("threshold", [None, "some"])
def test_pseudo_label_step_is_lees_argmax_self_training(semi_batch, threshold):
    model = classifier()
    x, y, u = semi_batch
    torch.manual_seed(SEED)
    xw, uw = weak_augment(x), weak_augment(u)
    logits_u = model(uw)
    probs = logits_u.detach().softmax(-1)
    top = probs.max(-1).values
    t = None if threshold is None else threshold_between(top, 2)
    mask = torch.ones(6) if t is None else (top >= t).float()
    ramp = Ramp.linear(3.0, start=100, end=400)
    ramp.step = 200
    w = 3.0 * (200 - 100) / 300
    torch.manual_seed(SEED)
    loss, metrics = pseudo_label_step(model, (x, y, u), threshold=t, weight=ramp)
    unsup = -(logits_u.log_softmax(-1)[torch.arange(6), probs.argmax(-1)] * mask).sum() / 6
    close(loss, cross_entropy(model(xw), y) + w * unsup)
    assert metrics["weight"] == pytest.approx(w)
    assert metrics["mask_rate"] == pytest.approx(1.0 if t is None else 2 / 6)
    if t is not None:
        all_count = -(logits_u.log_softmax(-1)[torch.arange(6), probs.argmax(-1)]).mean()
        differs(loss, cross_entropy(model(xw), y) + w * all_count)
    # soft targets (the prediction's entropy) instead of hard argmax labels
    soft = -(probs * logits_u.log_softmax(-1)).sum(-1).mul(mask).mean()
    differs(loss, cross_entropy(model(xw), y) + w * soft, by=1e-4)


# ------------------------------------------------------------------------------ masked modeling
def my_patchify(images, p):
    """(B, C, S, S) -> (B, N, p*p*C), patches in raster order, pixels channel-last, written with unfold."""
    b, c = images.shape[:2]
    t = images.unfold(2, p, p).unfold(3, p, p)  # (B, C, gy, gx, p, p)
    return t.permute(0, 2, 3, 4, 5, 1).reshape(b, -1, p * p * c)


@pytest.mark.parametrize("norm_pix", [True, False])
def test_mae_step_is_mse_on_the_masked_patches_with_per_patch_normalised_targets(norm_pix):
    torch.manual_seed(0)
    model = MaskedAutoencoder(image_size=8, patch_size=2, in_channels=3, width=8, depth=1, heads=2, decoder_width=8,
                              decoder_depth=1, decoder_heads=2, mask_ratio=0.75, norm_pix_loss=norm_pix,
                              norm_pix_eps=0.01)
    images = torch.rand(4, 3, 8, 8, generator=torch.Generator().manual_seed(3))
    images[0, :, :2, :2] = 0.5  # one flat patch: with norm_pix only the eps keeps its target finite
    torch.manual_seed(SEED)
    loss, metrics = mae_step(model, (images,))
    torch.manual_seed(SEED)
    out = model(images)  # the same masking noise: the model's own prediction and mask
    assert metrics == {}
    mask = out.mask
    assert mask.shape == (4, 16) and (mask.sum(1) == 16 - int(16 * 0.25)).all()
    target = my_patchify(images, 2)
    if norm_pix:
        mean = target.mean(-1, keepdim=True)
        var = ((target - mean) ** 2).sum(-1, keepdim=True) / (target.shape[-1] - 1)  # unbiased, as MAE
        target = (target - mean) / (var + 0.01).sqrt()
    per_patch = ((out.pred - target) ** 2).mean(-1)  # (B, N)
    expected = (per_patch * mask).sum() / mask.sum()
    close(loss, expected)
    close(out.loss, expected)
    differs(loss, (per_patch * (1 - mask)).sum() / (1 - mask).sum())  # the visible patches
    differs(loss, per_patch.mean(), by=1e-4)                           # every patch
    if norm_pix:
        raw = my_patchify(images, 2)
        raw = (raw - raw.mean(-1, keepdim=True)) / (raw.var(-1, keepdim=True) + 1e-6).sqrt()
        differs(loss, (((out.pred - raw) ** 2).mean(-1) * mask).sum() / mask.sum())  # MAE's default eps instead


@pytest.mark.parametrize("with_images", [False, True])
def test_mlm_step_is_cross_entropy_over_the_masked_positions_only(with_images):
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(4)
    ids = captions(6, g, min_words=3)
    images = torch.rand(6, 3, 8, 8, generator=g)
    if with_images:
        model = MaskedCaptionModel(vocab_size=VOCAB, context_length=LENGTH, width=8, layers=1, heads=2,
                                   image_encoder=nn.Conv2d(3, 4, 4, stride=4), image_channels=4, image_tokens=4)
        batch = (images, ids)
    else:
        model = MaskedCaptionModel(vocab_size=VOCAB, context_length=LENGTH, width=8, layers=1, heads=2)
        batch = (ids,)
    loss, metrics = mlm_step(model, batch, mask_id=4, vocab_size=VOCAB, mask_prob=0.3,
                             generator=torch.Generator().manual_seed(5))
    # BERT's corruption, redrawn by hand from the same generator (draw order: chosen, how, words)
    r = torch.Generator().manual_seed(5)
    chosen = (torch.rand(ids.shape, generator=r) < 0.3) & (ids >= 5)
    how = torch.rand(ids.shape, generator=r)
    words = 5 + torch.randint(VOCAB - 5, ids.shape, generator=r)
    expect_inputs = ids.clone()
    expect_inputs[chosen & (how < 0.8)] = 4
    expect_inputs[chosen & (how >= 0.8) & (how < 0.9)] = words[chosen & (how >= 0.8) & (how < 0.9)]
    inputs, labels = mask_tokens(ids, mask_id=4, vocab_size=VOCAB, mask_prob=0.3,
                                 generator=torch.Generator().manual_seed(5))
    assert torch.equal(inputs, expect_inputs)  # the corruption the step draws
    assert torch.equal(labels, torch.where(chosen, ids, torch.full_like(ids, -100)))
    assert chosen.sum() >= 4
    logits = model(expect_inputs) if not with_images else model(expect_inputs, images)
    logp = logits.log_softmax(-1)
    rows, cols = chosen.nonzero(as_tuple=True)
    expected = -logp[rows, cols, ids[rows, cols]].mean()
    close(loss, expected)
    close(metrics["acc"], (logits.argmax(-1)[rows, cols] == ids[rows, cols]).double().mean())
    every = -logp.gather(-1, ids[..., None])[..., 0][ids != 0].mean()  # every non-pad position
    differs(loss, every, by=1e-3)


# ------------------------------------------------------------------------------ VQA and generation
@pytest.fixture
def vqa_batch():
    g = torch.Generator().manual_seed(6)
    images, ids = torch.rand(6, 3, 8, 8, generator=g), captions(6, g)
    candidates = torch.rand(6, 5, generator=g) < 0.5
    labels = torch.tensor([0, 4, 2, 1, 3, 2])
    candidates[torch.arange(6), labels] = True
    candidates[0, 1] = candidates[1, 0] = True  # at least two candidates for every question
    return images, ids, labels, candidates


def tiny_text(seed):
    torch.manual_seed(seed)
    return TextTransformer(vocab_size=VOCAB, context_length=LENGTH, width=8, layers=1, heads=2, embed_dim=8,
                           token_init_std=1.0)


def test_vqa_step_is_cross_entropy_over_answers_restricted_to_candidates(vqa_batch):
    images, ids, labels, candidates = vqa_batch
    torch.manual_seed(0)
    model = VQAModel(SmallCNN(image_size=8, widths=(4,), embed_dim=8), tiny_text(1), dim=8, num_answers=5, hidden=16)
    with torch.no_grad():
        model.head[-1].weight.mul_(10)
    logits = model(images, ids)
    loss, metrics = vqa_step(model, (images, ids, labels))
    close(loss, cross_entropy(logits, labels))
    assert metrics == {"acc": pytest.approx((logits.argmax(-1) == labels).float().mean().item())}
    loss_c, metrics_c = vqa_step(model, (images, ids, labels, candidates))
    restricted = logits.masked_fill(~candidates, float("-inf"))
    close(loss_c, cross_entropy(restricted, labels))
    assert metrics_c == {"acc": pytest.approx((restricted.argmax(-1) == labels).float().mean().item())}
    differs(loss_c, loss)


def test_vqa_step_with_answer_by_matching(vqa_batch):
    images, ids, labels, candidates = vqa_batch
    torch.manual_seed(0)
    model = VQAByMatching(SmallCNN(image_size=8, widths=(4,), embed_dim=8), tiny_text(1), num_answers=5)
    with torch.no_grad():
        model.answer_bias.copy_(torch.tensor([0.5, -0.2, 0.0, 0.3, -1.0]))
    g = torch.Generator().manual_seed(7)
    statements = torch.stack([captions(5, g) for _ in range(6)])  # (6, 5, L)
    statements[~candidates] = 0  # an answer that does not fit: all padding
    loss, metrics = vqa_step(model, (images, statements, labels))
    img = F.normalize(model.image_encoder(images), dim=-1)
    scores = torch.full((6, 5), float("-inf"))
    for i in range(6):
        for a in range(5):
            if candidates[i, a]:
                txt = F.normalize(model.question_encoder(statements[i, a][None]), dim=-1)[0]
                scores[i, a] = model.logit_scale.exp() * (img[i] @ txt) + model.answer_bias[a]
    # one forward per statement vs the model's batched one: float32 sums, so 1e-5 relative
    close(loss, cross_entropy(scores, labels))
    assert metrics == {"acc": pytest.approx((scores.argmax(-1) == labels).float().mean().item())}


def test_captioning_step_is_next_word_cross_entropy_ignoring_padding():
    torch.manual_seed(0)
    model = Captioner(vocab_size=VOCAB, context_length=LENGTH, width=8, layers=1, heads=2, image_size=8, widths=(4, 8))
    g = torch.Generator().manual_seed(8)
    images, ids = torch.rand(5, 3, 8, 8, generator=g), captions(5, g)
    assert (ids == 0).any()
    loss, metrics = captioning_step(model, (images, ids))
    logits = model(images, ids)  # (B, L-1, V): the logits after reading ids[:, :t+1]
    assert logits.shape == (5, LENGTH - 1, VOCAB) and metrics == {}
    logp = logits.log_softmax(-1)
    nxt = ids[:, 1:]
    real = nxt != 0
    close(loss, -logp.gather(-1, nxt[..., None])[..., 0][real].mean())
    differs(loss, -logp.gather(-1, nxt[..., None])[..., 0].mean())  # padding counted
    # the current word, not the next
    differs(loss, -logp.gather(-1, ids[:, :-1, None])[..., 0][ids[:, :-1] != 0].mean())


def test_text_to_image_step_is_mean_squared_pixel_error():
    torch.manual_seed(0)
    model = CaptionToImage(vocab_size=VOCAB, context_length=LENGTH, width=8, layers=1, image_size=8, channels=4)
    g = torch.Generator().manual_seed(9)
    images, ids = torch.rand(5, 3, 8, 8, generator=g), captions(5, g)
    loss, metrics = text_to_image_step(model, (images, ids))
    painted = model(ids)
    assert painted.shape == images.shape and metrics == {}
    close(loss, ((painted - images) ** 2).sum() / images.numel())
    differs(loss, (painted - images).abs().mean())
