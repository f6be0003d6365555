"""Train a CLIP model on real image-caption files, on one process or many (torchrun), with open_clip_train's flags.

Usage::

    python -m vlmlearn.train_clip --train-data pairs.csv --dataset-type csv --batch-size 128 --epochs 10 \\
        --lr 1e-3 --wd 0.1 --warmup 100 --workers 4 --logs logs --name run1
    torchrun --nproc_per_node 8 -m vlmlearn.train_clip -- --train-data ... --batch-size 256   # 256 per process
    python -m vlmlearn.train_clip ... --name run1 --resume latest                          # any number of processes

Each process reads its share of every global batch (`vlmlearn.data.StepLoader`) with `--workers` DataLoader
workers, the model is wrapped in DistributedDataParallel by `vlmlearn.train.train`, and the InfoNCE loss sees the
features of all processes (`vlmlearn.losses.clip_loss`). Rank 0 writes, under `--logs/--name`::

    config.json                 the arguments, the global batch, the vocabulary
    log.jsonl                   one JSON object per logged step, validation and event (skipped images, done)
    checkpoints/latest.pt       model, optimizer, schedule, step (resume from it; loads with weights_only=True)
    model.safetensors + .json   the final weights and what rebuilds the model (`vlmlearn.eval_retrieval --pretrained`)

Under torchrun, `--` before the trainer's arguments keeps torchrun from reading `--logs` as its own `--logs-specs`.
A missing image is reported at start, a corrupt one when it is read (by path, in log.jsonl and on stderr), and
replaced by the next readable image; the run goes on and counts them.
"""
from __future__ import annotations

import argparse
import functools
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Sequence

import torch

from .data.loader import DATASET_TYPES


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m vlmlearn.train_clip", description=__doc__.split("\n")[0])
    data = p.add_argument_group("data (as open_clip_train, plus coco, flickr30k and folder)")
    data.add_argument("--train-data", required=True,
                      help="CSV, COCO captions JSON, Karpathy split JSON or image folder")
    data.add_argument("--val-data", help="the same kinds; recall@1/5/10 both ways every --val-frequency epochs")
    data.add_argument("--dataset-type", choices=DATASET_TYPES, default="csv")
    data.add_argument("--val-dataset-type", choices=DATASET_TYPES, help="default: --dataset-type")
    data.add_argument("--images",
                      help="image folder of --train-data (default: the CSV's folder, or images/ beside the JSON)")
    data.add_argument("--val-images", help="image folder of --val-data (same default)")
    data.add_argument("--csv-separator", default=None, help="default: detected from the header")
    data.add_argument("--csv-img-key", default="filepath")
    data.add_argument("--csv-caption-key", default="title")
    data.add_argument("--workers", type=int, default=4, help="DataLoader worker processes per process")
    model = p.add_argument_group("model")
    model.add_argument("--model", default="shapes-clip",
                       help="shapes-clip (the course's), an open_clip model name, or an open_clip config JSON")
    model.add_argument("--image-size", type=int, default=32, help="shapes-clip only")
    model.add_argument("--context-length", type=int, default=32, help="shapes-clip only")
    opt = p.add_argument_group("optimisation (open_clip_train's meaning: --batch-size is per process)")
    opt.add_argument("--batch-size", type=int, default=64)
    opt.add_argument("--epochs", type=int, default=32)
    opt.add_argument("--lr", type=float, default=5e-4)
    opt.add_argument("--wd", type=float, default=0.2)
    opt.add_argument("--beta1", type=float, default=0.9)
    opt.add_argument("--beta2", type=float, default=0.98)
    opt.add_argument("--eps", type=float, default=1e-6)
    opt.add_argument("--warmup", type=int, default=10_000, help="linear warm-up steps, then cosine decay to 0")
    opt.add_argument("--grad-clip-norm", type=float, default=None)
    opt.add_argument("--precision", choices=("amp", "amp_bf16", "amp_bfloat16", "fp32"), default="amp",
                     help="amp: bf16 autocast on GPUs that support it, else fp16 with loss scaling; nothing on CPU")
    opt.add_argument("--local-loss", action="store_true", help="each process scores only its own rows (less memory)")
    opt.add_argument("--gather-with-grad", action="store_true",
                     help="accepted for open_clip_train's commands; gradients always flow through the gather here")
    opt.add_argument("--seed", type=int, default=0)
    run = p.add_argument_group("run")
    run.add_argument("--logs", default="./logs")
    run.add_argument("--name", default=None, help="default: the date and time")
    run.add_argument("--resume", default=None, help="'latest' (this run's checkpoint) or a checkpoint path")
    run.add_argument("--save-frequency", type=int, default=1, help="checkpoint every N epochs (0: only at the end)")
    run.add_argument("--val-frequency", type=int, default=1)
    run.add_argument("--log-every-n-steps", type=int, default=100)
    run.add_argument("--device", default=None, help="one process: default cuda, then mps, then cpu")
    argv = sys.argv[1:] if argv is None else list(argv)
    return p.parse_args(argv[1:] if argv[:1] == ["--"] else argv)  # torchrun ... -m vlmlearn.train_clip -- --logs ...


class JsonLog:
    """Append one JSON object per line (rank 0 only: other ranks hold a log that writes nothing)."""

    def __init__(self, path: Path | None):
        self.path = path

    def __call__(self, **record) -> None:
        if self.path is not None:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")


def _gather_problems(problems: list[str], world: int) -> list[str]:
    if world == 1:
        return problems
    import torch.distributed as dist

    parts = [None] * world
    dist.all_gather_object(parts, problems)
    return [p for part in parts for p in part]


def main(argv: Sequence[str] | None = None) -> dict:
    from . import clip_models
    from .contrastive import clip_step
    from .data.loader import Collate, StepLoader, TrainPairs, read_pairs
    from .eval_retrieval import retrieval_scores
    from .losses import clip_loss
    from .optim import param_groups, warmup_cosine
    from .runtime import get_device, set_seed, setup_distributed
    from .train import train

    args = parse_args(argv)
    rank, world, device = setup_distributed()
    if world == 1:
        device = get_device(args.device)
    name = args.name or time.strftime("%Y_%m_%d-%H_%M_%S")
    run = Path(args.logs) / name
    checkpoint = run / "checkpoints" / "latest.pt"
    resumed = _resume_config(args, checkpoint)
    set_seed(args.seed + rank)

    def read(kind, path, images, split):
        return read_pairs(kind, path, images=images, split=split, csv_img_key=args.csv_img_key,
                          csv_caption_key=args.csv_caption_key, csv_separator=args.csv_separator)

    train_data = read(args.dataset_type, args.train_data, args.images, "train")
    val_data = (read(args.val_dataset_type or args.dataset_type, args.val_data, args.val_images, "val")
                if args.val_data else None)
    bundle = clip_models.create(args.model, texts=[c for caps in train_data.captions for c in caps],
                                vocab=resumed.get("vocab"), image_size=args.image_size,
                                context_length=args.context_length)
    global_batch = resumed.get("global_batch", args.batch_size * world)
    if global_batch % world:
        raise ValueError(f"the run's global batch of {global_batch} does not split over {world} processes")
    loader = StepLoader(TrainPairs(train_data, bundle.train_transform), global_batch, collate=Collate(bundle.tokenizer),
                        seed=args.seed, workers=args.workers, rank=rank, world=world)
    steps = args.epochs * loader.steps_per_epoch
    log = JsonLog(run / "log.jsonl" if rank == 0 else None)
    if rank == 0:
        run.mkdir(parents=True, exist_ok=True)
        config = {**vars(args), "name": name, "world_size": world, "global_batch": global_batch, "steps": steps,
                  "steps_per_epoch": loader.steps_per_epoch, "images": len(train_data),
                  "vocab": bundle.record.get("vocab")}
        (run / "config.json").write_text(json.dumps(config, indent=1))
        log(event="start", world_size=world, global_batch=global_batch, per_process_batch=global_batch // world,
            steps=steps, images=len(train_data), skipped=len(train_data.skipped), device=str(device))
        for path, reason in train_data.skipped + (val_data.skipped if val_data else []):
            log(event="skipped", path=path, reason=reason)
            print(f"skipped {path}: {reason}", file=sys.stderr)

    model = bundle.model.to(device)
    optimizer = torch.optim.AdamW(param_groups(model, args.wd), lr=args.lr, betas=(args.beta1, args.beta2),
                                  eps=args.eps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(steps, warmup=args.warmup))
    bad_images: list[str] = []

    loss_fn = functools.partial(clip_loss, local_loss=args.local_loss)

    def step_fn(net, batch):
        images, ids, problems = batch
        bad_images.extend(problems)  # the images that failed to load, reported when the run ends
        return clip_step(net, (images, ids), loss_fn=loss_fn)

    window = {"t": time.perf_counter(), "step": 0}

    def log_step(state) -> None:
        ev = state.history.eval
        if ev["step"] and ev["step"][-1] == state.step:
            log(step=state.step, epoch=state.step / loader.steps_per_epoch,
                val={k: v[-1] for k, v in ev.items() if k != "step"})
        if state.step % args.log_every_n_steps and not (state.step == steps or state.stop):
            return
        problems = _gather_problems(list(bad_images), world)  # every rank reaches this at the same steps
        bad_images.clear()
        now = time.perf_counter()
        rate = (state.step - window["step"]) * global_batch / (now - window["t"])
        window.update(t=now, step=state.step)
        for problem in problems:
            log(event="corrupt_image", step=state.step, problem=problem)
            if rank == 0:
                print(f"step {state.step}: {problem} (replaced by the next image)", file=sys.stderr)
        log(step=state.step, epoch=state.step / loader.steps_per_epoch, lr=optimizer.param_groups[0]["lr"],
            samples_per_second=rate, seconds=state.history.seconds, corrupt_images=len(problems), **state.metrics)

    def evaluate(m):
        return retrieval_scores(m, bundle.tokenizer, val_data, bundle.eval_transform, workers=args.workers)

    dtype = {"amp": True, "fp32": False, "amp_bf16": torch.bfloat16, "amp_bfloat16": torch.bfloat16}[args.precision]
    try:
        history = train(model, optimizer, step_fn, loader, steps=steps, scheduler=scheduler,
                        grad_clip=args.grad_clip_norm, amp=dtype, checkpoint=checkpoint,
                        checkpoint_every=args.save_frequency * loader.steps_per_epoch,
                        eval_fn=evaluate if val_data is not None else None,
                        eval_every=args.val_frequency * loader.steps_per_epoch, callbacks=[log_step],
                        progress=rank == 0, desc=name)
    finally:
        loader.close()
    summary = {"steps": steps, "seconds": round(history.seconds, 2),
               "final_loss": history.train["loss"][-1] if steps else None,
               "val": {k: v[-1] for k, v in history.eval.items() if k != "step"}}
    if rank == 0:
        clip_models.save(bundle, run / "model.safetensors")
        log(event="done", **summary)
        print(f"{name}: {steps} steps in {summary['seconds']:.1f} s, final loss {summary['final_loss']}"
              + (f", val {summary['val']}" if summary["val"] else "") + f"; weights in {run / 'model.safetensors'}")
    return summary


def _resume_config(args: argparse.Namespace, checkpoint: Path) -> dict:
    """With --resume: put the checkpoint where this run writes its own and return the run's config (the global
    batch and vocabulary it was started with, so any number of processes continues the same run)."""
    if args.resume is None:
        return {}
    source = checkpoint if args.resume == "latest" else Path(args.resume)
    config = source.parent.parent / "config.json"
    if not source.is_file() or not config.is_file():
        raise FileNotFoundError(f"--resume {args.resume}: expected a checkpoint {source} and the run's config {config}")
    import torch.distributed as dist

    from .runtime import world

    if source.resolve() != checkpoint.resolve() and world()[0] == 0:
        checkpoint.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, checkpoint)
    if world()[1] > 1:
        dist.barrier()  # every rank finds the copied checkpoint
    return json.loads(config.read_text())


if __name__ == "__main__":
    main()
