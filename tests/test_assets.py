import json

import pytest
import torch
from torch import nn

from vlmlearn import assets


def test_shipped_files_live_in_the_package():
    import vlmlearn

    package = assets.SHIPPED.parent
    assert package == __import__("pathlib").Path(vlmlearn.__file__).resolve().parent
    for name in ("clip_shapes", "mae_shapes", "painter_shapes"):
        path = assets.checkpoint(name)
        assert path.is_file() and path.with_suffix(".json").is_file(), path
    assert (assets.SHIPPED / "samples" / "coco" / "captions.json").is_file()


def test_every_shipped_checkpoint_has_one_record_format():
    for name in ("clip_shapes", "mae_shapes", "painter_shapes"):
        weights, record = assets.read_checkpoint(assets.checkpoint(name), writer="make pretrain")
        assert {"model", "config"} <= set(record) and weights


def test_weights_and_record_round_trip(tmp_path):
    model = nn.Linear(3, 2)
    path = assets.save_weights(model, tmp_path / "sub" / "m.safetensors", {"model": "linear", "config": {"n": 3}})
    weights, record = assets.read_checkpoint(path, writer="test")
    assert record == {"model": "linear", "config": {"n": 3}}
    assert torch.equal(weights["weight"], model.weight.detach())
    fresh = assets.load_weights(nn.Linear(3, 2), path)
    assert torch.equal(fresh.bias, model.bias)


def test_checkpoint_errors_name_what_is_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="write them with `make pretrain`"):
        assets.read_checkpoint(tmp_path / "absent.safetensors", writer="make pretrain")
    path = assets.save_weights(nn.Linear(1, 1), tmp_path / "m.safetensors")
    path.with_suffix(".json").write_text(json.dumps({"config": {}}))
    with pytest.raises(ValueError, match="a 'model' entry"):
        assets.read_checkpoint(path, writer="x")
    with pytest.raises(FileNotFoundError, match="weights file not found"):
        assets.load_weights(nn.Linear(1, 1), tmp_path / "nope.safetensors")


def test_course_checkout_is_found_from_a_notebook_folder(monkeypatch, tmp_path):
    root = tmp_path / "course"
    (root / "benchmarks" / "results").mkdir(parents=True)
    (root / "notebooks" / "exercises").mkdir(parents=True)
    monkeypatch.delenv("VLMLEARN_CHECKOUT", raising=False)
    monkeypatch.chdir(root / "notebooks" / "exercises")
    assert assets.course_checkout() == root.resolve()
    monkeypatch.chdir(tmp_path)
    assert assets.course_checkout() is None
    monkeypatch.setenv("VLMLEARN_CHECKOUT", str(root))
    assert assets.course_checkout() == root
