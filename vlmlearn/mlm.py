"""Masked language modeling (Devlin et al. 2019, BERT): learn from unlabeled text, and from text with its image.

Hide 15 % of the words and predict them: BERT's corruption (`mask_tokens`), the loss on the hidden words
(`mlm_loss`) and the step that joins them (`mlm_step`, notebook 04's). `MaskedCaptionModel` predicts the words
from the caption alone, or also from the image's feature map (single-stream fusion, as in VisualBERT, ViLT and
FLAVA); `predict_each_word` and `word_type_accuracy` evaluate it one hidden word at a time.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .models import transformer_blocks
from .runtime import eval_mode


def mask_tokens(ids: torch.Tensor, mask_id: int, vocab_size: int, special_ids: tuple[int, ...] = (0, 1, 2, 3, 4),
                mask_prob: float = 0.15, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT's corruption: choose `mask_prob` of the non-special tokens; of those, 80 % become the mask
    token, 10 % a random word, 10 % stay as they are.

    ids (B, L) int64 -> (inputs (B, L), labels (B, L)) with labels = -100 (ignored by
    cross-entropy) wherever nothing is to be predicted. Random words are drawn from the
    non-special ids.
    """
    if ids.dtype != torch.long or ids.ndim != 2:
        raise ValueError(f"expected token ids (B, L) int64, got {tuple(ids.shape)} {ids.dtype}")
    special = torch.isin(ids, torch.tensor(special_ids, device=ids.device))
    u = torch.rand(ids.shape, generator=generator).to(ids.device)
    chosen = (u < mask_prob) & ~special
    how = torch.rand(ids.shape, generator=generator).to(ids.device)
    n = len(special_ids)
    words = n + torch.randint(vocab_size - n, ids.shape, generator=generator).to(ids.device)
    inputs = torch.where(chosen & (how < 0.8), mask_id, ids)
    inputs = torch.where(chosen & (how >= 0.8) & (how < 0.9), words, inputs)
    return inputs, torch.where(chosen, ids, -100)


class MaskedCaptionModel(nn.Module):
    """A bidirectional transformer that predicts masked caption words, optionally looking at the image.

    With an `image_encoder` (any module mapping (B, C, S, S) to a (B, C', s, s) feature map, e.g.
    `SmallCNN(...).features`) the s*s image feature vectors are projected to `width` and prepended
    to the word tokens, so every word can attend to every image region (single-stream fusion, as in
    VisualBERT and ViLT). Without one it is a text-only BERT.

    forward(ids (B, L), images (B, C, S, S) or None) -> logits over the vocabulary (B, L, vocab_size).
    """

    def __init__(self, *, vocab_size: int, context_length: int = 24, width: int = 96, layers: int = 2,
                 heads: int = 4, image_encoder: nn.Module | None = None, image_channels: int | None = None,
                 image_tokens: int | None = None, pad_id: int = 0):
        super().__init__()
        self.vocab_size, self.pad_id = vocab_size, pad_id
        self.token_embed = nn.Embedding(vocab_size, width)
        self.pos_embed = nn.Parameter(torch.randn(context_length, width) * 0.01)
        self.image_encoder = image_encoder
        if image_encoder is not None:
            if image_channels is None or image_tokens is None:
                raise ValueError("with an image_encoder, give image_channels and image_tokens (its C' and s*s)")
            self.image_proj = nn.Linear(image_channels, width)
            self.image_pos = nn.Parameter(torch.randn(image_tokens, width) * 0.01)
        self.blocks = transformer_blocks(width, layers, heads=heads, mlp_ratio=2.0, eps=1e-5)
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, vocab_size)
        nn.init.normal_(self.token_embed.weight, std=0.02)

    def forward(self, ids: torch.Tensor, images: torch.Tensor | None = None) -> torch.Tensor:
        if ids.ndim != 2 or ids.dtype != torch.long:
            raise ValueError(f"expected token ids (B, L) int64, got {tuple(ids.shape)} {ids.dtype}")
        if (images is None) != (self.image_encoder is None):
            raise ValueError("pass images exactly when the model was built with an image_encoder")
        x = self.token_embed(ids) + self.pos_embed[: ids.shape[1]]
        pad = ids == self.pad_id
        if images is not None:
            feats = self.image_encoder(images).flatten(2).transpose(1, 2)  # (B, s*s, C')
            img = self.image_proj(feats) + self.image_pos
            x = torch.cat([img, x], dim=1)
            pad = torch.cat([torch.zeros(img.shape[:2], dtype=torch.bool, device=ids.device), pad], dim=1)
        mask = torch.zeros(pad.shape, device=ids.device).masked_fill(pad, float("-inf"))
        out = self.norm(self.blocks(x, src_key_padding_mask=mask))
        return self.head(out[:, -ids.shape[1]:])


def mlm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy over the masked positions only: logits (B, L, V), labels (B, L) with -100 = ignore -> ().

    The mean over the masked positions. A batch with none (every label -100: short captions, a small batch
    and a low mask_prob can draw one) gives 0, still attached to the graph so `backward()` gives zero
    gradients, as MAE's loss does with no hidden patch: one empty draw does not stop a run or turn the
    weights into NaN, which the plain `F.cross_entropy` mean (0 / 0) would.
    """
    if logits.shape[:-1] != labels.shape:
        raise ValueError(f"expected logits (B, L, V) and labels (B, L), "
                         f"got {tuple(logits.shape)} and {tuple(labels.shape)}")
    total = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-100, reduction="sum")
    return total / (labels != -100).sum().clamp(min=1)


def mlm_step(model: MaskedCaptionModel, batch: tuple, *, mask_id: int, vocab_size: int, mask_prob: float = 0.15,
             masking: Callable = mask_tokens, generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict]:
    """Notebook 04's step, for `vlmlearn.train.train`: batch (ids,) or (images, ids) -> (mlm_loss, {"acc"}).

    Corrupts the ids with `masking(ids, mask_id, vocab_size, mask_prob=..., generator=...)` (BERT's
    `mask_tokens`, or a learner's with the same contract), predicts them (from the image too when the batch has
    one) and scores the masked positions; "acc" is the share of them predicted right. Bind the vocabulary with
    functools.partial: `partial(mlm_step, mask_id=tok.mask_id, vocab_size=tok.vocab_size)`.
    """
    images, ids = batch if len(batch) == 2 else (None, batch[0])
    inputs, labels = masking(ids, mask_id, vocab_size, mask_prob=mask_prob, generator=generator)
    logits = model(inputs) if images is None else model(inputs, images)
    loss = mlm_loss(logits, labels)
    return loss, {"acc": (logits.argmax(-1)[labels != -100] == labels[labels != -100]).float().mean().item()}


@torch.no_grad()
def predict_each_word(model: MaskedCaptionModel, ids: torch.Tensor, images: torch.Tensor | None = None, *,
                      mask_id: int = 4, pad_id: int = 0, batch_size: int = 2048) -> torch.Tensor:
    """Hide one word at a time and predict it from the rest (and the image, if given).

    ids (B, L) -> predictions (B, L): entry (i, j) is the model's guess for word j of caption i when
    only that word is replaced by the mask token. Padding positions get pad_id.
    """
    device = next(model.parameters()).device
    rows, cols = (ids != pad_id).nonzero(as_tuple=True)
    preds = torch.full_like(ids, pad_id)  # on the device of the ids, like the input
    with eval_mode(model):
        for start in range(0, len(rows), batch_size):
            r, c = rows[start:start + batch_size], cols[start:start + batch_size]
            x = ids[r].clone()
            x[torch.arange(len(r)), c] = mask_id
            logits = model(x.to(device), None if images is None else images[r].to(device))
            preds[r, c] = logits[torch.arange(len(r), device=device), c.to(device)].argmax(-1).to(preds.device)
    return preds


def word_type_accuracy(ids: torch.Tensor, preds: torch.Tensor, word_types: dict[int, str]) -> dict[str, float]:
    """Accuracy of `preds` against `ids` (both (B, L)) per word type; ids missing from
    `word_types` (padding, start and end tokens) are not counted."""
    out = {}
    for kind in dict.fromkeys(word_types.values()):
        members = torch.tensor([i for i, k in word_types.items() if k == kind])
        sel = torch.isin(ids, members)
        out[kind] = (preds[sel] == ids[sel]).float().mean().item() if sel.any() else float("nan")
    return out
