"""Download real image-caption data for users with internet (tests never run this).

    python data/download.py coco --out data/coco            # captions + val2017 images (~1 GB)
    python data/download.py coco --out data/coco --annotations-only
    python data/download.py flickr30k                       # prints how to get it (licence form)

Then, in a notebook:

    from vlmlearn.data import load_coco_captions
    ds = load_coco_captions("data/coco/annotations/captions_val2017.json", "data/coco/val2017", image_size=64)

Offline, or with the server unreachable, the script stops with a clear message and exit code 1.
"""
import argparse
import sys
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

COCO = {
    "annotations": "http://images.cocodataset.org/annotations/annotations_trainval2017.zip",
    "val2017": "http://images.cocodataset.org/zips/val2017.zip",
}

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", choices=["coco", "flickr30k"])
    parser.add_argument("--out", type=Path, default=Path("data/coco"))
    parser.add_argument("--annotations-only", action="store_true", help="COCO: skip the images")
    args = parser.parse_args()
    if args.dataset == "flickr30k":
        print(FLICKR_HELP)
        return
    parts = ["annotations"] if args.annotations_only else ["annotations", "val2017"]
    for part in parts:
        archive = fetch(COCO[part], args.out / f"{part}.zip")
        with zipfile.ZipFile(archive) as z:
            z.extractall(args.out)
    print(f"done: {args.out}")


if __name__ == "__main__":
    main()
