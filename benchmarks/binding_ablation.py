"""Which ingredients let a contrastive model bind colours to objects? (notebook 01)

Trains the notebook's dual encoder from scratch on 50k clean ShapesWorld pairs under each
combination of three text-tower choices and prints a table:
  - word-embedding init: PyTorch's default N(0, 1) or CLIP's N(0, 0.02);
  - attention: bidirectional, or causal as in CLIP's text transformer;
  - NegCLIP hard negatives (colour-swapped captions as extra negatives) or none.
Binding accuracy is how often an image prefers its caption over a swapped twin (0.5 is a bag of
words): the colour-swapped twin (what the hard negatives train on) and the size-swapped twin (a swap
training never shows).

    python benchmarks/binding_ablation.py [--steps 300] [--seed 0]     # ~10 minutes on 2 cores
"""
import argparse
import itertools
import time

import torch

from vlmlearn.contrastive import binding_accuracy, fit_clip, retrieval_metrics, shapes_clip
from vlmlearn.data import ShapesWorld, WordTokenizer, caption_vocabulary, hard_negative_captions
from vlmlearn.runtime import set_seed


def run(world, pairs, ids, negatives, tok, *, std, causal, hard, steps, seed):
    """Notebook 01's model and recipe (`shapes_clip`, `fit_clip`) with one text-tower setting changed."""
    set_seed(seed)
    model = shapes_clip(tok.vocab_size, context_length=tok.context_length, token_init_std=std, causal=causal)
    t0 = time.perf_counter()
    fit_clip(model, pairs.images, ids, negatives if hard else None, steps=steps, seed=seed, desc=None)
    r = retrieval_metrics(model, tok, world.pairs(1000, split="test"))
    probe = world.binding_pairs(1000)
    return (r["i2t_r1"], binding_accuracy(model, tok, probe), binding_accuracy(model, tok, probe, swap="size"),
            time.perf_counter() - t0)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(2)
    world = ShapesWorld(seed=args.seed)
    pairs = world.pairs(50_000)
    tok = WordTokenizer(caption_vocabulary(), context_length=20)
    ids, negatives = tok(pairs.captions), tok(hard_negative_captions(pairs))
    print(f"{'init std':>8} {'attention':>13} {'hard negatives':>14} {'i2t R@1':>8} {'colour':>8} {'size':>8} "
          f"{'train s':>8}")
    for std, causal, hard in itertools.product((1.0, 0.02), (False, True), (False, True)):
        r1, colour, size, seconds = run(world, pairs, ids, negatives, tok, std=std, causal=causal, hard=hard,
                                   steps=args.steps, seed=args.seed)
        print(f"{std:>8} {'causal' if causal else 'bidirectional':>13} {'yes' if hard else 'no':>14} "
              f"{r1:8.3f} {colour:8.3f} {size:8.3f} {seconds:8.0f}", flush=True)


if __name__ == "__main__":
    main()
