"""The files vlmlearn ships and the one format every checkpoint is stored in.

The shipped files live inside the package (`vlmlearn/shipped/`, installed as package data), so a plain
`pip install .` carries them and code run from any folder finds them:

    shipped/checkpoints/   notebook 01's CLIP, 03's MAE and 05's painter (safetensors + JSON record)
    shipped/samples/       24 ShapesWorld images in each real data format (COCO, Flickr30K, CSV, folder)
    shipped/model_configs/ open_clip model configs the command-line tools know by name

A checkpoint is two files: the weights as safetensors (loading runs no code) and a record beside them (same
name, .json) that says how to rebuild the model: `{"model": <name>, "config": {...}, ...}` (an open_clip model
known by name needs no config) plus whatever the
writer adds (steps, seed, scores, versions). Package code finds shipped files here and nowhere else; it never
reaches into the repository checkout.
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # annotations only: finding a shipped file or the checkout must not import torch
    import torch
    from torch import nn

SHIPPED = Path(__file__).resolve().parent / "shipped"


def course_checkout() -> Path | None:
    """The course repository the code runs in, where notebooks write `build/results/` and benchmarks live in
    `benchmarks/results/`: $VLMLEARN_CHECKOUT, else the nearest folder at or above the current one that holds
    `benchmarks/results/` (a notebook runs in `notebooks/` or `notebooks/exercises/`); None outside a checkout."""
    import os

    if os.environ.get("VLMLEARN_CHECKOUT"):
        return Path(os.environ["VLMLEARN_CHECKOUT"])
    here = Path.cwd().resolve()
    return next((folder for folder in (here, *here.parents) if (folder / "benchmarks" / "results").is_dir()), None)


def checkpoint(name: str) -> Path:
    """The weights file of a shipped checkpoint: "clip_shapes" (notebook 01), "mae_shapes" (notebook 03) or
    "painter_shapes" (notebook 05).
    (The path is returned whether or not the file exists; `read_checkpoint` says what to do when it is missing.)"""
    return SHIPPED / "checkpoints" / f"{name}.safetensors"


def save_weights(model: nn.Module, path: str | Path, record: dict | None = None) -> Path:
    """The model's weights as safetensors at `path` and, when given, its `record` beside them (same name, .json)."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}, str(path))
    if record is not None:
        path.with_suffix(".json").write_text(json.dumps(record, indent=1) + "\n")
    return path


def load_weights(model: nn.Module, path: str | Path) -> nn.Module:
    """Load safetensors weights written by `save_weights` into `model` (strict: every key must match)."""
    from safetensors.torch import load_file

    if not Path(path).is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    model.load_state_dict(load_file(str(path)))
    return model


def read_checkpoint(path: str | Path, *, writer: str) -> tuple[dict[str, torch.Tensor], dict]:
    """(state dict, record) of a checkpoint: the safetensors weights at `path` and the JSON record beside them.
    A missing file raises a FileNotFoundError that names `writer`, the command that writes both; a record
    without the "model" entry every checkpoint carries raises a ValueError. A record stamped by the course's scripts
    (`vlmlearn.provenance.stamp`) is checked, inside a course checkout, against the code that now produces it: a stale
    one is loaded with a warning that names the command re-making it (an installed package has no producers to
    check)."""
    from safetensors.torch import load_file

    path = Path(path)
    meta = path.with_suffix(".json")
    if not path.is_file() or not meta.is_file():
        raise FileNotFoundError(f"expected a checkpoint {path} and its record {meta.name} beside it; "
                                f"write them with `{writer}`")
    record = json.loads(meta.read_text())
    if "model" not in record:
        raise ValueError(f"{meta} is not a vlmlearn checkpoint record: expected a 'model' entry naming the model, "
                         f"found the keys {sorted(record)}")
    if "produced_by" in record:  # a course checkpoint: say so when the code that made it has changed since
        from .provenance import staleness

        problem = staleness(record, name=str(meta), refresh=writer)
        if problem is not None:
            warnings.warn(problem, stacklevel=2)
    return load_file(str(path)), record
