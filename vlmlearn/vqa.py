"""Visual question answering as classification over a fixed answer vocabulary.

    model = VQAModel(image_encoder, question_encoder, num_answers=len(ANSWERS))
    logits = model(images, question_ids)            # (B, num_answers)

The towers can come from a contrastive model (notebooks 01, 02): `VQAModel.from_dual_encoder`.

Or answer without a new head, the way a CLIP model was pretrained: rewrite the question with each
candidate answer as a caption and score it against the image (`VQAByMatching`):

    statements = answer_statements(questions, tokenizer)   # (B, num_answers, L), padding = not a candidate
    logits = VQAByMatching.from_dual_encoder(clip)(images, statements)
"""
from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .data.captions import ANSWERS, vqa_statement
from .data.tokenize import trim_padding
from .runtime import eval_mode


class VQAModel(nn.Module):
    """Image tower and question tower, fused and classified.

    Each tower gives a (B, D) vector; the head sees [image, question, image * question] (the
    product lets the question select what to read off the image) through a small MLP.
    forward(images (B, 3, S, S), ids (B, L)) -> answer logits (B, num_answers).
    """

    def __init__(self, image_encoder: nn.Module, question_encoder: nn.Module, *, dim: int, num_answers: int,
                 hidden: int = 256):
        super().__init__()
        self.image_encoder, self.question_encoder = image_encoder, question_encoder
        self.head = nn.Sequential(nn.LayerNorm(3 * dim), nn.Linear(3 * dim, hidden), nn.GELU(),
                                  nn.Linear(hidden, num_answers))

    @classmethod
    def from_dual_encoder(cls, dual, *, num_answers: int, hidden: int = 256) -> "VQAModel":
        """Copies of a DualEncoder's two towers (the original is left untouched) under a new head."""
        return cls(copy.deepcopy(dual.image_encoder), copy.deepcopy(dual.text_encoder),
                   dim=dual.image_encoder.embed_dim, num_answers=num_answers, hidden=hidden)

    def towers(self) -> list[nn.Parameter]:
        return [*self.image_encoder.parameters(), *self.question_encoder.parameters()]

    def forward(self, images: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        if len(images) != len(ids):
            raise ValueError(f"got {len(images)} images but {len(ids)} questions")
        i = F.normalize(self.image_encoder(images), dim=-1)
        q = F.normalize(self.question_encoder(ids), dim=-1)
        return self.head(torch.cat([i, q, i * q], dim=-1))


def answer_candidates(questions: list[str], answers: tuple[str, ...] = ANSWERS, *,
                      heldout: np.ndarray | None = None) -> torch.Tensor:
    """(N, len(answers)) bool: which answers fit each question (`vlmlearn.data.vqa_statement` writes a
    statement for them). Pass it as a fourth batch element to `vqa_step` and `vqa_accuracy` so that a
    classifier head chooses among the same answers as `VQAByMatching` does."""
    return torch.tensor([[vqa_statement(q, a, heldout) is not None for a in answers] for q in questions],
                        dtype=torch.bool)


def answer_statements(questions: list[str], tokenizer, answers: tuple[str, ...] = ANSWERS, *,
                      heldout: np.ndarray | None = None) -> torch.Tensor:
    """Each question rewritten with each candidate answer (`vlmlearn.data.vqa_statement`), tokenized.

    Returns ids (N, len(answers), L), with L cut to the longest statement (statements are short, and
    every candidate goes through the text tower); the row of an answer that does not fit the question
    is all padding, and so is one whose statement names a combination the world holds out (pass the
    world's `heldout_mask`: such a statement is never true there, and training on it would leak the
    held-out combination into the text tower). Every statement word must be in the tokenizer's
    vocabulary (build it with the answers, e.g.
    `WordTokenizer.from_texts(captions + questions + list(ANSWERS))`), or a ValueError
    names the missing words: an unknown word would silently become the same `<unk>` in every
    statement ("<unk> red circle" for both "a" and "no").
    """
    texts, where = [], []
    for i, q in enumerate(questions):
        for a, answer in enumerate(answers):
            statement = vqa_statement(q, answer, heldout)
            if statement is not None:
                texts.append(statement)
                where.append((i, a))
    out = torch.full((len(questions), len(answers), tokenizer.context_length), tokenizer.pad_id, dtype=torch.long)
    vocab = getattr(tokenizer, "stoi", None)  # a WordTokenizer's words; subword tokenizers know every word
    missing = sorted({w for t in texts for w in t.split()} - vocab.keys()) if vocab is not None else []
    if missing:
        raise ValueError(f"statement words missing from the tokenizer's vocabulary: {missing}")
    if texts:
        rows, cols = torch.tensor(where).T
        out[rows, cols] = tokenizer(texts)
    return trim_padding(out, tokenizer.pad_id)


def matching_logits(image: torch.Tensor, text: torch.Tensor, q: torch.Tensor, a: torch.Tensor, scale: torch.Tensor,
                    bias: torch.Tensor) -> torch.Tensor:
    """Answer-by-matching logits (B, A): image (B, D) and text (M, D) unit features, text row m being the statement
    of answer a[m] for question q[m]. Logit = scale * cosine(image q, statement) + bias[a]; -inf for the answers
    that are not candidates of a question."""
    scores = scale * (image[q] * text).sum(-1) + bias[a]
    shape = (len(image), len(bias))
    return torch.full(shape, float("-inf"), device=scores.device, dtype=scores.dtype).index_put((q, a), scores)


class VQAByMatching(nn.Module):
    """Answer by image-text matching, with no new head: the logit of answer a is the scaled cosine
    similarity between the image and the question rewritten as a caption with a, plus a learned
    per-answer bias (the prior, which yes/no and count questions need).

    This is CLIP's zero-shot classification applied to questions (Song et al. 2022, "CLIP models are
    few-shot learners"), and fine-tuning it trains the same similarity the model was pretrained on
    (Goyal et al. 2023, "Finetune like you pretrain").
    forward(images (B, 3, S, S), statements (B, A, L) from `answer_statements`) -> logits (B, A),
    -inf for answers that do not fit the question.
    """

    def __init__(self, image_encoder: nn.Module, text_encoder: nn.Module, *, num_answers: int,
                 logit_scale: float = 10.0, pad_id: int = 0):
        super().__init__()
        self.image_encoder, self.question_encoder = image_encoder, text_encoder
        self.logit_scale = nn.Parameter(torch.tensor(float(logit_scale)).log())
        self.answer_bias = nn.Parameter(torch.zeros(num_answers))
        self.pad_id = pad_id

    @classmethod
    def from_dual_encoder(cls, dual, *, num_answers: int = len(ANSWERS)) -> "VQAByMatching":
        """Copies of a DualEncoder's towers and temperature (the original is left untouched)."""
        return cls(copy.deepcopy(dual.image_encoder), copy.deepcopy(dual.text_encoder), num_answers=num_answers,
                   logit_scale=dual.scale().item(), pad_id=getattr(dual.text_encoder, "pad_id", 0))

    towers = VQAModel.towers  # the same two towers, under the same names

    def forward(self, images: torch.Tensor, statements: torch.Tensor) -> torch.Tensor:
        if statements.ndim != 3 or statements.shape[1] != len(self.answer_bias):
            raise ValueError(f"expected statements (B, {len(self.answer_bias)}, L) from answer_statements, "
                             f"got {tuple(statements.shape)}")
        if len(images) != len(statements):
            raise ValueError(f"got {len(images)} images but {len(statements)} questions")
        candidate = (statements != self.pad_id).any(-1)  # (B, A)
        if not candidate.any(-1).all():
            raise ValueError("a question has no candidate answer (all its statements are padding)")
        q, a = candidate.nonzero(as_tuple=True)
        image = F.normalize(self.image_encoder(images), dim=-1)                    # (B, D)
        text = F.normalize(self.question_encoder(statements[q, a]), dim=-1)        # (M, D), one per candidate
        return self.logits(image, text, q, a, self.logit_scale.exp(), self.answer_bias)

    logits = staticmethod(matching_logits)  # a notebook may swap in the learner's


def _restrict(logits: torch.Tensor, candidates: torch.Tensor | None) -> torch.Tensor:
    if candidates is None:
        return logits
    if candidates.shape != logits.shape:
        raise ValueError(f"expected candidates {tuple(logits.shape)} from answer_candidates, "
                         f"got {tuple(candidates.shape)}")
    return logits.masked_fill(~candidates.to(logits.device), float("-inf"))


def vqa_step(model: nn.Module, batch: tuple) -> tuple[torch.Tensor, dict[str, float]]:
    """(images, question ids or answer statements, answer labels[, candidates]) -> cross-entropy over
    the answers, for either VQAModel or VQAByMatching. With `candidates` (B, A) bool from
    `answer_candidates`, answers outside them get -inf logits (VQAByMatching does this by itself)."""
    images, ids, labels = batch[:3]
    logits = _restrict(model(images, ids), batch[3] if len(batch) > 3 else None)
    return F.cross_entropy(logits, labels), {"acc": (logits.argmax(-1) == labels).float().mean().item()}


@torch.no_grad()
def vqa_accuracy(model: nn.Module, images: torch.Tensor, ids: torch.Tensor, labels: torch.Tensor,
                 candidates: torch.Tensor | None = None, *, batch_size: int = 1000) -> float:
    """Fraction of questions answered exactly right (among `candidates` when given, as in vqa_step)."""
    device = next(model.parameters()).device
    correct = 0
    with eval_mode(model):
        for i in range(0, len(labels), batch_size):
            logits = model(images[i:i + batch_size].to(device), ids[i:i + batch_size].to(device))
            logits = _restrict(logits, None if candidates is None else candidates[i:i + batch_size])
            correct += (logits.argmax(-1).cpu() == labels[i:i + batch_size]).sum().item()
    return correct / len(labels)
