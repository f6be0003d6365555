"""Visual question answering as classification over a fixed answer vocabulary.

    model = VQAModel(image_encoder, question_encoder, num_answers=len(ANSWERS))
    logits = model(images, question_ids)            # (B, num_answers)

The towers can come from a contrastive model (notebooks 01, 02): `VQAModel.from_dual_encoder`.
"""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn


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


def vqa_step(model: VQAModel, batch: tuple) -> tuple[torch.Tensor, dict[str, float]]:
    """(images, question ids, answer labels) -> cross-entropy over the answer vocabulary."""
    images, ids, labels = batch[:3]
    logits = model(images, ids)
    return F.cross_entropy(logits, labels), {"acc": (logits.argmax(-1) == labels).float().mean().item()}


@torch.no_grad()
def vqa_accuracy(model: VQAModel, images: torch.Tensor, ids: torch.Tensor, labels: torch.Tensor,
                 *, batch_size: int = 1000) -> float:
    """Fraction of questions answered exactly right."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    correct = sum((model(images[i:i + batch_size].to(device), ids[i:i + batch_size].to(device)).argmax(-1).cpu()
                   == labels[i:i + batch_size]).sum().item() for i in range(0, len(labels), batch_size))
    model.train(was_training)
    return correct / len(labels)
