"""Semi-supervised methods on the real digits across label counts and seeds (notebook 08).

For 1, 2 and 5 labels per class and seeds 0, 1, 2: supervised-only, Π-model, Mean Teacher and
FixMatch, with the notebook's model and budget (the same steps and batches for every method). Prints a mean ± std table and writes
build/benchmarks/semi_supervised.{json,png} (accuracy against labels per class).

    python benchmarks/semi_supervised.py [--labels 1 2 5] [--seeds 0 1 2]    # ~15 minutes on 2 cores
"""
import argparse
import functools
import json
from pathlib import Path

import numpy as np
import torch

from vlmlearn.data import load_digits_split
from vlmlearn.eval import accuracy
from vlmlearn.models import SmallCNN
from vlmlearn.semi import (Ramp, ema_teacher, fixmatch_step, mean_teacher_decay, mean_teacher_step, pi_model_step,
                           semi_batches, supervised_step)
from vlmlearn.optim import param_groups
from vlmlearn.runtime import set_seed
from vlmlearn.train import train

METHODS = ("supervised", "Π-model", "Mean Teacher", "FixMatch")
STEPS, MU = 1000, 7  # notebook 08's budget: every method the same steps and the same labeled and unlabeled batches
RAMP_UP = 300       # notebook 08's consistency ramp-up (Π-model, Mean Teacher)


def run(method: str, labels: int, seed: int) -> float:
    split = load_digits_split(labels, seed=seed, image_size=16)
    set_seed(seed)
    model = SmallCNN(image_size=16, in_channels=1, widths=(16, 32, 32), embed_dim=10)
    step, callbacks, evaluate, ramp = supervised_step, [], model, Ramp.sigmoid(10.0, end=RAMP_UP)
    if method == "Π-model":
        step, callbacks = functools.partial(pi_model_step, weight=ramp), [ramp.callback]
    elif method == "Mean Teacher":
        teacher = ema_teacher(model, decay=mean_teacher_decay(RAMP_UP))
        step = functools.partial(mean_teacher_step, teacher=teacher, weight=ramp)
        callbacks, evaluate = [ramp.callback, lambda state: teacher.update_parameters(state.model)], teacher.module
    elif method == "FixMatch":
        step = functools.partial(fixmatch_step, threshold=0.95)
    train(model, torch.optim.AdamW(param_groups(model, weight_decay=5e-4), lr=2e-3), step,
          semi_batches(split.labeled.images, split.labeled.labels, split.unlabeled, batch_size=32, mu=MU, seed=seed),
          steps=STEPS, callbacks=callbacks, progress=False)
    evaluate.eval()
    with torch.no_grad():
        return accuracy(evaluate(split.test.images), split.test.labels)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--labels", type=int, nargs="+", default=[1, 2, 5])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=Path("build/benchmarks"))
    args = parser.parse_args()
    torch.set_num_threads(2)
    table = {m: {k: [] for k in args.labels} for m in METHODS}
    for k in args.labels:
        for seed in args.seeds:
            for m in METHODS:
                table[m][k].append(run(m, k, seed))
                print(f"labels/class {k} seed {seed} {m:13s} {table[m][k][-1]:.3f}", flush=True)
    print(f"\n{'method':13s} " + " ".join(f"{f'{k} labels/class':>16s}" for k in args.labels))
    for m in METHODS:
        print(f"{m:13s} " + " ".join(f"{100 * np.mean(v):9.1f} ± {100 * np.std(v):4.1f}" for v in table[m].values()))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "semi_supervised.json").write_text(json.dumps({m: {str(k): v for k, v in d.items()} for m, d in table.items()}, indent=1))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    for m in METHODS:
        means = [np.mean(table[m][k]) for k in args.labels]
        stds = [np.std(table[m][k]) for k in args.labels]
        ax.errorbar(args.labels, means, yerr=stds, marker="o", capsize=3, label=m)
    ax.set_xlabel("labels per class")
    ax.set_ylabel(f"test accuracy (mean ± std, {len(args.seeds)} seeds)")
    ax.set_xticks(args.labels)
    ax.legend()
    fig.tight_layout()
    fig.savefig(args.out / "semi_supervised.png", dpi=120)
    print(f"wrote {args.out / 'semi_supervised.png'}")


if __name__ == "__main__":
    main()
