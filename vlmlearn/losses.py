"""Contrastive objectives for image-text pairs, as plain functions.

Both take L2-normalised features and the scale the model learned (CLIP's exp(logit_scale)); they
match open_clip's `ClipLoss` and `SigLipLoss` on one device (tests/test_losses.py checks forward and
backward). Under torch.distributed with more than one rank (torchrun), both gather the features of
every rank first, so each image meets the captions of the whole global batch, as open_clip does
(tests/test_distributed.py checks them against open_clip's losses on two processes).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .runtime import world


def _check(image_features: torch.Tensor, text_features: torch.Tensor, extra: torch.Tensor | None = None) -> None:
    if image_features.ndim != 2 or text_features.ndim != 2:
        raise ValueError(f"expected features of shape (B, D), got images {tuple(image_features.shape)} "
                         f"and texts {tuple(text_features.shape)}")
    if image_features.shape != text_features.shape:
        raise ValueError(f"image and text batches must match: got images {tuple(image_features.shape)} "
                         f"and texts {tuple(text_features.shape)} (one caption per image, in order)")
    for name, f in (("image", image_features), ("text", text_features), ("hard negative", extra)):
        if f is None or len(f) == 0:
            continue
        norms = f.detach().float().norm(dim=-1)
        if not torch.isfinite(norms).all():
            raise ValueError(f"{name} features contain NaN or inf")
        if (norms - 1).abs().max() > 1e-2:
            raise ValueError(f"expected L2-normalised {name} features (norms 1), got norms in "
                             f"[{norms.min():.3g}, {norms.max():.3g}]; apply F.normalize(x, dim=-1)")


def gather_features(features: torch.Tensor, *, with_grad: bool = True, keep_local_grad: bool = True) -> torch.Tensor:
    """(B, D) on each of W ranks -> (W * B, D) on every rank, in rank order (equal B on every rank).

    with_grad: gradients flow back to the rank that computed each row (torch.distributed.nn.all_gather),
    so every rank's loss trains every rank's encoders. Without it the gathered rows are constants; with
    `keep_local_grad` this rank's own rows are put back as the live tensor, as open_clip does.
    """
    import torch.distributed as dist
    import torch.distributed.nn

    rank, size = world()
    if size == 1:
        return features
    if with_grad:
        return torch.cat(torch.distributed.nn.all_gather(features), dim=0)
    parts = [torch.zeros_like(features) for _ in range(size)]
    dist.all_gather(parts, features.detach())
    if keep_local_grad:
        parts[rank] = features
    return torch.cat(parts, dim=0)


def clip_loss(image_features: torch.Tensor, text_features: torch.Tensor, logit_scale: torch.Tensor | float,
              hard_negatives: torch.Tensor | None = None, *, local_loss: bool = False,
              gather_with_grad: bool = True) -> torch.Tensor:
    """Symmetric InfoNCE (CLIP): each image must pick its caption among the batch's captions, and
    each caption its image. Radford et al. 2021; van den Oord et al. 2018.

    Args:
        image_features, text_features: (B, D), L2-normalised; row i of each is a pair.
        logit_scale: the inverse temperature (a scalar, already exponentiated; CLIP starts at 1/0.07).
        hard_negatives: optional (M, D) normalised features of extra captions that describe none of
            the images (e.g. attribute-swapped twins, as in NegCLIP, Yuksekgonul et al. 2023). They
            join the candidates of the image-to-text direction only (gathered from every rank too).
        local_loss, gather_with_grad: open_clip's options, used only under a process group of more than
            one rank. Features of all W ranks are gathered (`gather_features`). With `local_loss` each rank
            scores its own B images and captions against all W * B candidates (cheaper: B x WB logits);
            without it, every rank computes the full WB x WB loss.
    Returns:
        The mean of the image-to-text and text-to-image cross-entropies, a scalar.
    """
    _check(image_features, text_features, hard_negatives)
    rank, size = world()
    labels = torch.arange(len(image_features), device=image_features.device)
    if size > 1:
        def gather(f):
            return gather_features(f, with_grad=gather_with_grad, keep_local_grad=not local_loss)

        all_images, all_texts = gather(image_features), gather(text_features)
        hard_negatives = None if hard_negatives is None else gather(hard_negatives)
        if local_loss:
            labels = labels + rank * len(image_features)
        else:
            image_features, text_features = all_images, all_texts
            labels = torch.arange(len(all_images), device=all_images.device)
    else:
        all_images, all_texts = image_features, text_features
    candidates = all_texts if hard_negatives is None else torch.cat([all_texts, hard_negatives])
    logits_per_image = logit_scale * image_features @ candidates.T  # (B, W*B + M), or (WB, WB + M)
    logits_per_text = logit_scale * text_features @ all_images.T  # (B, W*B), or (WB, WB)
    return (F.cross_entropy(logits_per_image, labels) + F.cross_entropy(logits_per_text, labels)) / 2


def siglip_loss(image_features: torch.Tensor, text_features: torch.Tensor, logit_scale: torch.Tensor | float,
                logit_bias: torch.Tensor | float) -> torch.Tensor:
    """Sigmoid loss (SigLIP, Zhai et al. 2023): every image-text pair of the batch is an independent
    binary question, "do these match?", so no softmax couples a pair to the rest of the batch.

    Args:
        image_features, text_features: (B, D), L2-normalised.
        logit_scale: scalar inverse temperature (SigLIP starts at 10); logit_bias: scalar (starts at -10).
    Returns:
        The summed binary log-loss over all B*B pairs, divided by B. Under a process group of W > 1
        ranks, this rank's B images meet the captions of every rank (gathered with gradients: the same
        value and gradients as open_clip's `SigLipLoss` exchange), summed over B x WB pairs, divided by B.
    """
    _check(image_features, text_features)
    rank, size = world()
    texts = gather_features(text_features) if size > 1 else text_features
    logits = logit_scale * image_features @ texts.T + logit_bias  # (B, W*B)
    b = len(image_features)
    labels = -torch.ones_like(logits)
    labels[:, rank * b:(rank + 1) * b] += 2 * torch.eye(b, device=logits.device, dtype=logits.dtype)  # +1 on the pairs
    return -F.logsigmoid(labels * logits).sum() / b


def logits_bytes(global_batch: int, world: int, local_loss: bool, bytes_per_number: int = 4) -> int:
    """Bytes of the two logits matrices (images to captions, captions to images) that `clip_loss` builds on each of
    `world` processes for a global batch of N pairs: N x N each, or b x N with `local_loss` (b = N / world)."""
    if global_batch % world:
        raise ValueError(f"a global batch of {global_batch} does not split evenly over {world} processes")
    rows = global_batch // world if local_loss else global_batch
    return 2 * rows * global_batch * bytes_per_number
