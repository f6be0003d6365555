"""Automatic checks for the notebooks' exercises.

Each `check_*` runs the learner's function on small cases, prints what passed or the first thing
that is wrong (with the input that shows it), and returns True only when everything passed. A
function that still raises NotImplementedError gets a hint instead of a traceback, so notebooks run
top to bottom before the exercise is done.
"""
from __future__ import annotations

from typing import Callable


class _Fail(Exception):
    pass


def _expect(cond: bool, message: str) -> None:
    if not cond:
        raise _Fail(message)


def _run(name: str, checks: Callable[[], None]) -> bool:
    try:
        checks()
    except NotImplementedError:
        print(f"{name}: not implemented yet. Fill in the function, or open the solution cell below.")
        return False
    except _Fail as e:
        print(f"{name}: ✗ {e}")
        return False
    print(f"{name}: ✓ all checks passed")
    return True


def check_swap_captions(fn: Callable) -> bool:
    """Exercise (notebook 00): `fn(captions, noise_rate, seed) -> (new_captions, swapped)`.

    Exactly round(noise_rate * N) captions must move to another image (a permutation among the
    chosen ones that leaves none in place), the others stay, the multiset of captions is kept, and
    the same seed gives the same result. `swapped` is a list or array of N booleans.
    """
    def checks():
        caps = [f"caption {i}" for i in range(20)]
        for rate in (0.0, 0.25, 0.5, 1.0):
            new, swapped = fn(list(caps), rate, 0)
            swapped = [bool(s) for s in swapped]
            _expect(len(new) == len(caps) and len(swapped) == len(caps),
                    f"rate={rate}: expected 20 captions and 20 flags, got {len(new)} and {len(swapped)}")
            _expect(sum(swapped) == round(rate * 20),
                    f"rate={rate}: expected {round(rate * 20)} swapped captions, got {sum(swapped)}")
            _expect(sorted(new) == sorted(caps), f"rate={rate}: captions were lost or duplicated: {new}")
            for i, (old, cur, s) in enumerate(zip(caps, new, swapped)):
                _expect(s or cur == old, f"rate={rate}: caption {i} changed but is not flagged as swapped")
                _expect(not s or cur != old, f"rate={rate}: caption {i} is flagged as swapped but stayed in place")
        again, _ = fn(list(caps), 0.5, 0)
        _expect(again == fn(list(caps), 0.5, 0)[0], "the same seed must give the same captions")
        _expect(fn(list(caps), 0.5, 1)[1] is not None, "seed 1 must work too")
        try:
            fn(list(caps), 1.5, 0)
        except ValueError:
            pass
        else:
            raise _Fail("noise_rate=1.5 should raise ValueError (a rate is between 0 and 1)")

    return _run("swap_captions", checks)


def check_noise_rate(fn: Callable, world) -> bool:
    """Exercise (notebook 00): `fn(batch) -> float`, the fraction of pairs whose caption does not
    describe its image, measured with `parse_caption`, compared with the true count."""
    from .data.captions import caption_matches

    def checks():
        for rate in (0.0, 0.3, 0.8):
            b = world.noisy_pairs(300, noise_rate=rate, split="val")
            truth = sum(not caption_matches(c, b.attributes, i) for i, c in enumerate(b.captions)) / len(b)
            got = fn(b)
            _expect(isinstance(got, float) or hasattr(got, "__float__"), f"expected a float, got {type(got).__name__}")
            _expect(abs(float(got) - truth) < 1e-9, f"noise_rate={rate}: expected {truth:.3f}, got {float(got):.3f}")

    return _run("measured_noise_rate", checks)


def check_clip_loss(fn: Callable) -> bool:
    """Exercise (notebook 01): `fn(image_features, text_features, logit_scale) -> scalar`, the
    symmetric InfoNCE loss, compared with vlmlearn.losses.clip_loss forward and backward."""
    import torch
    import torch.nn.functional as F

    from .losses import clip_loss

    def checks():
        g = torch.Generator().manual_seed(0)
        img = F.normalize(torch.randn(6, 8, generator=g), dim=-1)
        txt = F.normalize(torch.randn(6, 8, generator=g), dim=-1)
        scale = torch.tensor(10.0)
        got = fn(img, txt, scale)
        _expect(isinstance(got, torch.Tensor) and got.ndim == 0, f"expected a scalar tensor, got {got!r}")
        want = clip_loss(img, txt, scale)
        labels = torch.arange(6)
        one_way = F.cross_entropy(scale * img @ txt.T, labels)
        if torch.allclose(got, one_way, atol=1e-5) and not torch.allclose(one_way, want, atol=1e-5):
            raise _Fail("you computed only image-to-text; average it with text-to-image (the transposed logits)")
        if torch.allclose(got, clip_loss(img, txt, torch.tensor(1.0)), atol=1e-5):
            raise _Fail("the logit scale is not used: multiply the similarities by it")
        _expect(torch.allclose(got, want, atol=1e-5), f"expected {want.item():.5f}, got {float(got):.5f}")
        aligned = fn(torch.eye(4), torch.eye(4), torch.tensor(100.0))
        _expect(float(aligned) < 1e-4, f"a perfectly aligned batch at scale 100 should cost ~0, got {float(aligned):.4f}")
        img.requires_grad_(True)
        grad = torch.autograd.grad(fn(img, txt, scale), img)[0]
        img2 = img.detach().requires_grad_(True)
        want_grad = torch.autograd.grad(clip_loss(img2, txt, scale), img2)[0]
        _expect(torch.allclose(grad, want_grad, atol=1e-5), "the forward value is right but the gradient differs")

    return _run("clip_loss", checks)


def check_keep_most_similar(fn: Callable) -> bool:
    """Exercise (notebook 02): `fn(scores, keep_fraction) -> bool mask` keeping exactly
    round(keep_fraction * N) pairs with the highest scores (CLIP-score filtering)."""
    import torch

    def checks():
        scores = torch.tensor([0.1, 0.9, 0.5, 0.3, 0.7, 0.2, 0.8, 0.4, 0.6, 0.0])
        for frac, want in ((0.3, {1, 6, 4}), (0.5, {1, 6, 4, 8, 2}), (0.0, set()), (1.0, set(range(10)))):
            keep = fn(scores, frac)
            _expect(isinstance(keep, torch.Tensor) and keep.dtype == torch.bool and keep.shape == scores.shape,
                    f"expected a bool tensor of shape {tuple(scores.shape)}, got {keep!r}")
            got = set(torch.nonzero(keep).flatten().tolist())
            _expect(got == want, f"keep_fraction={frac}: expected to keep indices {sorted(want)}, kept {sorted(got)}")
        try:
            fn(scores, 1.5)
        except ValueError:
            pass
        else:
            raise _Fail("keep_fraction=1.5 should raise ValueError")

    return _run("keep_most_similar", checks)


def check_pi_consistency(fn: Callable) -> bool:
    """Exercise (notebook 08): `fn(logits_a, logits_b) -> scalar`, the Π-model penalty: the mean
    squared difference between the two views' softmax probabilities."""
    import torch

    def checks():
        g = torch.Generator().manual_seed(0)
        a, b = torch.randn(5, 4, generator=g), torch.randn(5, 4, generator=g)
        want = ((a.softmax(-1) - b.softmax(-1)) ** 2).mean()
        got = fn(a, b)
        if torch.allclose(torch.as_tensor(got), ((a - b) ** 2).mean(), atol=1e-6):
            raise _Fail("compare probabilities (softmax of the logits), not raw logits")
        _expect(torch.allclose(torch.as_tensor(got), want, atol=1e-6), f"expected {want:.6f}, got {float(got):.6f}")
        _expect(float(fn(a, a)) == 0.0, "identical views must cost exactly 0")

    return _run("pi_consistency", checks)


def check_ema_update(fn: Callable) -> bool:
    """Exercise (notebook 08): `fn(teacher, student, decay)` updates the teacher's parameters in
    place: teacher = decay * teacher + (1 - decay) * student."""
    import torch

    def checks():
        torch.manual_seed(0)
        student, teacher = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
        before = [p.detach().clone() for p in teacher.parameters()]
        fn(teacher, student, 0.9)
        for b, t, s in zip(before, teacher.parameters(), student.parameters()):
            want = 0.9 * b + 0.1 * s.detach()
            if torch.allclose(t, 0.1 * b + 0.9 * s.detach(), atol=1e-6):
                raise _Fail("decay weighs the teacher's old value, not the student's")
            _expect(torch.allclose(t, want, atol=1e-6), "teacher != 0.9 * old teacher + 0.1 * student")
        _expect(all(not p.requires_grad or p.grad is None for p in teacher.parameters()),
                "the update must not build a graph (use torch.no_grad())")

    return _run("ema_update", checks)


def check_fixmatch_loss(fn: Callable) -> bool:
    """Exercise (notebook 08): `fn(logits_weak, logits_strong, threshold) -> scalar`: pseudo-labels
    from the weak view where its top probability is >= threshold, cross-entropy of the strong
    view against them, averaged over *all* unlabeled images (masked ones count as 0)."""
    import torch
    import torch.nn.functional as F

    def checks():
        g = torch.Generator().manual_seed(0)
        weak = torch.randn(8, 3, generator=g) * 3
        strong = torch.randn(8, 3, generator=g)
        probs = weak.softmax(-1)
        mask = (probs.max(-1).values >= 0.8).float()
        want = (F.cross_entropy(strong, probs.argmax(-1), reduction="none") * mask).mean()
        got = torch.as_tensor(fn(weak, strong, 0.8))
        masked_mean = (F.cross_entropy(strong, probs.argmax(-1), reduction="none") * mask).sum() / mask.sum()
        if torch.allclose(got, masked_mean, atol=1e-6) and not torch.allclose(masked_mean, want):
            raise _Fail("divide by the number of unlabeled images, not by the number above the threshold")
        _expect(torch.allclose(got, want, atol=1e-6), f"expected {want:.6f}, got {float(got):.6f}")
        certain = torch.tensor([[0.0, float("-inf")]])  # top probability exactly 1.0
        _expect(float(fn(certain, torch.zeros(1, 2), 1.0)) > 0, "a probability equal to the threshold counts (>=)")

    return _run("fixmatch_loss", checks)


def check_random_masking(fn: Callable) -> bool:
    """Exercise (notebook 03): `fn(tokens, mask_ratio, noise) -> (kept, mask, ids_restore)` with
    tokens (B, N, D), noise (B, N): keep the K = int(N * (1 - mask_ratio)) tokens with the smallest
    noise (in that order), mask (B, N) is 1 where a token was dropped, and ids_restore undoes the
    shuffle. Compared with `vlmlearn.masked.random_masking`, which matches transformers' ViTMAE."""
    import torch

    from .masked import random_masking

    def checks():
        g = torch.Generator().manual_seed(0)
        tokens, noise = torch.randn(3, 16, 4, generator=g), torch.rand(3, 16, generator=g)
        for ratio in (0.75, 0.5, 0.0):
            kept, mask, ids_restore = fn(tokens, ratio, noise)
            want = random_masking(tokens, ratio, noise)
            keep = int(16 * (1 - ratio))
            _expect(tuple(kept.shape) == (3, keep, 4), f"ratio={ratio}: kept should be (3, {keep}, 4), got {tuple(kept.shape)}")
            _expect(torch.equal(mask.float(), want[1]),
                    f"ratio={ratio}: wrong mask; it must be 1 at the {16 - keep} tokens with the largest noise")
            _expect(torch.equal(kept, want[0]), f"ratio={ratio}: kept tokens should follow increasing noise")
            _expect(torch.equal(ids_restore, want[2]), f"ratio={ratio}: ids_restore must be argsort(argsort(noise))")

    return _run("random_masking", checks)


def check_mask_tokens(fn: Callable) -> bool:
    """Exercise (notebook 04): `fn(ids, mask_id, vocab_size, special_ids, generator) -> (inputs, labels)`:
    choose 15 % of the non-special tokens; replace 80 % of those with mask_id, 10 % with a random
    non-special word, keep 10 %; labels hold the original id where chosen and -100 elsewhere."""
    import torch

    def checks():
        g = torch.Generator().manual_seed(0)
        ids = torch.randint(5, 40, (3000, 16), generator=g)
        ids[:, 0], ids[:, -1] = 2, 0
        special = ids < 5
        inputs, labels = fn(ids, 4, 40, (0, 1, 2, 3, 4), g)
        _expect(inputs.shape == ids.shape and labels.shape == ids.shape, "inputs and labels must have the ids' shape")
        chosen = labels != -100
        _expect(not (chosen & special).any(), "special tokens (padding, start, end) must never be chosen")
        _expect(torch.equal(labels[chosen], ids[chosen]), "labels must hold the original ids at the chosen positions")
        _expect(torch.equal(inputs[~chosen], ids[~chosen]), "positions that were not chosen must stay unchanged")
        rate = (chosen.sum() / (~special).sum()).item()
        _expect(abs(rate - 0.15) < 0.01, f"about 15 % of the ordinary tokens should be chosen, got {rate:.1%}")
        masked = (inputs[chosen] == 4).float().mean().item()
        _expect(abs(masked - 0.8) < 0.02, f"about 80 % of the chosen tokens should become the mask token, got {masked:.1%}")
        changed = ((inputs[chosen] != 4) & (inputs[chosen] != ids[chosen])).float().mean().item()
        _expect(abs(changed - 0.1) < 0.02, f"about 10 % should become a random word, got {changed:.1%}")
        _expect(inputs[chosen & (inputs != 4)].min() >= 5, "random words must not be special tokens")

    return _run("mask_tokens", checks)


def check_greedy_decode(fn: Callable) -> bool:
    """Exercise (notebook 05): `fn(next_logits, batch_size, bos_id, eos_id, pad_id, max_length) -> ids`.

    next_logits(ids (B, t)) gives the logits (B, V) of the next word. Start every row with bos_id,
    append the argmax word until the row has produced eos_id or max_length tokens; after its end
    token a row holds pad_id only. Returns (B, max_length) int64."""
    import torch

    def checks():
        # a toy "model" that writes row 0: 5 6 <end> 5 5 ... and row 1: 7 8 9 7 8 9 (never ending)
        script = torch.tensor([[5, 6, 3, 5, 5, 5, 5, 5], [7, 8, 9, 7, 8, 9, 7, 8]])

        def next_logits(ids):
            return torch.nn.functional.one_hot(script[:, ids.shape[1] - 1], 10).float()

        ids = torch.as_tensor(fn(next_logits, 2, 2, 3, 0, 7))
        _expect(tuple(ids.shape) == (2, 7), f"expected shape (2, 7), got {tuple(ids.shape)}")
        _expect(ids[:, 0].tolist() == [2, 2], "every caption starts with the start token")
        _expect(ids[1].tolist() == [2, 7, 8, 9, 7, 8, 9],
                f"a row without an end token runs to max_length: expected [2, 7, 8, 9, 7, 8, 9], got {ids[1].tolist()}")
        _expect(ids[0].tolist() == [2, 5, 6, 3, 0, 0, 0],
                f"after the end token a row holds padding only: expected [2, 5, 6, 3, 0, 0, 0], got {ids[0].tolist()}")

    return _run("greedy_decode", checks)
