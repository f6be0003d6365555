"""Exercise of notebook 08: FixMatch's whole training step, the function `train` calls at every step of the FixMatch
run. Its hints are in `vlmlearn/shipped/hints.json`; the shared machinery is in `_core`. Notebook 08 imports it from
here, so no other notebook's benchmark fingerprint moves with it."""
from __future__ import annotations

from typing import Callable

from ._core import _expect, _Fail, _run


def check_fixmatch_step(fn: Callable) -> bool:
    """Exercise (notebook 08): `fn(model, batch, threshold, weak=..., strong=...) -> (loss, {"mask_rate": float})`
    with `batch = (x (B, C, H, W), y (B,), u (MU * B, C, H, W))`: one forward pass over weak(x), weak(u) and
    strong(u); cross-entropy on the labeled images plus FixMatch's unlabeled loss. Checked against
    `vlmlearn.semi.fixmatch_step` in value, gradient and mask rate, on a model with BatchNorm, with fixed
    (non-random) views so that the order of the calls does not matter."""
    import torch
    import torch.nn.functional as F

    from ..semi import fixmatch_step, fixmatch_unlabeled_loss

    def weak(t):
        return t.roll(1, dims=-1)

    def strong(t):
        return -t.flip(-1)

    def model_and_batch(labeled, unlabeled):
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 4, stride=4), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
                                    torch.nn.Flatten(), torch.nn.Linear(64, 3))
        g = torch.Generator().manual_seed(1)
        batch = (torch.randn(labeled, 1, 16, 16, generator=g), torch.randint(3, (labeled,), generator=g),
                 torch.randn(unlabeled, 1, 16, 16, generator=g))
        return model, batch

    def loss_and_grads(model, step):
        model.zero_grad()
        loss, logged = step()
        loss.backward()
        return loss.detach(), [p.grad.clone() for p in model.parameters()], logged

    def separate_passes(model, batch, threshold):  # a wrong step: three forward passes, three BatchNorm batches
        x, y, u = batch
        return F.cross_entropy(model(weak(x)), y) + fixmatch_unlabeled_loss(model(weak(u)), model(strong(u)),
                                                                            threshold)

    def checks():
        for labeled, unlabeled, threshold in ((1, 2, 0.0), (2, 4, 0.0), (4, 12, 0.4), (4, 12, 0.95)):
            model, batch = model_and_batch(labeled, unlabeled)
            case = f"{labeled} labeled and {unlabeled} unlabeled images, threshold {threshold}"
            out = fn(model, batch, threshold, weak=weak, strong=strong)
            if not (isinstance(out, tuple) and len(out) == 2 and isinstance(out[1], dict)):
                raise _Fail(f"{case}: expected (loss, {{'mask_rate': ...}}), got {type(out).__name__}")
            got, got_grads, got_logged = loss_and_grads(model, lambda: fn(model, batch, threshold, weak=weak,
                                                                          strong=strong))
            want, want_grads, want_logged = loss_and_grads(model, lambda: fixmatch_step(
                model, batch, threshold=threshold, weak=weak, strong=strong))
            if not torch.allclose(got, want, atol=1e-5):
                swapped = fixmatch_step(model, batch, threshold=threshold, weak=weak, strong=strong,
                                        unlabeled_loss=lambda w, s, t: fixmatch_unlabeled_loss(s, w, t))[0]
                x, _, u = batch
                logits = model(torch.cat([weak(x), weak(u), strong(u)]))
                unlabeled_only = fixmatch_unlabeled_loss(*logits[len(x):].chunk(2), threshold)
                if torch.allclose(got, swapped.detach(), atol=1e-5):
                    raise _Fail(f"{case}: the weak view labels the strong one; your loss takes the pseudo-labels "
                                "from the strong view")
                if torch.allclose(got, separate_passes(model, batch, threshold).detach(), atol=1e-5):
                    raise _Fail(f"{case}: run the model once over the three views together (torch.cat): three "
                                "passes give BatchNorm three different batches to normalise with")
                if torch.allclose(got, unlabeled_only.detach(), atol=1e-5):
                    raise _Fail(f"{case}: the labeled images' cross-entropy is missing from the loss")
                raise _Fail(f"{case}: expected loss {want.item():.6f}, got {got.item():.6f}")
            _expect(all(torch.allclose(a, b, atol=1e-5) for a, b in zip(got_grads, want_grads)),
                    f"{case}: the loss is right but its gradients differ from fixmatch_step's (is part of it "
                    "computed outside the graph, with .item(), .detach() or under torch.no_grad()?)")
            _expect(abs(float(got_logged.get("mask_rate", -1)) - want_logged["mask_rate"]) < 1e-6,
                    f"{case}: expected mask_rate {want_logged['mask_rate']:.3f} (the share of unlabeled images whose "
                    f"weak view passes), got {got_logged.get('mask_rate')}")

    return _run("fixmatch_step", checks)
