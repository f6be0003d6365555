"""Semi-supervised learning: batches of labeled + unlabeled data, the step functions of the Π-model,
Mean Teacher, FixMatch and pseudo-labeling, and self-training (notebooks 07 and 08).

Every step function has the signature `train` expects, step(model, batch) -> (loss, metrics), with
batch = (labeled images, labels, unlabeled images); hyper-parameters are bound with
functools.partial. None of them ever sees the labels of the unlabeled images.

The views they train on (weak and strong augmentations) live in `vlmlearn.augment`; the defaults here
are the digits' `weak_augment` and `strong_augment`.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .augment import strong_augment, weak_augment
from .runtime import eval_mode


# ------------------------------------------------------------------------------ batches
def semi_batches(labeled_x: torch.Tensor, labeled_y: torch.Tensor, unlabeled_x: torch.Tensor, *, batch_size: int = 32,
                 mu: int = 7, seed: int = 0) -> Callable[[int], tuple]:
    """A resumable source of (labeled images, labels, unlabeled images) batches.

    Labeled sets are tiny, so both parts are drawn with replacement: `batch_size` labeled and
    `mu * batch_size` unlabeled images per step, seeded by (seed, step).
    """
    if len(labeled_x) != len(labeled_y):
        raise ValueError(f"{len(labeled_x)} labeled images but {len(labeled_y)} labels")
    if len(labeled_x) == 0 or len(unlabeled_x) == 0:
        raise ValueError(f"need labeled and unlabeled images, got {len(labeled_x)} and {len(unlabeled_x)}")

    def batch(step: int) -> tuple:
        g = torch.Generator().manual_seed(seed * 1_000_003 + step)
        i = torch.randint(len(labeled_x), (batch_size,), generator=g)
        j = torch.randint(len(unlabeled_x), (mu * batch_size,), generator=g)
        return labeled_x[i], labeled_y[i], unlabeled_x[j]

    return batch


# ------------------------------------------------------------------------------ step functions
class Ramp:
    """A loss weight that follows the training step, for step functions that take `weight=`.

    Pass the Ramp itself as the weight and `ramp.callback` to `train(callbacks=[...])`: the step
    function reads `float(weight)`, which is `fn(t)` at step t (0, 1, 2, ...).

        ramp = Ramp.linear(3.0, start=100, end=400)   # Lee (2013): 0 until 100, 3 from 400 on
        ramp = Ramp.sigmoid(10.0, end=300)            # Π-model, Mean Teacher: exp(-5 (1 - t/300)^2) * 10
    """

    def __init__(self, fn: Callable[[int], float]):
        self.fn, self.step = fn, 0

    @classmethod
    def sigmoid(cls, final: float, *, end: int) -> "Ramp":
        """The Π-model's and Mean Teacher's ramp-up (Laine & Aila 2017, Tarvainen & Valpola 2017):
        final * exp(-5 (1 - t / end)^2) until step `end`, then `final`."""
        if end <= 0:
            raise ValueError(f"end must be positive, got {end}")
        return cls(lambda t: final * math.exp(-5.0 * (1.0 - min(t / end, 1.0)) ** 2))

    @classmethod
    def linear(cls, final: float, *, start: int, end: int) -> "Ramp":
        if not 0 <= start < end:
            raise ValueError(f"expected 0 <= start < end, got start={start}, end={end}")
        return cls(lambda t: final * min(max((t - start) / (end - start), 0.0), 1.0))

    def __float__(self) -> float:
        return float(self.fn(self.step))

    def callback(self, state) -> None:  # after optimizer step t, the next step is t + 1 = state.step
        self.step = state.step


def supervised_step(model: nn.Module, batch: tuple) -> tuple[torch.Tensor, dict[str, float]]:
    """Cross-entropy on weakly augmented labeled images; the unlabeled part is ignored."""
    x, y = batch[0], batch[1]
    return F.cross_entropy(model(weak_augment(x)), y), {}


def pi_model_step(model: nn.Module, batch: tuple, *,
                  weight: float | Ramp = 10.0) -> tuple[torch.Tensor, dict[str, float]]:
    """Π-model (Laine & Aila 2017): two stochastic (weakly augmented) views of each unlabeled image
    must get the same prediction; the penalty is the mean squared difference of the softmax
    outputs. Mild views, as in the paper: with strong views the penalty fights the labels.
    The paper ramps `weight` up from 0 (`Ramp.sigmoid`): early predictions are noise."""
    x, y, u = batch
    logits = model(torch.cat([weak_augment(x), weak_augment(u), weak_augment(u)]))
    logits_x, p1, p2 = logits[: len(x)], *logits[len(x):].softmax(-1).chunk(2)
    consistency, w = F.mse_loss(p1, p2), float(weight)
    return F.cross_entropy(logits_x, y) + w * consistency, {"consistency": consistency.item(), "weight": w}


def mean_teacher_step(model: nn.Module, batch: tuple, *, teacher: nn.Module, weight: float | Ramp = 10.0):
    """Mean Teacher (Tarvainen & Valpola 2017): the student's prediction on one view must match
    the prediction of an exponential moving average of the student (the teacher) on another.
    Update the teacher after each optimizer step with `teacher.update_parameters(model)`; the
    paper ramps `weight` up (`Ramp.sigmoid`) and schedules the decay (`mean_teacher_decay`)."""
    x, y, u = batch
    logits = model(torch.cat([weak_augment(x), weak_augment(u)]))
    with torch.no_grad():
        target = teacher(weak_augment(u)).softmax(-1)
    consistency, w = F.mse_loss(logits[len(x):].softmax(-1), target), float(weight)
    return F.cross_entropy(logits[: len(x)], y) + w * consistency, {"consistency": consistency.item(), "weight": w}


def confident_mask(probs: torch.Tensor, threshold: float) -> torch.Tensor:
    """FixMatch's mask: keep an unlabeled image when its top class probability is >= threshold.

    `>=` (not `>`), as in the FixMatch paper's indicator 1(max q >= tau): with threshold 1.0 a
    perfectly confident one-hot prediction still counts.
    """
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be in [0, 1], got {threshold}")
    return probs.max(-1).values >= threshold


def fixmatch_step(model: nn.Module, batch: tuple, *, threshold: float = 0.95, weight: float = 1.0,
                  weak: Callable[[torch.Tensor], torch.Tensor] = weak_augment,
                  strong: Callable[[torch.Tensor], torch.Tensor] = strong_augment,
                  unlabeled_loss: Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor] | None = None):
    """FixMatch (Sohn et al. 2020): the weak view of an unlabeled image gives a hard pseudo-label
    when the model is confident (>= threshold); the strong view is trained to predict it. No
    ramp-up, as in the paper: the threshold already keeps early, unconfident guesses out.
    `weak` and `strong` make the views (B, C, H, W) -> same; the defaults are made for digits.

    `unlabeled_loss(logits_weak, logits_strong, threshold)` is `fixmatch_unlabeled_loss` unless a notebook trains
    with the learner's own.

    Metrics: mask_rate (fraction of unlabeled images above the threshold).
    """
    unlabeled_loss = unlabeled_loss or fixmatch_unlabeled_loss
    x, y, u = batch
    logits = model(torch.cat([weak(x), weak(u), strong(u)]))
    logits_x, logits_weak, logits_strong = logits[: len(x)], *logits[len(x):].chunk(2)
    unsup = unlabeled_loss(logits_weak, logits_strong, threshold)
    mask_rate = confident_mask(logits_weak.detach().softmax(-1), threshold).float().mean().item()
    return F.cross_entropy(logits_x, y) + weight * unsup, {"mask_rate": mask_rate}


def fixmatch_unlabeled_loss(logits_weak: torch.Tensor, logits_strong: torch.Tensor, threshold: float) -> torch.Tensor:
    """FixMatch's unlabeled term: logits (U, K) of the weak and strong views. Where the weak view's top probability
    is >= threshold its argmax is a hard pseudo-label (no gradient through it), and the strong view's
    cross-entropy against it is averaged over all U images (those below the threshold count as 0)."""
    probs = logits_weak.detach().softmax(-1)
    mask = confident_mask(probs, threshold).float()
    return (F.cross_entropy(logits_strong, probs.argmax(-1), reduction="none") * mask).mean()


def ema_teacher(model: nn.Module, decay: float | Callable[[int], float] = 0.99) -> nn.Module:
    """An exponential moving average copy of `model` (torch.optim.swa_utils.AveragedModel):
    after each step, teacher = decay * teacher + (1 - decay) * student. Buffers (BatchNorm
    statistics) are averaged too. As in AveragedModel, the first update copies the student.

    `decay` is a number or a schedule: a function of how many updates came before (1, 2, ...),
    such as `mean_teacher_decay(...)`.
    """
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    if not callable(decay):
        return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)

    def update(teacher_params, student_params, n_averaged):
        get_ema_multi_avg_fn(float(decay(int(n_averaged))))(teacher_params, student_params, n_averaged)

    return AveragedModel(model, multi_avg_fn=update, use_buffers=True)


def mean_teacher_decay(ramp_up: int, *, during: float = 0.99, after: float = 0.999) -> Callable[[int], float]:
    """Mean Teacher's EMA decay schedule (Tarvainen & Valpola 2017): `during` while the consistency
    weight ramps up (the first `ramp_up` updates), `after` from then on; and, as in the authors'
    code, never more than 1 - 1/(n + 1), so the first updates take the true average of the
    students seen so far instead of clinging to the random first copy."""
    if ramp_up < 0 or not 0.0 <= during <= 1.0 or not 0.0 <= after <= 1.0:
        raise ValueError(f"expected ramp_up >= 0 and decays in [0, 1], got {ramp_up}, {during}, {after}")
    return lambda n: min(1.0 - 1.0 / (n + 1), during if n < ramp_up else after)


# ------------------------------------------------------------------------------ pseudo-labeling
def pseudo_label_step(model: nn.Module, batch: tuple, *, threshold: float | None = None, weight: float | Ramp = 1.0):
    """Online pseudo-labeling (Lee 2013): at every update, each unlabeled image in the batch gets the
    class the model currently predicts as its label (the argmax: Lee uses no confidence
    threshold), weighted by `weight`, which Lee ramps up from 0 (use a `Ramp`).

    With `threshold` set, only predictions at least that confident count: the course's thresholded
    variant (FixMatch without its strong view). The same kind of view is both labeler and learner,
    so nothing but the ramp or the threshold stops an early wrong label from being reinforced.
    Metrics: mask_rate (fraction of unlabeled images that count), weight.
    """
    x, y, u = batch
    logits = model(torch.cat([weak_augment(x), weak_augment(u)]))
    logits_x, logits_u = logits[: len(x)], logits[len(x):]
    probs = logits_u.detach().softmax(-1)
    mask = confident_mask(probs, 0.0 if threshold is None else threshold).float()  # threshold 0: every image counts
    unsup = (F.cross_entropy(logits_u, probs.argmax(-1), reduction="none") * mask).mean()
    w = float(weight)
    return F.cross_entropy(logits_x, y) + w * unsup, {"mask_rate": mask.mean().item(), "weight": w}


@torch.no_grad()
def predict_probs(model: nn.Module, images: torch.Tensor, *, batch_size: int = 1024) -> torch.Tensor:
    """Class probabilities (N, K) for an image tensor (N, C, H, W), in eval mode, on the model's device."""
    device = next(model.parameters()).device
    with eval_mode(model):
        return torch.cat([model(images[i:i + batch_size].to(device)).softmax(-1).cpu()
                          for i in range(0, len(images), batch_size)])


def select_pseudo_labels(probs: torch.Tensor, threshold: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, K) probabilities -> (indices of the images whose top probability is >= threshold,
    their predicted labels)."""
    keep = confident_mask(probs, threshold)
    idx = keep.nonzero(as_tuple=True)[0]
    return idx, probs[idx].argmax(-1)


def self_training_round(teacher: nn.Module, labeled_x: torch.Tensor, labeled_y: torch.Tensor,
                        unlabeled_x: torch.Tensor, threshold: float, *,
                        select: Callable[[torch.Tensor, float],
                                         tuple[torch.Tensor, torch.Tensor]] = select_pseudo_labels
                        ) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """One offline round: the teacher labels the unlabeled pool; the confident part joins the labeled set.

    Takes images only: the pool's true labels are never an argument. `select(probs, threshold)` picks the
    pseudo-labels (`select_pseudo_labels`, or the learner's in notebook 07). Returns (images, labels) to
    train the next student on, and {"selected": indices into the pool, "pseudo_labels": ...}.
    """
    if not isinstance(unlabeled_x, torch.Tensor):
        raise ValueError(f"unlabeled_x must be an image tensor, got {type(unlabeled_x).__name__}")
    idx, pseudo = select(predict_probs(teacher, unlabeled_x), threshold)
    images = torch.cat([labeled_x, unlabeled_x[idx]])
    labels = torch.cat([labeled_y, pseudo])
    return images, labels, {"selected": idx, "pseudo_labels": pseudo}
