"""A CLIP-style dual encoder, its training step, and the evaluations of notebooks 01 and 02.

    model = DualEncoder(SmallCNN(), TextTransformer(vocab_size=tok.vocab_size))
    img, txt, scale = model(images, token_ids)     # (B, D), (B, D) unit norm; scale = 1/temperature
    loss = clip_loss(img, txt, scale)

The temperature is learned as log(1/T), starts at T = 0.07 and the scale is capped at 100, as in
CLIP (Radford et al. 2021): `train` clamps it in place after each optimizer step, as open_clip does.
"""
from __future__ import annotations

import functools
import math
from contextlib import contextmanager
from typing import Callable, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .eval import embed, relevance_from_keys, retrieval_recall, zero_shot_classifier, zero_shot_predict
from .losses import clip_loss, siglip_loss
from .runtime import eval_mode


class DualEncoder(nn.Module):
    """Two towers projected into one normalised space, plus a learnable temperature.

    Args:
        image_encoder: (B, 3, S, S) -> (B, D).
        text_encoder: (B, L) token ids -> (B, D), same D.
        init_temperature: CLIP's 0.07.
        max_logit_scale: the cap on 1/temperature (100 in CLIP) that keeps training stable; `train`
            clamps `logit_scale` in place after each optimizer step (`clamp_logit_scales_`).
        logit_bias: None for the softmax (CLIP) loss; a starting value such as -10 adds SigLIP's bias.
    """

    def __init__(self, image_encoder: nn.Module, text_encoder: nn.Module, *, init_temperature: float = 0.07,
                 max_logit_scale: float = 100.0, logit_bias: float | None = None):
        super().__init__()
        self.image_encoder, self.text_encoder = image_encoder, text_encoder
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / init_temperature)))
        self.max_logit_scale = max_logit_scale
        self.logit_bias = None if logit_bias is None else nn.Parameter(torch.tensor(float(logit_bias)))

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.image_encoder(images), dim=-1)

    def encode_text(self, ids: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.text_encoder(ids), dim=-1)

    def scale(self) -> torch.Tensor:
        return self.logit_scale.exp()

    def forward(self, images: torch.Tensor, ids: torch.Tensor, negative_ids: torch.Tensor | None = None) -> tuple:
        """(B, 3, S, S) images and (B, L) ids -> (image features, text features, scale); with (M, L)
        `negative_ids` also their text features. Everything a loss needs comes out of forward, which
        is what DistributedDataParallel synchronises."""
        if len(images) != len(ids):
            raise ValueError(f"got {len(images)} images but {len(ids)} captions; pairs must match one to one")
        out = (self.encode_image(images), self.encode_text(ids), self.scale())
        return out if negative_ids is None else (*out, self.encode_text(negative_ids))


def clip_step(model: DualEncoder, batch: tuple, loss_fn: Callable = clip_loss) -> tuple[torch.Tensor, dict[str, float]]:
    """(images, ids) or (images, ids, hard_negative_ids) -> InfoNCE loss, with the temperature logged.
    `loss_fn(image_features, text_features, scale[, hard_negative_features])` is `clip_loss` unless a notebook
    trains with the learner's own."""
    images, ids, *rest = batch
    img, txt, scale, *negatives = model(images, ids, *rest)
    return loss_fn(img, txt, scale, *negatives), {"temperature": 1 / scale.item()}


def siglip_step(model: DualEncoder, batch: tuple) -> tuple[torch.Tensor, dict[str, float]]:
    """(images, ids) -> SigLIP loss; the model needs a logit_bias."""
    bias = getattr(model, "module", model).logit_bias  # the model itself, or the one DDP wraps
    if bias is None:
        raise ValueError("siglip_step needs DualEncoder(..., logit_bias=-10.0)")
    images, ids = batch[:2]
    img, txt, scale = model(images, ids)
    return siglip_loss(img, txt, scale, bias), {"temperature": 1 / scale.item()}


# ------------------------------------------------------------------------------ notebook 01's model and recipe
# The fixed model of notebook 01 (causal text tower, small word vectors, trained with hard negatives) and its recipe;
# `benchmarks/pretrain_clip.py` trains it once and ships it (`vlmlearn.clip_models.load_pretrained_clip`).
SHAPES_CLIP_CONFIG = dict(image_size=32, context_length=20, token_init_std=0.02, causal=True)


def shapes_clip(vocab_size: int, *, image_size: int = 32, context_length: int = 20, token_init_std: float = 0.02,
                causal: bool = True) -> DualEncoder:
    """Notebook 01's dual encoder: `SmallCNN(image_size)` (B, 3, S, S) -> (B, 128) and a 2-layer
    `TextTransformer` (B, context_length) word ids -> (B, 128). The defaults are the fixed model;
    `token_init_std=1.0, causal=False` is the naive one that reads captions as bags of words."""
    from .models import SmallCNN, TextTransformer

    text = TextTransformer(vocab_size=vocab_size, context_length=context_length, token_init_std=token_init_std,
                           causal=causal)
    return DualEncoder(SmallCNN(image_size=image_size), text)


def fit_clip(model: DualEncoder, images: torch.Tensor, ids: torch.Tensor, hard_negative_ids: torch.Tensor | None = None,
             *, steps: int, batch_size: int = 256, seed: int = 0, desc: str | None = "CLIP",
             loss_fn: Callable = clip_loss):
    """Notebook 01's recipe: InfoNCE (`clip_step` with `loss_fn`, with one hard-negative caption per image when given),
    AdamW at weight decay 0.1 on weight matrices only (`param_groups`), a one-cycle schedule peaking at
    2e-3 after 10 % of `steps`, batches of `batch_size` pairs drawn with `seed`.
    images (N, 3, S, S), ids and hard_negative_ids (N, L). Returns the History; the model ends in eval mode."""
    from .optim import one_cycle, param_groups
    from .train import minibatches, train

    tensors = (images, ids) if hard_negative_ids is None else (images, ids, hard_negative_ids)
    opt = torch.optim.AdamW(param_groups(model, weight_decay=0.1), lr=1e-3)
    sched = one_cycle(opt, max_lr=2e-3, steps=steps, warmup_fraction=0.1)
    step = clip_step if loss_fn is clip_loss else functools.partial(clip_step, loss_fn=loss_fn)
    return train(model, opt, step, minibatches(*tensors, batch_size=batch_size, seed=seed), steps=steps,
                 scheduler=sched, max_seconds=4 * steps,  # the cap guards runaway machines
                 desc=desc or "", progress=desc is not None)


# ------------------------------------------------------------------------------ evaluation
# Each takes a model with encode_image / encode_text (a DualEncoder or an open_clip CLIP) and the
# tokenizer its text tower reads, runs in eval mode without gradients, and returns plain floats.

@contextmanager
def _encoders(model: nn.Module, tokenizer) -> Iterator[tuple[Callable, Callable]]:
    device = next(model.parameters()).device
    with eval_mode(model):
        yield (lambda x: model.encode_image(x.to(device)),
               lambda texts: model.encode_text(tokenizer(list(texts)).to(device)))


def image_text_similarity(model: nn.Module, tokenizer, images: torch.Tensor, texts: Sequence[str]) -> torch.Tensor:
    """Cosine similarity (N_img, N_txt) between images and texts."""
    with _encoders(model, tokenizer) as (enc_img, enc_txt):
        return embed(enc_img, images) @ embed(enc_txt, texts, batch_size=1024).T


def retrieval_metrics(model: nn.Module, tokenizer, batch, *, ks: Sequence[int] = (1, 5)) -> dict[str, float]:
    """Recall@K for a ShapesWorld pairs batch, counting captions of identical content as hits.

    ShapesWorld's captions describe attributes, not pixels: every "small red circle on the left" is
    described by the same captions, so retrieving another such image (or its caption) is correct.
    """
    keys = batch.content_keys()
    sim = image_text_similarity(model, tokenizer, batch.images, batch.captions)
    return retrieval_recall(sim, relevance_from_keys(keys, keys), ks=ks)


def binding_accuracy(model: nn.Module, tokenizer, batch, *, swap: str = "color") -> float:
    """For binding pairs (`ShapesWorld.binding_pairs`): how often the image prefers its caption over
    its swapped twin, with `swap="color"` the colours swapped (the kind of hard negative NegCLIP
    trains on) or `swap="size"` the sizes swapped (a swap training never shows: out of distribution).

    Both captions hold the same words, so a bag-of-words text encoder scores them equally: 0.5.
    """
    twins = {"color": batch.swapped_captions, "size": batch.size_swapped_captions}
    if swap not in twins:
        raise ValueError(f"swap must be 'color' or 'size', got {swap!r}")
    if twins[swap] is None:
        raise ValueError("expected a batch from ShapesWorld.binding_pairs (it has no swapped captions)")
    with _encoders(model, tokenizer) as (enc_img, enc_txt):
        img = embed(enc_img, batch.images)
        right = embed(enc_txt, batch.captions, batch_size=1024)
        wrong = embed(enc_txt, twins[swap], batch_size=1024)
    right, wrong = (img * right).sum(-1), (img * wrong).sum(-1)
    return ((right > wrong).float() + 0.5 * (right == wrong).float()).mean().item()  # a tie is a coin flip


def object_prompts(templates: Sequence[str] | None = None) -> list[str]:
    """Prompts with a {} slot for a "colour shape" class, written with ShapesWorld's caption
    templates for every size and position: "a small {} on the left", "there is a large {} at the
    top", ... (4 templates x 2 sizes x 5 positions = 40 by default).

    Averaging a class's embedding over all of them is prompt ensembling (CLIP, section 3.1.4): the
    class embedding stops depending on the incidental words of any single prompt.
    """
    from .data.captions import ONE_OBJECT_TEMPLATES, POSITION_PHRASE, SIZES

    return [t.format(o=f"{size} {{}}", p=phrase, P=phrase)
            for t in (templates or ONE_OBJECT_TEMPLATES) for size in SIZES for phrase in POSITION_PHRASE.values()]


def zero_shot_accuracy(model: nn.Module, tokenizer, batch, prompts: Sequence[str]) -> dict[str, float]:
    """Zero-shot classification of one-object images among all colour x shape classes ("red
    circle", ...), each class embedded through `prompts` (a {} slot each) and averaged.

    No labels are used to build the classifier. Returns the accuracy on the combination and on
    shape and colour read off the predicted class. Classifying the combination, rather than shape
    alone averaged over every colour, keeps each class prompt a caption the model could have seen.
    """
    from .data.captions import COLORS, SHAPES

    classes = [f"{c} {s}" for c in COLORS for s in SHAPES]
    with _encoders(model, tokenizer) as (enc_img, enc_txt):
        classifier = zero_shot_classifier(lambda p: embed(enc_txt, p, batch_size=2048), classes, prompts)
        pred = zero_shot_predict(embed(enc_img, batch.images), classifier)
    truth = torch.as_tensor(batch.attributes["color"][:, 0] * len(SHAPES) + batch.attributes["shape"][:, 0])
    return {"combo": (pred == truth).float().mean().item(),
            "color": (pred // len(SHAPES) == truth // len(SHAPES)).float().mean().item(),
            "shape": (pred % len(SHAPES) == truth % len(SHAPES)).float().mean().item()}


def consistency_clip_step(model: DualEncoder, batch: tuple, *, weight: float = 0.3) -> tuple[torch.Tensor, dict]:
    """InfoNCE plus consistency (notebook 08): (images, ids, perturbed_ids) -> loss.

    Besides matching images to captions, the text embedding of a perturbed caption (a paraphrase,
    dropped function words) must stay at the caption's, and the embedding of a slightly shifted
    image (1 pixel: a larger shift could move an object from "center" towards "left" and change
    the true caption) at the image's. Both penalties are 1 - cosine similarity.
    """
    from .augment import random_shift

    images, ids, perturbed = batch
    img, txt, scale = model(images, ids)
    text_gap = 1 - (txt * model.encode_text(perturbed)).sum(-1).mean()
    image_gap = 1 - (img * model.encode_image(random_shift(images, 1))).sum(-1).mean()
    loss = clip_loss(img, txt, scale) + weight * (text_gap + image_gap)
    return loss, {"text_gap": text_gap.item(), "image_gap": image_gap.item()}


def pair_similarity(model: nn.Module, tokenizer, images: torch.Tensor, texts: Sequence[str]) -> torch.Tensor:
    """Cosine similarity of each image with *its own* text: (N,) for N pairs (the CLIP score)."""
    if len(images) != len(texts):
        raise ValueError(f"got {len(images)} images but {len(texts)} texts")
    with _encoders(model, tokenizer) as (enc_img, enc_txt):
        return (embed(enc_img, images) * embed(enc_txt, texts, batch_size=1024)).sum(-1)
