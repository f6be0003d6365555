"""Download real image-caption data for users with internet (tests never run this).

    python data/download.py coco --out data/coco            # captions + val2017 images (~1 GB)
    python data/download.py coco --out data/coco --annotations-only
    python data/download.py coco-karpathy                   # the COCO 5k test: dataset_coco.json + its val2014 images
    python data/download.py coco-karpathy --dry-run         # what it would fetch, nothing downloaded
    python data/download.py coco-karpathy --instructions    # the same by hand
    python data/download.py flickr30k                       # prints how to get it (licence form)

Then, in a notebook:

    from vlmlearn.data import load_coco_captions
    ds = load_coco_captions("data/coco/annotations/captions_val2017.json", "data/coco/val2017", image_size=64)

COCO 2017's splits are not the ones papers report retrieval on: the COCO 5k test is Karpathy's split of COCO 2014
(dataset_coco.json, whose test images all come from val2014), so `coco-karpathy` fetches that file and the images of
one of its splits (test by default, ~0.8 GB, one file at a time, skipping those already there), or with
`--all-val2014` the whole val2014 archive (6.2 GB). Then:

    python -m vlmlearn.eval_retrieval --data data/coco-karpathy/dataset_coco.json --images data/coco-karpathy

Offline, or with the server unreachable, the script stops with a clear message and exit code 1.
"""
import argparse
import json
import sys
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

COCO = {
    "annotations": "http://images.cocodataset.org/annotations/annotations_trainval2017.zip",
    "val2017": "http://images.cocodataset.org/zips/val2017.zip",
    "val2014": "http://images.cocodataset.org/zips/val2014.zip",
}
# Karpathy's split files (dataset_coco.json, dataset_flickr30k.json, dataset_flickr8k.json) in one archive
KARPATHY_SPLITS = "https://cs.stanford.edu/people/karpathy/deepimagesent/caption_datasets.zip"
# one COCO image: its Karpathy `filepath` (val2014, train2014) and `filename`
COCO_IMAGE = "http://images.cocodataset.org/{filepath}/{filename}"

KARPATHY_HELP = f"""The COCO 5k test (Karpathy's split of COCO 2014), by hand:
  1. Download {KARPATHY_SPLITS}
     and take dataset_coco.json out of it: data/coco-karpathy/dataset_coco.json
     (the same file is mirrored on Kaggle and Hugging Face as "Karpathy splits" / "caption_datasets").
  2. Download {COCO["val2014"]} (6.2 GB) and unpack it so that the images are in
     data/coco-karpathy/val2014/COCO_val2014_*.jpg (the 5,000 test images are all there; train2014 is not needed).
  3. python -m vlmlearn.eval_retrieval --data data/coco-karpathy/dataset_coco.json --images data/coco-karpathy
     (add --model ViT-B-32-quickgelu --pretrained <OpenAI weights file> for OpenAI's CLIP)
"""

FLICKR_HELP = """Flickr30K images are distributed only after accepting its terms of use:
  1. Request the images from the Flickr30K authors (search "Flickr30K dataset request form") and
     unpack them to data/flickr30k/images/.
  2. Get Karpathy's split file dataset_flickr30k.json (it ships in the "caption_datasets" archive
     used by most captioning code) and put it in data/flickr30k/.
  3. load_flickr30k("data/flickr30k/dataset_flickr30k.json", "data/flickr30k/images", split="test")
"""


def fetch(url: str, dest: Path) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists():
        print(f"already there: {dest}")
        return dest
    print(f"downloading {url} -> {dest}")
    try:
        with urllib.request.urlopen(url, timeout=30) as response, open(dest.with_suffix(".part"), "wb") as f:
            total = int(response.headers.get("Content-Length", 0))
            done = 0
            while chunk := response.read(1 << 20):
                f.write(chunk)
                done += len(chunk)
                if total:
                    print(f"\r  {done / total:6.1%} of {total / 1e6:.0f} MB", end="", flush=True)
        print()
    except (urllib.error.URLError, TimeoutError, OSError) as e:
        dest.with_suffix(".part").unlink(missing_ok=True)
        sys.exit(f"cannot download {url}: {e}\nNo internet here? Download it elsewhere and put it at {dest}; "
                 f"the course itself never needs it (ShapesWorld and the bundled digits run offline).")
    dest.with_suffix(".part").rename(dest)
    return dest


def karpathy_images(split_file: Path, split: str) -> list[tuple[str, str]]:
    """(filepath, filename) of every image of `split` in a Karpathy split file, in the file's order."""
    images = json.loads(Path(split_file).read_text())["images"]
    return [(img.get("filepath", ""), img["filename"]) for img in images if img["split"] == split]


def karpathy_missing(out: Path, split: str) -> list[tuple[str, Path]]:
    """(url, destination) of each image of `split` that out/dataset_coco.json lists and out/ does not hold yet."""
    wanted = karpathy_images(out / "dataset_coco.json", split)
    todo = [(COCO_IMAGE.format(filepath=folder, filename=name), out / folder / name) for folder, name in wanted]
    return [(url, dest) for url, dest in todo if not dest.exists()]


def fetch_images(todo: list[tuple[str, Path]]) -> None:
    """Download one small file per (url, destination), printing a count instead of a line per file."""
    for i, (url, dest) in enumerate(todo, 1):
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            with urllib.request.urlopen(url, timeout=30) as response:
                data = response.read()
        except (urllib.error.URLError, TimeoutError, OSError) as e:
            sys.exit(f"cannot download {url}: {e}\n{i - 1} of {len(todo)} images fetched; run the same command again "
                     f"to fetch the rest, or follow --instructions")
        dest.with_suffix(".part").write_bytes(data)
        dest.with_suffix(".part").rename(dest)
        print(f"\r  {i} of {len(todo)} images", end="", flush=True)
    print()


def coco_karpathy(out: Path, *, split: str, all_val2014: bool, dry_run: bool) -> None:
    """Karpathy's dataset_coco.json into `out`, then the images of `split` (or the whole val2014 archive)."""
    split_file = out / "dataset_coco.json"
    if dry_run:
        if not split_file.exists():
            print(f"would download {KARPATHY_SPLITS} and keep dataset_coco.json as {split_file}")
            print(f"then the {split} images it lists, one by one from {COCO_IMAGE}")
            return
        if all_val2014:
            print(f"would download {COCO['val2014']} and unpack it into {out}")
            return
        todo = karpathy_missing(out, split)
        print(f"would download {len(todo)} {split} images into {out}")
        for url, dest in todo:
            print(f"  {url} -> {dest}")
        return
    if not split_file.exists():
        archive = fetch(KARPATHY_SPLITS, out / "caption_datasets.zip")
        with zipfile.ZipFile(archive) as z:
            member = next(n for n in z.namelist() if n.endswith("dataset_coco.json"))
            split_file.write_bytes(z.read(member))
    if all_val2014:
        with zipfile.ZipFile(fetch(COCO["val2014"], out / "val2014.zip")) as z:
            z.extractall(out)
    else:
        todo = karpathy_missing(out, split)
        print(f"{len(todo)} {split} images to fetch into {out}")
        fetch_images(todo)
    print(f"done: {out}\n  python -m vlmlearn.eval_retrieval --data {split_file} --images {out} --split {split}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", choices=["coco", "coco-karpathy", "flickr30k"])
    parser.add_argument("--out", type=Path, default=None,
                        help="where the files go (default: data/coco, data/coco-karpathy)")
    parser.add_argument("--annotations-only", action="store_true", help="coco: skip the images")
    parser.add_argument("--split", choices=["test", "val", "restval", "train"], default="test",
                        help="coco-karpathy: whose images to fetch (default test, the COCO 5k test)")
    parser.add_argument("--all-val2014", action="store_true",
                        help="coco-karpathy: the whole val2014 archive (6.2 GB) instead of one split's images")
    parser.add_argument("--dry-run", action="store_true", help="coco-karpathy: print what would be downloaded")
    parser.add_argument("--instructions", action="store_true", help="coco-karpathy: print how to get it by hand")
    args = parser.parse_args(argv)
    if args.all_val2014 and args.split == "train":
        parser.error("--all-val2014 holds no train split images (they are in train2014): leave --split at test")
    if args.out is None:
        args.out = Path("data/coco-karpathy" if args.dataset == "coco-karpathy" else "data/coco")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.dataset == "flickr30k":
        print(FLICKR_HELP)
        return
    if args.dataset == "coco-karpathy":
        if args.instructions:
            print(KARPATHY_HELP)
        else:
            coco_karpathy(args.out, split=args.split, all_val2014=args.all_val2014, dry_run=args.dry_run)
        return
    parts = ["annotations"] if args.annotations_only else ["annotations", "val2017"]
    for part in parts:
        archive = fetch(COCO[part], args.out / f"{part}.zip")
        with zipfile.ZipFile(archive) as z:
            z.extractall(args.out)
    print(f"done: {args.out}")


if __name__ == "__main__":
    main()
