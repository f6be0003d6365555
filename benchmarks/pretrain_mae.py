"""Pretrain notebook 03's MAE for longer than the notebook can, and ship the weights.

    python benchmarks/pretrain_mae.py                 # make pretrain: 12,000 steps, ~15 minutes on 2 cores
    python benchmarks/pretrain_mae.py --steps 500 --out build/mae_test   # a quick run elsewhere

Runs `vlmlearn.mae.pretrain_mae` (a fresh `MaskedAutoencoder(**SHAPES_MAE_CONFIG)`, AdamW with
betas 0.9, 0.95 and weight decay 0.05 on weight matrices, a linear warm-up and a cosine decay, as the
MAE paper does) on unlabeled ShapesWorld images (world seed 0, the "images" stream: no labels, no
captions). Writes <out>.safetensors (the
weights) and <out>.json (model name, config, steps, seed, batch size, data size, learning rate, final loss,
runtime, versions), which `vlmlearn.mae.load_pretrained_mae` reads. `--snapshots 1100 4000` also
saves the weights at those steps (to <out>_<step>.safetensors) to see what longer pretraining buys.
"""
import argparse
import time
from pathlib import Path

import torch

from vlmlearn.assets import save_weights
from vlmlearn.data import ShapesWorld
from vlmlearn.mae import SHAPES_MAE_CHECKPOINT, SHAPES_MAE_CONFIG, pretrain_mae
from vlmlearn.provenance import stamp
from vlmlearn.results import versions


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=12_000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--unlabeled", type=int, default=50_000, help="unlabeled images (cycled)")
    parser.add_argument("--lr", type=float, default=1.5e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=SHAPES_MAE_CHECKPOINT.with_suffix(""))
    parser.add_argument("--snapshots", type=int, nargs="*", default=[])
    return parser


def main() -> None:
    args = build_parser().parse_args()
    torch.set_num_threads(2)
    images = ShapesWorld(seed=args.seed, image_size=SHAPES_MAE_CONFIG["image_size"]).images(args.unlabeled).images

    def snapshot(state):
        if state.step in args.snapshots:
            save_weights(state.model, f"{args.out}_{state.step}.safetensors")
        if state.step % 1000 == 0:
            recent = state.history.train["loss"][-200:]
            print(f"step {state.step:6d}  loss {sum(recent) / len(recent):.4f}  {state.history.seconds:6.0f} s",
                  flush=True)

    t0 = time.perf_counter()
    model, history = pretrain_mae(images, steps=args.steps, lr=args.lr, batch_size=args.batch_size, seed=args.seed,
                                  callbacks=[snapshot], desc=None)
    final = history.train["loss"][-200:]
    record = {"model": "shapes-mae", "config": SHAPES_MAE_CONFIG, "steps": args.steps, "seed": args.seed,
              "batch_size": args.batch_size,
              "unlabeled_images": args.unlabeled, "lr": args.lr, "final_loss": round(sum(final) / len(final), 4),
              "runtime_s": round(time.perf_counter() - t0), "versions": versions(), **stamp(__file__)}
    save_weights(model, args.out.with_suffix(".safetensors"), record)
    print(f"wrote {args.out}.safetensors and .json: {record['steps']} steps, loss {record['final_loss']}, "
          f"{record['runtime_s']} s")


if __name__ == "__main__":
    main()
