"""benchmarks/scratch_controls.py: notebook 03's controls train from scratch on the notebook's own draws, learn, and
resume from what they finished."""
import importlib.util
from pathlib import Path

import pytest
import torch

from vlmlearn.data import ShapesWorld, first_per_class

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("scratch_controls", ROOT / "benchmarks" / "scratch_controls.py")
controls = importlib.util.module_from_spec(spec)
spec.loader.exec_module(controls)


def test_the_draws_are_the_notebooks_at_each_seed():
    x, y, test_x, test_y = controls.data(10, seed=3, split="test")
    world = ShapesWorld(seed=3, image_size=32)  # notebook 03 at SEED = 3
    pool = world.labeled(3000, attribute="shape")
    pick = first_per_class(pool.labels, 10)
    assert torch.equal(x, pool.images[pick]) and torch.equal(y, pool.labels[pick])
    assert torch.equal(test_y, world.labeled(1000, attribute="shape", split="test").labels)
    assert torch.bincount(y).tolist() == [10] * 5
    _, _, val_x, _ = controls.data(10, seed=3, split="val")
    assert len(val_x) == 500 and not torch.equal(val_x[:10], test_x[:10])


def test_the_cnn_from_scratch_learns_shape_beyond_chance():
    acc = controls.run("cnn", 3e-3, 150, 50, 0, "val")
    assert acc > 0.4, f"150 steps on 50 labels per shape should read shape well above chance (0.2), got {acc:.3f}"


def test_the_scratch_vit_runs_from_the_notebooks_initialisation():
    acc = controls.run("scratch_fair", 1e-3, 4, 10, 0, "val")
    assert 0.0 <= acc <= 1.0
    with pytest.raises(ValueError, match="arm must be one of"):
        controls.run("vit", 1e-3, 4, 10, 0, "val")


class ListPool:
    """An executor that runs in this process, so a test can count the runs."""

    def map(self, fn, *iterables):
        return map(fn, *iterables)


def test_finished_runs_are_kept_and_not_run_again(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(controls, "run", lambda *spec: calls.append(spec) or 0.5)
    specs = [("cnn", 1e-3, 4, 10, 0, "val"), ("cnn", 3e-3, 4, 10, 0, "val")]
    runs = controls.Runs(tmp_path / "runs.json", "abc")
    assert runs.get(specs, ListPool()) == [0.5, 0.5] and len(calls) == 2
    assert controls.Runs(tmp_path / "runs.json", "abc").get(specs, ListPool()) == [0.5, 0.5] and len(calls) == 2
    controls.Runs(tmp_path / "runs.json", "changed code").get(specs[:1], ListPool())
    assert len(calls) == 3, "runs made by other code must be run again"
