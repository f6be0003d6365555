"""Exercises of the masked-modelling notebooks: MAE's random masking (03) and BERT's token masking (04).
The hints are in `vlmlearn/shipped/hints.json`; the shared machinery is in `_core`."""
from __future__ import annotations

from typing import Callable

from ._core import _expect, _run


def check_random_masking(fn: Callable) -> bool:
    """Exercise (notebook 03): `fn(tokens, mask_ratio, noise) -> (kept, mask, ids_restore)` with
    tokens (B, N, D), noise (B, N): keep the K = int(N * (1 - mask_ratio)) tokens with the smallest
    noise (in that order), mask (B, N) is 1 where a token was dropped, and ids_restore undoes the
    shuffle. Compared with `vlmlearn.mae.random_masking`, which matches transformers' ViTMAE."""
    import torch

    from ..mae import random_masking

    def checks():
        tokens1, noise1 = torch.arange(4.0).reshape(1, 4, 1), torch.tensor([[0.3, 0.1, 0.4, 0.2]])
        kept, mask, ids_restore = fn(tokens1, 0.5, noise1)
        want = random_masking(tokens1, 0.5, noise1)
        _expect(torch.equal(torch.as_tensor(kept), want[0]) and torch.equal(torch.as_tensor(mask).float(), want[1]),
                f"tokens=[[0], [1], [2], [3]], noise=[0.3, 0.1, 0.4, 0.2], mask_ratio=0.5: expected kept "
                f"{want[0].flatten().tolist()} and mask {want[1].flatten().tolist()}, got kept "
                f"{torch.as_tensor(kept).flatten().tolist()} and mask {torch.as_tensor(mask).flatten().tolist()}")
        g = torch.Generator().manual_seed(0)
        tokens, noise = torch.randn(3, 16, 4, generator=g), torch.rand(3, 16, generator=g)
        for ratio in (0.75, 0.5, 0.0):
            kept, mask, ids_restore = fn(tokens, ratio, noise)
            want = random_masking(tokens, ratio, noise)
            keep = int(16 * (1 - ratio))
            _expect(tuple(kept.shape) == (3, keep, 4),
                    f"ratio={ratio}: kept should be (3, {keep}, 4), got {tuple(kept.shape)}")
            _expect(torch.equal(mask.float(), want[1]),
                    f"ratio={ratio}: wrong mask; it must be 1 at the {16 - keep} tokens with the largest noise")
            _expect(torch.equal(kept, want[0]), f"ratio={ratio}: kept tokens should follow increasing noise")
            _expect(torch.equal(ids_restore, want[2]), f"ratio={ratio}: ids_restore must be argsort(argsort(noise))")

    return _run("random_masking", checks)


def check_mask_tokens(fn: Callable) -> bool:
    """Exercise (notebook 04): `fn(ids, mask_id, vocab_size, special_ids, mask_prob=0.15, generator=None)
    -> (inputs, labels)`: choose 15 % of the non-special tokens; replace 80 % of those with mask_id, 10 % with a random
    non-special word, keep 10 %; labels hold the original id where chosen and -100 elsewhere."""
    import torch

    def checks():
        g = torch.Generator().manual_seed(0)
        ids = torch.randint(5, 40, (3000, 16), generator=g)
        ids[:, 0], ids[:, -1] = 2, 0
        special = ids < 5
        inputs, labels = fn(ids, 4, 40, (0, 1, 2, 3, 4), generator=g)
        _expect(inputs.shape == ids.shape and labels.shape == ids.shape, "inputs and labels must have the ids' shape")
        chosen = labels != -100
        _expect(not (chosen & special).any(), "special tokens (padding, start, end) must never be chosen")
        _expect(torch.equal(labels[chosen], ids[chosen]), "labels must hold the original ids at the chosen positions")
        _expect(torch.equal(inputs[~chosen], ids[~chosen]), "positions that were not chosen must stay unchanged")
        rate = (chosen.sum() / (~special).sum()).item()
        _expect(abs(rate - 0.15) < 0.01, f"about 15 % of the ordinary tokens should be chosen, got {rate:.1%}")
        masked = (inputs[chosen] == 4).float().mean().item()
        _expect(abs(masked - 0.8) < 0.02,
                f"about 80 % of the chosen tokens should become the mask token, got {masked:.1%}")
        changed = ((inputs[chosen] != 4) & (inputs[chosen] != ids[chosen])).float().mean().item()
        _expect(abs(changed - 0.1) < 0.02, f"about 10 % should become a random word, got {changed:.1%}")
        _expect(inputs[chosen & (inputs != 4)].min() >= 5, "random words must not be special tokens")

    return _run("mask_tokens", checks)
