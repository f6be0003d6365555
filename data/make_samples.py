"""Write the small committed samples of each real format, exported from ShapesWorld.

    python data/make_samples.py            # rewrites vlmlearn/shipped/samples/{coco,flickr30k,csv,folder}

24 validation images of ShapesWorld seed 0 at 32 px, each with its 4 caption paraphrases (COCO
has 5 per image). The files are small enough to open by hand and to commit.
"""
from pathlib import Path

from PIL import Image

from vlmlearn.data import (
    SAMPLES_DIR,
    ShapesWorld,
    export_coco_captions,
    export_csv_pairs,
    export_flickr30k,
    paraphrases,
)


def main(out: Path = SAMPLES_DIR, n: int = 24) -> None:
    batch = ShapesWorld(seed=0, image_size=32).pairs(n, split="val")
    captions = paraphrases(batch.attributes)
    export_coco_captions(batch, out / "coco", captions=captions)
    export_flickr30k(batch, out / "flickr30k", captions=captions)
    export_csv_pairs(batch, out / "csv", captions=captions)
    unlabeled = ShapesWorld(seed=0, image_size=32).images(n, split="val")
    folder = out / "folder"
    for i, img in enumerate(unlabeled.images):
        sub = folder / ("a" if i % 2 else "b")  # nested, to show the recursive search
        sub.mkdir(parents=True, exist_ok=True)
        array = img.mul(255).round().byte().permute(1, 2, 0).numpy()
        Image.fromarray(array).save(sub / f"{i:04d}.png")
    print(f"wrote {n} images per format under {out}")


if __name__ == "__main__":
    main()
