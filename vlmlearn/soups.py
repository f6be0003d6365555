"""Mixing the weights of models that share a starting point: WiSE-FT (Wortsman et al. 2022, "Robust fine-tuning of
zero-shot models", arXiv:2109.01903) interpolates between a zero-shot model and the same model fine-tuned.

    mixed = interpolate_weights(zero_shot.state_dict(), fine_tuned.state_dict(), alpha=0.5)
    model.load_state_dict(mixed)      # alpha = 0: the zero-shot model; alpha = 1: the fine-tuned one

Mixing weights (not predictions) works when both models descend from the same weights, so that their parameters
still line up; notebook 06 chooses alpha on validation questions.
"""
from __future__ import annotations

import math
from typing import Mapping

import torch


def interpolate_weights(start: Mapping[str, torch.Tensor], end: Mapping[str, torch.Tensor],
                        alpha: float) -> dict[str, torch.Tensor]:
    """(1 - alpha) * start + alpha * end for every floating-point entry of two state dicts of one architecture
    (weights, biases, BatchNorm's running statistics); other entries (integer counters such as BatchNorm's
    `num_batches_tracked`) are copied from `end`. Each result sits on its `end` entry's device, in its dtype.

    Raises ValueError when the two state dicts do not hold the same entries with the same shapes, or alpha is not
    a finite number."""
    if not isinstance(alpha, (int, float)) or not math.isfinite(alpha):
        raise ValueError(f"alpha must be a finite number, got {alpha!r}")
    if start.keys() != end.keys():
        only_start, only_end = sorted(set(start) - set(end)), sorted(set(end) - set(start))
        raise ValueError(f"the state dicts hold different entries: only in start {only_start[:5]}, "
                         f"only in end {only_end[:5]}; expected two state dicts of the same architecture")
    mixed = {}
    for name, b in end.items():
        a = start[name]
        if a.shape != b.shape:
            raise ValueError(f"{name}: shape {tuple(a.shape)} in start but {tuple(b.shape)} in end")
        if b.is_floating_point():
            mixed[name] = torch.lerp(a.to(device=b.device, dtype=b.dtype), b, alpha)
        else:
            mixed[name] = b.clone()
    return mixed
