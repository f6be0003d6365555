"""Exercises of the masked-modelling notebooks: MAE's random masking and its loss on the hidden patches (03), and
BERT's token masking (04).
The hints are in `vlmlearn/shipped/hints.json`; the shared machinery is in `_core`."""
from __future__ import annotations

from typing import Callable

from ._core import _expect, _Fail, _run


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


def check_mae_loss(fn: Callable) -> bool:
    """Exercise (notebook 03): `fn(pred, target, mask) -> loss ()` with pred and target (B, N, D), each patch's
    predicted and true values, and mask (B, N), 1 = hidden: the squared error averaged over each patch's D values,
    then over the hidden patches only. Compared with the loss `MaskedAutoencoder.forward` computes (value and
    gradient), on a hand-made case first, then on a small MAE's own prediction; the visible-patch bug is named as
    `vlmlearn.checks.check_mae_loss_on_masked` names it."""
    import torch

    from ..checks import check_mae_loss_on_masked
    from ..mae import MaskedAutoencoder

    def checks():
        try:
            check_mae_loss_on_masked(fn)  # names the visible-patch and every-patch bugs
        except ValueError as e:
            raise _Fail(str(e)) from None
        target = torch.zeros(1, 2, 2)
        pred = torch.tensor([[[1.0, 1.0], [3.0, 3.0]]])  # patch 0 off by 1 in both values, patch 1 off by 3
        mask = torch.tensor([[1.0, 0.0]])                # only patch 0 is hidden
        got = float(fn(pred, target, mask))
        _expect(abs(got - 1.0) < 1e-6,
                f"pred=[[[1, 1], [3, 3]]], target all 0, mask=[[1, 0]] (patch 0 hidden): expected 1.0, the mean "
                f"squared error of the hidden patch, got {got:.4g}"
                + (": that sums a patch's values instead of averaging them" if abs(got - 2.0) < 1e-6 else ""))
        with torch.random.fork_rng():  # the notebook's random draws stay what they were
            torch.manual_seed(0)
            model = MaskedAutoencoder(width=16, depth=1, heads=2, decoder_width=16, decoder_depth=1,
                                      decoder_heads=2, norm_pix_loss=True)
            images, noise = torch.rand(3, 3, 32, 32), torch.rand(3, 64)
        out = model(images, noise=noise)
        pred = out.pred.detach().requires_grad_()
        mine = fn(pred, model.targets(images), out.mask)
        _expect(torch.is_tensor(mine) and mine.dim() == 0, f"the loss must be a scalar tensor, got {mine!r:.80}")
        want = out.loss.item()
        _expect(abs(mine.item() - want) < 1e-5 * max(1.0, abs(want)),
                f"on a small MAE's prediction (3 images, 64 patches of 48 values, 75 % hidden) the model's own loss "
                f"is {want:.5f}, yours {mine.item():.5f}" + (": a sum, not a mean?" if mine.item() > 10 * want else ""))
        _expect(mine.requires_grad, "the loss carries no gradient back to pred (detached, or .item()?): the "
                                    "model could not learn from it")
        (got_grad,) = torch.autograd.grad(mine, pred)
        (want_grad,) = torch.autograd.grad(out.loss, out.pred)
        _expect(bool((got_grad[out.mask == 0] == 0).all()),
                "the gradient must reach the hidden patches only: the visible ones are copied from the input, "
                "so the model must not be trained to predict them")
        _expect(torch.allclose(got_grad, want_grad, atol=1e-7), "the value is right but the gradient differs from "
                                                                "the model's: is part of the loss detached?")

    return _run("mae_loss", checks)


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
