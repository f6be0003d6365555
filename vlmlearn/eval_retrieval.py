"""Image-text retrieval on real data: Recall@1/5/10 both ways, as CLIP and open_clip report it.

Usage::

    # a vlmlearn model (`python -m vlmlearn.train_clip` writes model.safetensors + model.json)
    python -m vlmlearn.eval_retrieval --data dataset_flickr30k.json --images flickr30k-images \\
        --pretrained logs/run/model.safetensors
    # an open_clip model from a local weights file (Karpathy's COCO 5k test split)
    python -m vlmlearn.eval_retrieval --data dataset_coco.json --images coco --model ViT-B-32 --pretrained vit_b32.pt

Karpathy's split files (`--dataset-type flickr30k`, the default, for dataset_flickr30k.json and dataset_coco.json
alike) give the standard test sets: Flickr30K 1k and COCO 5k images, about five captions each. Every caption is a
query for its own image (text to image) and every image for its own captions (image to text: a hit when any of
them ranks in the top K). Images that cannot be read are reported by path and left out of the count.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .data.formats import ImageCaptionDataset
from .data.loader import DATASET_TYPES, read_pairs, read_rgb
from .eval import embed, retrieval_recall
from .runtime import eval_mode


class _Images(torch.utils.data.Dataset):
    def __init__(self, data: ImageCaptionDataset, transform: Callable):
        self.paths, self.transform = data.paths, transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.transform(read_rgb(self.paths[i]))


@torch.no_grad()
def encode_pairs(model: nn.Module, tokenizer: Callable, data: ImageCaptionDataset, transform: Callable, *,
                 batch_size: int = 256, workers: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Unit-norm image features (N, D), text features (M, D) of every caption, and the image index of each
    caption (M,), with `model.encode_image` / `encode_text` (a DualEncoder or an open_clip CLIP) in eval mode."""
    device = next(model.parameters()).device
    with eval_mode(model):
        loader = torch.utils.data.DataLoader(_Images(data, transform), batch_size=batch_size, num_workers=workers)
        images = torch.cat([F.normalize(model.encode_image(x.to(device)).float(), dim=-1).cpu() for x in loader])
        image_of, texts = data.pairs()
        text = embed(lambda t: model.encode_text(tokenizer(list(t)).to(device)), texts, batch_size=batch_size)
    return images, text, torch.tensor(image_of)


def retrieval_scores(model: nn.Module, tokenizer: Callable, data: ImageCaptionDataset, transform: Callable, *,
                     ks: Sequence[int] = (1, 5, 10), batch_size: int = 256, workers: int = 0) -> dict[str, float]:
    """{"i2t_r1", "t2i_r1", "i2t_r5", ...}: recall at each K, strict pairing (a caption is relevant only to its
    own image)."""
    images, texts, image_of = encode_pairs(model, tokenizer, data, transform, batch_size=batch_size, workers=workers)
    return retrieval_recall(images @ texts.T, image_of, ks=ks)


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
    p.add_argument("--model", help="open_clip model name or config JSON for --pretrained (omit for vlmlearn files)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--device", default=None, help="default: cuda, then mps, then cpu")
    p.add_argument("--output", help="also write the scores to this JSON file")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict:
    from . import clip_models
    from .runtime import get_device

    args = parse_args(argv)
    if args.model:
        bundle = clip_models.create(args.model, pretrained=args.pretrained)
    else:
        bundle = clip_models.load(args.pretrained)
    model = bundle.model.to(get_device(args.device)).eval()
    data = read_pairs(args.dataset_type, args.data, images=args.images, split=args.split, csv_img_key=args.csv_img_key,
                      csv_caption_key=args.csv_caption_key, csv_separator=args.csv_separator, verify=True)
    for path, reason in data.skipped:
        print(f"skipped {path}: {reason}", file=sys.stderr)
    scores = retrieval_scores(model, bundle.tokenizer, data, bundle.eval_transform, batch_size=args.batch_size,
                              workers=args.workers)
    n_captions = sum(len(c) for c in data.captions)
    result = {"data": str(args.data), "split": args.split, "images": len(data), "captions": n_captions,
              "skipped": len(data.skipped), "model": bundle.record.get("model", "shapes-clip"),
              "pretrained": str(args.pretrained), **scores}
    print(f"{result['model']} on {args.data}" + (f" ({args.split})" if args.dataset_type == "flickr30k" else "")
          + f": {len(data)} images, {n_captions} captions"
          + (f", {len(data.skipped)} skipped" if data.skipped else ""))
    print("           R@1    R@5    R@10")
    for direction, name in (("i2t", "image->text"), ("t2i", "text->image")):
        print(f"{name}  " + "  ".join(f"{100 * scores[f'{direction}_r{k}']:5.1f}" for k in (1, 5, 10)))
    if args.output:
        Path(args.output).write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
