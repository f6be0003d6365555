"""Notebook 09's controls: the arms its grid lacks, on the grid's own data, seeds and budgets.

The grid (`benchmarks/label_efficiency.py`) leaves three questions open; this answers each with extra arms, at the
grid's seeds:

- digits, `supervised_strong`: supervised only with the strong augmentation (`augment.strong_augment`, the view
  FixMatch gives its unlabeled images and self-training its students) on the labeled images, the grid's model,
  optimizer, 1,000 steps, labeled draws, unlabeled stream and test images, so each arm pairs with the grid's cell;
- digits, `supervised_converged` with every label: supervised only trained until a validation split stops improving
  rather than for the grid's fixed budget: 20 images per class are held out of the labeled set to stop on (so it
  trains on 200 fewer labels than the grid's every-label arms), evaluated every 100 steps, stopped after 5
  evaluations without a new best (at most 5,000 steps), the best weights kept;
- `count`, a vision-language task no caption names: one object or two in a ShapesWorld image (world seed = seed,
  the first n images of each count in 3,000 unlabeled images, 1,000 test images). Notebook 01's CLIP zero-shot
  (prompts "a photo of one object" / "... two objects", words its captions never used), a linear probe on its image
  tower, that tower fine-tuned from the probe (LP-FT) and the small CNN from scratch, at 1, 5 and 25 labels per
  class, 200 steps, with the learning rates the grid chose for the same methods on shapes. These arms pair with one
  another; the grid has no counting cells.

    python benchmarks/label_efficiency_controls.py                       # about 3 minutes on 2 cores
    python benchmarks/label_efficiency_controls.py --steps-scale 0.02 --seeds 0 --out build/lec   # a smoke run

Writes benchmarks/results/09_label_efficiency_controls.json (`results.write_record`): metrics `<task>_<method>_<labels>`
as {per_seed, mean, std}, as in the grid's file, and per seed the step each converged run kept and the steps it ran.
"""
import argparse
import copy
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from vlmlearn.augment import shapes_weak_augment, strong_augment
from vlmlearn.clip_models import load_pretrained_clip
from vlmlearn.contrastive import image_text_similarity
from vlmlearn.data import ShapesWorld, first_per_class, load_digits_split
from vlmlearn.eval import accuracy, embed, linear_probe
from vlmlearn.label_efficiency import DIGIT_LABELS, DIGIT_STEPS, SHAPE_LABELS, SHAPE_STEPS, digits_data, head_from_probe
from vlmlearn.models import SmallCNN, digits_cnn
from vlmlearn.optim import param_groups, warmup_cosine
from vlmlearn.results import load_benchmark, write_record
from vlmlearn.runtime import set_seed
from vlmlearn.semi import semi_batches, supervised_step
from vlmlearn.train import minibatches, train

COUNT_CLASSES = ("one", "two")
COUNT_PROMPTS = ("a photo of one object", "a photo of two objects")
CONVERGE = {"val_per_class": 20, "eval_every": 100, "patience": 5, "max_steps": 5000}


def digits_strong(labels, seed: int, steps: int) -> float:
    """The grid's supervised-only run (`label_efficiency.run_digits`) with strong instead of weak views."""
    x, y, unlabeled, test_x, test_y = digits_data(labels, seed)
    batches = semi_batches(x, y, unlabeled, batch_size=32, mu=7, seed=seed)
    set_seed(seed)
    model = digits_cnn()

    def step(m, b):
        return F.cross_entropy(m(strong_augment(b[0])), b[1]), {}

    train(model, torch.optim.AdamW(param_groups(model, weight_decay=5e-4), lr=2e-3), step, batches, steps=steps,
          progress=False)
    return _accuracy(model, test_x, test_y)


def digits_converged(seed: int, max_steps: int) -> tuple[float, int, int]:
    """Supervised only with every label but a validation split, trained until that split stops improving.
    Returns (test accuracy of the best weights, the step they were saved at, the steps trained)."""
    split = load_digits_split(10_000, seed=seed, image_size=16)
    x, y = split.labeled.images, split.labeled.labels
    is_val = torch.zeros(len(y), dtype=torch.bool)
    is_val[first_per_class(y, CONVERGE["val_per_class"])] = True
    batches = semi_batches(x[~is_val], y[~is_val], x[~is_val], batch_size=32, mu=7, seed=seed)
    set_seed(seed)
    model = digits_cnn()
    best = {"acc": -1.0, "step": 0, "since": 0}

    def keep_best(state):
        if state.step % CONVERGE["eval_every"]:
            return
        acc = _accuracy(state.model, x[is_val], y[is_val])
        if acc > best["acc"]:
            best.update(acc=acc, step=state.step, since=0, weights=copy.deepcopy(state.model.state_dict()))
        else:
            best["since"] += 1
        state.stop = best["since"] >= CONVERGE["patience"]

    history = train(model, torch.optim.AdamW(param_groups(model, weight_decay=5e-4), lr=2e-3), supervised_step,
                    batches, steps=max_steps, callbacks=[keep_best], progress=False)
    if "weights" in best:
        model.load_state_dict(best["weights"])
    return _accuracy(model, split.test.images, split.test.labels), best["step"], history.train["step"][-1]


def count_data(labels: int, seed: int):
    """(labeled x, labeled y, test batch, test y) for counting: y = objects in the image - 1, from world `seed`."""
    world = ShapesWorld(seed=seed, image_size=32)
    pool = world.images(3000)
    pool_y = torch.as_tensor(pool.attributes["n_objects"] - 1)
    pick = first_per_class(pool_y, labels)
    test = world.images(1000, split="test")
    return pool.images[pick], pool_y[pick], test, torch.as_tensor(test.attributes["n_objects"] - 1)


def count_run(method: str, labels: int, seed: int, clip, tok, lr: dict, steps: int) -> float:
    """One counting method at `labels` per class: test accuracy."""
    x, y, test, test_y = count_data(max(labels, 1), seed)
    if method == "zeroshot":  # prompts only
        return accuracy(image_text_similarity(clip, tok, test.images, list(COUNT_PROMPTS)), test_y)
    tower = clip.image_encoder
    if method == "probe_clip":
        return linear_probe(embed(tower, x, normalize=False), y, embed(tower, test.images, normalize=False),
                            test_y)["accuracy"]
    set_seed(seed)
    if method == "ft_clip":  # LP-FT: the probe is the starting head
        tower = copy.deepcopy(tower)
        head = head_from_probe(embed(tower, x, normalize=False), y, len(COUNT_CLASSES))
        with torch.no_grad():  # scikit-learn fits two classes as one row (class 1 against class 0), and
            head.weight[0].zero_()  # head_from_probe copies that row into both: class 0's row must be zero
            head.bias[0].zero_()
    else:
        tower = SmallCNN(image_size=32)
        head = nn.Linear(tower.embed_dim, len(COUNT_CLASSES))
    model = nn.Sequential(tower, head)
    opt = torch.optim.AdamW(param_groups(model, weight_decay=0.05), lr=lr[method])
    sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup_cosine(steps, warmup=max(1, steps // 10)))

    def step(m, b):
        return F.cross_entropy(m(shapes_weak_augment(b[0])), b[1], label_smoothing=0.1), {}

    train(model, opt, step, minibatches(x, y, batch_size=min(32, len(x)), seed=seed), steps=steps, scheduler=sched,
          progress=False)
    return _accuracy(model, test.images, test_y)


def _accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    model.eval()
    with torch.no_grad():
        return accuracy(model(images), labels)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--steps-scale", type=float, default=1.0, help="multiply every step count (smoke runs)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(2)
    t0 = time.perf_counter()
    grid = load_benchmark("09_label_efficiency")
    if grid is None:
        raise FileNotFoundError("benchmarks/results/09_label_efficiency.json is missing: run make bench-capstone first")
    chosen = grid["selection"]["shapes"]["chosen"]
    lr = {"ft_clip": chosen["ft_clip"]["lr"], "scratch_cnn": chosen["scratch_cnn"]["lr"]}
    clip, tok, _ = load_pretrained_clip()
    scaled = {name: max(4, round(n * args.steps_scale)) for name, n in
              (("digits", DIGIT_STEPS), ("count", SHAPE_STEPS), ("converge", CONVERGE["max_steps"]))}
    runs, best_steps, trained = [], [], []
    for seed in args.seeds:
        run = {}
        for labels in DIGIT_LABELS:
            run[f"digits_supervised_strong_{labels}"] = digits_strong(labels, seed, scaled["digits"])
        run["digits_supervised_converged_all"], best, steps = digits_converged(seed, scaled["converge"])
        best_steps.append(best)
        trained.append(steps)
        run["count_zeroshot_0"] = count_run("zeroshot", 0, seed, clip, tok, lr, scaled["count"])
        for labels in SHAPE_LABELS:
            for method in ("probe_clip", "ft_clip", "scratch_cnn"):
                run[f"count_{method}_{labels}"] = count_run(method, labels, seed, clip, tok, lr, scaled["count"])
        runs.append(run)
        print(f"seed {seed} ({time.perf_counter() - t0:.0f} s): " + ", ".join(f"{k} {v:.3f}" for k, v in run.items()),
              flush=True)
    metrics = {k: {"per_seed": [round(r[k], 4) for r in runs], "mean": round(statistics.fmean(r[k] for r in runs), 4),
                   "std": round(statistics.pstdev(r[k] for r in runs), 4)} for k in runs[0]}
    record = {"notebook": "09_label_efficiency", "seeds": args.seeds, "metrics": metrics,
              "converged_best_step": best_steps, "converged_steps": trained, "converge": CONVERGE,
              "count_prompts": COUNT_PROMPTS, "learning_rates": lr, "steps_scale": args.steps_scale}
    path = write_record("09_label_efficiency_controls", record, started=t0, folder=args.out, script=__file__)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
