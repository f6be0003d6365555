"""Webdataset shards (tar files of `key.jpg` + `key.txt`, as img2dataset writes them) read by position, for `train`.

    shards = read_shards("pairs/{00000..00009}.tar")       # brace notation and "::" between sources, as open_clip
    loader = StepLoader(TarPairs(shards, transform), global_batch=256, collate=Collate(tokenizer), workers=4)

open_clip streams shards through shuffle buffers; here every shard is indexed once at start (where each image's bytes
lie in its tar, and its caption), so a sample is read by its number like an image file: the same global batches for
any number of processes, and `--resume` continues exactly where a run stopped (`vlmlearn.data.loader`). Only plain
(uncompressed) tars can be read by position, which is what img2dataset and webdataset's `TarWriter` write.
"""
from __future__ import annotations

import io
import re
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from PIL import Image

from .formats import to_rgb

IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp")
_BRACES = re.compile(r"\{([^{}]*)\}")
_KEY_AND_EXTENSION = re.compile(r"^((?:.*/|)[^./]+)\.([^/]*)$")  # webdataset's rule: the key ends at the first dot


@dataclass
class TarSample:
    """Where one image lies (its tar, the byte offset and size of its data) and its caption."""

    shard: str
    offset: int
    size: int
    key: str
    caption: str


@dataclass
class Shards:
    """The samples of a set of shards, in shard order, and what was left out as (shard/key, reason)."""

    samples: list[TarSample]
    shards: list[str]
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.samples)


def expand_urls(spec: str) -> list[str]:
    """open_clip's shard list: sources separated by "::", each with brace notation: "a/{000..009}.tar" (a range,
    zero-padded as written) or "{train,extra}.tar" (alternatives)."""
    return [url for part in spec.split("::") if part for url in _expand_braces(part)]


def _expand_braces(pattern: str) -> list[str]:
    match = _BRACES.search(pattern)
    if match is None:
        return [pattern]
    numbers = re.fullmatch(r"(\d+)\.\.(\d+)", match.group(1))
    if numbers:
        first, last = numbers.groups()
        items = [str(i).zfill(len(first)) for i in range(int(first), int(last) + 1)]
    else:
        items = match.group(1).split(",")
    return [url for item in items for url in _expand_braces(pattern[:match.start()] + item + pattern[match.end():])]


def read_shards(spec: str) -> Shards:
    """Index every shard of `spec`: a FileNotFoundError names a missing shard, a ValueError a compressed or broken one.
    A sample without an image or without a non-empty caption is skipped and listed in `.skipped`."""
    urls = expand_urls(spec)
    missing = [u for u in urls if not Path(u).is_file()]
    if not urls or missing:
        raise FileNotFoundError(f"webdataset shard not found: {missing[0] if missing else spec!r} "
                                f"({len(missing)} of the {len(urls)} shards that {spec!r} names are missing)")
    samples, skipped = [], []
    for url in urls:
        found, problems = _index_shard(url)
        samples += found
        skipped += problems
    if not samples:
        raise ValueError(f"{spec}: no sample with an image ({'/'.join(IMAGE_EXTENSIONS)}) and a txt caption "
                         f"({len(skipped)} skipped, e.g. {skipped[:3]})")
    return Shards(samples, urls, skipped)


def _index_shard(url: str) -> tuple[list[TarSample], list[tuple[str, str]]]:
    try:
        tar = tarfile.open(url, mode="r:")  # "r:": plain tar only, so that offsets point into the file itself
    except tarfile.ReadError as e:
        raise ValueError(f"{url}: expected an uncompressed tar shard ({e})") from None
    members: dict[str, dict[str, tarfile.TarInfo]] = {}
    with tar:
        for member in tar:
            match = _KEY_AND_EXTENSION.match(member.name)
            if member.isfile() and match:
                members.setdefault(match.group(1), {})[match.group(2).lower()] = member
        captions = {key: tar.extractfile(parts["txt"]).read().decode("utf-8").strip()
                    for key, parts in members.items() if "txt" in parts}
    samples, skipped = [], []
    for key, parts in members.items():
        image = next((parts[ext] for ext in IMAGE_EXTENSIONS if ext in parts), None)
        if image is None or not captions.get(key):
            skipped.append((f"{url}/{key}", "no image" if image is None else "no caption: expected a non-empty .txt"))
            continue
        samples.append(TarSample(url, image.offset_data, image.size, key, captions[key]))
    return samples, skipped


def read_sample_image(sample: TarSample) -> Image.Image:
    """The sample's image decoded to RGB, or a ValueError naming the shard and key."""
    with open(sample.shard, "rb") as f:
        f.seek(sample.offset)
        data = f.read(sample.size)
    try:
        with Image.open(io.BytesIO(data)) as im:
            return to_rgb(im)
    except Exception as e:  # PIL raises several types for truncated or non-image data
        raise ValueError(f"{sample.shard}/{sample.key}: cannot decode image ({type(e).__name__}: {e})") from None


class TarPairs(torch.utils.data.Dataset):
    """`vlmlearn.data.loader.TrainPairs` for shards: item (i, r) is (image i through `transform`, its caption,
    problems), the transform seeded by r; an unreadable image is reported and replaced by the next readable one."""

    def __init__(self, shards: Shards, transform: Callable[[Image.Image], torch.Tensor]):
        self.shards, self.transform = shards, transform

    def __len__(self) -> int:
        return len(self.shards)

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, str, list[str]]:
        i, r = key
        problems = []
        for k in range(len(self.shards)):
            sample = self.shards.samples[(i + k) % len(self.shards)]
            try:
                image = read_sample_image(sample)
            except ValueError as e:
                problems.append(str(e))
                continue
            with torch.random.fork_rng(devices=[]):
                torch.default_generator.manual_seed(r)
                return self.transform(image), sample.caption, problems
        raise ValueError(f"none of the {len(self.shards)} images could be read: {problems[:3]}")
