"""Notebook 09's grid: which way of using unlabeled data, for how many labels (make bench-capstone).

    python benchmarks/label_efficiency.py                     # the full grid, five seeds (about 35 minutes on 2 cores)
    python benchmarks/label_efficiency.py --steps-scale 0.02 --seeds 0 --out build/le_test   # a smoke run

One controlled experiment per task, run by `vlmlearn.label_efficiency` (the methods, data and
protocol are described there). Each method's one hyperparameter is chosen once, on a validation
split the size of a small labeled set (2 labels per class on digits, 5 on shapes, seed 0), ties going
to its paper's default, and then used for every label count and seed. Test data is read only to report.

Writes benchmarks/results/09_label_efficiency.json: metrics `<task>_<method>_<labels per class>` as
{per_seed, mean, std}, the hyperparameters chosen and the validation scores behind them, per-run test
curves and confusion matrices (for the notebook's widget), runtime and versions.
"""
import argparse
import json
import math
import re
import time
from pathlib import Path

import torch

from vlmlearn.label_efficiency import (
    DIGIT_GRID,
    DIGIT_LABELS,
    DIGIT_METHODS,
    SELECT_LABELS,
    SHAPE_GRID,
    SHAPE_LABELS,
    SHAPE_METHODS,
    choose,
    load_pretrained,
    run_digits,
    run_shapes,
)
from vlmlearn.provenance import stamp
from vlmlearn.results import benchmark_dir, versions


def compact_json(record: dict) -> str:
    """Indented JSON with every list of numbers on one line (the curves and confusion matrices stay readable)."""
    text = json.dumps(record, indent=1)
    return re.sub(r"\[\s*([-0-9.e,\s]+?)\s*\]", lambda m: "[" + ", ".join(m.group(1).split()).replace(",,", ",") + "]",
                  text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--tasks", nargs="+", default=["digits", "shapes"], choices=["digits", "shapes"])
    parser.add_argument("--steps-scale", type=float, default=1.0, help="multiply every step count (smoke runs)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(2)
    t0 = time.perf_counter()
    per_seed, runs, selection, seconds = {}, {}, {}, {}

    def record(key: str, seed: int, run) -> None:
        t1 = time.perf_counter()
        result = run()
        per_seed.setdefault(key, []).append(result["acc"])
        runs.setdefault(key, {})[str(seed)] = {"curve": result["curve"], "confusion": result["confusion"]}
        seconds[key] = seconds.get(key, 0.0) + time.perf_counter() - t1
        print(f"{key:28s} seed {seed}: {result['acc']:.3f}  ({time.perf_counter() - t1:.0f} s)", flush=True)

    def select(task: str, grid: dict, score, **kw) -> dict:
        chosen, scores = choose(grid, score, **kw)
        for method, s in scores.items():
            print(f"{task} {method}: {s['parameter']} " + ", ".join(f"{v:g} -> val {a:.3f}" for v, a in
                                                                   zip(s["values"], s["val_acc"])), flush=True)
        selection.setdefault(task, {"labels_per_class": SELECT_LABELS[task], "seed": 0, "chosen": {}, "val": {}})
        selection[task]["chosen"].update(chosen), selection[task]["val"].update(scores)
        return chosen

    if "digits" in args.tasks:
        def score(m, s):
            return run_digits(m, SELECT_LABELS["digits"], settings=s, steps_scale=args.steps_scale,
                              validation=True)["acc"]

        chosen = select("digits", DIGIT_GRID, score)
        for labels in DIGIT_LABELS:
            for seed in args.seeds:
                for method in DIGIT_METHODS:
                    record(f"digits_{method}_{labels}", seed, lambda: run_digits(
                        method, labels, seed=seed, settings=chosen.get(method), steps_scale=args.steps_scale))
    if "shapes" in args.tasks:
        pretrained = load_pretrained()

        def score(m, s):
            return run_shapes(m, SELECT_LABELS["shapes"], pretrained=pretrained, settings=s,
                              steps_scale=args.steps_scale, validation=True)["acc"]

        chosen = select("shapes", {m: SHAPE_GRID[m] for m in ("ft_clip", "scratch_cnn")}, score)
        # FixMatch starts from the CLIP tower with the fine-tuning learning rate chosen above
        chosen.update(select("shapes", {"fixmatch_clip": SHAPE_GRID["fixmatch_clip"]}, score, fixed=chosen["ft_clip"]))
        selection["shapes"]["fixed"] = {"ft_mae": pretrained["mae_recipe"], "scratch_vit": pretrained["mae_recipe"]}
        for seed in args.seeds:
            record("shapes_zeroshot_0", seed, lambda: run_shapes("zeroshot", 0, pretrained=pretrained, seed=seed))
        for labels in SHAPE_LABELS:
            for seed in args.seeds:
                for method in SHAPE_METHODS:
                    record(f"shapes_{method}_{labels}", seed, lambda: run_shapes(
                        method, labels, pretrained=pretrained, seed=seed, settings=chosen.get(method),
                        steps_scale=args.steps_scale))

    metrics = {}
    for key, values in per_seed.items():
        mean = sum(values) / len(values)
        metrics[key] = {"per_seed": [round(v, 4) for v in values], "mean": round(mean, 4),
                        "std": round(math.sqrt(sum((v - mean) ** 2 for v in values) / len(values)), 4)}
    out = {"notebook": "09_label_efficiency", "seeds": args.seeds, "metrics": metrics, "selection": selection,
           "steps_scale": args.steps_scale, "seconds": {k: round(s, 1) for k, s in seconds.items()},
           "runtime_s": round(time.perf_counter() - t0, 1), "versions": versions(), "runs": runs, **stamp(__file__)}
    args.out = args.out or benchmark_dir() / "09_label_efficiency.json"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(compact_json(out) + "\n")
    print(f"wrote {args.out} in {out['runtime_s']:.0f} s")


if __name__ == "__main__":
    main()
