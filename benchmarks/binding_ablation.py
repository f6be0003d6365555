"""Which change lets a contrastive model bind colours to objects? (notebook 01)

Notebook 01's fixed model differs from its naive one in three text-tower changes at once: word embeddings
initialised at CLIP's N(0, 0.02) instead of PyTorch's N(0, 1), causal attention instead of bidirectional, and NegCLIP
hard negatives (colour-swapped captions as extra negatives). This trains the notebook's dual encoder from scratch on
its 50k clean ShapesWorld pairs with none of the changes, with each change alone, and with all three, every run for
the same steps (the fixed model's 300), so that the step count drops out, at five seeds. Measured on test data:
image-to-text R@1 and binding accuracy, how often an image prefers its caption over a swapped twin (0.5 is a bag of
words), on the colour-swapped twin (what the hard negatives train on) and the size-swapped twin (a swap training
never shows).

    python benchmarks/binding_ablation.py                         # five seeds, about 30 minutes on 2 cores
    python benchmarks/binding_ablation.py --steps 20 --seeds 0 --out build/ablation   # a smoke run

Writes benchmarks/results/01_binding_ablation.json (`vlmlearn.results.write_benchmark`): metrics
`<arm>_{i2t_r1,colour_binding,size_binding}` as {per_seed, mean, std}, with the arms' settings under "arms".
"""
import argparse
import json
import time
from pathlib import Path

import torch

from vlmlearn.contrastive import binding_accuracy, fit_clip, retrieval_metrics, shapes_clip
from vlmlearn.data import ShapesWorld, WordTokenizer, caption_vocabulary, hard_negative_captions
from vlmlearn.results import write_benchmark
from vlmlearn.runtime import set_seed

# arm -> (word-embedding init std, causal attention, hard negatives): none of the changes, each alone, all three
ARMS = {
    "naive": (1.0, False, False),
    "small_init": (0.02, False, False),
    "causal": (1.0, True, False),
    "hard_negatives": (1.0, False, True),
    "all_three": (0.02, True, True),
}


def run_arm(world: ShapesWorld, pairs, tok: WordTokenizer, seed: int, std: float, causal: bool, hard: bool,
            steps: int) -> dict[str, float]:
    """Notebook 01's model and recipe (`shapes_clip`, `fit_clip`) on its training `pairs` at `seed`, with one arm's
    text-tower settings."""
    set_seed(seed)
    model = shapes_clip(tok.vocab_size, context_length=tok.context_length, token_init_std=std, causal=causal)
    negatives = tok(hard_negative_captions(pairs)) if hard else None
    fit_clip(model, pairs.images, tok(pairs.captions), negatives, steps=steps, seed=seed, desc=None)
    probe = world.binding_pairs(1000)
    return {"i2t_r1": retrieval_metrics(model, tok, world.pairs(1000, split="test"))["i2t_r1"],
            "colour_binding": binding_accuracy(model, tok, probe),
            "size_binding": binding_accuracy(model, tok, probe, swap="size")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--out", type=Path, default=None, help="folder for the JSON (default benchmarks/results)")
    args = parser.parse_args()
    torch.set_num_threads(2)
    t0 = time.perf_counter()
    runs = []
    print(f"{'seed':>4} {'arm':>15} {'i2t R@1':>8} {'colour':>8} {'size':>8} {'s':>5}")
    tok = WordTokenizer(caption_vocabulary(), context_length=20)
    for seed in args.seeds:
        world = ShapesWorld(seed=seed, image_size=32)  # notebook 01's world and training pairs at this seed
        pairs, run = world.pairs(50_000), {}
        for arm, settings in ARMS.items():
            t1 = time.perf_counter()
            scores = run_arm(world, pairs, tok, seed, *settings, steps=args.steps)
            run.update({f"{arm}_{k}": v for k, v in scores.items()})
            print(f"{seed:4d} {arm:>15} " + " ".join(f"{v:8.3f}" for v in scores.values())
                  + f" {time.perf_counter() - t1:5.0f}", flush=True)
        runs.append(run)
    path = write_benchmark("01_binding_ablation", args.seeds, runs, runtime_s=time.perf_counter() - t0,
                           folder=args.out, source=__file__)
    record = json.loads(path.read_text())
    record.update(steps=args.steps, arms={arm: {"token_init_std": s, "causal": c, "hard_negatives": h}
                                          for arm, (s, c, h) in ARMS.items()})
    path.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {path} ({record['runtime_s']:.0f} s)")


if __name__ == "__main__":
    main()
