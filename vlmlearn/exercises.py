"""Exercises: automatic checks, hints, and the switch that lets the learner's code drive the notebook.

Each `check_*` runs the learner's function on small cases, smallest first, prints what passed or the first thing
that is wrong (with the input that shows it, what was expected and what came back), and returns True only when
everything passed. A function that still raises NotImplementedError gets a note instead of a traceback, so
notebooks run top to bottom before the exercise is done. Then

    loss_fn = use(my_clip_loss, clip_loss, check_clip_loss(my_clip_loss))

is the learner's function once it passed its check, and the package's (said aloud) until then: the training
below runs either way, and gives the same results when the learner's code is right. `hints("clip_loss")`
returns `hint(level)`, which prints progressively more specific hints; `predicted(guess, measured)` compares a
learner's written prediction with what the experiment measured.
"""
from __future__ import annotations

from typing import Callable

HINTS: dict[str, tuple[str, ...]] = {
    "clip_loss": (
        "The logits are a (B, B) matrix: row i holds image i's scaled cosine similarity to every caption. "
        "The right caption of image i is caption i, so the targets are 0, 1, ..., B - 1.",
        "logits = logit_scale * image_features @ text_features.T; labels = torch.arange(B); the loss is the "
        "mean of F.cross_entropy(logits, labels) and F.cross_entropy(logits.T, labels).",
    ),
    "measured_noise_rate": (
        "A caption is wrong when it does not describe its own image: `caption_matches(caption, batch.attributes, i)` "
        "says whether caption i fits image i.",
        "Average `not caption_matches(c, batch.attributes, i)` over `enumerate(batch.captions)` and return a float.",
    ),
    "swap_captions": (
        "Choose which captions move with a seeded generator: np.random.default_rng(seed).permutation(N)[:k], with "
        "k = round(noise_rate * N). A single chosen caption has nowhere else to go.",
        "Give each chosen image the caption of the next chosen one: for dst, src in zip(chosen, np.roll(chosen, 1)).",
    ),
    "keep_most_similar": (
        "Sort the pairs by score, highest first (torch.argsort(scores, descending=True)), and keep the first "
        "k = round(keep_fraction * N) of that order. Check the fraction is in [0, 1] first.",
        "keep = torch.zeros(N, dtype=torch.bool); keep[torch.argsort(scores, descending=True)[:k]] = True.",
    ),
    "greedy_decode": (
        "Keep a (B, t) tensor of ids that grows by one column per step, and a (B,) bool `done` that turns True "
        "once a row has written eos_id. Stop at max_length columns.",
        "ids = torch.full((B, 1), bos_id); each step nxt = next_logits(ids).argmax(-1); nxt = torch.where(done, "
        "pad_id, nxt); ids = torch.cat([ids, nxt[:, None]], 1); done |= nxt == eos_id.",
    ),
    "mask_tokens": (
        "Three random draws of the ids' shape, in this order: which tokens are chosen (torch.rand < mask_prob, "
        "never a special id: torch.isin), how each chosen token is corrupted (another torch.rand: < 0.8 mask, "
        "0.8 to 0.9 a random word, the rest unchanged), and the random words (torch.randint over non-special ids).",
        "inputs = torch.where(chosen & (how < 0.8), mask_id, ids); then torch.where(chosen & (how >= 0.8) & (how < 0.9), "
        "words, inputs); labels = torch.where(chosen, ids, -100). Pass generator= to every draw.",
    ),
    "fixmatch_loss": (
        "The weak view gives the pseudo-label: softmax its logits (detached), keep the images whose top probability "
        "is >= threshold, and take the argmax as the label.",
        "mask = (probs.max(-1).values >= threshold).float(); (F.cross_entropy(logits_strong, probs.argmax(-1), "
        "reduction='none') * mask).mean(): the mean over every unlabeled image, not only the confident ones.",
    ),
    "random_masking": (
        "Sorting the noise shuffles the patches: ids_shuffle = noise.argsort(dim=1) lists the patches from the "
        "smallest noise up, and the first K of that order are kept. ids_restore = ids_shuffle.argsort(dim=1) "
        "undoes the shuffle.",
        "kept = tokens.gather(1, ids_shuffle[:, :K, None].expand(-1, -1, D)); mask = torch.ones(B, N, "
        "device=tokens.device) with mask[:, :K] = 0 is the mask in shuffled order: mask.gather(1, ids_restore) "
        "puts it back in the original order.",
    ),
    "select_pseudo_labels": (
        "An image is confident when its top class probability, probs.max(-1).values, is >= threshold (>=, as in "
        "FixMatch). Its pseudo-label is the argmax class.",
        "keep = probs.max(-1).values >= threshold; idx = keep.nonzero(as_tuple=True)[0]; return idx, "
        "probs[idx].argmax(-1).",
    ),
    "matching_logits": (
        "Row m of `text` belongs to question q[m] and answer a[m]: its score is scale times the dot product of "
        "image[q[m]] and text[m] (both unit vectors: a cosine), plus bias[a[m]].",
        "scores = scale * (image[q] * text).sum(-1) + bias[a]; then a (B, A) tensor full of float('-inf') with "
        "scores written at (q, a): torch.full(...).index_put((q, a), scores).",
    ),
    "pick_best": (
        "Walk through the scores and remember the position of the best one; replace it only when a later score is "
        "strictly higher, so a tie keeps the earlier value (the published default is listed first).",
        "values[int(np.argmax(val_scores))]: numpy's argmax returns the first of equal maxima. Raise ValueError when "
        "the lists differ in length.",
    ),
    "simulated_loss": (
        "Split the N rows into `world` blocks of b = N // world. Process r owns rows r * b to (r + 1) * b. For the "
        "full loss every process computes the same N x N loss; for the local loss it scores only its own rows "
        "against all N columns, and the true column of its row i is r * b + i.",
        "Local: logits = scale * image_features[mine] @ text_features.T and scale * text_features[mine] @ "
        "image_features.T, labels = torch.arange(b) + r * b, the mean of the two cross-entropies; then average "
        "the per-process losses with torch.stack(losses).mean().",
    ),
    "logits_bytes": (
        "Each process holds two logits matrices (images to captions and captions to images). With the full loss "
        "each is N x N; with the local loss each has only this process's b = N / W rows, against all N columns.",
        "rows = global_batch // world if local_loss else global_batch; return 2 * rows * global_batch * bytes_per_number.",
    ),
}


def hints(name: str) -> Callable[[int], None]:
    """`hint(level)` for the exercise `name`: level 1 points the way, level 2 all but writes the code."""
    if name not in HINTS:
        raise ValueError(f"no hints for {name!r}; there are hints for {sorted(HINTS)}")

    def hint(level: int = 1) -> None:
        levels = HINTS[name]
        if not 1 <= level <= len(levels):
            raise ValueError(f"hint level must be 1 to {len(levels)}, got {level}")
        print(f"{name}, hint {level} of {len(levels)}: {levels[level - 1]}")

    return hint


def use(mine: Callable, package: Callable, passed: bool) -> Callable:
    """The function the notebook goes on with: `mine` once its check passed, else `package` (and it says so)."""
    if passed:
        print(f"The cells below use your {mine.__name__}.")
        return mine
    print(f"{mine.__name__} has not passed its check yet: the cells below use the package's "
          f"{package.__module__}.{package.__qualname__} instead, and run on.")
    return package


def predicted(guess, measured: str) -> None:
    """Print the learner's prediction beside what the experiment measured."""
    if guess in (None, "", "..."):
        print(f"Measured: {measured}. (Write your prediction in `my_prediction` before running, then compare.)")
    else:
        print(f"You predicted: {guess}\nMeasured:      {measured}")


class _Fail(Exception):
    pass


def _expect(cond: bool, message: str) -> None:
    if not cond:
        raise _Fail(message)


def _run(name: str, checks: Callable[[], None]) -> bool:
    try:
        checks()
    except NotImplementedError:
        print(f"{name}: not implemented yet. Write it in its cell above (hint(1) and hint(2) help), then run this "
              f"check again.")
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
    from .data.captions import label_noise

    def checks():
        for rate in (0.0, 0.3, 0.8):
            b = world.noisy_pairs(300, noise_rate=rate, split="val")
            truth = label_noise(b)
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
        for b in (1, 2, 3):  # the smallest batches first: the failing input is printed in full
            img = F.normalize(torch.randn(b, 2, generator=g), dim=-1)
            txt = F.normalize(torch.randn(b, 2, generator=g), dim=-1)
            got, want = fn(img, txt, torch.tensor(10.0)), clip_loss(img, txt, torch.tensor(10.0))
            _expect(isinstance(got, torch.Tensor) and got.ndim == 0, f"B={b}: expected a scalar tensor, got {got!r}")
            if torch.allclose(got, want, atol=1e-5):
                continue
            why = ""
            if torch.allclose(got, F.cross_entropy(10.0 * img @ txt.T, torch.arange(b)), atol=1e-5):
                why = " (you computed only image-to-text; average it with text-to-image, the transposed logits)"
            elif torch.allclose(got, clip_loss(img, txt, torch.tensor(1.0)), atol=1e-5):
                why = " (the logit scale is not used: multiply the similarities by it)"
            raise _Fail(f"input B={b}, image_features={[[round(v, 3) for v in r] for r in img.tolist()]}, text_features="
                        f"{[[round(v, 3) for v in r] for r in txt.tolist()]}, logit_scale=10: expected {want.item():.5f}, "
                        f"got {float(got):.5f}{why}")
        img = F.normalize(torch.randn(6, 8, generator=g), dim=-1)
        txt = F.normalize(torch.randn(6, 8, generator=g), dim=-1)
        scale = torch.tensor(10.0)
        got = fn(img, txt, scale)
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
        small = torch.tensor([0.2, 0.9])
        for frac, want in ((0.5, {1}), (1.0, {0, 1}), (0.0, set())):
            keep = fn(small, frac)
            _expect(isinstance(keep, torch.Tensor) and keep.dtype == torch.bool and keep.shape == small.shape,
                    f"scores=[0.2, 0.9], keep_fraction={frac}: expected a bool tensor of shape (2,), got {keep!r}")
            got = set(torch.nonzero(keep).flatten().tolist())
            _expect(got == want, f"scores=[0.2, 0.9], keep_fraction={frac}: expected to keep indices {sorted(want)}, "
                                 f"kept {sorted(got)}")
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
        weak1, strong1 = torch.tensor([[4.0, 0.0], [0.0, 0.1]]), torch.tensor([[0.0, 1.0], [1.0, 0.0]])
        p = weak1.softmax(-1)
        want1 = (F.cross_entropy(strong1, p.argmax(-1), reduction="none") * (p.max(-1).values >= 0.8).float()).mean()
        got1 = torch.as_tensor(fn(weak1, strong1, 0.8))
        _expect(torch.allclose(got1, want1, atol=1e-6),
                f"logits_weak={weak1.tolist()} (top probabilities {[round(v, 3) for v in p.max(-1).values.tolist()]}), "
                f"logits_strong={strong1.tolist()}, threshold=0.8: expected {want1:.6f} (only image 0 is confident; "
                f"the mean is over both), got {float(got1):.6f}")
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
    shuffle. Compared with `vlmlearn.mae.random_masking`, which matches transformers' ViTMAE."""
    import torch

    from .mae import random_masking

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
            _expect(tuple(kept.shape) == (3, keep, 4), f"ratio={ratio}: kept should be (3, {keep}, 4), got {tuple(kept.shape)}")
            _expect(torch.equal(mask.float(), want[1]),
                    f"ratio={ratio}: wrong mask; it must be 1 at the {16 - keep} tokens with the largest noise")
            _expect(torch.equal(kept, want[0]), f"ratio={ratio}: kept tokens should follow increasing noise")
            _expect(torch.equal(ids_restore, want[2]), f"ratio={ratio}: ids_restore must be argsort(argsort(noise))")

    return _run("random_masking", checks)


def check_mask_tokens(fn: Callable) -> bool:
    """Exercise (notebook 04): `fn(ids, mask_id, vocab_size, special_ids, mask_prob=0.15, generator=None) -> (inputs, labels)`:
    choose 15 % of the non-special tokens; replace 80 % of those with mask_id, 10 % with a random
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


def check_logits_bytes(fn: Callable) -> bool:
    """Exercise (notebook 10): `fn(global_batch, world, local_loss, bytes_per_number=4) -> int`, the bytes of the two
    logits matrices one process holds, checked against the tensors `clip_loss`'s arithmetic builds."""
    import torch

    def checks():
        for n, w, local in ((2, 1, False), (2, 2, True), (4, 2, False), (8, 4, True), (12, 3, True)):
            b = n // w
            rows = b if local else n
            x = torch.zeros(n, 3)
            built = [x[:rows] @ x.T, x[:rows] @ x.T]  # (rows, N) images to captions and captions to images
            want = sum(m.numel() * m.element_size() for m in built)
            got = fn(n, w, local)
            _expect(got == want, f"global_batch={n}, world={w}, local_loss={local}: expected {want} bytes "
                                 f"(two {rows} x {n} float32 matrices), got {got}")
        _expect(fn(8, 2, False, 2) == 2 * 8 * 8 * 2, "bytes_per_number=2 (bfloat16) must halve the float32 size")

    return _run("logits_bytes", checks)


def check_simulated_loss(fn: Callable) -> bool:
    """Exercise (notebook 10): `fn(image_features, text_features, scale, world, local_loss) -> scalar`, the mean over
    `world` simulated processes of each one's loss (full or local), equal to `clip_loss` on the whole batch in value
    and gradient for every split (smallest batches first)."""
    import torch
    import torch.nn.functional as F

    from .losses import clip_loss

    def checks():
        g = torch.Generator().manual_seed(0)
        for n, world in ((2, 1), (2, 2), (4, 2), (8, 4), (16, 8)):
            img, txt = (F.normalize(torch.randn(n, 4, generator=g), dim=-1) for _ in range(2))
            for local in (False, True):
                a, t = img.clone().requires_grad_(), txt.clone().requires_grad_()
                got = fn(a, t, 10.0, world, local)
                _expect(isinstance(got, torch.Tensor) and got.ndim == 0, f"expected a scalar tensor, got {got!r}")
                a2, t2 = img.clone().requires_grad_(), txt.clone().requires_grad_()
                want = clip_loss(a2, t2, 10.0)
                case = f"N={n} pairs over world={world}, local_loss={local}"
                _expect(abs(got.item() - want.item()) < 1e-5, f"{case}: expected {want.item():.5f} (the full loss), "
                                                               f"got {got.item():.5f}")
                grads, want_grads = torch.autograd.grad(got, (a, t)), torch.autograd.grad(want, (a2, t2))
                _expect(all(torch.allclose(x, y, atol=1e-5) for x, y in zip(grads, want_grads)),
                        f"{case}: the value is right but the gradient differs")

    return _run("simulated_loss", checks)


def check_select_pseudo_labels(fn: Callable) -> bool:
    """Exercise (notebook 07): `fn(probs, threshold) -> (indices, labels)`: the images whose top probability is
    >= threshold, in order, and their argmax classes; checked against `vlmlearn.semi.select_pseudo_labels`."""
    import torch

    from .semi import select_pseudo_labels

    def checks():
        cases = [(torch.tensor([[0.9, 0.1]]), 0.9), (torch.tensor([[0.6, 0.4], [0.2, 0.8]]), 0.7),
                 (torch.tensor([[0.5, 0.5], [0.1, 0.9], [0.95, 0.05]]), 0.9), (torch.tensor([[0.3, 0.7]]), 0.99)]
        g = torch.Generator().manual_seed(0)
        cases.append((torch.randn(50, 4, generator=g).mul(3).softmax(-1), 0.8))
        for probs, threshold in cases:
            got_idx, got_labels = fn(probs, threshold)
            want_idx, want_labels = select_pseudo_labels(probs, threshold)
            shown = [[round(v, 3) for v in row] for row in probs.tolist()] if len(probs) < 4 else f"({len(probs)}, 4) random"
            case = f"probs={shown}, threshold={threshold}"
            _expect(torch.equal(torch.as_tensor(got_idx).long(), want_idx),
                    f"{case}: expected indices {want_idx.tolist()}, got {torch.as_tensor(got_idx).tolist()}"
                    + (" (a probability equal to the threshold counts: use >=)" if len(probs) == 1 and threshold == 0.9 else ""))
            _expect(torch.equal(torch.as_tensor(got_labels).long(), want_labels),
                    f"{case}: expected labels {want_labels.tolist()}, got {torch.as_tensor(got_labels).tolist()}")

    return _run("select_pseudo_labels", checks)


def check_matching_logits(fn: Callable) -> bool:
    """Exercise (notebook 06): `fn(image, text, q, a, scale, bias) -> (B, A)` answer-by-matching logits, -inf where
    an answer is not a candidate; checked against `vlmlearn.vqa.matching_logits` (smallest case first)."""
    import torch
    import torch.nn.functional as F

    from .vqa import matching_logits

    def checks():
        g = torch.Generator().manual_seed(0)
        for b, n_answers, pairs in ((1, 2, [(0, 1)]), (2, 3, [(0, 0), (0, 2), (1, 1)]), (4, 5, [(i, j) for i in range(4) for j in range(5) if (i + j) % 2])):
            q = torch.tensor([p[0] for p in pairs])
            a = torch.tensor([p[1] for p in pairs])
            image = F.normalize(torch.randn(b, 3, generator=g), dim=-1)
            text = F.normalize(torch.randn(len(pairs), 3, generator=g), dim=-1)
            bias = torch.randn(n_answers, generator=g)
            want = matching_logits(image, text, q, a, torch.tensor(10.0), bias)
            got = fn(image, text, q, a, torch.tensor(10.0), bias)
            case = f"B={b} questions, A={n_answers} answers, candidates (q, a)={pairs if len(pairs) < 4 else f'{len(pairs)} pairs'}"
            _expect(isinstance(got, torch.Tensor) and tuple(got.shape) == (b, n_answers),
                    f"{case}: expected logits of shape {(b, n_answers)}, got {getattr(got, 'shape', got)}")
            _expect(torch.equal(torch.isinf(got), torch.isinf(want)),
                    f"{case}: expected -inf exactly where an answer is not a candidate: {torch.isinf(want).tolist()}, "
                    f"got {torch.isinf(got).tolist()}")
            _expect(torch.allclose(got[~torch.isinf(want)], want[~torch.isinf(want)], atol=1e-5),
                    f"{case}: expected {want[~torch.isinf(want)].tolist()}, got {got[~torch.isinf(want)].tolist()}")

    return _run("matching_logits", checks)


def check_pick_best(fn: Callable) -> bool:
    """Exercise (notebook 09): `fn(values, val_scores) -> the value with the best validation score`, ties to the
    first listed (the default); a length mismatch raises ValueError."""
    def checks():
        for values, scores, want in (([0.95], [0.5], 0.95), ([0.95, 0.8], [0.6, 0.7], 0.8), ([0.95, 0.8], [0.7, 0.7], 0.95),
                                     ([1, 3, 10], [0.2, 0.9, 0.9], 3), ([1, 3, 10], [0.9, 0.2, 0.95], 10)):
            got = fn(values, scores)
            _expect(got == want, f"values={values}, val_scores={scores}: expected {want}, got {got}"
                                 + (" (a tie goes to the first value, the default)" if len(set(scores)) < len(scores) else ""))
        try:
            fn([1, 2], [0.5])
        except ValueError:
            pass
        else:
            raise _Fail("values=[1, 2], val_scores=[0.5]: expected a ValueError (one score per value)")

    return _run("pick_best", checks)
