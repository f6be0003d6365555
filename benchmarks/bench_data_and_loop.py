"""Two measurements the foundation promises, printed rather than asserted (timings are noisy).

1. ShapesWorld generation rate at 32 px on one core (target: at least 5,000 images/s).
2. The cost of vlmlearn.train.train over a bare PyTorch loop on the same model, data and steps
   (target: at most 5 % slower), progress bar included, written to benchmarks/results/trainer_overhead.json
   with its top-level "ratio" (train() time / bare loop time).

    python benchmarks/bench_data_and_loop.py [--steps 150] [--repeats 3]
"""
import argparse
import time

import torch
from torch import nn

from vlmlearn.data import ShapesWorld
from vlmlearn.models import SmallCNN
from vlmlearn.results import write_record
from vlmlearn.runtime import set_seed
from vlmlearn.train import minibatches, train


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def generation_rate(repeats: int) -> None:
    torch.set_num_threads(1)
    for size in (16, 32, 64):
        world = ShapesWorld(seed=0, image_size=size)
        n = 5000 if size <= 32 else 2000
        world.pairs(200)  # warm up
        t_pairs = best_of(lambda: world.pairs(n), repeats)
        t_images = best_of(lambda: world.images(n), repeats)
        print(f"ShapesWorld {size:2d} px, 1 core: {n / t_images:8,.0f} images/s (images only), "
              f"{n / t_pairs:8,.0f} pairs/s (images + captions)")


def loop_overhead(steps: int, repeats: int) -> None:
    torch.set_num_threads(2)
    data = ShapesWorld(seed=0).labeled(4096, attribute="shape")
    batches = minibatches(data.images, data.labels, batch_size=128)

    def make():
        set_seed(0)
        model = nn.Sequential(SmallCNN(widths=(16, 32, 64), embed_dim=64), nn.ReLU(), nn.Linear(64, 5))
        return model, torch.optim.AdamW(model.parameters(), lr=1e-3)

    def step_fn(model, batch):
        x, y = batch
        return nn.functional.cross_entropy(model(x), y), {}

    def bare():
        model, opt = make()
        model.train()
        for step in range(steps):
            x, y = batches(step)
            loss = nn.functional.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss.item()

    def ours():
        model, opt = make()
        train(model, opt, step_fn, batches, steps=steps, progress=True, desc="bench")

    bare()  # warm up both
    ours()
    t_bare, t_ours = [], []
    for _ in range(repeats):  # interleave so machine noise hits both alike
        t_bare.append(best_of(bare, 1))
        t_ours.append(best_of(ours, 1))
    b, o = min(t_bare), min(t_ours)
    print(f"training loop, {steps} steps (SmallCNN, batch 128, 2 threads): bare {b:.2f} s, "
          f"vlmlearn.train {o:.2f} s, ratio {o / b:.3f} ({(o / b - 1) * 100:+.1f} %)")
    return {"ratio": round(o / b, 4), "target": 1.05, "steps": steps, "repeats": repeats,
            "model": "SmallCNN(widths=(16, 32, 64), embed_dim=64) + Linear(64, 5)", "batch_size": 128, "threads": 2,
            "bare_s": [round(t, 3) for t in t_bare], "train_s": [round(t, 3) for t in t_ours],
            "measure": "best of the interleaved repeats, each a fresh model: train() with its progress bar and "
                       "final line against a bare zero_grad/backward/step loop on the same batches"}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    t0 = time.perf_counter()
    generation_rate(args.repeats)
    path = write_record("trainer_overhead", loop_overhead(args.steps, args.repeats), started=t0, script=__file__)
    print(f"wrote {path}")
