"""Caption bootstrapping (CapFilt, Li et al. 2022, BLIP): a captioner writes a synthetic caption for
every web image, a filter drops the web and synthetic captions that do not match their image, and
what survives becomes the new training set::

    boot = bootstrap_captions(web.images, web.captions, captioner=cap, filter_model=clip,
                              tokenizer=tok, threshold=t)
    # then train a contrastive model on boot.images, boot.captions
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .contrastive import pair_similarity


def keep_most_similar(scores: torch.Tensor, keep_fraction: float) -> torch.Tensor:
    """CLIP-score filtering (as LAION was built): a bool mask (N,) keeping exactly round(keep_fraction * N) pairs,
    those with the highest scores (N,)."""
    if not 0.0 <= keep_fraction <= 1.0:
        raise ValueError(f"keep_fraction must be in [0, 1], got {keep_fraction}")
    scores = torch.as_tensor(scores)
    keep = torch.zeros(len(scores), dtype=torch.bool, device=scores.device)
    keep[torch.argsort(scores, descending=True)[: round(keep_fraction * len(scores))]] = True
    return keep


@dataclass
class Bootstrapped:
    images: torch.Tensor          # (M, C, S, S) one row per kept (image, caption) pair
    captions: list[str]           # (M,)
    source: list[str]             # "web" or "synthetic", per kept pair
    synthetic: list[str]          # (N,) the captioner's caption for every web image
    web_scores: torch.Tensor      # (N,) filter score of each web caption
    synthetic_scores: torch.Tensor  # (N,) filter score of each synthetic caption
    web_kept: torch.Tensor        # (N,) bool
    synthetic_kept: torch.Tensor  # (N,) bool


@torch.no_grad()
def bootstrap_captions(images: torch.Tensor, web_captions: list[str], *, captioner, filter_model, tokenizer,
                       threshold: float, batch_size: int = 1000) -> Bootstrapped:
    """Caption every image, score web and synthetic captions with the filter, keep those >= threshold.

    images (N, C, S, S) and their N web captions. `captioner` has `generate(images) -> ids`;
    `filter_model` is a DualEncoder whose cosine similarity scores a pair. An image can contribute
    zero, one or two pairs.
    """
    if len(images) != len(web_captions):
        raise ValueError(f"got {len(images)} images but {len(web_captions)} web captions")
    device = next(captioner.parameters()).device
    synthetic = [c for i in range(0, len(images), batch_size)
                 for c in tokenizer.decode(captioner.generate(images[i:i + batch_size].to(device)).cpu())]
    web_scores = pair_similarity(filter_model, tokenizer, images, web_captions)
    synthetic_scores = pair_similarity(filter_model, tokenizer, images, synthetic)
    web_kept, synthetic_kept = web_scores >= threshold, synthetic_scores >= threshold
    keep_web, keep_syn = web_kept.nonzero(as_tuple=True)[0], synthetic_kept.nonzero(as_tuple=True)[0]
    return Bootstrapped(images=torch.cat([images[keep_web], images[keep_syn]]),
                        captions=[web_captions[i] for i in keep_web] + [synthetic[i] for i in keep_syn],
                        source=["web"] * len(keep_web) + ["synthetic"] * len(keep_syn), synthetic=synthetic,
                        web_scores=web_scores, synthetic_scores=synthetic_scores, web_kept=web_kept,
                        synthetic_kept=synthetic_kept)
