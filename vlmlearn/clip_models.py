"""The CLIP models the command-line tools build, save and load: the course's own or any open_clip architecture.

    bundle = create("shapes-clip", texts=train_captions)       # notebook 01's model, vocabulary from the captions
    bundle = create("ViT-B-32")                                  # open_clip's, random weights
    bundle = create("configs/tiny.json")                         # an open_clip config file, registered first
    save(bundle, "run/model.safetensors"); bundle = load("run/model.safetensors")

A bundle holds the model, the tokenizer its text tower reads, the train and eval image transforms (PIL image ->
(3, S, S) tensor) and a record (a JSON-able dict) that `load` rebuilds the model from: the checkpoint format of
`vlmlearn.assets` (safetensors weights, so loading runs no code, and the record beside them). The CLIP that
notebook 01 trains and the course ships is one such checkpoint (`load_pretrained_clip`).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch import nn

from . import assets

COURSE_MODELS = ("shapes-clip",)
# open_clip configs that ship with the course; `create` registers them by name. vlmlearn-tiny: a ViT on 32 px images
# in 4 px patches and a text transformer with CLIP's BPE vocabulary, 2 layers of width 128 each (7.2 M parameters,
# 6.3 M of them word embeddings)
CONFIG_DIR = assets.SHIPPED / "model_configs"
# notebook 01's CLIP, trained once by `benchmarks/pretrain_clip.py` (make pretrain); notebooks 03 and 09 start from it
SHAPES_CLIP_CHECKPOINT = assets.checkpoint("clip_shapes")


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
           context_length: int = 32, pretrained: str | Path | None = None, **shapes_config) -> ClipBundle:
    """A fresh model by name.

    Args:
        name: "shapes-clip" (notebook 01's `shapes_clip`: SmallCNN and a word-level TextTransformer), an open_clip
            model name (`open_clip.list_models()`, or "vlmlearn-tiny" from CONFIG_DIR), or the path of an open_clip
            model config JSON, registered with `open_clip.add_model_config` under its file name.
        texts / vocab: shapes-clip's word vocabulary: the words of `texts` (the training captions), or `vocab`
            as given; neither: ShapesWorld's `caption_vocabulary()`.
        image_size, context_length: shapes-clip's input sizes (open_clip models carry their own);
            `shapes_config` its other options (`vlmlearn.contrastive.shapes_clip`: token_init_std, causal).
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
        config = dict(image_size=image_size, context_length=context_length, **shapes_config)
        model = shapes_clip(tok.vocab_size, **config)
        record = {"model": name, "config": config, "vocab": tok.itos[len(tok.specials):]}
        return ClipBundle(model, tok, plain_transform(image_size), plain_transform(image_size), record)
    if shapes_config:
        raise ValueError(f"{sorted(shapes_config)} are options of 'shapes-clip', not of open_clip's {name!r}")
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


def save(bundle: ClipBundle, path: str | Path, **extra) -> Path:
    """The weights as safetensors at `path` and the record beside them (same name, .json), with `extra` entries
    (steps, scores, ...) added to the record."""
    return assets.save_weights(bundle.model, path, {**bundle.record, **extra})


def load(path: str | Path, *, expect: str | None = None, writer: str = "python -m vlmlearn.train_clip") -> ClipBundle:
    """What `save` wrote (the course's shipped CLIP included), in eval mode. `expect`: the model name the record
    must give (a ValueError otherwise); `writer`: the command a missing-file error suggests."""
    weights, record = assets.read_checkpoint(path, writer=writer)
    if expect is not None and record["model"] != expect:
        raise ValueError(f"{path} holds a {record['model']!r} model, expected {expect!r}")
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
    bundle.record = record
    try:
        bundle.model.load_state_dict(weights)
    except RuntimeError as error:  # shapes or names differ: say which file and which record
        raise ValueError(f"{path} does not fit the model its record describes ({record['model']}, "
                         f"{record.get('config')}): {error}") from None
    bundle.model.eval()
    return bundle


def load_pretrained_clip(path: str | Path = SHAPES_CLIP_CHECKPOINT):
    """Notebook 01's CLIP with the weights `benchmarks/pretrain_clip.py` wrote, and its record (config, vocabulary,
    steps, seed, runtime and the scores it reached). Returns (model in eval mode, its WordTokenizer, record)."""
    bundle = load(path, expect="shapes-clip", writer="python benchmarks/pretrain_clip.py (make pretrain)")
    return bundle.model, bundle.tokenizer, bundle.record
