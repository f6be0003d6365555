"""Real image-caption files into `train`: one reader per dataset type and a resumable loader per process.

    pairs = read_pairs("coco", "annotations/captions_train2017.json", images="train2017")
    loader = StepLoader(TrainPairs(pairs, transform), global_batch=256, collate=Collate(tokenizer), workers=4)
    images, ids, bad = loader(step)     # this process's share of global batch `step`

Global batch k is fixed by (seed, k) alone: every epoch is a fresh permutation of the images, each with one of
its captions drawn with the same seed, and process r of W takes the r-th contiguous slice. A run stopped after
step k therefore resumes at step k + 1 on any number of processes, reading exactly the batches it would have
read, with the same captions and the same random crops. A corrupt image is reported by path and replaced by the
next readable image, so every process keeps its batch size (the gathered loss needs equal shares) and an epoch
never stops halfway.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch
from PIL import Image

from ..assets import SHIPPED
from .formats import ImageCaptionDataset, load_coco_captions, load_csv_pairs, load_flickr30k, load_image_folder, to_rgb

DATASET_TYPES = ("csv", "coco", "flickr30k", "folder")
SAMPLES_DIR = SHIPPED / "samples"  # the small exports in every format (data/README.md), shipped with the package


def read_pairs(dataset_type: str, path: str | Path, *, images: str | Path | None = None, split: str = "train",
               csv_img_key: str = "filepath", csv_caption_key: str = "title", csv_separator: str | None = None,
               verify: bool = False) -> ImageCaptionDataset:
    """Images with at least one caption each, from a file in one of the real formats.

    Args:
        dataset_type: "csv" (open_clip's CSV/TSV; image paths relative to `images`, else to the CSV's folder),
            "coco" (captions JSON; images in `images`, default the folder `images/` beside the JSON),
            "flickr30k" (Karpathy's split JSON, for Flickr30K or COCO; `split` "train" also takes "restval",
            as Karpathy's COCO training set does) or "folder" (every image under `path` with its caption in a
            text file of the same name, `0001.jpg` + `0001.txt`, as img2dataset writes them).
        verify: decode every image now (slow on large sets). Either way missing images, images without a
            caption and (with verify) unreadable ones are left out and listed in `.skipped` as (path, reason).
    """
    if dataset_type not in DATASET_TYPES:
        raise ValueError(f"dataset type must be one of {DATASET_TYPES}, got {dataset_type!r}")
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{dataset_type} data not found: {path}")
    options = dict(on_error="skip", verify=verify)
    if dataset_type == "csv":
        data = load_csv_pairs(path, images, csv_img_key, csv_caption_key, csv_separator, **options)
    elif dataset_type == "folder":
        data = _captioned_folder(path, verify)
    else:
        images = Path(images) if images is not None else path.parent / "images"
        if not images.is_dir():
            raise FileNotFoundError(f"image folder not found: {images} (pass images= / --images)")
        if dataset_type == "coco":
            data = load_coco_captions(path, images, **options)
        else:
            parts = [load_flickr30k(path, images, s, **options)
                     for s in ([split, "restval"] if split == "train" else [split])]
            data = ImageCaptionDataset([r for p in parts for r in p.records], verify=False,
                                       skipped=[s for p in parts for s in p.skipped])
    uncaptioned = [(str(p), "no caption") for p, caps in data.records if not caps]
    data.records = [(p, caps) for p, caps in data.records if caps]
    data.skipped += uncaptioned
    if not data.records:
        raise ValueError(f"{path}: no image with a caption found ({len(data.skipped)} skipped, e.g. "
                         f"{data.skipped[:3]})"
                         + (f"; is split={split!r} in the file?" if dataset_type == "flickr30k" else ""))
    return data


def _captioned_folder(path: Path, verify: bool) -> ImageCaptionDataset:
    images = load_image_folder(path, verify=verify, on_error="skip")
    records, skipped = [], list(images.skipped)
    for image in images.paths:
        text = image.with_suffix(".txt")
        caption = text.read_text(encoding="utf-8").strip() if text.is_file() else ""
        if caption:
            records.append((image, [caption]))
        else:
            skipped.append((str(image), f"no caption: expected a non-empty {text.name} beside it"))
    return ImageCaptionDataset(records, verify=False, skipped=skipped)


def read_rgb(path: str | Path) -> Image.Image:
    """The image file decoded to RGB (PIL), or a ValueError / FileNotFoundError naming the file."""
    try:
        with Image.open(path) as im:
            return to_rgb(im)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: image file not found") from None
    except Exception as e:  # PIL raises several types for truncated or non-image files
        raise ValueError(f"{path}: cannot decode image ({type(e).__name__}: {e})") from None


class TrainPairs(torch.utils.data.Dataset):
    """Item (i, r) is (image i through `transform`, its caption r modulo its count, problems).

    `transform` runs with torch's random generator seeded by r (and restored after), so a random crop depends on
    (image, r) alone, not on which worker or process reads it. An image that cannot be read is reported in
    `problems` ("path: reason") and replaced by the next readable image in order, with that image's caption: the
    batch keeps its size and training goes on.
    """

    def __init__(self, data: ImageCaptionDataset, transform: Callable[[Image.Image], torch.Tensor]):
        if len(data) == 0:
            raise ValueError("expected a dataset with at least one captioned image, got none")
        self.data, self.transform = data, transform

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, str, list[str]]:
        i, r = key
        problems = []
        for k in range(len(self.data)):
            path, captions = self.data.records[(i + k) % len(self.data)]
            try:
                image = read_rgb(path)
            except (FileNotFoundError, ValueError) as e:
                problems.append(str(e))
                continue
            with torch.random.fork_rng(devices=[]):
                torch.default_generator.manual_seed(r)  # the CPU generator alone: torch.manual_seed costs 1 ms here
                return self.transform(image), captions[r % len(captions)], problems
        raise ValueError(f"none of the {len(self.data)} images could be read: {problems[:3]}")


class Collate:
    """(image, caption, problems) items -> (images (B, 3, S, S), token ids (B, L), problems of the batch)."""

    def __init__(self, tokenizer: Callable[[list[str]], torch.Tensor]):
        self.tokenizer = tokenizer

    def __call__(self, items: list) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
        images, captions, problems = zip(*items)
        return torch.stack(images), self.tokenizer(list(captions)), [p for ps in problems for p in ps]


class StepLoader:
    """step -> this process's share of global batch `step` (see the module docstring), read by a DataLoader
    with `workers` worker processes. `per_rank = True` tells `train` the batches are already split by rank.

    Args:
        global_batch: images per optimizer step over all processes; divisible by `world`.
        rank, world: this process and the number of processes (`setup_distributed()`).
    """

    per_rank = True

    def __init__(self, dataset: TrainPairs, global_batch: int, *, collate: Callable, seed: int = 0, workers: int = 0,
                 rank: int = 0, world: int = 1):
        if not 1 <= global_batch <= len(dataset):
            raise ValueError(f"global batch must be between 1 and the {len(dataset)} images, got {global_batch}")
        if global_batch % world:
            raise ValueError(f"a global batch of {global_batch} does not split evenly over {world} processes")
        self.dataset, self.global_batch, self.collate = dataset, global_batch, collate
        self.seed, self.workers, self.rank, self.world = seed, workers, rank, world
        self.steps_per_epoch = len(dataset) // global_batch  # the last partial batch of an epoch is dropped
        self._epoch: tuple[int, torch.Tensor, torch.Tensor] | None = None
        self._iterator, self._next = None, None

    def indices(self, step: int) -> list[tuple[int, int]]:
        """(image index, random number) of each image in this process's share of global batch `step`; the number
        picks its caption and seeds its augmentation for this epoch."""
        epoch, k = divmod(step, self.steps_per_epoch)
        if self._epoch is None or self._epoch[0] != epoch:
            g = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
            self._epoch = (epoch, torch.randperm(len(self.dataset), generator=g),
                           torch.randint(0, 2 ** 31 - 1, (len(self.dataset),), generator=g))
        _, order, caption_of = self._epoch
        share = self.global_batch // self.world
        start = k * self.global_batch + self.rank * share
        share_ids = order[start:start + share]
        return list(zip(share_ids.tolist(), caption_of[share_ids].tolist()))

    def __call__(self, step: int):
        if self._iterator is None or step != self._next:
            self._start(step)
        self._next = step + 1
        return next(self._iterator)

    def _start(self, step: int) -> None:
        loader = self

        class Steps:  # an endless batch sampler from `step` on
            def __iter__(self):
                s = step
                while True:
                    yield loader.indices(s)
                    s += 1

        self.close()
        self._iterator = iter(torch.utils.data.DataLoader(
            self.dataset, batch_sampler=Steps(), num_workers=self.workers, collate_fn=self.collate,
            pin_memory=torch.cuda.is_available()))

    def close(self) -> None:
        """Stop the worker processes (a new call starts them again)."""
        if self._iterator is not None and hasattr(self._iterator, "_shutdown_workers"):
            self._iterator._shutdown_workers()
        self._iterator = None
