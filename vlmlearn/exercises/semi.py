"""Exercises of the semi-supervised notebooks: selecting pseudo-labels (07); the Π-model penalty, the mean teacher's
EMA update and the FixMatch loss (08). The hints are in `vlmlearn/shipped/hints.json` (the Π-model and EMA checks
have none); the shared machinery is in `_core`."""
from __future__ import annotations

from typing import Callable

from ._core import _expect, _Fail, _run


def check_select_pseudo_labels(fn: Callable) -> bool:
    """Exercise (notebook 07): `fn(probs, threshold) -> (indices, labels)`: the images whose top probability is
    >= threshold, in order, and their argmax classes; checked against `vlmlearn.semi.select_pseudo_labels`."""
    import torch

    from ..semi import select_pseudo_labels

    def checks():
        cases = [(torch.tensor([[0.9, 0.1]]), 0.9), (torch.tensor([[0.6, 0.4], [0.2, 0.8]]), 0.7),
                 (torch.tensor([[0.5, 0.5], [0.1, 0.9], [0.95, 0.05]]), 0.9), (torch.tensor([[0.3, 0.7]]), 0.99)]
        g = torch.Generator().manual_seed(0)
        cases.append((torch.randn(50, 4, generator=g).mul(3).softmax(-1), 0.8))
        for probs, threshold in cases:
            got_idx, got_labels = fn(probs, threshold)
            want_idx, want_labels = select_pseudo_labels(probs, threshold)
            shown = ([[round(v, 3) for v in row] for row in probs.tolist()] if len(probs) < 4
                     else f"({len(probs)}, 4) random")
            case = f"probs={shown}, threshold={threshold}"
            _expect(torch.equal(torch.as_tensor(got_idx).long(), want_idx),
                    f"{case}: expected indices {want_idx.tolist()}, got {torch.as_tensor(got_idx).tolist()}"
                    + (" (a probability equal to the threshold counts: use >=)"
                       if len(probs) == 1 and threshold == 0.9 else ""))
            _expect(torch.equal(torch.as_tensor(got_labels).long(), want_labels),
                    f"{case}: expected labels {want_labels.tolist()}, got {torch.as_tensor(got_labels).tolist()}")

    return _run("select_pseudo_labels", checks)


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
