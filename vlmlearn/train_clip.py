"""Train a CLIP model on real image-caption files, on one process or many (torchrun), with open_clip_train's flags.

Usage::

    python -m vlmlearn.train_clip --train-data pairs.csv --dataset-type csv --batch-size 128 --epochs 10 \\
        --lr 1e-3 --wd 0.1 --warmup 100 --workers 4 --logs logs --name run1
    torchrun --nproc_per_node 8 -m vlmlearn.train_clip -- --train-data ... --batch-size 256   # 256 per process
    python -m vlmlearn.train_clip ... --name run1 --resume latest                          # any number of processes
    python -m vlmlearn.train_clip --train-data my.csv --model ViT-B-32 --pretrained laion2b_s34b_b79k \\
        --lock-image --lr 1e-5 --wd 0.1 --warmup 50 --report-to tensorboard --name finetune   # LiT on one's own data

Each process reads its share of every global batch (`vlmlearn.data.StepLoader`) with `--workers` DataLoader
workers, the model is wrapped in DistributedDataParallel by `vlmlearn.train.train`, and the InfoNCE loss sees the
features of all processes (`vlmlearn.losses.clip_loss`). Rank 0 writes, under `--logs/--name`::

    config.json                 the arguments, the global batch, the vocabulary
    log.jsonl                   one JSON object per logged step, validation and event (skipped images, done)
    checkpoints/latest.pt       model, optimizer, schedule, step (resume from it; loads with weights_only=True)
    model.safetensors + .json   the final weights and what rebuilds the model (`vlmlearn.eval_retrieval --pretrained`)
    open_clip_config.json       open_clip models only: open_clip.create_model_and_transforms("local-dir:" + run)
    tensorboard/                with --report-to tensorboard: train/loss, train/lr, ..., val/... by step

Under torchrun, `--` before the trainer's arguments keeps torchrun from reading `--logs` as its own `--logs-specs`.
A missing image is reported at start, a corrupt one when it is read (by path, in log.jsonl and on stderr), and
replaced by the next readable image; the run goes on and counts them. Where stdout is not a terminal (nohup, SLURM)
there is no progress bar: one plain line every --log-every-n-steps steps.

Where this differs from open_clip_train (also in --help): a CSV's rows are merged per image (an epoch is one pass over
the unique images, each step drawing one of an image's captions) and its paths are relative to the CSV's folder
(open_clip: one row one sample, paths relative to the working directory); weight decay skips embeddings, norms, biases
and the temperature (open_clip decays the 2-D token and positional embeddings); --precision amp is bf16 autocast where
the GPU supports it (open_clip: fp16 with a GradScaler), and the GradScaler's state (fp16 only) is not in the
checkpoint; webdataset shards are indexed and read by position (no shuffle buffer), so --train-num-samples only checks
the count; --accum-freq counts the temperature's gradient once (open_clip_train: once per micro-batch);
--gather-with-grad is accepted and ignored (gradients always flow through the gather).
"""
from __future__ import annotations

import argparse
import functools
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Callable, Sequence

import torch

from .data.loader import DATASET_TYPES

REPORT_TO = ("tensorboard",)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m vlmlearn.train_clip", description=__doc__.split("\n")[0])
    data = p.add_argument_group("data (as open_clip_train, plus coco, flickr30k and folder)")
    data.add_argument("--train-data", required=True,
                      help="CSV, COCO captions JSON, Karpathy split JSON, image folder, or webdataset shards "
                           "('shards/{00000..00009}.tar', '::' between sources)")
    data.add_argument("--val-data", help="the same kinds but webdataset; recall@1/5/10 both ways every "
                                         "--val-frequency epochs")
    data.add_argument("--dataset-type", choices=(*DATASET_TYPES, "webdataset"), default="csv",
                      help="csv: unlike open_clip, rows are merged per image (an epoch is one pass over the unique "
                           "images, one of an image's captions drawn each time) and paths are relative to the CSV's "
                           "folder (or --images). webdataset: plain tar shards of key.jpg/png + key.txt, as "
                           "img2dataset writes them, indexed at start and read by position")
    data.add_argument("--val-dataset-type", choices=DATASET_TYPES, help="default: --dataset-type")
    data.add_argument("--train-num-samples", type=int, default=None,
                      help="webdataset: the samples the shards hold; checked against the count found (an epoch is "
                           "always one pass over them, unlike open_clip where it sets the epoch's length)")
    data.add_argument("--images",
                      help="image folder of --train-data (default: the CSV's folder, or images/ beside the JSON)")
    data.add_argument("--val-images", help="image folder of --val-data (same default)")
    data.add_argument("--csv-separator", default=None, help="default: detected from the header")
    data.add_argument("--csv-img-key", default="filepath")
    data.add_argument("--csv-caption-key", default="title")
    data.add_argument("--workers", type=int, default=4, help="DataLoader worker processes per process")
    model = p.add_argument_group("model")
    model.add_argument("--model", default=None,
                       help="shapes-clip (the course's; the default), an open_clip model name, or an open_clip config "
                            "JSON; default with a vlmlearn --pretrained file: the model it holds")
    model.add_argument("--pretrained", default=None,
                       help="start from these weights: a vlmlearn run's model.safetensors, an open_clip checkpoint "
                            "(.pt/.bin/.safetensors), an open_clip tag of --model (e.g. laion2b_s34b_b79k) or "
                            "'hf-hub:org/repo'; tags and hf-hub only from the local cache, nothing is downloaded")
    model.add_argument("--siglip", action="store_true",
                       help="sigmoid loss (SigLIP); open_clip models get a learned logit_bias starting at -10 and a "
                            "scale starting at 10, as open_clip_train gives them")
    model.add_argument("--lock-image", action="store_true", help="freeze the image tower (LiT)")
    model.add_argument("--lock-image-unlocked-groups", type=int, default=0,
                       help="leave the last N layer groups of the image tower trainable")
    model.add_argument("--lock-image-freeze-bn-stats", action="store_true",
                       help="accepted; locked layers here always keep their BatchNorm statistics (and no dropout)")
    model.add_argument("--lock-text", action="store_true", help="freeze the text tower")
    model.add_argument("--lock-text-unlocked-layers", type=int, default=0,
                       help="leave the last N layer groups of the text tower trainable")
    model.add_argument("--lock-text-freeze-layer-norm", action="store_true",
                       help="keep the text tower's LayerNorms frozen in the unlocked groups too")
    model.add_argument("--image-size", type=int, default=32, help="shapes-clip only")
    model.add_argument("--context-length", type=int, default=32, help="shapes-clip only")
    opt = p.add_argument_group("optimisation (open_clip_train's meaning: --batch-size is per process)")
    opt.add_argument("--batch-size", type=int, default=64)
    opt.add_argument("--epochs", type=int, default=32)
    opt.add_argument("--lr", type=float, default=5e-4)
    opt.add_argument("--wd", type=float, default=0.2,
                     help="AdamW's weight decay, on weight matrices only: never on biases, norms, the temperature, "
                          "or (unlike open_clip) token and positional embeddings")
    opt.add_argument("--beta1", type=float, default=0.9)
    opt.add_argument("--beta2", type=float, default=None,
                     help="default as open_clip_train picks it from the model's name: 0.98 if it holds 'vit' (and "
                          "for shapes-clip), else 0.999")
    opt.add_argument("--eps", type=float, default=None, help="default 1e-6 if the name holds 'vit' (and for "
                                                              "shapes-clip), else 1e-8")
    opt.add_argument("--accum-freq", type=int, default=1,
                     help="one optimizer step per N batches of --batch-size, the loss over all N together "
                          "(open_clip's feature caching; the temperature's gradient is counted once, where "
                          "open_clip_train counts it N times)")
    opt.add_argument("--warmup", type=int, default=10_000, help="linear warm-up steps, then cosine decay to 0")
    opt.add_argument("--grad-clip-norm", type=float, default=None)
    opt.add_argument("--precision", choices=("amp", "amp_bf16", "amp_bfloat16", "fp32"), default="amp",
                     help="amp (unlike open_clip's fp16): bf16 autocast on GPUs that support it, else fp16 with a "
                          "GradScaler whose state is not checkpointed; nothing on CPU")
    opt.add_argument("--local-loss", action="store_true", help="each process scores only its own rows (less memory)")
    opt.add_argument("--gather-with-grad", action="store_true",
                     help="accepted and ignored: gradients always flow through the gather here")
    opt.add_argument("--seed", type=int, default=0)
    run = p.add_argument_group("run")
    run.add_argument("--logs", default="./logs")
    run.add_argument("--name", default=None, help="default: the date and time")
    run.add_argument("--resume", default=None,
                     help="'latest' (this run's checkpoint), a vlmlearn checkpoint path, or an open_clip_train "
                          "checkpoint (epoch_N.pt: weights, AdamW moments and epoch; not its GradScaler)")
    run.add_argument("--save-frequency", type=int, default=1, help="checkpoint every N epochs (0: only at the end)")
    run.add_argument("--val-frequency", type=int, default=1)
    run.add_argument("--log-every-n-steps", type=int, default=100,
                     help="log.jsonl (and TensorBoard) every N steps; a plain line too where stdout is no terminal")
    run.add_argument("--report-to", choices=REPORT_TO, default=None,
                     help="tensorboard: scalars in the run's tensorboard/ (pip install 'vlmlearn[tensorboard]')")
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
    from .clip_finetune import contrastive_step, lock_towers, resume_from_open_clip, write_open_clip_config
    from .data.loader import Collate, StepLoader
    from .eval_retrieval import retrieval_scores
    from .losses import clip_loss, siglip_loss
    from .optim import param_groups, warmup_cosine
    from .runtime import get_device, set_seed, setup_distributed
    from .train import train

    args = parse_args(argv)
    _check_args(args)
    rank, world, device = setup_distributed()
    if world == 1:
        device = get_device(args.device)
    name = args.name or time.strftime("%Y_%m_%d-%H_%M_%S")
    run = Path(args.logs) / name
    checkpoint = run / "checkpoints" / "latest.pt"
    resumed = _resume_config(args, checkpoint)
    set_seed(args.seed + rank)

    texts, n_images, skipped, make_dataset = _training_data(args)
    val_data = (_read_pairs(args, args.val_dataset_type or args.dataset_type, args.val_data, args.val_images, "val")
                if args.val_data else None)
    bundle, model_name = build_model(args, texts=texts, vocab=resumed.get("vocab"))
    lock_towers(bundle.model, image=args.lock_image, image_unlocked_groups=args.lock_image_unlocked_groups,
                freeze_bn_stats=args.lock_image_freeze_bn_stats, text=args.lock_text,
                text_unlocked_layers=args.lock_text_unlocked_layers, freeze_layer_norm=args.lock_text_freeze_layer_norm)
    global_batch = resumed.get("global_batch", args.batch_size * world * args.accum_freq)
    if global_batch % (world * args.accum_freq):
        raise ValueError(f"the run's global batch of {global_batch} does not split over {world} processes "
                         f"x --accum-freq {args.accum_freq}")
    loader = StepLoader(make_dataset(bundle.train_transform), global_batch, collate=Collate(bundle.tokenizer),
                        seed=args.seed, workers=args.workers, rank=rank, world=world)
    steps = args.epochs * loader.steps_per_epoch
    log = JsonLog(run / "log.jsonl" if rank == 0 else None)
    if rank == 0:
        run.mkdir(parents=True, exist_ok=True)
        config = {**vars(args), "name": name, "world_size": world, "global_batch": global_batch, "steps": steps,
                  "steps_per_epoch": loader.steps_per_epoch, "images": n_images, "model_name": model_name,
                  "vocab": bundle.record.get("vocab")}
        (run / "config.json").write_text(json.dumps(config, indent=1))
        write_open_clip_config(bundle.model, model_name, run)
        log(event="start", world_size=world, global_batch=global_batch, per_process_batch=global_batch // world,
            accum_freq=args.accum_freq, steps=steps, images=n_images, skipped=len(skipped), device=str(device),
            trainable_parameters=sum(p.numel() for p in bundle.model.parameters() if p.requires_grad))
        for path, reason in skipped + (val_data.skipped if val_data else []):
            log(event="skipped", path=path, reason=reason)
            print(f"skipped {path}: {reason}", file=sys.stderr)
        if args.train_num_samples is not None and args.train_num_samples != n_images:
            log(event="train_num_samples", given=args.train_num_samples, found=n_images)
            print(f"--train-num-samples {args.train_num_samples}, but the shards hold {n_images} samples: an epoch "
                  f"is one pass over the {n_images}", file=sys.stderr)

    model = bundle.model.to(device)
    beta2, eps = _adam_defaults(model_name, args.beta2, args.eps)
    optimizer = torch.optim.AdamW(param_groups(model, args.wd), lr=args.lr, betas=(args.beta1, beta2), eps=eps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(steps, warmup=args.warmup))
    if "open_clip_checkpoint" in resumed:
        if rank == 0:
            resume_from_open_clip(resumed["open_clip_checkpoint"], checkpoint, model=model, optimizer=optimizer,
                                  scheduler=scheduler, steps_per_epoch=loader.steps_per_epoch,
                                  source=f"--resume {args.resume}", model_name=model_name)
        _barrier(world)
    bad_images: list[str] = []
    loss_fn = siglip_loss if args.siglip else functools.partial(clip_loss, local_loss=args.local_loss)
    contrastive = contrastive_step(loss_fn, siglip=args.siglip, accum_freq=args.accum_freq)

    def step_fn(net, batch):
        images, ids, problems = batch
        bad_images.extend(problems)  # the images that failed to load, reported when the run ends
        return contrastive(net, (images, ids))

    reporters = [log] + ([TensorBoardLog(run / "tensorboard")] if args.report_to == "tensorboard" and rank == 0 else [])
    plain = rank == 0 and not sys.stdout.isatty()  # nohup / SLURM: plain lines instead of a progress bar
    window = {"t": time.perf_counter(), "step": 0}

    def log_step(state) -> None:
        ev = state.history.eval
        epoch = state.step / loader.steps_per_epoch
        if ev["step"] and ev["step"][-1] == state.step:
            val = {k: v[-1] for k, v in ev.items() if k != "step"}
            for report in reporters:
                report(step=state.step, epoch=epoch, val=val)
            if plain:
                print(f"{name} step {state.step}/{steps} val " + " ".join(f"{k} {v:.4f}" for k, v in val.items()),
                      flush=True)
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
        lr = optimizer.param_groups[0]["lr"]
        for report in reporters:
            report(step=state.step, epoch=epoch, lr=lr, samples_per_second=rate, seconds=state.history.seconds,
                   corrupt_images=len(problems), **state.metrics)
        if plain:
            print(f"{name} step {state.step}/{steps} epoch {epoch:.2f} loss {state.metrics['loss']:.4f} lr {lr:.3g} "
                  f"{rate:.1f} samples/s", flush=True)

    def evaluate(m):
        return retrieval_scores(m, bundle.tokenizer, val_data, bundle.eval_transform, workers=args.workers)

    dtype = {"amp": True, "fp32": False, "amp_bf16": torch.bfloat16, "amp_bfloat16": torch.bfloat16}[args.precision]
    try:
        history = train(model, optimizer, step_fn, loader, steps=steps, scheduler=scheduler,
                        grad_clip=args.grad_clip_norm, amp=dtype, checkpoint=checkpoint,
                        checkpoint_every=args.save_frequency * loader.steps_per_epoch,
                        eval_fn=evaluate if val_data is not None else None,
                        eval_every=args.val_frequency * loader.steps_per_epoch, callbacks=[log_step],
                        progress=rank == 0 and not plain, desc=name)
    finally:
        loader.close()
        for report in reporters[1:]:
            report.close()
    summary = {"steps": steps, "seconds": round(history.seconds, 2),
               "final_loss": history.train["loss"][-1] if history.train["loss"] else None,
               "val": {k: v[-1] for k, v in history.eval.items() if k != "step"}}
    if rank == 0:
        clip_models.save(bundle, run / "model.safetensors")
        log(event="done", **summary)
        print(f"{name}: {steps} steps in {summary['seconds']:.1f} s, final loss {summary['final_loss']}"
              + (f", val {summary['val']}" if summary["val"] else "") + f"; weights in {run / 'model.safetensors'}")
    return summary


def _check_args(args: argparse.Namespace) -> None:
    """The combinations the parser cannot refuse, refused before anything is read."""
    if args.accum_freq < 1:
        raise ValueError(f"--accum-freq must be at least 1, got {args.accum_freq}")
    if args.val_data and (args.val_dataset_type or args.dataset_type) == "webdataset":
        raise ValueError("--val-data: webdataset is for training only; give --val-dataset-type "
                         f"(one of {DATASET_TYPES}) for the validation files")
    if args.train_num_samples is not None and args.dataset_type != "webdataset":
        raise ValueError("--train-num-samples is for --dataset-type webdataset (the other types count their images)")


def _read_pairs(args: argparse.Namespace, kind: str, path: str, images: str | None, split: str):
    from .data.loader import read_pairs

    return read_pairs(kind, path, images=images, split=split, csv_img_key=args.csv_img_key,
                      csv_caption_key=args.csv_caption_key, csv_separator=args.csv_separator)


def _training_data(args: argparse.Namespace) -> tuple[list[str], int, list[tuple[str, str]], Callable]:
    """(every caption, number of images, skipped (path, reason), transform -> the dataset `StepLoader` reads)."""
    if args.dataset_type == "webdataset":
        from .data.tar_shards import TarPairs, read_shards

        shards = read_shards(args.train_data)
        return ([s.caption for s in shards.samples], len(shards), shards.skipped,
                lambda transform: TarPairs(shards, transform))
    from .data.loader import TrainPairs

    data = _read_pairs(args, args.dataset_type, args.train_data, args.images, "train")
    return ([c for caps in data.captions for c in caps], len(data), data.skipped,
            lambda transform: TrainPairs(data, transform))


def build_model(args: argparse.Namespace, *, texts: Sequence[str], vocab: Sequence[str] | None = None):
    """(ClipBundle, model name) for --model, --pretrained and --siglip: a vlmlearn file rebuilds the model its record
    names (which --model, when given, must match), other weights load into --model with a check of every tensor."""
    from . import assets, clip_models
    from .clip_finetune import is_vlmlearn_checkpoint, load_weights_checked, pretrained_path, read_state_dict

    name, config, weights, shapes = args.model or "shapes-clip", None, None, {}
    source = pretrained_path(name, args.pretrained) if args.pretrained else None
    if source is not None and is_vlmlearn_checkpoint(source):
        weights, record = assets.read_checkpoint(source, writer="python -m vlmlearn.train_clip")
        if args.model and _model_name(args.model) != record["model"]:
            raise ValueError(f"--pretrained {source} holds a {record['model']!r} model, --model asks for "
                             f"{_model_name(args.model)!r}")
        name, config = record["model"], record.get("config")
        vocab, shapes = record.get("vocab", vocab), (config or {})
    elif source is not None:
        if name == "shapes-clip":
            raise ValueError(f"--pretrained {source}: shapes-clip starts only from a vlmlearn run's model.safetensors "
                             f"(with its model.json); for open_clip weights name the architecture with --model")
        weights = read_state_dict(source)
    if name == "shapes-clip":
        if args.siglip:
            raise ValueError("--siglip needs a model with a logit_bias: use an open_clip model (--model), not "
                             "shapes-clip, whose saved record has no place for one")
        options = shapes or {"image_size": args.image_size, "context_length": args.context_length}
        bundle = clip_models.create(name, texts=texts, vocab=vocab, **options)
    else:
        if name.endswith(".json"):
            config, name = json.loads(Path(name).read_text()), Path(name).stem
        if args.siglip:
            config, name = _siglip_variant(name, config)
        bundle = clip_models.create(str(_config_file(name, config)) if config else name)
    if weights is not None:
        load_weights_checked(bundle.model, weights, source=f"--pretrained {args.pretrained}", model_name=name)
    return bundle, bundle.record["model"]


def _model_name(model: str) -> str:
    return Path(model).stem if model.endswith(".json") else model


def _siglip_variant(name: str, config: dict | None) -> tuple[dict, str]:
    """The open_clip config with SigLIP's bias, registered under "<name>-sigmoid" (the plain name keeps its config;
    a name with "siglip" in it would make open_clip pick SigLIP's sentencepiece tokenizer)."""
    import open_clip

    from .clip_finetune import siglip_config
    from .clip_models import CONFIG_DIR

    if config is None:
        if (CONFIG_DIR / f"{name}.json").is_file():
            open_clip.add_model_config(CONFIG_DIR / f"{name}.json")
        config = open_clip.get_model_config(name)
        if config is None:
            raise ValueError(f"unknown model {name!r}: expected an open_clip model name or a model config JSON")
    new = siglip_config(config)
    return new, (name if new == config or name.endswith("-sigmoid") else f"{name}-sigmoid")


def _config_file(name: str, config: dict) -> Path:
    """`config` as `<name>.json` in a fresh temporary folder, for `clip_models.create` to register (its record keeps
    the config, so `clip_models.load` and open_clip rebuild the model without this file)."""
    import tempfile

    path = Path(tempfile.mkdtemp()) / f"{name}.json"
    path.write_text(json.dumps(config))
    return path


def _adam_defaults(model_name: str, beta2: float | None, eps: float | None) -> tuple[float, float]:
    """open_clip_train's defaults, read from the model's name as it reads them: beta2 0.98 and eps 1e-6 when the name
    has "vit" in it (here also shapes-clip), 0.999 and 1e-8 otherwise (vlmlearn-tiny included, though a ViT)."""
    vit = "vit" in model_name.lower() or model_name == "shapes-clip"
    return (beta2 if beta2 is not None else 0.98 if vit else 0.999,
            eps if eps is not None else 1e-6 if vit else 1e-8)


class TensorBoardLog:
    """The numbers of each log record as TensorBoard scalars: train/<name> by step, val/<name> for validation."""

    def __init__(self, folder: Path):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise ImportError("--report-to tensorboard needs the tensorboard package: "
                              "pip install 'vlmlearn[tensorboard]' (or pip install tensorboard)") from None
        self.writer = SummaryWriter(str(folder))

    def __call__(self, *, step: int, val: dict | None = None, **metrics) -> None:
        for key, value in (val or {}).items():
            self.writer.add_scalar(f"val/{key}", value, step)
        for key, value in metrics.items():
            if isinstance(value, (int, float)):
                self.writer.add_scalar(f"train/{key}", value, step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def _barrier(world: int) -> None:
    if world > 1:
        import torch.distributed as dist

        dist.barrier()


def _resume_config(args: argparse.Namespace, checkpoint: Path) -> dict:
    """With --resume: put the checkpoint where this run writes its own and return the run's config (the global
    batch and vocabulary it was started with, so any number of processes continues the same run). An open_clip_train
    checkpoint is returned as {"open_clip_checkpoint": its contents}, converted once the model is built."""
    if args.resume is None:
        return {}
    source = checkpoint if args.resume == "latest" else Path(args.resume)
    if not source.is_file():
        raise FileNotFoundError(f"--resume {args.resume}: checkpoint not found: {source}")
    if args.resume != "latest":
        from .clip_finetune import is_open_clip_checkpoint

        state = torch.load(source, map_location="cpu", weights_only=True)
        if is_open_clip_checkpoint(state):
            return {"open_clip_checkpoint": state}
    config = source.parent.parent / "config.json"
    if not config.is_file():
        raise FileNotFoundError(f"--resume {args.resume}: expected the run's config {config} beside the checkpoint "
                                f"{source} (or an open_clip_train checkpoint with 'state_dict' and 'epoch')")
    from .runtime import world

    if source.resolve() != checkpoint.resolve() and world()[0] == 0:
        checkpoint.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, checkpoint)
    _barrier(world()[1])  # every rank finds the copied checkpoint
    return json.loads(config.read_text())


if __name__ == "__main__":
    main()
