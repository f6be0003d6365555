"""The CLIP models the command-line tools build, save and load: the course's own or any open_clip architecture.

    bundle = create("shapes-clip", texts=train_captions)       # notebook 01's model, vocabulary from the captions
    bundle = create("ViT-B-32")                                  # open_clip's, random weights
    bundle = create("configs/tiny.json")                         # an open_clip config file, registered first
    save(bundle, "run/model.safetensors"); bundle = load("run/model.safetensors")

A bundle holds the model, the tokenizer its text tower reads, the train and eval image transforms (PIL image ->
(3, S, S) tensor) and a record (a JSON-able dict) that `load` rebuilds the model from. Weights are stored as
safetensors, so loading runs no code.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch import nn

COURSE_MODELS = ("shapes-clip",)
# open_clip configs that ship with the course; `create` registers them by name. vlmlearn-tiny: a ViT on 32 px images
# in 4 px patches and a text transformer with CLIP's BPE vocabulary, 2 layers of width 128 each (7.2 M parameters, 6.3 M of them word embeddings)
CONFIG_DIR = Path(__file__).resolve().parent / "model_configs"


@dataclass
class ClipBundle:
    model: nn.Module
    tokenizer: Callable[[list[str]], torch.Tensor]
    train_transform: Callable
    eval_transform: Callable
    record: dict


def plain_transform(image_size: int) -> Callable:
    """PIL image -> (3, S, S) float tensor in [0, 1]: short side resized (bicubic), centre crop, no
    normalisation; the same pixels as `vlmlearn.data.load_image`."""
    from torchvision.transforms import v2 as T

    return T.Compose([T.Resize(image_size, interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(image_size),
                      T.PILToTensor(), T.ToDtype(torch.float32, scale=True)])


def model_names() -> list[str]:
    import open_clip

    return [*COURSE_MODELS, *(p.stem for p in sorted(CONFIG_DIR.glob("*.json"))), *open_clip.list_models()]


def create(name: str, *, texts: Sequence[str] | None = None, vocab: Sequence[str] | None = None, image_size: int = 32,
           context_length: int = 32, pretrained: str | Path | None = None) -> ClipBundle:
    """A fresh model by name.

    Args:
        name: "shapes-clip" (notebook 01's `shapes_clip`: SmallCNN and a word-level TextTransformer), an open_clip
            model name (`open_clip.list_models()`, or "vlmlearn-tiny" from CONFIG_DIR), or the path of an open_clip
            model config JSON, registered with `open_clip.add_model_config` under its file name.
        texts / vocab: shapes-clip's word vocabulary: the words of `texts` (the training captions), or `vocab`
            as given; neither: ShapesWorld's `caption_vocabulary()`.
        image_size, context_length: shapes-clip's input sizes (open_clip models carry their own).
        pretrained: open_clip only: a local weights file (open_clip's own loader; no download here).
    """
    if name == "shapes-clip":
        from .contrastive import shapes_clip
        from .data import WordTokenizer, caption_vocabulary

        if vocab is None:
            tok = WordTokenizer.from_texts(texts, context_length=context_length) if texts is not None else \
                WordTokenizer(caption_vocabulary(), context_length=context_length)
        else:
            tok = WordTokenizer(vocab, context_length=context_length)
        config = dict(image_size=image_size, context_length=context_length)
        model = shapes_clip(tok.vocab_size, **config)
        record = {"model": name, "config": config, "vocab": tok.itos[len(tok.specials):]}
        return ClipBundle(model, tok, plain_transform(image_size), plain_transform(image_size), record)
    import open_clip

    record = {"model": name, "library": "open_clip"}
    if (CONFIG_DIR / f"{name}.json").is_file():
        open_clip.add_model_config(CONFIG_DIR / f"{name}.json")
    elif name.endswith(".json"):
        config = Path(name)
        if not config.is_file():
            raise FileNotFoundError(f"model config not found: {config}")
        open_clip.add_model_config(config)
        record = {"model": config.stem, "library": "open_clip", "config": json.loads(config.read_text())}
        name = config.stem
    if name not in open_clip.list_models():
        raise ValueError(f"unknown model {name!r}: expected 'shapes-clip', an open_clip model name "
                         f"(open_clip.list_models(), e.g. 'ViT-B-32') or the path of a model config JSON")
    if pretrained is not None and not Path(pretrained).is_file():
        raise FileNotFoundError(f"pretrained weights not found: {pretrained} (a local file; nothing is downloaded)")
    model, train_transform, eval_transform = open_clip.create_model_and_transforms(
        name, pretrained=None if pretrained is None else str(pretrained))
    return ClipBundle(model, open_clip.get_tokenizer(name), train_transform, eval_transform, record)


def save(bundle: ClipBundle, path: str | Path) -> Path:
    """The weights as safetensors at `path` and the record beside them (same name, .json)."""
    from .train import save_weights

    path = save_weights(bundle.model, path)
    path.with_suffix(".json").write_text(json.dumps(bundle.record, indent=1))
    return path


def load(path: str | Path) -> ClipBundle:
    """What `save` wrote, or a checkpoint the course ships (`data/checkpoints/clip_shapes.safetensors`), in eval mode."""
    from .train import read_shipped_weights

    weights, record = read_shipped_weights(path, "python -m vlmlearn.train_clip")
    if "model" not in record:  # the shipped notebook 01 CLIP: its config, ShapesWorld's vocabulary
        from .contrastive import load_pretrained_clip

        model, tok, record = load_pretrained_clip(path)
        transform = plain_transform(record["config"]["image_size"])
        return ClipBundle(model, tok, transform, transform, record)
    if record["model"] in COURSE_MODELS:
        bundle = create(record["model"], vocab=record["vocab"], **record["config"])
    else:
        if "config" in record:  # an open_clip config that was registered from a file: register it again
            import tempfile

            import open_clip

            config = Path(tempfile.mkdtemp()) / f"{record['model']}.json"
            config.write_text(json.dumps(record["config"]))
            open_clip.add_model_config(config)
        bundle = create(record["model"])
    bundle.model.load_state_dict(weights)
    bundle.model.eval()
    return bundle
