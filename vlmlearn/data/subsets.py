"""Labeled subsets picked out of a labeled pool by rule (no randomness): `first_per_class`.

Random stratified draws belong to the dataset that makes them (`digits.load_digits_split`); this module only
selects from labels already drawn.
"""
from __future__ import annotations

import torch


def first_per_class(labels: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the first `k` items of each class in `labels` (N,) ints >= 0, as one (M,) int64 tensor:
    class 0's in pool order, then class 1's, ... (M <= k * classes; a class with fewer items gives them all)."""
    if not isinstance(labels, torch.Tensor) or labels.ndim != 1 or labels.is_floating_point():
        got = f"{tuple(labels.shape)} {labels.dtype}" if isinstance(labels, torch.Tensor) else type(labels).__name__
        raise ValueError(f"expected labels as a 1-d integer tensor, got {got}")
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"expected k >= 1 items per class, got {k!r}")
    if len(labels) == 0:
        return torch.zeros(0, dtype=torch.long)
    if labels.min() < 0:
        raise ValueError(f"expected class ids >= 0, got {int(labels.min())}")
    return torch.cat([torch.nonzero(labels == c)[:k, 0] for c in range(int(labels.max()) + 1)])
