"""Exercises of the contrastive notebooks: the CLIP loss (01), CLIP-score filtering (02), and the logits' memory and
the local loss across simulated processes (10). The hints are in `vlmlearn/shipped/hints.json`; the shared machinery
is in `_core`."""
from __future__ import annotations

from typing import Callable

from ._core import _expect, _Fail, _run


def check_clip_loss(fn: Callable) -> bool:
    """Exercise (notebook 01): `fn(image_features, text_features, logit_scale) -> scalar`, the
    symmetric InfoNCE loss, compared with vlmlearn.losses.clip_loss forward and backward."""
    import torch
    import torch.nn.functional as F

    from ..losses import clip_loss

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
            raise _Fail(f"input B={b}, image_features={[[round(v, 3) for v in r] for r in img.tolist()]}, "
                        f"text_features={[[round(v, 3) for v in r] for r in txt.tolist()]}, logit_scale=10: "
                        f"expected {want.item():.5f}, got {float(got):.5f}{why}")
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
        _expect(float(aligned) < 1e-4,
                f"a perfectly aligned batch at scale 100 should cost ~0, got {float(aligned):.4f}")
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

    from ..losses import clip_loss

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
