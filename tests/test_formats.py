import json

import numpy as np
import pytest
import torch
from PIL import Image

from vlmlearn.data import (
    SAMPLES_DIR,
    export_coco_captions,
    export_csv_pairs,
    export_flickr30k,
    load_coco_captions,
    load_csv_pairs,
    load_flickr30k,
    load_image,
    load_image_folder,
)


@pytest.fixture(scope="module")
def batch():
    from vlmlearn.data import ShapesWorld

    return ShapesWorld(seed=0, image_size=32).pairs(12)


def _same(ds, batch):
    assert len(ds) == len(batch)
    assert torch.equal(ds.images(), batch.images)
    assert [c[0] for c in ds.captions] == batch.captions


def test_coco_round_trip(tmp_path, batch):
    path = export_coco_captions(batch, tmp_path)
    _same(load_coco_captions(path, tmp_path / "images"), batch)


def test_flickr_round_trip_and_split(tmp_path, batch):
    path = export_flickr30k(batch, tmp_path, split="test")
    _same(load_flickr30k(path, tmp_path / "images", split="test"), batch)
    assert len(load_flickr30k(path, tmp_path / "images", split="train")) == 0
    with pytest.raises(ValueError, match="split"):
        load_flickr30k(path, tmp_path / "images", split="dev")


def test_csv_round_trip_tabs_sniffed_and_commas(tmp_path, batch):
    path = export_csv_pairs(batch, tmp_path)
    assert "\t" in path.read_text().splitlines()[0]
    _same(load_csv_pairs(path), batch)
    comma = tmp_path / "pairs_comma.csv"
    comma.write_text(path.read_text().replace("\t", ","))
    _same(load_csv_pairs(comma), batch)
    with pytest.raises(ValueError, match="expected columns"):
        load_csv_pairs(path, caption_key="caption")


def test_all_captions_of_an_image_are_kept(tmp_path, batch):
    path = export_coco_captions(batch, tmp_path)
    data = json.loads(path.read_text())
    data["annotations"].append({"id": 99, "image_id": 3, "caption": "another caption"})
    path.write_text(json.dumps(data))
    ds = load_coco_captions(path, tmp_path / "images")
    assert ds.captions[3] == [batch.captions[3], "another caption"]
    image_of, texts = ds.pairs()
    assert len(texts) == 13 and image_of.count(3) == 2
    csv_path = export_csv_pairs(batch, tmp_path / "csv")
    with open(csv_path, "a") as f:
        f.write("images/000003.png\tsecond caption\n")
    assert load_csv_pairs(csv_path).captions[3] == [batch.captions[3], "second caption"]


def test_image_modes_become_rgb(tmp_path):
    rgb = Image.new("RGB", (8, 8), (200, 30, 30))
    rgb.convert("L").save(tmp_path / "gray.png")
    rgb.convert("CMYK").save(tmp_path / "cmyk.jpg")
    rgb.convert("P").save(tmp_path / "palette.png")
    rgba = Image.new("RGBA", (8, 8), (200, 30, 30, 0))  # fully transparent: white background
    rgba.save(tmp_path / "rgba.png")
    ds = load_image_folder(tmp_path, image_size=8)
    assert len(ds) == 4
    for i, path in enumerate(ds.paths):
        img, caps = ds[i]
        assert img.shape == (3, 8, 8) and caps == [] and torch.isfinite(img).all()
        if path.name == "rgba.png":
            assert torch.allclose(img, torch.ones_like(img))
        if path.name == "palette.png":
            assert abs(img[0].mean().item() - 200 / 255) < 0.05


def test_resize_short_side_then_centre_crop(tmp_path):
    Image.new("RGB", (64, 32), (10, 20, 30)).save(tmp_path / "wide.png")
    img = load_image(tmp_path / "wide.png", 16)
    assert img.shape == (3, 16, 16)
    assert torch.allclose(img[:, 8, 8], torch.tensor([10, 20, 30]) / 255, atol=1e-6)


def test_missing_unknown_corrupt_and_empty_are_reported(tmp_path, batch):
    path = export_coco_captions(batch, tmp_path)
    images = tmp_path / "images"
    (images / "000001.png").unlink()
    with pytest.raises(FileNotFoundError, match="000001.png"):
        load_coco_captions(path, images)
    data = path.read_bytes()
    (images / "000002.png").write_bytes((images / "000002.png").read_bytes()[:60])  # truncated
    Image.new("RGB", (4, 4)).save(images / "000001.png")
    with pytest.raises(ValueError, match="000002.png"):
        load_coco_captions(path, images)
    ann = json.loads(data)
    ann["annotations"].append({"id": 50, "image_id": 777, "caption": "orphan"})
    ann["annotations"].append({"id": 51, "image_id": 4, "caption": "  "})
    path.write_text(json.dumps(ann))
    with pytest.raises(ValueError, match="000002.png|unknown image_id|empty caption"):
        load_coco_captions(path, images)
    ds = load_coco_captions(path, images, on_error="skip")
    assert len(ds) == 11
    reasons = " | ".join(f"{w}: {r}" for w, r in ds.skipped)
    assert "unknown image_id 777" in reasons and "empty caption" in reasons and "000002.png" in reasons
    assert len(ds.skipped) == 3


def test_unknown_image_id_raises(tmp_path, batch):
    path = export_coco_captions(batch[:2], tmp_path)
    ann = json.loads(path.read_text())
    ann["annotations"].append({"id": 9, "image_id": 5, "caption": "x"})
    path.write_text(json.dumps(ann))
    with pytest.raises(ValueError, match="unknown image_id 5"):
        load_coco_captions(path, tmp_path / "images")


def test_empty_caption_raises_by_line(tmp_path, batch):
    path = export_csv_pairs(batch[:2], tmp_path)
    with open(path, "a") as f:
        f.write("images/000000.png\t\n")
    with pytest.raises(ValueError, match="line 4: empty caption"):
        load_csv_pairs(path)


def test_missing_files_and_folders(tmp_path):
    with pytest.raises(FileNotFoundError, match="annotation file not found"):
        load_coco_captions(tmp_path / "nope.json", tmp_path)
    with pytest.raises(FileNotFoundError, match="image folder not found"):
        load_image_folder(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no image files"):
        load_image_folder(tmp_path / "empty")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_flickr30k(tmp_path / "bad.json", tmp_path)


def test_committed_samples_load():

    root = SAMPLES_DIR
    coco = load_coco_captions(root / "coco" / "captions.json", root / "coco" / "images")
    flickr = load_flickr30k(root / "flickr30k" / "dataset_flickr30k.json", root / "flickr30k" / "images", "train")
    csv = load_csv_pairs(root / "csv" / "pairs.csv")
    assert len(coco) == len(flickr) == len(csv) >= 24
    assert torch.equal(coco.images(), csv.images())
    assert np.all([len(c) >= 1 for c in coco.captions])
