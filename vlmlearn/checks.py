"""Checks for the classic training bugs of notebook 12, to run on your own code: each takes what your run recorded
(a loss curve, mask rates) or a tiny probe of your function or model, and returns a one-line report when all is
well, or raises a ValueError that names the symptom, the likely cause and the fix.

    from vlmlearn.checks import check_contrastive_loss_moves
    check_contrastive_loss_moves(history.train["loss"], batch_size=128)

Nothing else in the package imports this module; it imports nothing from the package either (only torch).
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import torch
from torch import nn

CLIP_INIT_LOGIT_SCALE = math.log(1 / 0.07)  # CLIP's starting log inverse temperature: scale 14.3, T = 0.07
CLIP_MAX_LOGIT_SCALE = math.log(100)        # CLIP clips the scale at 100


def _series(values, key: str) -> list[float]:
    """A list of floats from a sequence, or from a `vlmlearn.train.History` (its train[key] list)."""
    if hasattr(values, "train") and isinstance(values.train, dict):
        if key not in values.train:
            raise ValueError(f"the history logged no {key!r}; it has {sorted(values.train)}")
        values = values.train[key]
    out = [float(v) for v in values]
    if not out:
        raise ValueError(f"expected a non-empty sequence of {key} values, got none")
    if not all(math.isfinite(v) for v in out):
        first = next(i for i, v in enumerate(out) if not math.isfinite(v)) + 1
        raise ValueError(f"the {key} values contain NaN or inf (first at step {first})")
    return out


# ------------------------------------------------------------------------------ contrastive
def loss_at_chance(losses: Sequence[float], batch_size: int, *, warmup: float = 0.2, tol: float = 0.1) -> bool:
    """True when a contrastive (InfoNCE) loss curve sits at ln(batch_size) after warm-up: the mean of the losses after
    the first `warmup` fraction of steps is within `tol` nats of ln(B), the loss of a model that gives every one of
    the B candidates the same score. losses: one float per step, in order."""
    if int(batch_size) != batch_size or batch_size < 2:
        raise ValueError(f"batch_size must be an integer >= 2, got {batch_size}")
    if not 0 <= warmup < 1:
        raise ValueError(f"warmup must be a fraction in [0, 1), got {warmup}")
    losses = _series(losses, "loss")
    after = losses[int(len(losses) * warmup):]
    return abs(sum(after) / len(after) - math.log(batch_size)) < tol


def check_contrastive_loss_moves(losses, batch_size: int, *, warmup: float = 0.2, tol: float = 0.1) -> str:
    """Raise a ValueError when a CLIP-style loss is stuck at ln(B), chance level among B candidates (`loss_at_chance`).

    losses: the per-step training losses (a sequence of floats, or a `History`), batch_size: B, the number of pairs
    each loss was computed over (per process, or global when the features are gathered). open_clip issue #17
    ("Loss is constant") shows the symptom: a loss at 4.8 for 15 epochs at batch 128, where ln 128 = 4.85.
    """
    values = _series(losses, "loss")
    after = values[int(len(values) * warmup):]
    mean, chance, start = sum(after) / len(after), math.log(batch_size), len(values) - len(after) + 1
    if loss_at_chance(values, batch_size, warmup=warmup, tol=tol):
        raise ValueError(
            f"contrastive loss stuck at chance: mean {mean:.3f} over steps {start}-{len(values)}, "
            f"ln({batch_size}) = {chance:.3f}. The model scores all {batch_size} candidates alike. "
            f"Likely cause: every caption (or image) reaches its tower identical - empty captions from a wrong "
            f"column, padding only, one constant image - or the embeddings collapsed (a learning rate far too high). "
            f"Fix: decode a few captions of one training batch and look at them; overfit a tiny subset (128 pairs) "
            f"first; lower the learning rate.")
    return (f"contrastive loss moves: mean {mean:.3f} after warm-up, {chance - mean:.3f} below "
            f"ln({batch_size}) = {chance:.3f}")


def _logit_scale(model_or_value) -> float:
    if isinstance(model_or_value, nn.Module):
        found = [m._parameters["logit_scale"] for m in model_or_value.modules()
                 if m._parameters.get("logit_scale") is not None]
        if not found:
            raise ValueError(f"the {type(model_or_value).__name__} has no `logit_scale` parameter")
        return float(found[0].detach())
    if isinstance(model_or_value, torch.Tensor):
        return float(model_or_value.detach())
    return float(model_or_value)


def check_logit_scale(model_or_value, *, at_init: bool = True, tol: float = 0.05) -> str:
    """Check a CLIP temperature, stored as logit_scale = ln(1 / T) (a module with a `logit_scale` parameter, a tensor
    or a float). At initialisation (`at_init`) it must be near ln(1 / 0.07) = 2.659 (scale 14.3), as in CLIP; at
    any time exp(logit_scale) must be at most 100, the cap CLIP clips it to.

    transformers issue #13430 found its CLIP initialising logit_scale to 1 (scale e^1 = 2.7, T = 0.37) where OpenAI's
    used ln(1 / 0.07); PR #13436 fixed it and added `logit_scale_init_value` to the config.
    """
    s = _logit_scale(model_or_value)
    if not math.isfinite(s):
        raise ValueError(f"logit_scale is {s}: the temperature diverged; clamp it after every step and lower its lr")
    if s > CLIP_MAX_LOGIT_SCALE + 1e-4:
        raise ValueError(
            f"logit_scale = {s:.3f}: the logits are scaled by {math.exp(s):.0f}, above CLIP's cap of 100. Likely "
            f"cause: the scale is learned but never clamped. Fix: after every optimizer step clamp it to [0, ln 100], "
            f"as open_clip does (vlmlearn.optim.clamp_logit_scales_, or logit_scale.data.clamp_(0, math.log(100))).")
    if at_init and abs(s - CLIP_INIT_LOGIT_SCALE) > tol:
        raise ValueError(
            f"logit_scale starts at {s:.3f} (scale {math.exp(s):.1f}, temperature {math.exp(-s):.3f}); CLIP starts at "
            f"ln(1/0.07) = {CLIP_INIT_LOGIT_SCALE:.3f} (scale 14.3, temperature 0.07). Likely cause: the parameter "
            f"holds a placeholder (transformers #13430: torch.ones([]), a scale of e) or the scale or the temperature "
            f"where its log belongs. Fix: nn.Parameter(torch.tensor(math.log(1 / 0.07))).")
    return (f"logit_scale {s:.3f}: scale {math.exp(s):.1f}, temperature {math.exp(-s):.3f}"
            + (" (CLIP's start)" if at_init else "") + ", within CLIP's cap of 100")


# ------------------------------------------------------------------------------ masked image modeling
def check_mae_loss_on_masked(loss_fn: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]) -> str:
    """Probe an MAE reconstruction loss `loss_fn(pred, target, mask) -> scalar`, with pred and target (B, N, D) patches
    and mask (B, N), 1 = hidden: it must count the hidden patches only (He et al. 2022). Two tiny inputs: a prediction
    right on the hidden patches and wrong on the visible ones must cost 0; right on the visible and wrong on the
    hidden must cost more than 0."""
    g = torch.Generator().manual_seed(0)
    target = torch.randn(2, 4, 3, generator=g)   # (B=2, N=4 patches, D=3 values)
    mask = torch.tensor([[1.0, 0.0, 1.0, 0.0], [0.0, 1.0, 1.0, 0.0]])
    m = mask[..., None]
    right_on_hidden = target + (1 - m)  # off by 1 on every visible value
    right_on_visible = target + m       # off by 1 on every hidden value
    hidden_cost = float(loss_fn(right_on_hidden, target, mask))
    visible_cost = float(loss_fn(right_on_visible, target, mask))
    if hidden_cost > 1e-6 and visible_cost < 1e-6:
        raise ValueError(
            f"the MAE loss counts the visible patches, not the hidden ones: a prediction wrong only on visible "
            f"patches costs {hidden_cost:.3f}, one wrong only on hidden patches costs {visible_cost:.3f}. The model "
            f"then learns to copy what it sees and never to fill in what is hidden. Fix: weight the per-patch error "
            f"by the mask (1 = hidden): (per_patch * mask).sum() / mask.sum().")
    if hidden_cost > 1e-6:
        raise ValueError(
            f"the MAE loss counts every patch: a prediction right on all hidden patches still costs "
            f"{hidden_cost:.3f}. Fix: average the per-patch error over the hidden patches only, (per_patch * "
            f"mask).sum() / mask.sum().")
    if visible_cost < 1e-6:
        raise ValueError(f"the MAE loss is 0 for a prediction wrong on every hidden patch ({visible_cost:.3g}): it "
                         f"ignores the hidden patches. Fix: (per_patch * mask).sum() / mask.sum(), mask 1 = hidden.")
    return (f"MAE loss counts hidden patches only (wrong on hidden: {visible_cost:.3f}; "
            f"wrong on visible: {hidden_cost:.3f})")


# ------------------------------------------------------------------------------ semi-supervised
def check_pseudo_label_mask_rate(mask_rates, *, after: float = 0.5, min_rate: float = 0.01) -> str:
    """Raise a ValueError when (almost) no pseudo-label passes the confidence threshold: the mean mask rate (the
    fraction of unlabeled images above the threshold, one float per step, or a `History` logging "mask_rate") over
    the steps after the first `after` fraction is below `min_rate`. Then FixMatch learns from its labels alone."""
    rates = _series(mask_rates, "mask_rate")
    late = rates[int(len(rates) * after):]
    mean, start = sum(late) / len(late), len(rates) - len(late) + 1
    if mean < min_rate:
        raise ValueError(
            f"(almost) no pseudo-label passes the threshold: mask rate {mean:.3f} over steps {start}-"
            f"{len(rates)}, so the unlabeled images add (almost) nothing. Likely cause: confidences the model never "
            f"reaches - a softmax over the batch (dim 0) instead of the classes (dim -1), a threshold in percent "
            f"(95 for 0.95), logits divided by a temperature above 1. Fix: print probs.max(-1).values of one batch; "
            f"each row of probs must sum to 1 over the classes.")
    return f"pseudo-labels pass: mask rate {mean:.3f} after the first {after:.0%} of steps"


def check_pseudo_label_threshold(mask_rates, *, early: float = 0.1, max_rate: float = 0.99) -> str:
    """Raise a ValueError when every unlabeled image gets a pseudo-label from the first steps on: the mean mask rate
    (one float per step, or a `History` logging "mask_rate") over the first `early` fraction of steps is at least
    `max_rate`. When the history also logs a "weight" (Lee's ramp), the rate is weighted by it: a pseudo-label
    with weight 0 teaches nothing."""
    rates = _series(mask_rates, "mask_rate")
    if hasattr(mask_rates, "train") and "weight" in mask_rates.train:
        weights = _series(mask_rates, "weight")
        top = max(max(weights), 1e-12)
        rates = [r * w / top for r, w in zip(rates, weights)]
    first = rates[:max(1, int(len(rates) * early))]
    mean = sum(first) / len(first)
    if mean >= max_rate:
        raise ValueError(
            f"every unlabeled image is pseudo-labeled from the start: mask rate {mean:.3f} over the first "
            f"{len(first)} steps, while the model still guesses. Its early mistakes become targets it then learns to "
            f"repeat (confirmation bias). Likely cause: no confidence threshold (or threshold 0). Fix: keep only "
            f"confident predictions (FixMatch: >= 0.95), or ramp the pseudo-label weight up from 0 (Lee 2013).")
    return f"pseudo-labels are selected: mask rate {mean:.3f} over the first {len(first)} steps"


def check_views_not_swapped(step_fn: Callable) -> str:
    """Probe a FixMatch step function `step_fn(model, batch, weak=..., strong=...) -> (loss, metrics)` with
    batch = (labeled images, labels, unlabeled images), the contract of `vlmlearn.semi.fixmatch_step`: the weak
    view of each unlabeled image must give the pseudo-label (no gradient through it) and the strong view must learn
    it (Sohn et al. 2020).

    The probe marks each view (weak: +1, strong: -1 in column 1 of a (n, 2) "image"), and its model predicts class 0
    with probability 0.9999 for weak views and class 1 for strong ones, so a pseudo-label passes any threshold up to
    that (the step's own threshold is used); the check reads which views the loss sends gradient to."""
    def mark(value: float):
        def view(x: torch.Tensor) -> torch.Tensor:
            out = x.clone()
            out[:, 1] = value
            return out
        return view

    class Probe(nn.Module):
        def __init__(self):
            super().__init__()
            self.unused = nn.Parameter(torch.zeros(()))  # so the probe has a parameter, as a model does
            self.inputs, self.delta = [], []

        def forward(self, z: torch.Tensor) -> torch.Tensor:
            base = torch.zeros(len(z), 3)
            base[z[:, 1] > 0, 0] = 10.0   # weak views: class 0, p = 0.9999
            base[z[:, 1] < 0, 1] = 10.0   # strong views: class 1
            delta = torch.zeros(len(z), 3, requires_grad=True)
            self.inputs.append(z.detach())
            self.delta.append(delta)
            return base + delta + 0 * self.unused

    x = torch.zeros(2, 2)                  # labeled: column 0 = 0
    u = torch.stack([torch.ones(4), torch.zeros(4)], dim=1)  # unlabeled: column 0 = 1
    probe = Probe()
    try:
        loss, _ = step_fn(probe, (x, torch.zeros(2, dtype=torch.long), u), weak=mark(1.0), strong=mark(-1.0))
    except TypeError as e:
        raise ValueError(f"expected step_fn(model, batch, weak=..., strong=...) as vlmlearn.semi.fixmatch_step takes; "
                         f"calling it raised {e}") from e
    loss.backward()
    weak_grad = strong_grad = 0.0
    for z, delta in zip(probe.inputs, probe.delta):
        if delta.grad is None:
            continue
        unlabeled = z[:, 0] == 1
        weak_grad += delta.grad[unlabeled & (z[:, 1] > 0)].abs().sum().item()
        strong_grad += delta.grad[unlabeled & (z[:, 1] < 0)].abs().sum().item()
    if weak_grad > 0 and strong_grad == 0:
        raise ValueError(
            "the weak and strong views are swapped: the loss trains the weak view and takes no gradient from the "
            "strong one, so the pseudo-labels come from the strong view, the distorted one the model is least sure "
            "about. Fix: labels = weak-view logits (detached) -> argmax where confident; cross-entropy on the strong "
            "view.")
    if weak_grad > 0 and strong_grad > 0:
        raise ValueError(
            "gradient flows into both views of the unlabeled images: the pseudo-label is not detached, so the model "
            "can move its own targets. Fix: compute the weak view's probabilities under torch.no_grad() or "
            ".detach().")
    if strong_grad == 0:
        raise ValueError(
            "no gradient reaches any unlabeled view, though the probe's pseudo-labels are confident (p = 0.9999): "
            "the unlabeled loss is missing, or its mask keeps nothing (see check_pseudo_label_mask_rate).")
    return "views in order: the weak view labels (no gradient), the strong view learns"


# ------------------------------------------------------------------------------ several processes
def check_batchnorm_for_ddp(model: nn.Module) -> str:
    """Raise a ValueError listing the BatchNorm layers of `model` that are not SyncBatchNorm. Under
    DistributedDataParallel each process normalises with the mean and variance of its own share of the batch, not of
    the global batch; with a few images per process those statistics are noisy, and the run is no longer the
    one-process run with the whole batch. `torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)` (before wrapping in
    DDP) computes them over every process; GroupNorm or LayerNorm do not depend on the batch at all."""
    plain = [(name or type(model).__name__, type(m).__name__) for name, m in model.named_modules()
             if isinstance(m, nn.modules.batchnorm._BatchNorm) and not isinstance(m, nn.SyncBatchNorm)]
    synced = sum(isinstance(m, nn.SyncBatchNorm) for m in model.modules())
    if plain:
        listed = ", ".join(f"{name} ({kind})" for name, kind in plain[:6]) + (" ..." if len(plain) > 6 else "")
        raise ValueError(
            f"{len(plain)} BatchNorm layer(s) would normalise per process under DDP: {listed}. Each process then uses "
            f"its own small batch's statistics. Fix: model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model) "
            f"before DistributedDataParallel, or GroupNorm / LayerNorm.")
    return f"no per-process BatchNorm ({synced} SyncBatchNorm layer(s))"
