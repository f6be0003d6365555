"""Contrastive objectives for image-text pairs, as plain functions.

Both take L2-normalised features and the scale the model learned (CLIP's exp(logit_scale)); they
match open_clip's `ClipLoss` and `SigLipLoss` on one device (tests/test_losses.py checks forward and
backward).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


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


def clip_loss(image_features: torch.Tensor, text_features: torch.Tensor, logit_scale: torch.Tensor | float,
              hard_negatives: torch.Tensor | None = None) -> torch.Tensor:
    """Symmetric InfoNCE (CLIP): each image must pick its caption among the batch's captions, and
    each caption its image. Radford et al. 2021; van den Oord et al. 2018.

    Args:
        image_features, text_features: (B, D), L2-normalised; row i of each is a pair.
        logit_scale: the inverse temperature (a scalar, already exponentiated; CLIP starts at 1/0.07).
        hard_negatives: optional (M, D) normalised features of extra captions that describe none of
            the images (e.g. attribute-swapped twins, as in NegCLIP, Yuksekgonul et al. 2023). They
            join the candidates of the image-to-text direction only.
    Returns:
        The mean of the image-to-text and text-to-image cross-entropies, a scalar.
    """
    _check(image_features, text_features, hard_negatives)
    candidates = text_features if hard_negatives is None else torch.cat([text_features, hard_negatives])
    logits_per_image = logit_scale * image_features @ candidates.T  # (B, B + M)
    logits_per_text = logit_scale * text_features @ image_features.T  # (B, B)
    labels = torch.arange(len(image_features), device=image_features.device)
    return (F.cross_entropy(logits_per_image, labels) + F.cross_entropy(logits_per_text, labels)) / 2


def siglip_loss(image_features: torch.Tensor, text_features: torch.Tensor, logit_scale: torch.Tensor | float,
                logit_bias: torch.Tensor | float) -> torch.Tensor:
    """Sigmoid loss (SigLIP, Zhai et al. 2023): every image-text pair of the batch is an independent
    binary question, "do these match?", so no softmax couples a pair to the rest of the batch.

    Args:
        image_features, text_features: (B, D), L2-normalised.
        logit_scale: scalar inverse temperature (SigLIP starts at 10); logit_bias: scalar (starts at -10).
    Returns:
        The summed binary log-loss over all B*B pairs, divided by B.
    """
    _check(image_features, text_features)
    logits = logit_scale * image_features @ text_features.T + logit_bias  # (B, B)
    labels = 2 * torch.eye(len(logits), device=logits.device, dtype=logits.dtype) - 1  # +1 diagonal, -1 elsewhere
    return -F.logsigmoid(labels * logits).sum() / len(logits)
