"""Semi-supervised methods on the real digits across label counts and seeds (notebook 08).

For 1, 2 and 5 labels per class and seeds 0, 1, 2: supervised-only, Π-model, Mean Teacher and
FixMatch, each trained by `vlmlearn.label_efficiency.run_digits` at its defaults, which are notebook 08's
model and budget (the same 1,000 steps of 32 labeled and 7 x 32 unlabeled images for every method, the
consistency weight 10 ramped up over the first 300 steps, FixMatch's threshold 0.95). Prints a mean ± std
table and writes build/benchmarks/semi_supervised.{json,png} (accuracy against labels per class).

    python benchmarks/semi_supervised.py [--labels 1 2 5] [--seeds 0 1 2]    # ~15 minutes on 2 cores
    python benchmarks/semi_supervised.py --steps-scale 0.04 --labels 1 --seeds 0 --out build/semi_test   # a smoke run
"""
import argparse
import json
from pathlib import Path

import numpy as np
import torch

from vlmlearn.label_efficiency import run_digits

METHODS = {"supervised": "supervised", "Π-model": "pi", "Mean Teacher": "meanteacher", "FixMatch": "fixmatch"}


def run(method: str, labels: int, seed: int, *, steps_scale: float = 1.0) -> float:
    """Test accuracy of one method of `METHODS` (the table's names) at `labels` per class and `seed`."""
    return run_digits(METHODS[method], labels, seed=seed, steps_scale=steps_scale)["acc"]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--labels", type=int, nargs="+", default=[1, 2, 5])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=Path("build/benchmarks"))
    parser.add_argument("--steps-scale", type=float, default=1.0, help="multiply the step count (smoke runs)")
    args = parser.parse_args()
    torch.set_num_threads(2)
    table = {m: {k: [] for k in args.labels} for m in METHODS}
    for k in args.labels:
        for seed in args.seeds:
            for m in METHODS:
                table[m][k].append(run(m, k, seed, steps_scale=args.steps_scale))
                print(f"labels/class {k} seed {seed} {m:13s} {table[m][k][-1]:.3f}", flush=True)
    print(f"\n{'method':13s} " + " ".join(f"{f'{k} labels/class':>16s}" for k in args.labels))
    for m in METHODS:
        print(f"{m:13s} " + " ".join(f"{100 * np.mean(v):9.1f} ± {100 * np.std(v):4.1f}" for v in table[m].values()))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "semi_supervised.json").write_text(
        json.dumps({m: {str(k): v for k, v in d.items()} for m, d in table.items()}, indent=1))
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
