"""Notebook 07's headline numbers as a mean over seeds: the notebook itself, run with SEED = 0, 1, 2.

    python benchmarks/pseudo_labeling.py            # about 3 minutes per seed on 2 cores
    python benchmarks/pseudo_labeling.py --seeds 0 1 2 3 4

Each run goes through papermill with its own results folder (build/benchmarks/pseudo_labeling/seed<N>),
so the numbers come from exactly the code the learner runs. Prints mean ± std per metric.
"""
import argparse
import json
import os
from pathlib import Path

import numpy as np

KEYS = ("digits2_supervised", "digits2_selftrain", "digits2_online", "digits_full_supervised", "shapes4_supervised",
        "shapes4_selftrain", "noisy_r1", "capfilt_r1")


def main() -> None:
    import papermill

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    root = Path(__file__).resolve().parents[1]
    out = root / "build" / "benchmarks" / "pseudo_labeling"
    runs = []
    for seed in args.seeds:
        folder = out / f"seed{seed}"
        folder.mkdir(parents=True, exist_ok=True)
        os.environ["VLMLEARN_RESULTS_DIR"] = str(folder)
        print(f"seed {seed} ...", flush=True)
        papermill.execute_notebook(str(root / "notebooks" / "07_pseudo_labeling.ipynb"), str(folder / "07.ipynb"),
                                   parameters={"SEED": seed}, cwd=str(root / "notebooks"), progress_bar=False)
        runs.append(json.loads((folder / "07_pseudo_labeling.json").read_text())["metrics"])
    print(f"\n{'metric':24s} {'mean':>7s} {'std':>7s}   per seed ({', '.join(map(str, args.seeds))})")
    for key in KEYS:
        values = np.array([r[key] for r in runs])
        print(f"{key:24s} {values.mean():7.3f} {values.std():7.3f}   {', '.join(f'{v:.3f}' for v in values)}")
    gains = np.array([r["digits2_selftrain"] - r["digits2_supervised"] for r in runs])
    capfilt = np.array([r["capfilt_r1"] - r["noisy_r1"] for r in runs])
    print(f"\nself-training gain {gains.mean():+.3f} ± {gains.std():.3f}; CapFilt gain {capfilt.mean():+.3f} ± {capfilt.std():.3f}")


if __name__ == "__main__":
    main()
