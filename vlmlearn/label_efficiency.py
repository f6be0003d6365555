"""The capstone's controlled experiment (notebook 09, `benchmarks/label_efficiency.py`): every way the
course uses unlabeled data, at every label count, under one protocol.

    result = run_digits("fixmatch", 2, seed=0, settings={"threshold": 0.95})   # {"acc", "curve", "confusion"}
    result = run_shapes("ft_clip", 5, pretrained=load_pretrained(), seed=0, settings={"lr": 1e-3})

Within a task every method trains the same backbone for the same number of optimizer steps, with the
same labeled draw, augmentations and optimizer; each method's one hyperparameter (`DIGIT_GRID`,
`SHAPE_GRID`, its paper's default first) is chosen on a validation split no larger than the labeled
set (`choose`). Test data is read only to report (and to draw the learning curves, never to choose).

- digits (scikit-learn's real 8x8 digits at 16 px, notebook 08's CNN, AdamW 2e-3, 1,000 steps of 32
  labeled and 7 x 32 unlabeled images): supervised only; online pseudo-labeling as Lee (2013) defines
  it (every unlabeled image takes the current argmax, its weight ramped linearly from 0); thresholded
  self-training (a supervised teacher, then three rounds of a strongly augmented student on the
  labeled set plus the confident pseudo-labels, the same 1,000 steps in all); Π-model; Mean Teacher;
  FixMatch. "all" labels: every training image labeled (the unlabeled stream is the same images).
- shapes (ShapesWorld's shape, 5 classes, 32 px, world seed = seed): zero-shot with notebook 01's CLIP
  (prompts only); a linear probe on its image tower; fine-tuning that tower, LP-FT style (from the
  probe as its head, Kumar et al. 2022); fine-tuning notebook 03's MAE ViT (its recipe, chosen on val
  there); the CNN and the ViT from scratch; FixMatch started from the CLIP tower and the probe's head.
  200 steps of 32 labeled images for every trained method (FixMatch adds 7 x 32 unlabeled). The
  pretrained models are the shipped checkpoints (one pretraining seed): the seed draws the labeled
  images, the test images and the training randomness.

The tables, verdicts and plots that read the grid once it is written live in `label_efficiency_report`.
"""
from __future__ import annotations

import copy
import functools

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .augment import shapes_strong_augment, shapes_weak_augment, strong_augment
from .clip_models import load_pretrained_clip
from .contrastive import object_prompts, zero_shot_accuracy
from .data import SHAPES, ShapesWorld, first_per_class, load_digits_split
from .eval import confusion_matrix, embed, linear_probe
from .mae import MAE_FINETUNE_RECIPE, SHAPES_MAE_CONFIG, MaskedAutoencoder, finetune_mae, load_pretrained_mae
from .models import SmallCNN, digits_cnn
from .optim import param_groups, warmup_cosine
from .results import load_benchmark
from .runtime import set_seed
from .semi import (
    Ramp,
    ema_teacher,
    fixmatch_step,
    mean_teacher_decay,
    mean_teacher_step,
    pi_model_step,
    predict_probs,
    pseudo_label_step,
    self_training_round,
    semi_batches,
    supervised_step,
)
from .train import minibatches, train

DIGIT_LABELS = (1, 2, 5, 10, "all")
DIGIT_METHODS = ("supervised", "pseudolabel", "selftraining", "pi", "meanteacher", "fixmatch")
SHAPE_LABELS = (1, 5, 25)
SHAPE_METHODS = ("probe_clip", "ft_clip", "ft_mae", "scratch_cnn", "scratch_vit", "fixmatch_clip")
# Each method's one hyperparameter and the values tried on val, its paper's default (or the gentler learning
# rate) first: the tie-break.
DIGIT_GRID = {"pseudolabel": ("final_weight", (3.0, 1.0)), "selftraining": ("threshold", (0.95, 0.8)),
              "pi": ("weight", (10.0, 30.0)), "meanteacher": ("weight", (10.0, 30.0)),
              "fixmatch": ("threshold", (0.95, 0.8))}
SHAPE_GRID = {"ft_clip": ("lr", (1e-5, 1e-4)), "scratch_cnn": ("lr", (1e-3, 3e-3)),
              "fixmatch_clip": ("threshold", (0.95, 0.8))}
SELECT_LABELS = {"digits": 2, "shapes": 5}  # labels per class at which the hyperparameters are chosen (seed 0)
DIGIT_STEPS, SHAPE_STEPS, CURVE_POINTS = 1000, 200, 10


def defaults(grid: dict) -> dict[str, dict]:
    """{method: {parameter: its first (default) value}} for every method of a grid."""
    return {method: {name: values[0]} for method, (name, values) in grid.items()}


def _steps(steps: int, scale: float) -> int:
    return max(4, round(steps * scale))


# ------------------------------------------------------------------------------ digits
def digits_data(labels: int | str, seed: int, *, validation: bool = False):
    """(labeled x, labeled y, unlabeled x, eval x, eval y) for `labels` per class (or "all").

    eval is the test set, or with `validation` a labeled split of the same size as the labeled set,
    taken out of the unlabeled pool. With "all", the labeled images double as the unlabeled stream."""
    if labels != "all" and (not isinstance(labels, int) or labels < 1):
        raise ValueError(f"labels per class must be a positive int or 'all', got {labels!r}")
    split = load_digits_split(10_000 if labels == "all" else labels, seed=seed, image_size=16)
    x, y, pool = split.labeled.images, split.labeled.labels, split.unlabeled
    if labels == "all":
        if validation:
            raise ValueError("with every label used there is no validation split to take; choose at fewer labels")
        return x, y, x, split.test.images, split.test.labels
    if not validation:
        return x, y, pool, split.test.images, split.test.labels
    truth = split.reveal_unlabeled_labels()  # builds the validation split; training never sees it
    val = first_per_class(truth, labels)
    rest = torch.ones(len(pool), dtype=torch.bool)
    rest[val] = False
    return x, y, pool[rest], pool[val], truth[val]


def run_digits(method: str, labels: int | str, *, seed: int = 0, settings: dict | None = None,
               steps_scale: float = 1.0, validation: bool = False, device: torch.device | str = "cpu") -> dict:
    """Train one method of `DIGIT_METHODS` on digits with `labels` per class and score it.

    settings: its hyperparameter (`DIGIT_GRID`), e.g. {"threshold": 0.95}; missing: the default.
    Returns {"acc": accuracy on test (or val), "curve": [[step, accuracy], ...] during training,
    "confusion": (10, 10) counts as nested lists, row = true class}."""
    if method not in DIGIT_METHODS:
        raise ValueError(f"unknown digits method {method!r}; expected one of {DIGIT_METHODS}")
    hp = {**defaults(DIGIT_GRID).get(method, {}), **(settings or {})}
    x, y, unlabeled, eval_x, eval_y = digits_data(labels, seed, validation=validation)
    total, curve = _steps(DIGIT_STEPS, steps_scale), []

    def fit(model, step_fn, data, steps, *, callbacks=(), scored=None, offset=0):
        scored = scored or model  # Mean Teacher is scored by its teacher
        history = train(model, torch.optim.AdamW(param_groups(model, weight_decay=5e-4), lr=2e-3), step_fn, data,
                        steps=steps, callbacks=callbacks, eval_fn=lambda m: {"acc": _accuracy(scored, eval_x, eval_y)},
                        eval_every=max(1, total // CURVE_POINTS), progress=False)
        curve.extend([offset + s, a] for s, a in zip(history.eval["step"], history.eval["acc"]))
        return scored

    batches = semi_batches(x, y, unlabeled, batch_size=32, mu=7, seed=seed)
    set_seed(seed)
    model = digits_cnn().to(device)
    if method == "selftraining":  # a supervised teacher, then 3 noisy students: the same steps in all
        per_round = total // 4
        model = fit(model, supervised_step, batches, per_round)

        def noisy(m, b):  # Noisy Student's views
            return F.cross_entropy(m(strong_augment(b[0])), b[1]), {}

        for r in range(1, 4):
            images, pseudo, _ = self_training_round(model, x, y, unlabeled, hp["threshold"])
            set_seed(seed + r)
            data = minibatches(images, pseudo, batch_size=min(64, len(images)), seed=seed + r)
            model = fit(digits_cnn().to(device), noisy, data, per_round, offset=r * per_round)
    elif method == "meanteacher":
        ramp_up = total * 3 // 10
        ramp, teacher = Ramp.sigmoid(hp["weight"], end=ramp_up), ema_teacher(model, decay=mean_teacher_decay(ramp_up))
        model = fit(model, functools.partial(mean_teacher_step, teacher=teacher, weight=ramp), batches, total,
                    callbacks=[ramp.callback, lambda state: teacher.update_parameters(state.model)],
                    scored=teacher.module)
    else:
        callbacks, step_fn = [], supervised_step
        if method == "pseudolabel":
            # Lee (2013): alpha rises from 0 to its final value between 10 % and 60 % of training
            ramp = Ramp.linear(hp["final_weight"], start=total // 10, end=total * 6 // 10)
            step_fn, callbacks = functools.partial(pseudo_label_step, weight=ramp), [ramp.callback]
        elif method == "pi":
            ramp = Ramp.sigmoid(hp["weight"], end=total * 3 // 10)
            step_fn, callbacks = functools.partial(pi_model_step, weight=ramp), [ramp.callback]
        elif method == "fixmatch":
            step_fn = functools.partial(fixmatch_step, threshold=hp["threshold"])
        fit(model, step_fn, batches, total, callbacks=callbacks)
    return _result(model, eval_x, eval_y, 10, curve)


# ------------------------------------------------------------------------------ shapes
@functools.lru_cache(maxsize=4)
def shapes_data(labels: int, seed: int, *, validation: bool = False):
    """(labeled x, labeled y, 5,000 unlabeled images, eval batch) from world `seed`: the first `labels`
    images of each shape in a labeled pool; eval is 1,000 test images, or with `validation` a val
    split of the same size as the labeled set."""
    world = ShapesWorld(seed=seed, image_size=32)
    pool = world.labeled(3000, attribute="shape")
    pick = first_per_class(pool.labels, labels)
    evaluation = world.labeled(labels * len(SHAPES), attribute="shape", split="val") if validation else \
        world.labeled(1000, attribute="shape", split="test")
    return pool.images[pick], pool.labels[pick], world.images(5000).images, evaluation


def head_from_probe(features: torch.Tensor, labels: torch.Tensor, classes: int) -> nn.Linear:
    """The first stage of LP-FT (Kumar et al. 2022): a linear probe (`eval.linear_probe`, standardised
    logistic regression) on frozen features (N, D), folded into one nn.Linear(D, classes) that gives the
    same predictions, to start fine-tuning from instead of a random head (which would pull the
    pretrained features apart while it learns)."""
    fitted = linear_probe(features, labels, features, labels)["model"]
    scaler, logistic = fitted[0], fitted[-1]
    if len(logistic.classes_) != classes:
        raise ValueError(f"the probe saw {len(logistic.classes_)} classes in its labels, expected {classes}")
    weight = logistic.coef_ / scaler.scale_
    bias = logistic.intercept_ - (logistic.coef_ * scaler.mean_ / scaler.scale_).sum(1)
    head = nn.Linear(features.shape[1], classes)
    with torch.no_grad():
        head.weight.copy_(torch.as_tensor(weight, dtype=torch.float32))
        head.bias.copy_(torch.as_tensor(bias, dtype=torch.float32))
    return head


def load_pretrained(device: torch.device | str = "cpu") -> dict:
    """The shipped checkpoints the shapes methods start from (notebook 01's CLIP, notebook 03's MAE)
    and notebook 03's fine-tuning recipe: {"clip", "tok", "mae", "mae_recipe"}. The recipe is the one
    `benchmarks/mae_finetune_recipe.py` chose on validation (benchmarks/results/03_finetune_recipe.json, as
    notebook 03 reads it); outside a course checkout, `finetune_mae`'s defaults (`MAE_FINETUNE_RECIPE`)."""
    clip, tok, _ = load_pretrained_clip()
    chosen = load_benchmark("03_finetune_recipe")
    return {"clip": clip.to(device), "tok": tok, "mae": load_pretrained_mae()[0].to(device),
            "mae_recipe": dict(chosen["chosen"] if chosen else MAE_FINETUNE_RECIPE)}


def run_shapes(method: str, labels: int, *, pretrained: dict, seed: int = 0, settings: dict | None = None,
               steps_scale: float = 1.0, validation: bool = False) -> dict:
    """Score one shapes method ("zeroshot" or one of `SHAPE_METHODS`) at `labels` per class, on the
    device of the `pretrained` models (`load_pretrained`). settings: its hyperparameters
    (`SHAPE_GRID`; FixMatch also takes the fine-tuning "lr"). Returns {"acc", "curve", "confusion"}."""
    if method != "zeroshot" and method not in SHAPE_METHODS:
        raise ValueError(f"unknown shapes method {method!r}; expected 'zeroshot' or one of {SHAPE_METHODS}")
    hp = {"lr": SHAPE_GRID["ft_clip"][1][0], **defaults(SHAPE_GRID).get(method, {}), **(settings or {})}
    clip, classes = pretrained["clip"], len(SHAPES)
    device = clip.logit_scale.device
    x, y, unlabeled, evaluation = shapes_data(max(labels, 1), seed, validation=validation)
    eval_x, eval_y = evaluation.images, evaluation.labels
    if method == "zeroshot":  # prompts only: the labeled images are not read
        return {"acc": zero_shot_accuracy(clip, pretrained["tok"], evaluation, object_prompts())["shape"],
                "curve": [], "confusion": None}
    if method == "probe_clip":
        def features(images):
            return embed(clip.image_encoder, images, batch_size=1000, normalize=False)

        probe = linear_probe(features(x), y, features(eval_x), eval_y)
        return {"acc": probe["accuracy"], "curve": [],
                "confusion": confusion_matrix(probe["pred"], eval_y, classes).tolist()}
    total, curve = _steps(SHAPE_STEPS, steps_scale), []

    def eval_fn(m):
        return {"acc": _accuracy(m, eval_x, eval_y)}

    if method in ("ft_mae", "scratch_vit"):
        set_seed(0)  # notebook 03's random initialisation of the same ViT
        encoder = (pretrained["mae"].encoder if method == "ft_mae"
                   else MaskedAutoencoder(**SHAPES_MAE_CONFIG).encoder.to(device))
        model, history = finetune_mae(encoder, x, y, classes, steps=total, seed=seed, eval_fn=eval_fn, desc=None,
                                      **pretrained["mae_recipe"])
    else:
        set_seed(seed)
        if method == "scratch_cnn":
            tower = SmallCNN(image_size=32)
            head = nn.Linear(tower.embed_dim, classes)
        else:  # LP-FT: CLIP's tower with the linear probe as its starting head
            tower = copy.deepcopy(clip.image_encoder)
            head = head_from_probe(embed(tower, x, batch_size=1000, normalize=False), y, classes)
        model = nn.Sequential(tower, head).to(device)
        opt = torch.optim.AdamW(param_groups(model, weight_decay=0.05), lr=hp["lr"])
        sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup_cosine(total, warmup=max(1, total // 10)))
        if method == "fixmatch_clip":
            step_fn = functools.partial(fixmatch_step, threshold=hp["threshold"], weak=shapes_weak_augment,
                                        strong=shapes_strong_augment)
            data = semi_batches(x, y, unlabeled, batch_size=32, mu=7, seed=seed)
        else:
            def step_fn(m, b):
                return F.cross_entropy(m(shapes_weak_augment(b[0])), b[1], label_smoothing=0.1), {}

            data = minibatches(x, y, batch_size=min(32, len(x)), seed=seed)
        history = train(model, opt, step_fn, data, steps=total, scheduler=sched, eval_fn=eval_fn,
                        eval_every=max(1, total // CURVE_POINTS), progress=False)
    curve = list(zip(history.eval["step"], history.eval["acc"]))
    return _result(model, eval_x, eval_y, classes, curve)


# ------------------------------------------------------------------------------ shared
def _accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    return (predict_probs(model, images).argmax(-1) == labels).float().mean().item()


def _result(model: nn.Module, eval_x: torch.Tensor, eval_y: torch.Tensor, classes: int, curve) -> dict:
    pred = predict_probs(model, eval_x).argmax(-1)
    return {"acc": (pred == eval_y).float().mean().item(), "curve": [[int(s), round(float(a), 4)] for s, a in curve],
            "confusion": confusion_matrix(pred, eval_y, classes).tolist()}


def pick_best(values: list, val_scores: list[float]):
    """The value with the highest validation score; of equal scores the first (list the default first)."""
    if len(values) != len(val_scores) or not values:
        raise ValueError(f"expected one validation score per value, got {len(values)} values and "
                         f"{len(val_scores)} scores")
    return values[int(np.argmax(val_scores))]  # argmax returns the first of equal maxima


def choose(grid: dict, score, *, fixed: dict | None = None) -> tuple[dict, dict]:
    """Each method's hyperparameter value with the best validation score (ties: the first, its default).

    grid: {method: (parameter, values)}; score(method, settings) -> validation accuracy; `fixed`
    settings are added to every trial. Returns ({method: {parameter: chosen}}, {method: the scores})."""
    chosen, scores = {}, {}
    for method, (name, values) in grid.items():
        accs = [float(score(method, {**(fixed or {}), name: v})) for v in values]
        best = pick_best(values, accs)
        chosen[method] = {**(fixed or {}), name: best}
        scores[method] = {"parameter": name, "values": list(values), "val_acc": [round(a, 4) for a in accs]}
    return chosen, scores
