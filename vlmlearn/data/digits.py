"""Real handwritten digits (scikit-learn's bundled 8x8 set), split for semi-supervised learning.

1,797 real images, no download. A stratified, seeded test set is held out first; from the rest,
`labels_per_class` images per class are labeled and all others form the unlabeled pool, whose labels
the training code cannot see (see `DigitsSplit.reveal_unlabeled_labels`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

DIGIT_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


@dataclass
class LabeledImages:
    images: torch.Tensor   # (N, 1, S, S) float32 in [0, 1]
    labels: torch.Tensor   # (N,) int64 in [0, 10)
    captions: list[str]    # "a handwritten digit seven"

    def __len__(self) -> int:
        return len(self.labels)


@dataclass
class DigitsSplit:
    """Labeled, unlabeled and test digits. The unlabeled pool carries images only."""

    labeled: LabeledImages
    unlabeled: torch.Tensor            # (U, 1, S, S): no labels, no captions
    test: LabeledImages
    classes: tuple[str, ...] = DIGIT_NAMES
    _unlabeled_labels: torch.Tensor | None = None

    def reveal_unlabeled_labels(self) -> torch.Tensor:
        """The true labels of the unlabeled pool: for measuring pseudo-label quality, never for
        training. Kept behind a method so that a training function handed `split.unlabeled`
        cannot read them by accident."""
        return self._unlabeled_labels


def digit_caption(label: int) -> str:
    return f"a handwritten digit {DIGIT_NAMES[label]}"


def load_digits_split(labels_per_class: int, seed: int = 0, *, image_size: int = 16,
                      test_size: int = 500) -> DigitsSplit:
    """Split scikit-learn's digits into labeled / unlabeled / test sets.

    Args:
        labels_per_class: labeled images per class (1 to 100); the rest of the training pool is
            unlabeled. Pass a large value such as 10_000 for the fully labeled upper bound (the
            unlabeled pool is then empty).
        seed: chooses the test set and the labeled images (stratified by class).
        image_size: images are upsampled bilinearly from 8x8 to this size (8 to 64).
        test_size: held-out test images, stratified (at least 10, at most 1,000).
    Returns:
        A DigitsSplit with images of shape (N, 1, image_size, image_size), values in [0, 1].
    """
    from sklearn.datasets import load_digits

    if labels_per_class < 1:
        raise ValueError(f"labels_per_class must be at least 1, got {labels_per_class}")
    if not 8 <= image_size <= 64:
        raise ValueError(f"image_size must be between 8 and 64, got {image_size}")
    if not 10 <= test_size <= 1000:
        raise ValueError(f"test_size must be between 10 and 1000, got {test_size}")
    digits = load_digits()
    x = torch.from_numpy(digits.images).float().div_(16.0).unsqueeze(1)  # (1797, 1, 8, 8)
    if image_size != 8:
        x = F.interpolate(x, size=(image_size, image_size), mode="bilinear", align_corners=False)
    y = torch.from_numpy(digits.target).long()

    rng = np.random.default_rng(seed)
    test_idx, pool_idx = _stratified_take(y.numpy(), np.arange(len(y)), test_size // 10, rng)
    labeled_idx, unlabeled_idx = _stratified_take(y.numpy(), pool_idx, labels_per_class, rng)

    def subset(idx: np.ndarray) -> LabeledImages:
        idx = torch.from_numpy(np.sort(idx))
        return LabeledImages(x[idx], y[idx], [digit_caption(int(t)) for t in y[idx]])

    unlabeled_idx = torch.from_numpy(rng.permutation(unlabeled_idx))
    return DigitsSplit(labeled=subset(labeled_idx), unlabeled=x[unlabeled_idx].clone(),
                       test=subset(test_idx), _unlabeled_labels=y[unlabeled_idx].clone())


def _stratified_take(y: np.ndarray, idx: np.ndarray, per_class: int, rng: np.random.Generator):
    """Take up to `per_class` random items of each class from idx; return (taken, rest)."""
    taken = np.concatenate([rng.permutation(idx[y[idx] == c])[:per_class] for c in range(10)])
    return taken, np.setdiff1d(idx, taken)
