"""Notebook 05's painter and readers (vlmlearn.painter)."""
import math

import pytest
import torch

from vlmlearn.data import ShapesWorld, WordTokenizer, caption_from_attributes, caption_vocabulary
from vlmlearn.data.shapes import RGB
from vlmlearn.generative import read_colors
from vlmlearn.painter import (
    SHAPES_PAINTER_CHECKPOINT,
    AttributeReader,
    Painter,
    fit_painter,
    fit_reader,
    judge_paintings,
    load_pretrained_painter,
    painter_step,
    palette_targets,
    read_painting,
    render,
)

WORLD = ShapesWorld(seed=0, image_size=32)
TOK = WordTokenizer(caption_vocabulary(), context_length=20)
MISMATCH = ("expected device", "same device", "at least two devices")


def small_painter(**kwargs):
    torch.manual_seed(0)
    return Painter(vocab_size=TOK.vocab_size, width=32, layers=1, channels=(16, 16, 16, 16), **kwargs)


def test_palette_targets_label_each_pixel_with_its_colour_or_background():
    images = torch.full((1, 3, 4, 4), 0.2)
    images[0, :, 0, 0] = torch.as_tensor(RGB[2])           # blue exactly
    images[0, :, 1, 1] = torch.as_tensor(RGB[0]) + 0.05    # red, a little off (distance 0.087 < 0.12)
    images[0, :, 2, 2] = torch.as_tensor(RGB[0]) * 0.5 + 0.1  # an edge pixel: half red, half background
    classes = palette_targets(images)
    assert classes[0, 0, 0] == 3 and classes[0, 1, 1] == 1
    assert classes[0, 2, 2] == 0 and classes[0, 3, 3] == 0
    assert classes.shape == (1, 4, 4) and classes.dtype == torch.long


def test_render_and_palette_targets_round_trip_on_real_images():
    classes = palette_targets(WORLD.labeled(50).images)
    assert (classes > 0).float().mean() > 0.05  # the objects are found
    assert torch.equal(palette_targets(render(classes)), classes)


def test_palette_targets_reject_a_bad_shape():
    with pytest.raises(ValueError, match=r"\(B, 3, S, S\)"):
        palette_targets(torch.rand(3, 8, 8))


def test_painter_shapes_and_bad_configurations():
    ids = TOK(["a small red circle on the left", "a large blue cross at the top"])
    assert small_painter()(ids).shape == (2, 1 + len(RGB), 32, 32)
    assert small_painter().paint(ids).shape == (2, 3, 32, 32)
    with pytest.raises(ValueError, match="one width for the 4x4 map"):
        Painter(vocab_size=TOK.vocab_size, channels=(16, 16))
    with pytest.raises(ValueError, match="power of two"):
        Painter(vocab_size=TOK.vocab_size, image_size=24, channels=(16, 16, 16))
    with pytest.raises(ValueError, match="background_weight"):
        Painter(vocab_size=TOK.vocab_size, background_weight=0.0)


def test_film_false_keeps_the_caption_out_of_the_blocks():
    ids = TOK(["a small red circle on the left"])
    for film, changes in ((False, False), (True, True)):
        model = small_painter(film=film)
        before = model(ids)
        with torch.no_grad():
            model.blocks[-1].film.weight.normal_()
        assert torch.allclose(model(ids), before) != changes


def test_paint_undoes_the_background_weight():
    model = small_painter(background_weight=0.1)
    ids = TOK(["a small red circle on the left"])
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.copy_(torch.tensor([0.0, 1.0] + [-9.0] * (len(RGB) - 1)))  # red ahead by 1 < log 10
    assert (model(ids).argmax(1) == 1).all()                 # the tilted argmax says red everywhere
    assert torch.equal(model.paint(ids), render(torch.zeros(1, 32, 32, dtype=torch.long)))  # the true mode: background
    model.background_weight = 1.0
    assert (model.paint(ids) == torch.as_tensor(RGB[0])[:, None, None]).all()


def test_painter_step_weights_the_background():
    images = WORLD.pairs(4).images
    ids = TOK(WORLD.pairs(4).captions)
    light, full = small_painter(background_weight=0.1), small_painter(background_weight=1.0)
    # the same weights: a lighter background weight changes the weighted mean of the pixel losses
    assert not math.isclose(painter_step(light, (images, ids))[0].item(), painter_step(full, (images, ids))[0].item())


def test_a_small_painter_learns_the_colours_of_its_captions():
    pairs = WORLD.labeled(8, attribute="color")
    ids = TOK(caption_from_attributes(pairs.attributes, pairs.template))
    model = small_painter(background_weight=0.1)  # light background: colour is found within 60 steps
    before = (read_colors(model.paint(ids)) == pairs.labels).sum().item()
    fit_painter(model, pairs.images, ids, steps=60, lr=1e-2, batch_size=8, desc=None)
    after = (read_colors(model.eval().paint(ids)) == pairs.labels).sum().item()
    assert after >= 6 and after > before, (before, after)  # of 8 captions; chance is 1 in 8


def test_the_reader_reads_real_images_and_judges_them():
    real = WORLD.labeled(1500)
    reader = fit_reader(real.images, real.attributes, steps=80, desc=None)
    test = WORLD.labeled(300, split="test")
    scores = judge_paintings(test.images, test.attributes, reader)
    assert scores["color"] > 0.98 and scores["position"] > 0.9 and scores["size"] > 0.9 and scores["shape"] > 0.5
    shuffled = {k: v[torch.randperm(len(v), generator=torch.Generator().manual_seed(0)).numpy()]
                for k, v in test.attributes.items()}
    assert judge_paintings(test.images, shuffled, reader)["color"] < 0.4  # it reads the image, not the labels
    assert set(read_painting(test.images[0], reader)) == {"color", "size", "shape", "position"}
    with pytest.raises(ValueError, match="paintings for"):
        judge_paintings(test.images[:5], test.attributes, reader)
    with pytest.raises(ValueError, match="expected images"):
        reader(torch.rand(2, 1, 32, 32))


def test_the_shipped_painter_paints_what_its_captions_name():
    model, record = load_pretrained_painter()
    assert record["model"] == "shapes-painter" and record["chosen"] in record["candidates"]
    test = WORLD.labeled(200, split="test")
    real = WORLD.labeled(2000)
    reader = fit_reader(real.images, real.attributes, steps=100, desc=None)
    scores = judge_paintings(model.paint(TOK(caption_from_attributes(test.attributes, test.template))),
                             test.attributes, reader)
    assert scores["color"] > 0.9 and scores["position"] > 0.9 and scores["size"] > 0.9 and scores["shape"] > 0.7, scores


def test_load_pretrained_painter_says_what_is_wrong(tmp_path):
    with pytest.raises(FileNotFoundError, match="pretrain_painter"):
        load_pretrained_painter(tmp_path / "missing.safetensors")
    import json
    import shutil

    path = tmp_path / "other.safetensors"
    shutil.copy(SHAPES_PAINTER_CHECKPOINT, path)
    record = json.loads(SHAPES_PAINTER_CHECKPOINT.with_suffix(".json").read_text())
    path.with_suffix(".json").write_text(json.dumps({**record, "model": "shapes-mae"}))
    with pytest.raises(ValueError, match="expected notebook 05's 'shapes-painter'"):
        load_pretrained_painter(path)


def _no_mismatch(call) -> None:  # as tests/test_devices.py, whose own test shows the audit catches a stray tensor
    try:
        call()
    except Exception as error:  # reading meta data fails by design; a device mismatch is the bug
        if any(m in str(error) for m in MISMATCH):
            raise AssertionError(str(error)) from error


def test_painter_helpers_keep_tensors_on_the_models_device():
    model = small_painter().to("meta")
    images, ids = WORLD.pairs(2).images.to("meta"), TOK(WORLD.pairs(2).captions).to("meta")
    _no_mismatch(lambda: painter_step(model, (images, ids)))
    _no_mismatch(lambda: model.paint(ids))
    reader = AttributeReader().to("meta")
    _no_mismatch(lambda: reader(images))
