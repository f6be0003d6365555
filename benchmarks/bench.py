"""`make bench`: re-make every committed benchmark file and shipped checkpoint whose code changed since it was made.

    python benchmarks/bench.py              # what is stale, in dependency order (checkpoints first)
    python benchmarks/bench.py 07 03        # only what belongs to notebooks 07 and 03 (make bench NB=07)
    python benchmarks/bench.py --list       # say what is stale and why, run nothing
    python benchmarks/bench.py 07 --force   # re-make notebook 07's files even when fresh

Each product names the command that makes it. A product is stale when it is missing, carries no fingerprint, or
carries one that differs from what its notebook or script and the vlmlearn modules they import give now
(`vlmlearn.provenance.staleness`); tests/test_provenance.py fails on a stale committed product. Prints the wall time
of each command and of the whole run.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SEEDS = ["0", "1", "2", "3", "4"]


@dataclass(frozen=True)
class Product:
    path: str                # relative to the checkout
    notebook: str            # the two-digit notebook it serves ("00"-"10")
    command: tuple[str, ...]  # run with the checkout's python from the checkout

    def refresh(self) -> str:
        return f"make bench NB={self.notebook}"


def _seeds(notebook: str) -> Product:
    return Product(f"benchmarks/results/{notebook}.json", notebook[:2],
                   ("benchmarks/notebook_seeds.py", notebook, "--seeds", *SEEDS))


# in dependency order: the checkpoints the notebooks load come first
PRODUCTS = [
    Product("vlmlearn/shipped/checkpoints/clip_shapes.json", "01", ("benchmarks/pretrain_clip.py",)),
    Product("benchmarks/results/01_binding_ablation.json", "01", ("benchmarks/binding_ablation.py",)),
    Product("vlmlearn/shipped/checkpoints/mae_shapes.json", "03", ("benchmarks/pretrain_mae.py",)),
    Product("benchmarks/results/03_finetune_recipe.json", "03", ("benchmarks/mae_finetune_recipe.py",)),  # 03 reads it
    Product("vlmlearn/shipped/checkpoints/painter_shapes.json", "05", ("benchmarks/pretrain_painter.py",)),
    Product("vlmlearn/shipped/checkpoints/gvlm_shapes.json", "11", ("benchmarks/pretrain_gvlm.py",)),
    Product("benchmarks/results/trainer_overhead.json", "00", ("benchmarks/bench_data_and_loop.py",)),
    *map(_seeds, ["01_contrastive_alignment", "02_noisy_web_pairs", "03_masked_image_modeling",
                  "05_generative_unpaired", "06_supervised_finetuning", "07_pseudo_labeling",
                  "08_consistency_regularization", "10_scaling_out", "11_generative_vlm"]),
    Product("benchmarks/results/05_generative_unpaired_2000_pairs.json", "05",
            ("benchmarks/notebook_seeds.py", "05_generative_unpaired", "--set", "N_PAIRS=2000", "--seeds", *SEEDS)),
    Product("benchmarks/results/03_mae_variants.json", "03", ("benchmarks/mae_variants.py",)),
    Product("benchmarks/results/03_scratch_controls.json", "03", ("benchmarks/scratch_controls.py",)),
    Product("benchmarks/results/09_label_efficiency.json", "09", ("benchmarks/label_efficiency.py",)),
    Product("benchmarks/results/09_label_efficiency_controls.json", "09", ("benchmarks/label_efficiency_controls.py",)),
    Product("benchmarks/results/10_throughput_vs_open_clip.json", "10", ("benchmarks/throughput_vs_open_clip.py",)),
]


def why_stale(product: Product) -> str | None:
    """None when the product is fresh, else the reason (`vlmlearn.provenance.staleness`)."""
    from vlmlearn.provenance import staleness

    path = ROOT / product.path
    if not path.is_file():
        return f"{product.path} is missing; make it with `{product.refresh()}`"
    return staleness(json.loads(path.read_text()), name=product.path, refresh=product.refresh())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebooks", nargs="*", help="two-digit notebook numbers, e.g. 07 (default: all)")
    parser.add_argument("--list", action="store_true", help="say what is stale and why; run nothing")
    parser.add_argument("--force", action="store_true", help="re-make the chosen products even when fresh")
    args = parser.parse_args(argv)
    known = sorted({p.notebook for p in PRODUCTS})
    if unknown := [n for n in args.notebooks if n not in known]:
        parser.error(f"no benchmarks for notebook(s) {unknown}; those with some: {known}")
    chosen = [p for p in PRODUCTS if not args.notebooks or p.notebook in args.notebooks]
    todo = []
    for product in chosen:
        reason = why_stale(product)
        print(f"{'stale' if reason else 'fresh'}: {reason or product.path}")
        if reason or args.force:
            todo.append(product)
    if args.list or not todo:
        print(f"{len(todo)} of {len(chosen)} to re-make" + ("" if args.list else ": nothing to do"))
        return 0
    t0 = time.perf_counter()
    for product in todo:
        started = time.perf_counter()
        print(f"\n$ python {' '.join(product.command)}", flush=True)
        done = subprocess.run([sys.executable, *product.command], cwd=ROOT)
        outcome = "done" if done.returncode == 0 else "FAILED"
        print(f"{product.path}: {outcome} in {time.perf_counter() - started:.0f} s", flush=True)
        if done.returncode:
            return done.returncode
    print(f"\nre-made {len(todo)} product(s) in {time.perf_counter() - t0:.0f} s: "
          + ", ".join(p.path for p in todo))
    return 0


if __name__ == "__main__":
    sys.exit(main())
