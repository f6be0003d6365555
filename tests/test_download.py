"""data/download.py without the network: its arguments, the instructions it prints, and the plan of a COCO 5k download
(Karpathy's dataset_coco.json and the val2014 images its test split names). Every test makes a network call fail
loudly, so nothing here can download."""
import importlib.util
import json
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def download(monkeypatch):
    """data/download.py as a module, with urlopen replaced by a call that fails the test."""
    spec = importlib.util.spec_from_file_location("download", ROOT / "data" / "download.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    def no_network(*args, **kwargs):
        raise AssertionError(f"a test tried to download {args[:1]}")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    return module


def _split_file(out: Path) -> None:
    """A three-image dataset_coco.json: two test images from val2014 (one already on disk), one train image."""
    images = [{"filepath": "val2014", "filename": "COCO_val2014_000000000042.jpg", "split": "test", "sentences": []},
              {"filepath": "val2014", "filename": "COCO_val2014_000000000073.jpg", "split": "test", "sentences": []},
              {"filepath": "train2014", "filename": "COCO_train2014_000000000009.jpg", "split": "train",
               "sentences": []}]
    out.mkdir(parents=True, exist_ok=True)
    (out / "dataset_coco.json").write_text(json.dumps({"images": images, "dataset": "coco"}))
    (out / "val2014").mkdir()
    (out / "val2014" / "COCO_val2014_000000000073.jpg").write_bytes(b"already here")


def test_dry_run_lists_the_missing_test_images_of_the_karpathy_split(download, tmp_path, capsys):
    _split_file(tmp_path)
    download.main(["coco-karpathy", "--out", str(tmp_path), "--dry-run"])
    out = capsys.readouterr().out
    assert "would download 1 test images" in out
    assert "http://images.cocodataset.org/val2014/COCO_val2014_000000000042.jpg" in out
    assert "000000000073" not in out and "train2014" not in out
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["COCO_val2014_000000000073.jpg", "dataset_coco.json",
                                                          "val2014"], "a dry run writes nothing"


def test_dry_run_before_the_split_file_names_the_archive_it_comes_from(download, tmp_path, capsys):
    download.main(["coco-karpathy", "--out", str(tmp_path / "k"), "--dry-run"])
    out = capsys.readouterr().out
    assert download.KARPATHY_SPLITS in out and "dataset_coco.json" in out
    assert not (tmp_path / "k").exists()


def test_instructions_name_every_file_and_the_evaluation_command(download, capsys):
    download.main(["coco-karpathy", "--instructions"])
    out = capsys.readouterr().out
    for needed in ("dataset_coco.json", "caption_datasets.zip", "val2014.zip", "data/coco-karpathy/val2014/",
                   "python -m vlmlearn.eval_retrieval --data data/coco-karpathy/dataset_coco.json",
                   "ViT-B-32-quickgelu"):
        assert needed in out, needed


def test_arguments_and_defaults(download, capsys):
    assert download.parse_args(["coco-karpathy"]).out == Path("data/coco-karpathy")
    assert download.parse_args(["coco"]).out == Path("data/coco")
    args = download.parse_args(["coco-karpathy", "--split", "val", "--out", "x"])
    assert (args.split, args.out, args.all_val2014, args.dry_run) == ("val", Path("x"), False, False)
    for bad in (["coco2014"], ["coco-karpathy", "--split", "dev"], ["coco-karpathy", "--all-val2014", "--split",
                                                                   "train"]):
        with pytest.raises(SystemExit) as exit_:
            download.parse_args(bad)
        assert exit_.value.code == 2
    assert "train2014" in capsys.readouterr().err
