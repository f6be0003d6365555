"""Readers and writers for real image-caption formats.

- COCO captions JSON: {"images": [{"id", "file_name"}], "annotations": [{"image_id", "caption"}]}
- Flickr30K in Karpathy's split JSON: {"images": [{"filename", "split", "sentences": [{"raw"}]}]}
- open_clip's CSV/TSV: one row per (image, caption), columns `filepath` and `title`
- a plain folder of images, searched recursively (unlabeled data)

Every loader returns an `ImageCaptionDataset`: item i is (image, captions) with image an RGB
float tensor (3, S, S) in [0, 1] (resized on its short side, then centre-cropped, as CLIP does) and
captions the list of all captions of that image. Problems are reported by file: a missing or
unreadable image, an annotation that names an unknown image, an empty caption. With
`on_error="skip"` such entries are dropped and listed in `dataset.skipped` instead.

The writers export a ShapesWorld `Batch` as PNG files plus the annotation file, so that a learner
can open real files and train on them exactly as on COCO. By default each image gets its batch
caption; pass `captions=` (one list per image, e.g. `paraphrases(batch.attributes)`) for several.
"""
from __future__ import annotations

import csv
import json
from collections import defaultdict
from pathlib import Path

import torch
from PIL import Image

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")


class ImageCaptionDataset(torch.utils.data.Dataset):
    """Images on disk with zero or more captions each.

    Args:
        records: (image path, captions) per image; captions may be empty (unlabeled images).
        image_size: side of the returned square images.
        on_error: "raise" stops at the first bad image with an error naming it; "skip" drops it
            and records (path, reason) in `self.skipped`.
        verify: decode every image once up front so that corrupt or truncated files are found now,
            not halfway through training. Set False for very large sets; errors then surface (by
            path) when the image is first read.
    """

    def __init__(self, records: list[tuple[Path, list[str]]], *, image_size: int = 32,
                 on_error: str = "raise", verify: bool = True, skipped: list | None = None):
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
        if image_size < 1:
            raise ValueError(f"image_size must be positive, got {image_size}")
        self.image_size, self.on_error = image_size, on_error
        self.skipped: list[tuple[str, str]] = list(skipped or [])
        self.records = []
        for path, captions in records:
            path = Path(path)
            problem = _check_image(path, verify)
            if problem:
                self._fail(path, problem)
            else:
                self.records.append((path, list(captions)))

    def _fail(self, path, reason: str) -> None:
        if self.on_error == "raise":
            raise (FileNotFoundError if "not found" in reason else ValueError)(f"{path}: {reason}")
        self.skipped.append((str(path), reason))

    def __len__(self) -> int:
        return len(self.records)

    @property
    def paths(self) -> list[Path]:
        return [p for p, _ in self.records]

    @property
    def captions(self) -> list[list[str]]:
        return [c for _, c in self.records]

    def __getitem__(self, i: int) -> tuple[torch.Tensor, list[str]]:
        path, captions = self.records[i]
        return load_image(path, self.image_size), captions

    def images(self) -> torch.Tensor:
        """All images stacked: (N, 3, S, S)."""
        if not self.records:
            return torch.zeros(0, 3, self.image_size, self.image_size)
        return torch.stack([load_image(p, self.image_size) for p in self.paths])

    def pairs(self) -> tuple[list[int], list[str]]:
        """Flatten to one entry per caption: (image index of each caption, captions)."""
        image_of, texts = [], []
        for i, (_, caps) in enumerate(self.records):
            image_of += [i] * len(caps)
            texts += caps
        return image_of, texts

    def __repr__(self) -> str:
        n_caps = sum(len(c) for c in self.captions)
        return (f"ImageCaptionDataset({len(self)} images, {n_caps} captions, "
                f"image_size={self.image_size}, skipped={len(self.skipped)})")


def _check_image(path: Path, verify: bool) -> str | None:
    if not path.is_file():
        return "image file not found"
    if not verify:
        return None
    try:
        with Image.open(path) as im:
            im.load()
    except Exception as e:  # PIL raises several types for truncated or non-image files
        return f"cannot decode image ({type(e).__name__}: {e})"
    return None


def to_rgb(im: Image.Image) -> Image.Image:
    """Grayscale, CMYK, palette and RGBA images to RGB; transparency is composited on white."""
    if im.mode == "P" or im.mode == "LA" or (im.mode in ("L", "RGB") and "transparency" in im.info):
        im = im.convert("RGBA")
    if im.mode == "RGBA":
        background = Image.new("RGB", im.size, (255, 255, 255))
        background.paste(im, mask=im.getchannel("A"))
        return background
    return im.convert("RGB")


def load_image(path: str | Path, image_size: int) -> torch.Tensor:
    """One image file as an RGB tensor (3, image_size, image_size) in [0, 1].

    The short side is resized to image_size (bicubic) and the centre cropped; an image already at
    that size is returned untouched, pixel for pixel.
    """
    from torchvision.transforms.v2 import functional as TF

    try:
        with Image.open(path) as im:
            im = to_rgb(im)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: image file not found") from None
    except Exception as e:
        raise ValueError(f"{path}: cannot decode image ({type(e).__name__}: {e})") from None
    if im.size != (image_size, image_size):
        im = TF.center_crop(TF.resize(im, image_size, interpolation=TF.InterpolationMode.BICUBIC),
                            [image_size, image_size])
    return TF.pil_to_tensor(im).float().div_(255)  # the same arithmetic as ShapesWorld, bit for bit


def _check_caption(caption, where: str, on_error: str, skipped: list) -> bool:
    if isinstance(caption, str) and caption.strip():
        return True
    message = f"{where}: empty caption {caption!r}"
    if on_error == "raise":
        raise ValueError(message + " (pass on_error='skip' to drop such captions)")
    skipped.append((where, f"empty caption {caption!r}"))
    return False


def _read_json(path: Path, keys: tuple[str, ...]) -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"annotation file not found: {path}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from None
    missing = [k for k in keys if k not in data]
    if missing:
        raise ValueError(f"{path}: expected top-level keys {list(keys)}, missing {missing}")
    return data


def load_coco_captions(annotations_json: str | Path, images_dir: str | Path, *, image_size: int = 32,
                       on_error: str = "raise", verify: bool = True) -> ImageCaptionDataset:
    """COCO captions (e.g. captions_train2017.json): every image with all of its captions.

    Images without any caption are left out; an annotation whose image_id is not among the images
    is an error (or skipped and counted with on_error="skip").
    """
    data = _read_json(annotations_json, ("images", "annotations"))
    skipped: list = []
    by_id = {img["id"]: img["file_name"] for img in data["images"]}
    captions: dict[int, list[str]] = defaultdict(list)
    for ann in data["annotations"]:
        where = f"{annotations_json} annotation {ann.get('id', '?')}"
        if ann["image_id"] not in by_id:
            message = f"{where}: refers to unknown image_id {ann['image_id']}"
            if on_error == "raise":
                raise ValueError(message)
            skipped.append((where, f"unknown image_id {ann['image_id']}"))
            continue
        if _check_caption(ann.get("caption"), where, on_error, skipped):
            captions[ann["image_id"]].append(ann["caption"].strip())
    records = [(Path(images_dir) / by_id[i], caps) for i, caps in sorted(captions.items())]
    return ImageCaptionDataset(records, image_size=image_size, on_error=on_error, verify=verify,
                               skipped=skipped)


def load_flickr30k(karpathy_json: str | Path, images_dir: str | Path, split: str = "train", *,
                   image_size: int = 32, on_error: str = "raise", verify: bool = True) -> ImageCaptionDataset:
    """Flickr30K (or COCO) in Karpathy's split format (dataset_flickr30k.json), one split."""
    if split not in ("train", "val", "test", "restval"):
        raise ValueError(f"split must be train, val, test or restval, got {split!r}")
    data = _read_json(karpathy_json, ("images",))
    skipped: list = []
    records = []
    for img in data["images"]:
        if img.get("split") != split:
            continue
        caps = []
        for k, sentence in enumerate(img.get("sentences", [])):
            where = f"{karpathy_json} image {img['filename']} sentence {k}"
            if _check_caption(sentence.get("raw"), where, on_error, skipped):
                caps.append(sentence["raw"].strip())
        records.append((Path(images_dir) / img.get("filepath", "") / img["filename"], caps))
    return ImageCaptionDataset(records, image_size=image_size, on_error=on_error, verify=verify,
                               skipped=skipped)


def load_csv_pairs(path: str | Path, images_dir: str | Path | None = None, img_key: str = "filepath",
                   caption_key: str = "title", sep: str | None = None, *, image_size: int = 32,
                   on_error: str = "raise", verify: bool = True) -> ImageCaptionDataset:
    """open_clip-style CSV/TSV pairs. Rows sharing an image path are merged into one image.

    sep=None sniffs the separator (open_clip writes tabs). Relative image paths are resolved
    against `images_dir`, or the CSV file's own folder when images_dir is None.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"CSV file not found: {path}")
    text = path.read_text(encoding="utf-8")
    if sep is None:
        try:
            sep = csv.Sniffer().sniff(text.splitlines()[0], delimiters="\t,;|").delimiter
        except (csv.Error, IndexError):
            raise ValueError(f"{path}: cannot detect the separator; pass sep='\\t' or sep=','") from None
    reader = csv.DictReader(text.splitlines(), delimiter=sep)
    missing = [k for k in (img_key, caption_key) if k not in (reader.fieldnames or [])]
    if missing:
        raise ValueError(f"{path}: expected columns {img_key!r} and {caption_key!r}, "
                         f"found {reader.fieldnames}; set img_key= and caption_key=")
    root = Path(images_dir) if images_dir is not None else path.parent
    captions: dict[str, list[str]] = {}
    skipped: list = []
    for row_number, row in enumerate(reader, start=2):
        captions.setdefault(row[img_key], [])
        if _check_caption(row[caption_key], f"{path} line {row_number}", on_error, skipped):
            captions[row[img_key]].append(row[caption_key].strip())
    records = [(root / p, caps) for p, caps in captions.items()]
    return ImageCaptionDataset(records, image_size=image_size, on_error=on_error, verify=verify,
                               skipped=skipped)


def load_image_folder(path: str | Path, *, image_size: int = 32, on_error: str = "raise",
                      verify: bool = True) -> ImageCaptionDataset:
    """Every image under `path` (recursively, sorted), with no captions: unlabeled data."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"image folder not found: {path}")
    files = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
    if not files:
        raise ValueError(f"{path}: no image files found (looked for {', '.join(IMAGE_EXTENSIONS)})")
    return ImageCaptionDataset([(p, []) for p in files], image_size=image_size, on_error=on_error,
                               verify=verify)


# ------------------------------------------------------------------------------------ writers
def _write_pngs(images: torch.Tensor, folder: Path) -> list[str]:
    if images is None or images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"expected a batch with images of shape (N, 3, S, S), got "
                         f"{None if images is None else tuple(images.shape)}")
    folder.mkdir(parents=True, exist_ok=True)
    arrays = images.mul(255).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    names = [f"{i:06d}.png" for i in range(len(arrays))]
    for name, a in zip(names, arrays):
        Image.fromarray(a).save(folder / name)
    return names


def _captions_of(batch, captions) -> list[list[str]]:
    caps = batch.captions if captions is None else captions
    if caps is None:
        raise ValueError("expected a batch with captions (e.g. world.pairs(n)), got captions=None")
    if len(caps) != len(batch.images):
        raise ValueError(f"expected one caption list per image ({len(batch.images)}), got {len(caps)}")
    return [[c] if isinstance(c, str) else list(c) for c in caps]


def export_coco_captions(batch, out_dir: str | Path, captions: list[list[str]] | None = None) -> Path:
    """Write `out_dir/images/*.png` and `out_dir/captions.json` in COCO format; returns the JSON path."""
    out = Path(out_dir)
    names = _write_pngs(batch.images, out / "images")
    images, annotations = [], []
    s = batch.images.shape[-1]
    for i, (name, caps) in enumerate(zip(names, _captions_of(batch, captions))):
        images.append({"id": i, "file_name": name, "width": s, "height": s})
        annotations += [{"id": len(annotations), "image_id": i, "caption": c} for c in caps]
    path = out / "captions.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations}, indent=1))
    return path


def export_flickr30k(batch, out_dir: str | Path, split: str = "train", captions: list[list[str]] | None = None) -> Path:
    """Write `out_dir/images/*.png` and `out_dir/dataset_flickr30k.json` (Karpathy format)."""
    out = Path(out_dir)
    names = _write_pngs(batch.images, out / "images")
    images = [{"filename": name, "imgid": i, "split": split,
               "sentences": [{"raw": c, "tokens": c.split(), "imgid": i} for c in caps]}
              for i, (name, caps) in enumerate(zip(names, _captions_of(batch, captions)))]
    path = out / "dataset_flickr30k.json"
    path.write_text(json.dumps({"images": images, "dataset": "flickr30k"}, indent=1))
    return path


def export_csv_pairs(batch, out_dir: str | Path, sep: str = "\t", captions: list[list[str]] | None = None) -> Path:
    """Write `out_dir/images/*.png` and `out_dir/pairs.csv` (open_clip columns filepath, title).

    Paths are relative to out_dir: run `python -m open_clip_train.main --train-data pairs.csv
    --csv-separator $'\\t'` from that folder, or rewrite them as absolute paths.
    """
    out = Path(out_dir)
    names = _write_pngs(batch.images, out / "images")
    path = out / "pairs.csv"
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, delimiter=sep)
        writer.writerow(["filepath", "title"])
        for name, caps in zip(names, _captions_of(batch, captions)):
            writer.writerows([f"images/{name}", c] for c in caps)
    return path
