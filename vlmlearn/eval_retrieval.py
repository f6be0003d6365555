"""Image-text retrieval on real data: Recall@1/5/10 both ways, as CLIP and open_clip report it.

Usage::

    # a vlmlearn model (`python -m vlmlearn.train_clip` writes model.safetensors + model.json)
    python -m vlmlearn.eval_retrieval --data dataset_flickr30k.json --images flickr30k-images \\
        --pretrained logs/run/model.safetensors
    # OpenAI's ViT-B/32 from a local file on Karpathy's COCO 5k test split (data/download.py coco-karpathy);
    # OpenAI trained with QuickGELU, so the architecture is open_clip's "-quickgelu" variant
    python -m vlmlearn.eval_retrieval --data data/coco-karpathy/dataset_coco.json --images data/coco-karpathy \\
        --model ViT-B-32-quickgelu --pretrained ViT-B-32-openai.pt --recall-k 1 5 10 --amp --output coco5k.json

Karpathy's split files (`--dataset-type flickr30k`, the default, for dataset_flickr30k.json and dataset_coco.json
alike) give the standard test sets: Flickr30K 1k and COCO 5k images, about five captions each. Every caption is a
query for its own image (text to image) and every image for its own captions (image to text: a hit when any of
them ranks in the top K). Images that cannot be read are reported by path and left out of the count.

`--output` writes CLIP_benchmark's result layout, so its `clip_benchmark build` reads the file beside its own:
{"dataset", "model", "pretrained", "task": "zeroshot_retrieval", "metrics": {...}} plus this run's "split",
"images", "captions", "skipped" and "amp". CLIP_benchmark names a metric by what is retrieved:
`image_retrieval_recall@K` is text -> image (vlmlearn's `t2i_rK`), `text_retrieval_recall@K` is image -> text
(`i2t_rK`).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import sys
import warnings
from pathlib import Path
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .data.formats import ImageCaptionDataset
from .data.loader import DATASET_TYPES, read_pairs, read_rgb
from .eval import embed, retrieval_recall
from .runtime import autocast_dtype, eval_mode


class _Images(torch.utils.data.Dataset):
    def __init__(self, data: ImageCaptionDataset, transform: Callable):
        self.paths, self.transform = data.paths, transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.transform(read_rgb(self.paths[i]))


# CLIP_benchmark's task name for image-text retrieval, written in every --output file
TASK = "zeroshot_retrieval"


@torch.no_grad()
def encode_pairs(model: nn.Module, tokenizer: Callable, data: ImageCaptionDataset, transform: Callable, *,
                 batch_size: int = 256, workers: int = 0,
                 autocast: torch.dtype | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Unit-norm image features (N, D), text features (M, D) of every caption, and the image index of each
    caption (M,), with `model.encode_image` / `encode_text` (a DualEncoder or an open_clip CLIP) in eval mode.
    `autocast`: the dtype to run the encoders in under `torch.autocast` (None: full precision); the features
    come back as float32 either way."""
    device = next(model.parameters()).device
    precision = torch.autocast(device.type, dtype=autocast) if autocast is not None else contextlib.nullcontext()
    with eval_mode(model), precision:
        loader = torch.utils.data.DataLoader(_Images(data, transform), batch_size=batch_size, num_workers=workers)
        images = torch.cat([F.normalize(model.encode_image(x.to(device)).float(), dim=-1).cpu() for x in loader])
        image_of, texts = data.pairs()
        text = embed(lambda t: model.encode_text(tokenizer(list(t)).to(device)), texts, batch_size=batch_size)
    return images, text, torch.tensor(image_of)


def retrieval_scores(model: nn.Module, tokenizer: Callable, data: ImageCaptionDataset, transform: Callable, *,
                     ks: Sequence[int] = (1, 5, 10), batch_size: int = 256, workers: int = 0,
                     autocast: torch.dtype | None = None) -> dict[str, float]:
    """{"i2t_r1", "t2i_r1", "i2t_r5", ...}: recall at each K, strict pairing (a caption is relevant only to its
    own image). `autocast` as in `encode_pairs`."""
    images, texts, image_of = encode_pairs(model, tokenizer, data, transform, batch_size=batch_size, workers=workers,
                                           autocast=autocast)
    return retrieval_recall(images @ texts.T, image_of, ks=ks)


def clip_benchmark_metrics(scores: dict[str, float], *, ks: Sequence[int]) -> dict[str, float]:
    """vlmlearn's recall names -> CLIP_benchmark's, K by K: `image_retrieval_recall@K` (a caption finds its
    image: `t2i_rK`) and `text_retrieval_recall@K` (an image finds one of its captions: `i2t_rK`)."""
    metrics = {}
    for k in ks:
        metrics[f"image_retrieval_recall@{k}"] = scores[f"t2i_r{k}"]
        metrics[f"text_retrieval_recall@{k}"] = scores[f"i2t_r{k}"]
    return metrics


def quickgelu_warning(model: nn.Module, *, model_name: str, pretrained: str | Path) -> str | None:
    """Why OpenAI's weights in this model would score low, or None when nothing looks wrong.

    OpenAI trained CLIP with QuickGELU (x * sigmoid(1.702 x)); open_clip's plain names ("ViT-B-32") build nn.GELU
    and its "-quickgelu" names ("ViT-B-32-quickgelu") QuickGELU. open_clip warns about a mismatch only for its own
    download tags (pretrained="openai"), not for a local file, so this checks what the tags cannot: a `pretrained`
    file whose name mentions "openai" (the folders above it are not read) loaded into a model without any QuickGELU
    module."""
    if "openai" not in Path(pretrained).name.lower():
        return None
    if any(type(module).__name__ == "QuickGELU" for module in model.modules()):
        return None
    return (f"{pretrained} looks like OpenAI's CLIP weights, which were trained with QuickGELU, but {model_name} "
            f"uses nn.GELU: the weights load without error and recall comes out lower. Use "
            f"--model {model_name}-quickgelu (open_clip's name for the same architecture with QuickGELU), or "
            f'"quick_gelu": true in a model config file.')


def amp_dtype(device: torch.device, *, amp: bool) -> torch.dtype | None:
    """The autocast dtype --amp gives on `device`, as training picks it (`runtime.autocast_dtype`): bfloat16 on
    GPUs that support it, else float16; None (full precision) without --amp and on CPU and MPS."""
    return autocast_dtype(device) if amp else None


def result_record(scores: dict[str, float], *, ks: Sequence[int], args: argparse.Namespace, model_name: str,
                  data: ImageCaptionDataset, autocast: torch.dtype | None) -> dict:
    """What --output writes: CLIP_benchmark's layout ({"dataset", "model", "pretrained", "task", "metrics"}) and
    this run's split, counts and precision beside it."""
    return {"dataset": str(args.data), "model": model_name, "pretrained": str(args.pretrained), "task": TASK,
            "metrics": clip_benchmark_metrics(scores, ks=ks), "split": args.split, "images": len(data),
            "captions": sum(len(c) for c in data.captions), "skipped": len(data.skipped),
            "amp": None if autocast is None else str(autocast).removeprefix("torch.")}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m vlmlearn.eval_retrieval", description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True,
                   help="annotation file (Karpathy split JSON, COCO captions JSON, CSV) or folder")
    p.add_argument("--dataset-type", choices=DATASET_TYPES, default="flickr30k",
                   help="flickr30k: Karpathy's split format, also for dataset_coco.json (default)")
    p.add_argument("--images", help="image folder (default: images/ beside the annotation file)")
    p.add_argument("--split", default="test", help="the Karpathy split to evaluate (default test)")
    p.add_argument("--csv-img-key", default="filepath")
    p.add_argument("--csv-caption-key", default="title")
    p.add_argument("--csv-separator", default=None, help="default: detected from the header")
    p.add_argument("--pretrained", required=True,
                   help="weights file: a vlmlearn model.safetensors (with its .json), or with --model an open_clip "
                        "checkpoint")
    p.add_argument("--model", help="open_clip model name or config JSON for --pretrained (omit for vlmlearn files); "
                                   "OpenAI's weights need a '-quickgelu' name, e.g. ViT-B-32-quickgelu")
    p.add_argument("--recall-k", type=int, nargs="+", default=[1, 5, 10], metavar="K",
                   help="the K of Recall@K, one or more (default: 1 5 10)")
    p.add_argument("--amp", action="store_true",
                   help="encode under autocast: bf16 on GPUs that support it, else fp16; on CPU and MPS nothing "
                        "changes (full precision, and the command says so)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--device", default=None, help="default: cuda, then mps, then cpu")
    p.add_argument("--output", help="also write the scores to this JSON file, in CLIP_benchmark's result layout")
    args = p.parse_args(argv)
    if any(k < 1 for k in args.recall_k):
        p.error(f"--recall-k: expected positive integers, got {args.recall_k}")
    args.recall_k = sorted(set(args.recall_k))
    return args


def load_model(args: argparse.Namespace):
    """The bundle --model / --pretrained name (see `clip_models`), with the QuickGELU check for open_clip models."""
    from . import clip_models

    if not args.model:
        return clip_models.load(args.pretrained)
    bundle = clip_models.create(args.model, pretrained=args.pretrained)
    warning = quickgelu_warning(bundle.model, model_name=bundle.record["model"], pretrained=args.pretrained)
    if warning:
        warnings.warn(warning, UserWarning, stacklevel=2)
    return bundle


def print_scores(scores: dict[str, float], *, ks: Sequence[int]) -> None:
    """The recall table, in percent: one row per direction, one column per K."""
    print(" " * len("image->text") + "".join(f" {f'R@{k}':>6}" for k in ks))
    for direction, name in (("i2t", "image->text"), ("t2i", "text->image")):
        print(name + "".join(f" {100 * scores[f'{direction}_r{k}']:6.1f}" for k in ks))


def main(argv: Sequence[str] | None = None) -> dict:
    """Run the evaluation; returns vlmlearn's flat record ("i2t_r1", "t2i_r1", ..., and the counts), while --output
    gets CLIP_benchmark's layout (`result_record`)."""
    from .runtime import get_device

    args = parse_args(argv)
    bundle = load_model(args)
    device = get_device(args.device)
    model = bundle.model.to(device).eval()
    autocast = amp_dtype(device, amp=args.amp)
    if args.amp and autocast is None:
        print(f"--amp: no autocast on {device.type}, full precision", file=sys.stderr)
    data = read_pairs(args.dataset_type, args.data, images=args.images, split=args.split, csv_img_key=args.csv_img_key,
                      csv_caption_key=args.csv_caption_key, csv_separator=args.csv_separator, verify=True)
    for path, reason in data.skipped:
        print(f"skipped {path}: {reason}", file=sys.stderr)
    scores = retrieval_scores(model, bundle.tokenizer, data, bundle.eval_transform, ks=args.recall_k,
                              batch_size=args.batch_size, workers=args.workers, autocast=autocast)
    record = result_record(scores, ks=args.recall_k, args=args, model_name=bundle.record.get("model", "shapes-clip"),
                           data=data, autocast=autocast)
    result = {"data": str(args.data), "split": args.split, "images": record["images"], "captions": record["captions"],
              "skipped": record["skipped"], "model": record["model"], "pretrained": str(args.pretrained), **scores}
    print(f"{result['model']} on {args.data}" + (f" ({args.split})" if args.dataset_type == "flickr30k" else "")
          + f": {len(data)} images, {record['captions']} captions"
          + (f", {len(data.skipped)} skipped" if data.skipped else "")
          + (f", autocast {record['amp']}" if autocast is not None else ""))
    print_scores(scores, ks=args.recall_k)
    if args.output:
        Path(args.output).write_text(json.dumps(record, indent=1))
    return result


if __name__ == "__main__":
    main()
