"""Train notebook 01's CLIP once and ship it: the contrastive model notebooks 03 and 09 start from.

    python benchmarks/pretrain_clip.py                 # part of make pretrain: about a minute on 2 cores
    python benchmarks/pretrain_clip.py --steps 20 --out build/clip_test   # a quick run elsewhere

The fixed model of notebook 01 at its seed 0, with its recipe (`vlmlearn.contrastive.shapes_clip` and
`fit_clip`): 50,000 clean ShapesWorld pairs (world seed 0), one hard-negative caption per pair, 300 steps
of 256 pairs. Writes <out>.safetensors (the weights) and <out>.json (model name, config, vocabulary, steps,
seed, runtime, versions, and the scores it reaches on world seed 0's test split: retrieval R@1,
zero-shot shape and colour on seen and held-out combinations), which
`vlmlearn.clip_models.load_pretrained_clip` reads.
"""
import argparse
import time
from pathlib import Path

import torch

from vlmlearn import clip_models
from vlmlearn.clip_models import SHAPES_CLIP_CHECKPOINT
from vlmlearn.contrastive import SHAPES_CLIP_CONFIG, fit_clip, object_prompts, retrieval_metrics, zero_shot_accuracy
from vlmlearn.data import ShapesWorld, caption_vocabulary, hard_negative_captions
from vlmlearn.provenance import stamp
from vlmlearn.results import versions
from vlmlearn.runtime import set_seed


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--pairs", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=SHAPES_CLIP_CHECKPOINT.with_suffix(""))
    return parser


def main() -> None:
    args = build_parser().parse_args()
    torch.set_num_threads(2)
    t0 = time.perf_counter()
    world = ShapesWorld(seed=args.seed, image_size=SHAPES_CLIP_CONFIG["image_size"])
    pairs = world.pairs(args.pairs)
    set_seed(args.seed)
    bundle = clip_models.create("shapes-clip", vocab=caption_vocabulary(), **SHAPES_CLIP_CONFIG)  # its record too
    model, tok = bundle.model, bundle.tokenizer
    history = fit_clip(model, pairs.images, tok(pairs.captions), tok(hard_negative_captions(pairs)), steps=args.steps,
                       batch_size=args.batch_size, seed=args.seed, desc=None)
    runtime = time.perf_counter() - t0
    scores = {f"test_{k}": v for k, v in retrieval_metrics(model, tok, world.pairs(1000, split="test")).items()
              if k in ("i2t_r1", "t2i_r1")}
    for name, batch in (("seen", world.labeled(1000, split="test")), ("heldout", world.heldout_pairs(1000))):
        accs = zero_shot_accuracy(model, tok, batch, object_prompts())
        scores.update({f"zeroshot_{name}_{a}": accs[a] for a in ("shape", "color")})
    scores = {k: round(v, 4) for k, v in scores.items()}
    clip_models.save(bundle, args.out.with_suffix(".safetensors"), steps=args.steps, seed=args.seed,
                     batch_size=args.batch_size, pairs=args.pairs, final_loss=round(history.train["loss"][-1], 4),
                     scores=scores, runtime_s=round(runtime), versions=versions(), **stamp(__file__))
    print(f"wrote {args.out}.safetensors and .json: {args.steps} steps in {round(runtime)} s, {scores}")


if __name__ == "__main__":
    main()
