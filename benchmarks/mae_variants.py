"""What each lever of notebook 03's MAE buys: pretraining length, mask ratio, patch size, decoder depth.

    python benchmarks/mae_variants.py          # about 45 minutes on 2 cores

Each variant is pretrained by `vlmlearn.mae.pretrain_mae` (world seed 0's unlabeled images, seed 0,
the shipped checkpoint's recipe with one thing changed), then fine-tuned as the notebook does: 50
labeled images per shape with the recipe chosen on val (03_finetune_recipe.json), 200 steps, at
seeds 0-4 (the seed draws the labeled images and the fine-tuning batches, as the notebook's SEED
does). The shipped 12,000-step checkpoint and the random initialisation (scratch) are rows too, so
the table reads against the notebook's headline. Writes benchmarks/results/03_mae_variants.json
with val and test accuracy per seed; notebook 03 prints it as a table.
"""
import time

import numpy as np
import torch

from vlmlearn.data import SHAPES, ShapesWorld, first_per_class
from vlmlearn.eval import accuracy
from vlmlearn.mae import (
    SHAPES_MAE_CONFIG,
    MaskedAutoencoder,
    finetune_mae,
    load_pretrained_mae,
    pretrain_mae,
)
from vlmlearn.results import load_benchmark, write_record
from vlmlearn.runtime import set_seed

SEEDS, LABELS_PER_CLASS, FINETUNE_STEPS = (0, 1, 2, 3, 4), 50, 200
# (name, pretraining steps, changes to SHAPES_MAE_CONFIG); None steps: the shipped checkpoint, 0: no pretraining
VARIANTS = [
    ("scratch (no pretraining)", 0, {}),
    ("shipped checkpoint", None, {}),
    ("1,000 steps", 1000, {}),
    ("4,000 steps", 4000, {}),
    ("4,000 steps, mask ratio 0.6", 4000, {"mask_ratio": 0.6}),
    ("4,000 steps, patch size 8", 4000, {"patch_size": 8}),
    ("4,000 steps, 2-layer decoder", 4000, {"decoder_depth": 2}),
    ("4,000 steps, pixel targets (norm_pix_loss off)", 4000, {"norm_pix_loss": False}),
]


def stats(values: list[float]) -> dict:
    return {"per_seed": [round(v, 4) for v in values], "mean": round(float(np.mean(values)), 4),
            "std": round(float(np.std(values)), 4)}


def finetune_scores(encoder, seed: int, recipe: dict) -> tuple[float, float]:
    world = ShapesWorld(seed=seed, image_size=32)  # the notebook's world at SEED = seed
    pool = world.labeled(3000, attribute="shape")
    pick = first_per_class(pool.labels, LABELS_PER_CLASS)
    val, test = world.labeled(500, attribute="shape", split="val"), world.labeled(1000, attribute="shape", split="test")
    model, _ = finetune_mae(encoder, pool.images[pick], pool.labels[pick], len(SHAPES), steps=FINETUNE_STEPS, seed=seed,
                            desc=None, **recipe)
    with torch.no_grad():
        return accuracy(model(val.images), val.labels), accuracy(model(test.images), test.labels)


def main() -> None:
    torch.set_num_threads(2)
    recipe = load_benchmark("03_finetune_recipe")["chosen"]  # chosen on val; make it first (bench.py's order)
    unlabeled = ShapesWorld(seed=0, image_size=32).images(50_000).images
    rows, t0 = [], time.perf_counter()
    for name, steps, changes in VARIANTS:
        t1, final_loss = time.perf_counter(), None
        if steps is None:
            mae, record = load_pretrained_mae()
            steps, final_loss = record["steps"], record["final_loss"]
        elif steps == 0:
            set_seed(0)
            mae = MaskedAutoencoder(**SHAPES_MAE_CONFIG)
        else:
            mae, history = pretrain_mae(unlabeled, steps=steps, config=changes, desc=None)
            final_loss = round(float(np.mean(history.train["loss"][-200:])), 4)
        pretrain_s = time.perf_counter() - t1
        val, test = zip(*(finetune_scores(mae.encoder, seed, recipe) for seed in SEEDS))
        rows.append({"name": name, "pretrain_steps": steps, "changes": changes, "pretrain_s": round(pretrain_s),
                     "final_loss": final_loss, "val": stats(val), "test": stats(test)})
        print(f"{name:48s} val {np.mean(val):.3f}  test {np.mean(test):.3f} ± {np.std(test):.3f}  "
              f"(pretraining {pretrain_s:.0f} s)", flush=True)
    record = {"notebook": "03_masked_image_modeling", "seeds": list(SEEDS), "labels_per_class": LABELS_PER_CLASS,
              "finetune_steps": FINETUNE_STEPS, "recipe": recipe, "variants": rows}
    path = write_record("03_mae_variants", record, started=t0, script=__file__)
    print(f"wrote {path} in {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
