"""Choose notebook 03's fine-tuning recipe on the validation split, for both arms at once.

    python benchmarks/mae_finetune_recipe.py       # 12 runs, ~3 minutes on 2 cores

Fine-tunes the same ViT from the shipped MAE checkpoint and from its random initialisation, 50
labeled images per shape (world seed 0), for every learning rate x layer-wise decay in the grid,
and scores each recipe by the mean validation accuracy of the two arms (so the recipe is not tuned
for one of them). Test data is never read. Writes benchmarks/results/03_finetune_recipe.json; the
notebook uses the winner.
"""
import itertools
import time

import torch

from vlmlearn.data import SHAPES, ShapesWorld, first_per_class
from vlmlearn.eval import accuracy
from vlmlearn.mae import SHAPES_MAE_CONFIG, MaskedAutoencoder, finetune_mae, load_pretrained_mae
from vlmlearn.results import write_record
from vlmlearn.runtime import set_seed

LRS, LAYER_DECAYS, LABELS_PER_CLASS, STEPS = (3e-4, 1e-3, 3e-3), (0.75, 1.0), 50, 200


def main() -> None:
    torch.set_num_threads(2)
    world = ShapesWorld(seed=0, image_size=32)
    pool = world.labeled(3000, attribute="shape")
    pick = first_per_class(pool.labels, LABELS_PER_CLASS)
    x, y = pool.images[pick], pool.labels[pick]
    val = world.labeled(500, attribute="shape", split="val")
    set_seed(0)
    encoders = {"scratch": MaskedAutoencoder(**SHAPES_MAE_CONFIG).encoder, "mae": load_pretrained_mae()[0].encoder}
    runs, t0 = [], time.perf_counter()
    for lr, decay in itertools.product(LRS, LAYER_DECAYS):
        scores = {}
        for arm, encoder in encoders.items():
            model, _ = finetune_mae(encoder, x, y, len(SHAPES), steps=STEPS, lr=lr, layer_decay=decay, seed=0,
                                    desc=None)
            with torch.no_grad():
                scores[arm] = accuracy(model(val.images), val.labels)
        runs.append({"lr": lr, "layer_decay": decay, "val_scratch": scores["scratch"], "val_mae": scores["mae"],
                     "val_mean": (scores["scratch"] + scores["mae"]) / 2})
        print(f"lr {lr:g}, layer decay {decay}: val scratch {scores['scratch']:.3f}, MAE {scores['mae']:.3f}",
              flush=True)
    best = max(runs, key=lambda r: r["val_mean"])
    record = {"chosen": {"lr": best["lr"], "layer_decay": best["layer_decay"]},
              "selected_by": "mean val accuracy of both arms",
              "labels_per_class": LABELS_PER_CLASS, "steps": STEPS, "runs": runs}
    path = write_record("03_finetune_recipe", record, started=t0, script=__file__)
    print(f"chosen: lr {best['lr']:g}, layer decay {best['layer_decay']} -> {path}")


if __name__ == "__main__":
    main()
