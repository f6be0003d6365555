"""Generative tasks between images and text: a captioner (image -> caption) and a caption-to-image
decoder, plus BLEU for judging captions.

    model = Captioner(vocab_size=tok.vocab_size)
    loss, _ = captioning_step(model, (images, ids))      # teacher forcing
    ids = model.generate(images)                         # greedy; temperature > 0 samples
"""
from __future__ import annotations

import math
from collections import Counter
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .models import SmallCNN, TextTransformer, check_images
from .runtime import eval_mode


class Captioner(nn.Module):
    """An image encoder and an autoregressive transformer decoder (as in "Show, Attend and Tell" and
    the captioning half of BLIP and CoCa).

    A SmallCNN turns the image into an s*s grid of feature vectors (the memory). The decoder reads the
    caption so far with causal self-attention and looks at the image with cross-attention, and
    predicts the next word. forward(images (B, C, S, S), ids (B, L)) -> next-word logits (B, L-1, V)
    for the inputs ids[:, :-1].
    """

    def __init__(self, *, vocab_size: int, context_length: int = 20, width: int = 96, layers: int = 2, heads: int = 4,
                 image_size: int = 32, widths: tuple[int, ...] = (32, 64, 96), bos_id: int = 2, eos_id: int = 3,
                 pad_id: int = 0):
        super().__init__()
        self.vocab_size, self.context_length = vocab_size, context_length
        self.bos_id, self.eos_id, self.pad_id = bos_id, eos_id, pad_id
        self.image_size = image_size
        self.features = SmallCNN(image_size=image_size, widths=widths, embed_dim=width).features  # its conv stack only
        side = image_size // 2 ** len(widths)
        self.image_proj = nn.Linear(widths[-1], width)
        self.image_pos = nn.Parameter(torch.randn(side * side, width) * 0.01)
        self.token_embed = nn.Embedding(vocab_size, width)
        self.pos_embed = nn.Parameter(torch.randn(context_length, width) * 0.01)
        layer = nn.TransformerDecoderLayer(width, heads, 2 * width, dropout=0.0, activation="gelu", batch_first=True,
                                           norm_first=True)
        self.decoder = nn.TransformerDecoder(layer, layers)
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, vocab_size)
        nn.init.normal_(self.token_embed.weight, std=0.02)

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """(B, C, S, S) -> memory (B, s*s, width)."""
        feats = self.features(images).flatten(2).transpose(1, 2)
        return self.image_proj(feats) + self.image_pos

    def decode(self, memory: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """memory (B, s*s, width), ids (B, t) -> next-word logits (B, t, V) at every position."""
        length = ids.shape[1]
        x = self.token_embed(ids) + self.pos_embed[:length]
        causal = torch.triu(torch.full((length, length), float("-inf"), device=ids.device), 1)
        pad = torch.zeros(ids.shape, device=ids.device).masked_fill(ids == self.pad_id, float("-inf"))
        return self.head(self.norm(self.decoder(x, memory, tgt_mask=causal, tgt_key_padding_mask=pad)))

    def forward(self, images: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        check_images(images, 3, self.image_size)
        if ids.ndim != 2 or ids.dtype != torch.long or ids.shape[1] < 2:
            raise ValueError(f"expected caption ids (B, L >= 2) int64, got {tuple(ids.shape)} {ids.dtype}")
        return self.decode(self.encode_image(images), ids[:, :-1])

    @torch.no_grad()
    def generate(self, images: torch.Tensor, *, temperature: float = 0.0, max_length: int | None = None,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        """Write captions: (B, C, S, S) -> ids (B, max_length), starting with the start token; after
        the end token every position is padding. temperature 0 is greedy decoding; > 0 samples from
        softmax(logits / temperature). Images may be on any device; ids come back on theirs."""
        if temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {temperature}")
        check_images(images, 3, self.image_size)
        length = max_length or self.context_length
        given_on = images.device  # the ids come back on the images' device; the work runs on the model's
        images = images.to(self.image_proj.weight.device)
        if temperature == 0:
            def pick(logits):
                return logits.argmax(-1)
        else:
            def pick(logits):
                return torch.multinomial((logits / temperature).softmax(-1).cpu(), 1,
                                         generator=generator)[:, 0].to(images.device)
        with eval_mode(self):
            memory = self.encode_image(images)
            ids = greedy_decode(lambda ids: self.decode(memory, ids)[:, -1], len(images), self.bos_id, self.eos_id,
                                self.pad_id, length, pick=pick, device=images.device)
        return ids.to(given_on)


def greedy_decode(next_logits: Callable[[torch.Tensor], torch.Tensor], batch_size: int, bos_id: int, eos_id: int,
                  pad_id: int, max_length: int, *, pick: Callable[[torch.Tensor], torch.Tensor] | None = None,
                  device: torch.device | str | None = None) -> torch.Tensor:
    """Decode one word at a time: `next_logits(ids (B, t)) -> (B, V)` logits of the next word. Every row starts with
    bos_id and takes the argmax word (or `pick(logits)`, e.g. a sample) until it has produced eos_id or max_length
    tokens; after its end token a row holds pad_id. Returns (B, max_length) int64 on `device`."""
    pick = pick or (lambda logits: logits.argmax(-1))
    ids = torch.full((batch_size, 1), bos_id, dtype=torch.long, device=device)
    done = torch.zeros(batch_size, dtype=torch.bool, device=device)
    while ids.shape[1] < max_length and not done.all():
        nxt = torch.where(done, pad_id, pick(next_logits(ids)).to(ids.device))
        ids = torch.cat([ids, nxt[:, None]], dim=1)
        done |= nxt == eos_id
    return F.pad(ids, (0, max_length - ids.shape[1]), value=pad_id)


def captioning_step(model: Captioner, batch: tuple) -> tuple[torch.Tensor, dict[str, float]]:
    """(images, ids) -> cross-entropy of each next word given the image and the words before it
    (teacher forcing); padding is ignored."""
    images, ids = batch[:2]
    logits = model(images, ids)
    target = ids[:, 1:].masked_fill(ids[:, 1:] == model.pad_id, -100)
    return F.cross_entropy(logits.flatten(0, 1), target.flatten(), ignore_index=-100), {}


class CaptionToImage(nn.Module):
    """Caption -> image: a text transformer embeds the caption, a small transposed-conv decoder
    paints a (3, S, S) image from that embedding. Trained with a pixel loss, it paints the *average*
    image that fits the caption (the jitter and background noise a caption does not describe are
    averaged out).

    forward(ids (B, L)) -> images (B, 3, S, S) in [0, 1].
    """

    def __init__(self, *, vocab_size: int, context_length: int = 20, width: int = 96, layers: int = 2,
                 image_size: int = 32, channels: int = 64):
        super().__init__()
        if image_size % 8:
            raise ValueError(f"image_size must be divisible by 8, got {image_size}")
        self.image_size, self.channels = image_size, channels
        self.text = TextTransformer(vocab_size=vocab_size, context_length=context_length, width=width, layers=layers,
                                    heads=4, embed_dim=channels * (image_size // 8) ** 2, causal=False)

        def up(cin, cout):
            return [nn.ConvTranspose2d(cin, cout, 4, stride=2, padding=1), nn.BatchNorm2d(cout), nn.GELU()]

        self.decoder = nn.Sequential(*up(channels, channels), *up(channels, channels // 2),
                                     *up(channels // 2, channels // 2), nn.Conv2d(channels // 2, 3, 3, padding=1),
                                     nn.Sigmoid())

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        side = self.image_size // 8
        return self.decoder(self.text(ids).view(len(ids), self.channels, side, side))


def text_to_image_step(model: CaptionToImage, batch: tuple) -> tuple[torch.Tensor, dict[str, float]]:
    """(images, ids) -> mean squared pixel error of the image painted from the caption."""
    images, ids = batch[:2]
    return F.mse_loss(model(ids), images), {}


def _ngrams(words: Sequence[str], n: int) -> Counter:
    return Counter(tuple(words[i:i + n]) for i in range(len(words) - n + 1))


def corpus_bleu(references: Sequence[Sequence[Sequence[str]]], hypotheses: Sequence[Sequence[str]], *,
                max_n: int = 4) -> float:
    """Corpus-level BLEU (Papineni et al. 2002), as NLTK's `corpus_bleu` with default settings.

    references[i] is a list of reference token lists for hypothesis i. n-gram counts are clipped by
    the largest count in any one reference and summed over the corpus; the score is the brevity
    penalty (against the reference length closest to each hypothesis) times the geometric mean of
    the 1..max_n-gram precisions. Returns 0 when some n-gram order has no match (no smoothing).
    """
    if len(references) != len(hypotheses):
        raise ValueError(f"need one reference list per hypothesis, got {len(references)} and {len(hypotheses)}")
    if any(len(refs) == 0 for refs in references):
        raise ValueError("every hypothesis needs at least one reference")
    matches, totals = [0] * max_n, [0] * max_n
    hyp_len = ref_len = 0
    for refs, hyp in zip(references, hypotheses):
        hyp_len += len(hyp)
        ref_len += min((abs(len(r) - len(hyp)), len(r)) for r in refs)[1]
        for n in range(1, max_n + 1):
            counts = _ngrams(hyp, n)
            best: Counter = Counter()
            for r in refs:
                best |= _ngrams(r, n)
            matches[n - 1] += sum(min(c, best[g]) for g, c in counts.items())
            totals[n - 1] += max(len(hyp) - n + 1, 1)  # as NLTK: a hypothesis shorter than n still counts 1
    if min(matches) == 0:
        return 0.0
    log_precision = sum(math.log(m / t) for m, t in zip(matches, totals)) / max_n
    brevity = 1.0 if hyp_len > ref_len else math.exp(1 - ref_len / max(hyp_len, 1))
    return brevity * math.exp(log_precision)


def caption_attribute_accuracy(captions: Sequence[str], attributes: dict) -> dict[str, float]:
    """How well generated captions describe ShapesWorld scenes, read back with `parse_caption`.

    For each attribute (shape, color, size, position): the fraction of true objects whose attribute
    the caption states correctly. Which object a caption mentions first carries no meaning, so the
    caption's objects are matched to the scene's in the order that agrees best. "count": the
    caption names as many objects as there are; "exact": it describes the scene exactly
    (`caption_matches`). attributes is a ShapesWorld Batch's `attributes`.
    """
    from itertools import permutations

    from .data.captions import ATTRIBUTES, caption_matches, parse_caption

    if len(captions) != len(attributes["n_objects"]):
        raise ValueError(f"got {len(captions)} captions for {len(attributes['n_objects'])} scenes")
    hits = {name: 0 for name in ATTRIBUTES}
    objects = count = exact = 0
    for i, caption in enumerate(captions):
        parsed = parse_caption(caption)
        n = int(attributes["n_objects"][i])
        count += len(parsed) == n
        exact += caption_matches(caption, attributes, i)
        objects += n
        truth = [{name: values[attributes[name][i, k]] for name, values in ATTRIBUTES.items()} for k in range(n)]
        best = max(([sum(k < len(order) and parsed[order[k]][a] == truth[k][a] for k in range(n)) for a in ATTRIBUTES]
                    for order in permutations(range(len(parsed)), min(len(parsed), n))), key=sum, default=[0] * 4)
        for name, h in zip(ATTRIBUTES, best):
            hits[name] += h
    return {**{name: h / objects for name, h in hits.items()}, "count": count / len(captions),
            "exact": exact / len(captions)}


def read_colors(images: torch.Tensor) -> torch.Tensor:
    """A simple colour reader for one-object ShapesWorld images, real or painted: (N, 3, S, S) in
    [0, 1] -> (N,) indices into COLORS.

    The background is the median of the border pixels; the object is the 5 % of pixels farthest
    from it. A blurry painting mixes the object's colour with the background, so each palette colour
    c is scored by how well `background + alpha * (c - background)`, for the best alpha in [0, 1],
    explains the object's mean colour: mixing towards grey cannot turn white into cyan.
    """
    from .data.shapes import RGB

    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        raise ValueError("expected images of shape (N, 3, S, S), "
                         f"got {getattr(images, 'shape', type(images).__name__)}")
    check_images(images, channels=3, image_size=images.shape[-1])
    n, _, s, _ = images.shape
    images = images.float()
    border = torch.cat([images[..., 0, :], images[..., -1, :], images[..., :, 0], images[..., :, -1]], dim=-1)
    background = border.median(dim=-1).values                                 # (N, 3)
    flat = images.flatten(2)                                                  # (N, 3, S*S)
    far = (flat - background[..., None]).norm(dim=1).topk(max(1, s * s // 20), dim=1).indices
    obj = flat.gather(2, far[:, None].expand(-1, 3, -1)).mean(-1) - background  # (N, 3), relative to the background
    towards = torch.as_tensor(RGB, device=images.device)[None] - background[:, None]  # (N, colours, 3)
    alpha = ((obj[:, None] * towards).sum(-1) / towards.pow(2).sum(-1).clamp_min(1e-6)).clamp(0, 1)
    return (obj[:, None] - alpha[..., None] * towards).norm(dim=-1).argmin(dim=1)
