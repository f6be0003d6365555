"""benchmarks/label_efficiency_controls.py: notebook 09's control arms on the grid's data."""
import importlib.util
from pathlib import Path

import torch

from vlmlearn.data import ShapesWorld


def _script():
    spec = importlib.util.spec_from_file_location(
        "label_efficiency_controls",
        Path(__file__).resolve().parents[1] / "benchmarks" / "label_efficiency_controls.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    return script


def test_counting_labels_are_the_number_of_objects_minus_one():
    x, y, test, test_y = _script().count_data(3, seed=2)
    assert torch.bincount(y).tolist() == [3, 3]
    world = ShapesWorld(seed=2, image_size=32)
    assert torch.equal(test.images, world.images(1000, split="test").images)
    assert torch.equal(test_y, torch.as_tensor(test.attributes["n_objects"]) - 1)
    assert 0.3 < test_y.float().mean() < 0.7, "both counts should be common in the test images"


def test_the_converged_arm_stops_when_validation_stops_improving(monkeypatch):
    script = _script()
    monkeypatch.setitem(script.CONVERGE, "eval_every", 5)
    monkeypatch.setitem(script.CONVERGE, "patience", 2)
    acc, best_step, steps = script.digits_converged(seed=0, max_steps=400)
    assert best_step % 5 == 0 and 5 <= best_step <= 400
    assert steps == min(400, best_step + 2 * 5), "two evaluations without a new best should stop the run"
    assert acc > 0.5, "a few hundred steps on every digit label should learn far beyond chance (0.1)"


def test_the_counting_head_starts_as_its_probe(monkeypatch):
    """LP-FT starts fine-tuning from the probe: with 0 steps, fine-tuning must score what the probe scores."""
    from vlmlearn.clip_models import load_pretrained_clip

    script = _script()
    clip, tok, _ = load_pretrained_clip()
    lr = {"ft_clip": 1e-5, "scratch_cnn": 1e-3}
    monkeypatch.setattr(script, "train", lambda *args, **kwargs: None)  # no step: the model as built
    probe = script.count_run("probe_clip", 5, 0, clip, tok, lr, steps=4)
    assert abs(script.count_run("ft_clip", 5, 0, clip, tok, lr, steps=4) - probe) < 0.01
