"""Painting ShapesWorld images from captions, and reading back what a painting shows.

A pixel-MSE decoder conditioned once at its bottleneck (`vlmlearn.generative.CaptionToImage`) paints the
average image for a caption: a blurred blob, whose place and (given enough steps) colour survive the averaging
but whose outline does not. Two changes are meant to make the caption stick (notebook 05 compares them on
validation captions):

- the caption conditions *every* decoder block (FiLM, Perez et al. 2018: a scale and a shift per
  channel computed from the caption embedding), so no layer can forget it;
- the target is the palette: each pixel is classified as background or one of the 8 colours
  (`palette_targets`), and the loss is cross-entropy, whose optimum is a distribution over colours
  for that pixel, not their average (the mean of red and blue is a purple that no caption names).

    painter = Painter(vocab_size=tok.vocab_size)
    loss, _ = painter_step(painter, (images, ids))       # images (B, 3, S, S) in [0, 1], ids (B, L)
    images = painter.paint(ids)                         # (B, 3, S, S): palette colours on grey

`AttributeReader` is a small CNN trained on real one-object images to read shape, size and
position; with `generative.read_colors` it judges a painting as a person would.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from . import assets
from .data.captions import POSITIONS, SHAPES, SIZES
from .data.shapes import RGB
from .models import TextTransformer, check_images

SHAPES_PAINTER_CHECKPOINT = assets.checkpoint("painter_shapes")  # written by benchmarks/pretrain_painter.py
BACKGROUND_GREY = 0.2     # the grey a painting's background is drawn in (real backgrounds: 0.06-0.34)
PALETTE_TOLERANCE = 0.12  # a pixel within this RGB distance of a palette colour is that colour


def palette(device: torch.device | str | None = None) -> torch.Tensor:
    """(1 + colours, 3): the background grey, then ShapesWorld's colours in COLORS order."""
    return torch.cat([torch.full((1, 3), BACKGROUND_GREY), torch.as_tensor(RGB)]).to(device)


def palette_targets(images: torch.Tensor, tolerance: float = PALETTE_TOLERANCE) -> torch.Tensor:
    """Per-pixel classes of real images: (B, 3, S, S) in [0, 1] -> (B, S, S) int64, 0 for background,
    1 + c for a pixel within `tolerance` (RGB distance) of colour c. Edge pixels that blend an object
    into the background are far from every colour, so they count as background."""
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"expected images of shape (B, 3, S, S), got {getattr(images, 'shape', type(images))}")
    colours = torch.as_tensor(RGB, device=images.device, dtype=images.dtype)                   # (C, 3)
    dist2 = (images.permute(0, 2, 3, 1)[..., None, :] - colours).square().sum(-1)              # (B, S, S, C)
    nearest, which = dist2.min(dim=-1)
    return torch.where(nearest < tolerance ** 2, which + 1, 0)


def render(classes: torch.Tensor) -> torch.Tensor:
    """(B, S, S) palette classes -> (B, 3, S, S) images: each class in its colour, background grey."""
    return palette(classes.device)[classes].permute(0, 3, 1, 2).contiguous()


def _coords(x: torch.Tensor) -> torch.Tensor:
    """Two channels of pixel coordinates in [-1, 1] (x then y) for a (B, C, H, W) tensor: a conv
    layer cannot otherwise tell where in the image it is (CoordConv, Liu et al. 2018)."""
    b, _, h, w = x.shape
    ys = torch.linspace(-1, 1, h, device=x.device, dtype=x.dtype)
    xs = torch.linspace(-1, 1, w, device=x.device, dtype=x.dtype)
    grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"))                             # (2, H, W)
    return grid.expand(b, -1, -1, -1)


class FiLMBlock(nn.Module):
    """(x (B, C_in, H, W), condition (B, D)) -> (B, C_out, H', W'): optional 2x nearest upsampling,
    coordinates appended, a 3x3 conv, GroupNorm, then FiLM: x * (1 + scale) + shift with a scale and
    a shift per channel computed from the condition, then GELU."""

    def __init__(self, c_in: int, c_out: int, cond_dim: int, *, upsample: bool):
        super().__init__()
        self.upsample = upsample
        self.conv = nn.Conv2d(c_in + 2, c_out, 3, padding=1)
        self.norm = nn.GroupNorm(min(8, c_out), c_out)
        self.film = nn.Linear(cond_dim, 2 * c_out)
        nn.init.zeros_(self.film.weight)  # starts as a plain conv block; the condition is learned in
        nn.init.zeros_(self.film.bias)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        if self.upsample:
            x = F.interpolate(x, scale_factor=2, mode="nearest")
        x = self.norm(self.conv(torch.cat([x, _coords(x)], dim=1)))
        scale, shift = self.film(cond)[:, :, None, None].chunk(2, dim=1)
        return F.gelu(x * (1 + scale) + shift)


class Painter(nn.Module):
    """Caption -> per-pixel palette logits. A text transformer embeds the caption (pooled at its end
    token); a linear layer makes a 4x4 map from it; FiLM blocks, each conditioned on the caption,
    upsample it to the image size; a 1x1 conv gives background + 8 colour logits per pixel.

    forward(ids (B, L)) -> logits (B, 1 + colours, S, S); paint(ids) -> images (B, 3, S, S).
    """

    def __init__(self, *, vocab_size: int, context_length: int = 20, width: int = 128, layers: int = 2,
                 channels: Sequence[int] = (32, 32, 32, 32), image_size: int = 32, extra_blocks: int = 1,
                 film: bool = True, background_weight: float = 1.0):
        super().__init__()
        ups = image_size.bit_length() - 3  # doublings from 4x4 to image_size
        if image_size < 8 or image_size & (image_size - 1):
            raise ValueError(f"image_size must be a power of two of at least 8, got {image_size}")
        if len(channels) != ups + 1:
            raise ValueError(f"channels: one width for the 4x4 map and one per doubling to {image_size} "
                             f"({ups + 1} in all), got {len(channels)}: {tuple(channels)}")
        if not 0 < background_weight <= 1:
            raise ValueError(f"background_weight must be in (0, 1], got {background_weight}")
        self.image_size, self.channels = image_size, tuple(channels)
        self.film, self.background_weight = film, background_weight
        self.text = TextTransformer(vocab_size=vocab_size, context_length=context_length, width=width,
                                    layers=layers, heads=4, embed_dim=width)
        self.stem = nn.Linear(width, channels[0] * 16)
        widths = [*channels, *[channels[-1]] * extra_blocks]  # extra blocks keep the last width
        self.blocks = nn.ModuleList([FiLMBlock(widths[i], widths[i + 1], width, upsample=i < ups)
                                     for i in range(len(widths) - 1)])
        self.head = nn.Conv2d(channels[-1], 1 + len(RGB), 1)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        cond = self.text(ids)                                                   # (B, width)
        x = self.stem(cond).view(len(ids), self.channels[0], 4, 4)
        film = cond if self.film else torch.zeros_like(cond)  # film=False: the caption enters at the 4x4 map only
        for block in self.blocks:
            x = block(x, film)
        return self.head(x)

    @torch.no_grad()
    def paint(self, ids: torch.Tensor) -> torch.Tensor:
        """The most likely class at every pixel, drawn in its palette colour: (B, 3, S, S).

        Training weighted the background by w = `background_weight`, which tilts the learned
        probabilities to w * p(background) : p(colour); adding log(1 / w) to the background logit
        undoes the tilt, so each pixel shows its most likely class (without it, objects come out
        dilated: a cross's arms merge into a blob)."""
        logits = self(ids)
        logits[:, 0] += math.log(1 / self.background_weight)
        return render(logits.argmax(dim=1))


def painter_step(model: Painter, batch: tuple) -> tuple[torch.Tensor, dict[str, float]]:
    """(images (B, 3, S, S), ids (B, L)) -> per-pixel cross-entropy against `palette_targets`.

    Background fills most of an image, so its pixels can be weighted `model.background_weight` (the
    objects' pixels 1) to keep an all-background painting from being a cheap place to start; the
    shipped painter's weight was chosen on validation (`benchmarks/pretrain_painter.py`)."""
    images, ids = batch[:2]
    logits = model(ids)
    weight = torch.ones(logits.shape[1], device=logits.device)
    weight[0] = model.background_weight
    return F.cross_entropy(logits, palette_targets(images), weight=weight), {}


class AttributeReader(nn.Module):
    """A small CNN that reads a one-object ShapesWorld image: (B, 3, S, S) -> logits for shape
    (5), size (2) and position (5), as a dict. Trained on real images (`reader_step`), it judges
    paintings (`read_attributes`); its accuracy on real test images says how far to trust it."""

    heads = {"shape": len(SHAPES), "size": len(SIZES), "position": len(POSITIONS)}

    def __init__(self, *, image_size: int = 32, width: int = 32):
        super().__init__()
        self.image_size = image_size

        def block(cin, cout):
            return [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(), nn.MaxPool2d(2)]

        self.features = nn.Sequential(*block(5, width), *block(width, 2 * width), *block(2 * width, 2 * width),
                                      nn.Flatten())
        flat = 2 * width * (image_size // 8) ** 2  # keeps where things are: position needs it
        self.out = nn.ModuleDict({name: nn.Linear(flat, n) for name, n in self.heads.items()})

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        check_images(images, channels=3, image_size=self.image_size)
        z = self.features(torch.cat([images, _coords(images)], dim=1))
        return {name: head(z) for name, head in self.out.items()}


def reader_step(model: AttributeReader, batch: tuple) -> tuple[torch.Tensor, dict[str, float]]:
    """(images (B, 3, S, S), labels (B, 3): shape, size, position indices) -> the sum of the three
    cross-entropies, and each of them as a float."""
    images, labels = batch[:2]
    logits = model(images)
    losses = {name: F.cross_entropy(logits[name], y) for name, y in zip(AttributeReader.heads, labels.unbind(1))}
    return sum(losses.values()), {name: loss.item() for name, loss in losses.items()}


@torch.no_grad()
def read_attributes(reader: AttributeReader, images: torch.Tensor, batch_size: int = 1000) -> dict[str, torch.Tensor]:
    """What a trained reader reads: (N, 3, S, S) -> {"shape", "size", "position"}: (N,) int64 indices
    into SHAPES, SIZES, POSITIONS."""
    reader.eval()
    device = next(reader.parameters()).device
    out = {name: [] for name in reader.heads}
    for i in range(0, len(images), batch_size):
        logits = reader(images[i:i + batch_size].to(device))
        for name in out:
            out[name].append(logits[name].argmax(-1).cpu())
    return {name: torch.cat(v) if v else torch.zeros(0, dtype=torch.long) for name, v in out.items()}


def _fit(model: nn.Module, step_fn, data, *, steps: int, lr: float, desc: str | None, **train_kwargs):
    """AdamW (weight decay 0.01 on weight matrices) with a one-cycle schedule peaking at `lr`."""
    from .optim import param_groups
    from .train import train

    opt = torch.optim.AdamW(param_groups(model, weight_decay=0.01), lr=lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    return train(model, opt, step_fn, data, steps=steps, scheduler=sched, desc=desc or "train",
                 progress=desc is not None, **train_kwargs)


def fit_painter(model: nn.Module, images: torch.Tensor, ids: torch.Tensor, *, steps: int, lr: float = 3e-3,
                batch_size: int = 64, seed: int = 0, step_fn=painter_step, desc: str | None = "painter",
                **train_kwargs):
    """Train a painter on (images (N, 3, S, S), caption ids (N, L)): AdamW (weight decay 0.01 on weight
    matrices) with a one-cycle schedule peaking at `lr`. `step_fn` is `painter_step`, or
    `generative.text_to_image_step` for the pixel-MSE `CaptionToImage`. `desc=None` trains without a
    progress bar. Returns the History."""
    from .train import minibatches

    return _fit(model, step_fn, minibatches(images, ids, batch_size=batch_size, seed=seed), steps=steps, lr=lr,
                desc=desc, **train_kwargs)


def fit_reader(images: torch.Tensor, attributes: dict, *, steps: int = 150, seed: int = 0,
               desc: str | None = "reader") -> AttributeReader:
    """An `AttributeReader` trained on real one-object images (N, 3, S, S) and their ShapesWorld
    attributes (a Batch's `attributes`; object 0 is read), 128 images a step, the same optimiser and
    schedule as `fit_painter`."""
    from .runtime import set_seed
    from .train import minibatches

    set_seed(seed)
    reader = AttributeReader(image_size=images.shape[-1]).to(images.device)
    labels = torch.stack([torch.as_tensor(attributes[name][:, 0]).long() for name in AttributeReader.heads], 1)
    _fit(reader, reader_step, minibatches(images, labels.to(images.device), batch_size=128, seed=seed),
         steps=steps, lr=3e-3, desc=desc)
    return reader.eval()


def judge_paintings(paintings: torch.Tensor, attributes: dict, reader: AttributeReader) -> dict[str, float]:
    """How often one-object paintings (N, 3, S, S) show what their captions named: the fraction whose
    colour (`generative.read_colors`), shape, size and position (`reader`) match `attributes`
    (a ShapesWorld Batch's, object 0)."""
    from .generative import read_colors

    if len(paintings) != len(attributes["shape"]):
        raise ValueError(f"got {len(paintings)} paintings for {len(attributes['shape'])} scenes")
    read = {"color": read_colors(paintings.cpu()), **read_attributes(reader, paintings)}
    return {name: (read[name] == torch.as_tensor(attributes[name][:, 0])).float().mean().item()
            for name in ("color", "shape", "size", "position")}


def load_pretrained_painter(path: str | Path = SHAPES_PAINTER_CHECKPOINT) -> tuple[Painter, dict]:
    """Notebook 05's shipped painter: (model in eval mode, its record: config, the candidates and their
    validation scores, the chosen recipe, its test scores). Written by `benchmarks/pretrain_painter.py`."""
    weights, record = assets.read_checkpoint(path, writer="python benchmarks/pretrain_painter.py (make pretrain)")
    if record["model"] != "shapes-painter":
        raise ValueError(f"{path} holds a {record['model']!r} model, expected notebook 05's 'shapes-painter'")
    model = Painter(**record["config"])
    model.load_state_dict(weights)
    return model.eval(), record


def read_painting(painting: torch.Tensor, reader: AttributeReader) -> dict[str, str]:
    """What the readers read from one painting (3, S, S): {"color", "shape", "size", "position"} as words."""
    from .data.captions import COLORS
    from .generative import read_colors

    batch = painting[None].float()
    read = {"color": read_colors(batch.cpu()), **read_attributes(reader, batch)}
    words = {"color": COLORS, "shape": SHAPES, "size": SIZES, "position": POSITIONS}
    return {name: words[name][int(read[name][0])] for name in ("color", "size", "shape", "position")}


def painting_explorer(painter: Painter, reader: AttributeReader, tokenizer, examples: list[str]):
    """Type a caption (or pick an example): the painter's painting and what the readers read from it.
    Words outside the vocabulary are listed, since the model reads them as <unk>. Returns an
    `Explorer` (its static view shows the first example).

    (The lessons' explorers live in `vlmlearn.widgets`; this one joins them when that module next
    changes, which re-makes every notebook's benchmark fingerprint.)"""
    import ipywidgets as W
    import matplotlib.pyplot as plt

    from .explorer import Explorer, Panel

    text = W.Text(value=examples[0], description="caption", layout=W.Layout(width="520px"))
    pick = W.Dropdown(options=examples, value=examples[0], description="example")

    def draw():
        unknown = [w for w in text.value.lower().split() if w not in tokenizer.stoi]
        device = next(painter.parameters()).device
        painting = painter.eval().paint(tokenizer([text.value]).to(device))[0].cpu()
        read = read_painting(painting, reader)
        fig, ax = plt.subplots(figsize=(2.5, 2.5))
        ax.imshow(painting.permute(1, 2, 0).numpy())
        ax.set_title("the readers read: " + " ".join(read.values()), fontsize=8)
        ax.axis("off")
        return fig, f"not in the vocabulary (read as <unk>): {unknown}" if unknown else None

    panel = Panel(draw)
    pick.observe(lambda change: setattr(text, "value", change["new"]), names="value")
    text.observe(panel.update, names="value")
    return Explorer([pick, text, panel.out], [panel])
