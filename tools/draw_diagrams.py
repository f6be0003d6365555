"""The course's diagrams, drawn from the code they show: notebooks/figures/*.svg.

    python tools/draw_diagrams.py            # write every diagram
    python tools/draw_diagrams.py --check    # exit 1 if a committed diagram is out of date

A diagram states no size that is typed in here. It reads them from what it shows: the package's models built the way
the notebook builds them (the keyword arguments are read from the notebook's own code cells), the notebook's
parameters cell, the signatures and docstrings of the package's functions, and the committed benchmark files.
tests/test_diagrams.py redraws every diagram and compares it with the committed file, so a change to a config, a
parameter or a signature that a diagram shows fails the tests until the diagram is redrawn.

The SVG is written as text, without a plotting library, so its bytes depend on nothing but those inputs. Notebooks
show a diagram from a markdown cell, `![...](figures/NAME.svg)`; tools/make_student_notebooks.py points the student
copies (one folder down) at the same files, and the course site copies them with the notebook pages.
"""
from __future__ import annotations

import argparse
import ast
import inspect
import json
import math
import sys
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
FIGURES = NOTEBOOKS / "figures"

# ---------------------------------------------------------------------------------------------- colours
INK, MUTED = "#222222", "#666666"
IMAGE = ("#dbe8f5", "#2f6ca3")    # (fill, stroke): images and what reads them
TEXT = ("#fde6cf", "#b8650f")     # captions and what reads them
TARGET = ("#d7eed3", "#347a34")   # targets, losses
MODEL = ("#ebe3f5", "#6a4a98")    # a model both sides share
DATA = ("#eeeeee", "#7a7a7a")     # data, plain steps
WRONG = ("#f7d4d4", "#b03030")    # noisy, dropped, buggy


# ---------------------------------------------------------------------------------------------- reading the code
def notebook(prefix: str) -> Path:
    """notebooks/NN_*.ipynb for a prefix such as "01"."""
    (path,) = NOTEBOOKS.glob(f"{prefix}_*.ipynb")
    return path


def code_cells(prefix: str) -> list[str]:
    cells = json.loads(notebook(prefix).read_text())["cells"]
    return ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]


def _parse(source: str) -> ast.Module:
    return ast.parse("\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines()))


def parameters(prefix: str) -> dict:
    """The notebook's parameters cell (tagged "parameters"): every `NAME = literal` in it."""
    cells = json.loads(notebook(prefix).read_text())["cells"]
    (cell,) = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    return {node.targets[0].id: ast.literal_eval(node.value) for node in _parse("".join(cell["source"])).body
            if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)}


def _literal(node):
    try:
        return ast.literal_eval(node)
    except ValueError:
        return None


def call(prefix: str, name: str, *, having: tuple[str, ...] = ()) -> tuple[list, dict]:
    """The first call `name(...)` (or `x.name(...)`) in the notebook's code whose keywords include `having`:
    its positional and keyword arguments that are literals (None stands for any other expression)."""
    for source in code_cells(prefix):
        for node in ast.walk(_parse(source)):
            if not isinstance(node, ast.Call):
                continue
            func = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", None)
            keywords = {k.arg: k.value for k in node.keywords if k.arg}
            if func == name and all(h in keywords for h in having):
                return [_literal(a) for a in node.args], {k: _literal(v) for k, v in keywords.items()}
    raise LookupError(f"no call {name}(...) with keywords {having} in notebook {prefix}")


def calls(prefix: str, name: str) -> list[tuple[list, dict]]:
    """Every call `name(...)` in the notebook's code: (positional, keyword) literal arguments, None for the rest."""
    found = []
    for source in code_cells(prefix):
        for node in ast.walk(_parse(source)):
            func = getattr(node, "func", None)
            if isinstance(node, ast.Call) and (getattr(func, "attr", None) or getattr(func, "id", None)) == name:
                found.append(([_literal(a) for a in node.args],
                              {k.arg: _literal(k.value) for k in node.keywords if k.arg}))
    return found


def literal_kwargs(prefix: str, name: str, *, having: tuple[str, ...] = ()) -> dict:
    return {k: v for k, v in call(prefix, name, having=having)[1].items() if v is not None}


def trained_kwargs(prefix: str, name: str, *, having: tuple[str, ...] = ()) -> dict:
    """The literal keywords of the last call `name(...)` with keywords `having`: the model a notebook trains, built
    after the smallest one that its "model on the page" cell checks against the package."""
    found = [kw for _, kw in calls(prefix, name) if all(h in kw for h in having)]
    if not found:
        raise LookupError(f"no call {name}(...) with keywords {having} in notebook {prefix}")
    return {k: v for k, v in found[-1].items() if v is not None}


def first_line(obj) -> str:
    """The first sentence of an object's docstring."""
    doc = inspect.getdoc(obj) or ""
    return doc.split("\n\n")[0].replace("\n", " ").split(". ")[0].rstrip(".")


def conv_widths(module) -> list[int]:
    from torch import nn

    return [m.out_channels for m in module.modules() if isinstance(m, nn.Conv2d)]


def blocks_shape(blocks) -> tuple[int, int, int]:
    """(layers, width, heads) of a `vlmlearn.models.transformer_blocks` stack."""
    layer = blocks.layers[0]
    return len(blocks.layers), layer.self_attn.embed_dim, layer.self_attn.num_heads


def count(n: int, word: str) -> str:
    """"1 block", "4 blocks"."""
    return f"{n} {word}{'' if n == 1 else 's'}"


# ---------------------------------------------------------------------------------------------- writing SVG
def _n(v: float) -> str:
    """A coordinate as short, fixed text: the same number gives the same bytes on every machine."""
    v = round(float(v), 1)
    return str(int(v)) if v == int(v) else f"{v:.1f}"


def _esc(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def _rich(s: str, size: float) -> str:
    """Text with `_{sub}` subscripts, as tspans (dy shifts work in every browser; baseline-shift does not)."""
    out, parts, shift = [], s.split("_{"), round(size * 0.3, 1)
    out.append(_esc(parts[0]))
    for part in parts[1:]:
        sub, _, rest = part.partition("}")
        out.append(f'<tspan dy="{_n(shift)}" font-size="{_n(size * 0.75)}">{_esc(sub)}</tspan>')
        if rest:
            out.append(f'<tspan dy="{_n(-shift)}">{_esc(rest)}</tspan>')
    return "".join(out)


class Box(NamedTuple):
    """A rectangle, with the points where arrows attach."""

    x: float
    y: float
    w: float
    h: float

    @property
    def cx(self) -> float:
        return self.x + self.w / 2

    @property
    def cy(self) -> float:
        return self.y + self.h / 2

    @property
    def left(self) -> tuple[float, float]:
        return self.x, self.cy

    @property
    def right(self) -> tuple[float, float]:
        return self.x + self.w, self.cy

    @property
    def top(self) -> tuple[float, float]:
        return self.cx, self.y

    @property
    def bottom(self) -> tuple[float, float]:
        return self.cx, self.y + self.h


class Svg:
    """A drawing: shapes and text appended in order, written as one SVG document."""

    def __init__(self, width: int, height: int, title: str, desc: str):
        self.width, self.height, self.title, self.desc = width, height, title, desc
        self.items: list[str] = []

    def rect(self, x, y, w, h, *, fill="none", stroke="none", rx=0, width=1.0, dash=False) -> Box:
        extra = ' stroke-dasharray="5 3"' if dash else ""
        self.items.append(f'<rect x="{_n(x)}" y="{_n(y)}" width="{_n(w)}" height="{_n(h)}" rx="{_n(rx)}" '
                          f'fill="{fill}" stroke="{stroke}" stroke-width="{_n(width)}"{extra}/>')
        return Box(x, y, w, h)

    def text(self, x, y, s: str, *, size=12, anchor="middle", weight="normal", fill=INK, italic=False, mono=False):
        font = ' font-family="DejaVu Sans Mono, Menlo, Consolas, monospace"' if mono else ""
        style = ' font-style="italic"' if italic else ""
        bold = ' font-weight="bold"' if weight == "bold" else ""
        self.items.append(f'<text x="{_n(x)}" y="{_n(y)}" font-size="{_n(size)}" text-anchor="{anchor}" '
                          f'fill="{fill}"{font}{style}{bold} xml:space="preserve">{_rich(s, size)}</text>')

    def lines(self, x, y, lines: list[str], *, size=12, leading=1.35, **kw):
        """Lines of text, the first baseline at y. A line starting with '**' is bold; with '`', monospace."""
        for k, line in enumerate(lines):
            bold, mono = line.startswith("**"), line.startswith("`")
            self.text(x, y + k * size * leading, line.strip("*`"), size=size, weight="bold" if bold else "normal",
                      mono=mono, **kw)

    def box(self, x, y, w, h, lines: list[str], *, color=DATA, size=12, dash=False, align="middle") -> Box:
        """A rounded box with its lines of text centred in it (or left-aligned with align="start")."""
        b = self.rect(x, y, w, h, fill=color[0], stroke=color[1], rx=6, width=1.3, dash=dash)
        lead = size * 1.35
        first = b.cy - (len(lines) - 1) * lead / 2 + size * 0.36
        tx = b.cx if align == "middle" else x + 10
        self.lines(tx, first, lines, size=size, leading=1.35, anchor=align)
        return b

    def arrow(self, *points, color=INK, width=1.4, dash=False, head=8):
        """A polyline from the first point to the last, with an arrowhead at the last."""
        pts = " ".join(f"{_n(x)},{_n(y)}" for x, y in points)
        extra = ' stroke-dasharray="5 3"' if dash else ""
        self.items.append(f'<polyline points="{pts}" fill="none" stroke="{color}" stroke-width="{_n(width)}"'
                          f'{extra}/>')
        (x1, y1), (x2, y2) = points[-2], points[-1]
        angle = math.atan2(y2 - y1, x2 - x1)
        wing = [(x2 - head * math.cos(angle + s * 0.42), y2 - head * math.sin(angle + s * 0.42)) for s in (1, -1)]
        corners = " ".join(f"{_n(x)},{_n(y)}" for x, y in [(x2, y2), *wing])
        self.items.append(f'<polygon points="{corners}" fill="{color}"/>')

    def line(self, x1, y1, x2, y2, *, color=INK, width=1.0, dash=False):
        extra = ' stroke-dasharray="4 3"' if dash else ""
        self.items.append(f'<line x1="{_n(x1)}" y1="{_n(y1)}" x2="{_n(x2)}" y2="{_n(y2)}" stroke="{color}" '
                          f'stroke-width="{_n(width)}"{extra}/>')

    def heading(self, s: str, sub: str = ""):
        self.text(16, 26, s, size=16, anchor="start", weight="bold")
        if sub:
            self.text(16, 45, sub, size=12, anchor="start", fill=MUTED)

    def write(self) -> str:
        head = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{self.width}" height="{self.height}" '
                f'viewBox="0 0 {self.width} {self.height}" role="img" aria-labelledby="title desc" '
                f'font-family="Helvetica, Arial, Liberation Sans, DejaVu Sans, sans-serif">')
        return "\n".join([head, f'<title id="title">{_esc(self.title)}</title>',
                          f'<desc id="desc">{_esc(self.desc)}</desc>',
                          f'<rect width="{self.width}" height="{self.height}" fill="white"/>', *self.items,
                          "</svg>"]) + "\n"


def grid(svg: Svg, x, y, side: int, cell: float, fill_of, *, stroke="#ffffff", label_of=None, size=10):
    """A side x side grid of cells; fill_of(r, c) gives each cell's fill, label_of(r, c) an optional text."""
    for r in range(side):
        for c in range(side):
            svg.rect(x + c * cell, y + r * cell, cell, cell, fill=fill_of(r, c), stroke=stroke, width=1)
            if label_of and (s := label_of(r, c)):
                svg.text(x + (c + 0.5) * cell, y + (r + 0.5) * cell + size * 0.36, s, size=size, fill=MUTED)
    return Box(x, y, side * cell, side * cell)


# ---------------------------------------------------------------------------------------------- 00: the views
VIEWS = ("pairs", "noisy_pairs", "images", "texts", "labeled", "vqa", "heldout_pairs", "binding_pairs")


def used_in(pattern: str) -> list[str]:
    """The numbered notebooks (other than 00, the tour itself) whose code matches a regular expression."""
    import re

    found = []
    for path in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")):
        if path.name[:2] != "00" and re.search(pattern, "\n".join(code_cells(path.name[:2]))):
            found.append(path.name[:2])
    return found


def data_views() -> Svg:
    """Notebook 00: one procedural world, one method per kind of data, and the notebooks that call each."""
    from vlmlearn.data import ShapesWorld, load_digits_split

    p = parameters("00")
    rows = [(f"world.{name}(n)", first_line(getattr(ShapesWorld, name)),
             used_in(rf"(?:\bworld\w*|ShapesWorld\([^()]*\))\.{name}\(")) for name in VIEWS]
    rows.append(("load_digits_split(k)", first_line(load_digits_split), used_in(r"load_digits_split\(")))
    row = 50
    height = 90 + row * len(rows)
    svg = Svg(980, height, "One world, many views of data",
              "ShapesWorld draws every image from known attributes and writes every caption from the same "
              "attributes; each method returns one kind of data, and the real handwritten digits come from "
              "scikit-learn. Each row names the notebooks whose code calls it.")
    svg.heading("One world, many views: the data of the course",
                "each method with the first sentence of its docstring (vlmlearn.data), and the notebooks whose "
                "code calls it")
    world = svg.box(20, 66 + row * 2.6, 200, 110,
                    ["**ShapesWorld", f"(seed={p['SEED']}, image_size={p['IMAGE_SIZE']})",
                     "sample i of a view is a pure", "function of (seed, view, split, i)"], color=MODEL)
    digits = svg.box(20, 66 + row * (len(rows) - 1) + 2, 200, 44, ["**scikit-learn's digits",
                                                                    "real handwritten images"], color=IMAGE)
    colors = {"pairs": TARGET, "noisy_pairs": WRONG, "images": IMAGE, "texts": TEXT, "load_digits_split": IMAGE}
    for k, (call_, doc, where) in enumerate(rows):
        y = 66 + row * k
        name = call_.split("(")[0].split(".")[-1]
        color = colors.get(name, DATA)
        svg.rect(270, y + 2, 690, row - 6, fill=color[0], stroke=color[1], rx=5)
        svg.text(282, y + 20, call_, size=12.5, anchor="start", mono=True, weight="bold")
        svg.text(948, y + 20, "used in " + (", ".join(where) if where else "no notebook yet"), size=11.5,
                 anchor="end", fill=MUTED)
        doc = doc.replace("`", "")
        svg.text(282, y + 37, doc if len(doc) <= 120 else doc[:117] + "…", size=11.5, anchor="start")
        source = digits.right if name == "load_digits_split" else world.right
        svg.arrow(source, (266, y + row / 2 - 1), color="#999999", width=1, head=6)
    return svg


# ---------------------------------------------------------------------------------------------- 01: InfoNCE
def infonce() -> Svg:
    """Notebook 01: the dual encoder the notebook trains, its B x B similarity matrix and the diagonal targets."""
    from vlmlearn.contrastive import shapes_clip
    from vlmlearn.data import WordTokenizer, caption_vocabulary

    batch = parameters("01")["BATCH"]
    tok = WordTokenizer(caption_vocabulary(), **literal_kwargs("01", "WordTokenizer"))
    model = shapes_clip(tok.vocab_size)  # the fixed model of section 4: the package's defaults
    image, text = model.image_encoder, model.text_encoder
    layers, width, heads = blocks_shape(text.blocks)
    start_t, cap = 1 / model.scale().item(), model.max_logit_scale
    n = 6  # pairs drawn

    svg = Svg(900, 490, "InfoNCE on a batch of image-caption pairs",
              f"Notebook 01's dual encoder maps B images and B captions to unit vectors u and v; the B x B matrix of "
              f"similarities u_i . v_j / T is read row by row and column by column as B-way classifications whose "
              f"targets are the diagonal. B = {batch} in training; {n} pairs are drawn.")
    svg.heading("InfoNCE: a batch of B pairs becomes two B-way classifications",
                f"notebook 01's dual encoder, read from vlmlearn.contrastive.shapes_clip; B = {batch} pairs per "
                f"training step, {n} drawn")
    cell, mx, my = 38, 400, 200
    cap_box = svg.box(120, 72, 170, 50, ["B captions", f"≤ {text.context_length} word ids each"], color=TEXT)
    tower_t = svg.box(330, 62, 300, 70, ["**text tower: TextTransformer",
                                         f"{count(layers, 'layer')}, width {width}, {heads} heads, "
                                         f"{'causal' if text.causal else 'bidirectional'}",
                                         f"→ v (B × {text.embed_dim}), unit length"], color=TEXT)
    svg.arrow(cap_box.right, tower_t.left, color=TEXT[1])
    img_box = svg.box(70, 175, 160, 50, ["B images", f"3 × {image.image_size} × {image.image_size}"], color=IMAGE)
    widths = conv_widths(image.features)
    tower_i = svg.box(20, 250, 260, 86, ["**image tower: SmallCNN",
                                         f"{count(len(widths), 'conv block')}: {', '.join(map(str, widths))} channels",
                                         f"→ u (B × {image.embed_dim}), unit length"], color=IMAGE)
    svg.arrow(img_box.bottom, tower_i.top, color=IMAGE[1])
    svg.arrow(tower_i.right, (mx - 34, my + 2.5 * cell), color=IMAGE[1])
    svg.arrow((mx + n * cell / 2, tower_t.y + tower_t.h), (mx + n * cell / 2, my - 30), color=TEXT[1])

    row, col = 1, 4  # the row and the column spelled out on the right

    def fill(r, c):
        return TARGET[0] if r == c else "#f1f1f1"

    grid(svg, mx, my, n, cell, fill, stroke="#bbbbbb", label_of=lambda r, c: "target" if r == c else "", size=8)
    for k in range(n):
        svg.text(mx - 14, my + (k + 0.5) * cell + 4, f"u_{{{k + 1}}}", size=12, fill=IMAGE[1])
        svg.text(mx + (k + 0.5) * cell, my - 10, f"v_{{{k + 1}}}", size=12, fill=TEXT[1])
    svg.rect(mx - 2, my + row * cell - 2, n * cell + 4, cell + 4, stroke=IMAGE[1], width=2.2)
    svg.rect(mx + col * cell - 2, my - 2, cell + 4, n * cell + 4, stroke=TEXT[1], width=2.2)
    svg.text(mx + n * cell / 2, my + n * cell + 22, "s_{ij} = u_{i} · v_{j} / T", size=14)
    svg.text(mx + n * cell / 2, my + n * cell + 40, "the B × B logits", size=11, fill=MUTED)

    rx = 680
    r_box = svg.box(rx, my + (row + 0.5) * cell - 46, 205, 92, [f"**row {row + 1}: image {row + 1} asks",
                                       '"which caption is mine?"', "softmax over the B captions,",
                                       f"cross-entropy, target {row + 1}"], color=IMAGE, size=11.5)
    c_box = svg.box(rx, r_box.y + 110, 205, 92, [f"**column {col + 1}: caption {col + 1} asks",
                                       '"which image is mine?"', "softmax over the B images,",
                                       f"cross-entropy, target {col + 1}"], color=TEXT, size=11.5)
    svg.arrow((mx + n * cell + 2, my + (row + 0.5) * cell), (r_box.x, my + (row + 0.5) * cell), color=IMAGE[1])
    svg.arrow((mx + (col + 0.5) * cell, my + n * cell + 2), (mx + (col + 0.5) * cell, my + n * cell + 8),
              (rx - 20, my + n * cell + 8), (rx - 20, c_box.cy), c_box.left, color=TEXT[1])
    svg.box(rx, c_box.y + 112, 205, 50, ["**loss = ½ (mean over rows", "**+ mean over columns)"], color=TARGET, size=12)
    svg.lines(20, 395, [f"T is learned: it starts at {start_t:.2g} (CLIP's value)",
                        f"and 1/T is clamped at {cap:g} after every step.",
                        "Every other caption of the batch is a free negative:",
                        f"{batch - 1} of them for each image at B = {batch}."], size=12, anchor="start", fill=MUTED)
    return svg



# ---------------------------------------------------------------------------------------------- 02: SigLIP
def siglip() -> Svg:
    """Notebook 02: the same noisy batch under the softmax loss and under SigLIP's sigmoid per pair."""
    from vlmlearn.contrastive import DualEncoder
    from vlmlearn.models import SmallCNN, TextTransformer

    p = parameters("02")
    kw = literal_kwargs("02", "DualEncoder", having=("logit_bias",))  # make_model(siglip=True)
    model = DualEncoder(SmallCNN(), TextTransformer(vocab_size=8), **kw)
    t, b = model.scale().item(), model.logit_bias.item()
    n, noisy, cell = 6, 3, 36  # pair 4's caption belongs to another image

    svg = Svg(900, 470, "The softmax loss and the sigmoid loss on a batch with a wrong caption",
              f"Left: InfoNCE normalises each row and column over the batch, with the diagonal as the target. Right: "
              f"SigLIP scores every image-caption cell on its own with a sigmoid, label +1 on the diagonal and -1 "
              f"elsewhere, starting at t = {t:g} and b = {b:g}. Pair {noisy + 1} carries a wrong caption: both losses "
              f"label it a positive.")
    svg.heading("Two ways to score a batch of B pairs, one of them noisy",
                f"B = {p['BATCH']} in training, {n} drawn; at NOISE = {p['NOISE']:g}, "
                f"{p['NOISE']:.0%} of the pairs carry a wrong caption (pair {noisy + 1} here)")
    for k, (x0, title, note) in enumerate(
            ((70, "InfoNCE (CLIP): one softmax per row and per column",
              ["each row: which of the B captions is image i's?",
               "the diagonal is the only right answer, so a wrong",
               f"caption on it (row {noisy + 1}) pulls image {noisy + 1} towards it",
               "and away from the other B − 1 captions"]),
             (500, "SigLIP: a yes/no question per cell",
              ["sigmoid(t · u_{i} · v_{j} + b) against +1 or −1:",
               "B² independent binary labels, no normalisation",
               f"over the batch; t starts at {t:g}, b at {b:g} (Zhai et al.)",
               f"the wrong pair is still a +1 (row {noisy + 1})"]))):
        y0 = 110
        svg.text(x0 + n * cell / 2, 80, title, size=13, weight="bold")
        for r in range(n):
            for c in range(n):
                if k == 0:
                    fill = TARGET[0] if r == c else "#f3f3f3"
                    label = "target" if r == c else ""
                else:
                    fill = TARGET[0] if r == c else WRONG[0]
                    label = "+1" if r == c else "−1"
                if r == c == noisy:
                    fill = "#f3c6a0"
                svg.rect(x0 + c * cell, y0 + r * cell, cell, cell, fill=fill, stroke="#bbbbbb")
                svg.text(x0 + (c + 0.5) * cell, y0 + (r + 0.5) * cell + 4, label, size=9 if k == 0 else 11,
                         fill=MUTED)
        for j in range(n):
            svg.text(x0 - 14, y0 + (j + 0.5) * cell + 4, f"u_{{{j + 1}}}", size=12, fill=IMAGE[1])
            svg.text(x0 + (j + 0.5) * cell, y0 - 8, f"v_{{{j + 1}}}", size=12, fill=TEXT[1])
        if k == 0:
            svg.rect(x0 - 2, y0 + noisy * cell - 2, n * cell + 4, cell + 4, stroke=WRONG[1], width=2.2)
        else:
            svg.rect(x0 + noisy * cell - 2, y0 + noisy * cell - 2, cell + 4, cell + 4, stroke=WRONG[1], width=2.2)
        svg.lines(x0 + n * cell / 2, y0 + n * cell + 26, note, size=12, fill=INK)
    svg.text(450, 455, "Neither loss can tell a wrong caption from a right one: the remedy is in the data "
                       "(filter the pairs, section 4), not in the normalisation.", size=12, fill=MUTED)
    return svg


# ---------------------------------------------------------------------------------------------- 03: MAE
def mae() -> Svg:
    """Notebook 03: mask -> encode -> decode, with the sizes of the shipped MAE's config."""
    import torch

    from vlmlearn.mae import SHAPES_MAE_CONFIG, MaskedAutoencoder, random_masking

    cfg = SHAPES_MAE_CONFIG
    model = MaskedAutoencoder(**cfg)
    enc = model.encoder
    side = enc.image_size // enc.patch_size
    n_patches = enc.num_patches
    ratio = parameters("03")["MASK_RATIO"]
    noise = torch.rand(1, n_patches, generator=torch.Generator().manual_seed(0))
    kept, mask, _ = random_masking(torch.zeros(1, n_patches, 1), ratio, noise)
    hidden = mask[0].view(side, side).tolist()
    n_kept, n_hidden = kept.shape[1], n_patches - kept.shape[1]
    e_layers, e_width, e_heads = blocks_shape(enc.blocks)
    d_layers, d_width, d_heads = blocks_shape(model.decoder_blocks)
    patch_numbers = enc.patch_size ** 2 * enc.in_channels

    svg = Svg(980, 490, "MAE: mask, encode the visible patches, decode every patch",
              f"A {enc.image_size} px image is cut into {n_patches} patches; {n_hidden} are hidden. The encoder "
              f"({count(e_layers, 'block')}, width {e_width}) sees the CLS token and the {n_kept} visible patches; "
              f"the decoder ({count(d_layers, 'block')}, width {d_width}) sees them back in place with a mask token "
              f"at every hidden position and predicts all {n_patches} patches; the loss counts the hidden ones.")
    svg.heading("MAE: hide most patches, encode the rest, paint the hidden ones back",
                "vlmlearn.mae.MaskedAutoencoder(**SHAPES_MAE_CONFIG), the shipped checkpoint's model; "
                f"MASK_RATIO = {ratio:g}; the mask drawn is random_masking's for one noise draw")
    cell = 15
    hid = "#d4d4d4"
    g1 = grid(svg, 50, 90, side, cell, lambda r, c: hid if hidden[r][c] else "#9cc0e4")
    svg.lines(g1.cx, g1.y + g1.h + 20, [f"{enc.image_size} × {enc.image_size} image: {side} × {side} = "
                                        f"{n_patches} patches", f"of {enc.patch_size} × {enc.patch_size} px; "
                                        f"{ratio:.0%} hidden (grey)"], size=11.5)
    encoder = svg.box(220, 92, 210, 116, ["**encoder: a ViT",
                                          f"{count(e_layers, 'block')}, width {e_width}, {e_heads} heads",
                                          f"input: CLS + the {n_kept} visible", "patches, with sin-cos positions",
                                          f"output: {1 + n_kept} × {e_width}"], color=IMAGE)
    svg.arrow((g1.x + g1.w + 6, g1.cy), encoder.left, color=IMAGE[1])
    svg.text((g1.x + g1.w + encoder.x) / 2, g1.cy - 8, f"{n_kept} kept", size=10.5, fill=IMAGE[1])
    proj = svg.box(470, 120, 130, 60, ["decoder_embed", f"{e_width} → {d_width}"], color=MODEL)
    svg.arrow(encoder.right, proj.left, color=INK)
    g2 = grid(svg, 650, 90, side, cell, lambda r, c: "#ffffff" if hidden[r][c] else "#b9a6d6", stroke="#999999",
              label_of=lambda r, c: "m" if hidden[r][c] else "", size=9)
    svg.arrow(proj.right, (g2.x - 6, g2.cy), color=INK)
    svg.lines(g2.cx + 150, 110, [f"the {n_kept} encoded patches", f"+ {n_hidden} copies of one learned",
                                 "mask token (m), put back in", "raster order (ids_restore),",
                                 "+ sin-cos positions"], size=11.5, anchor="middle")
    decoder = svg.box(g2.cx - 115, 275, 230, 96, ["**decoder: light",
                                          f"{count(d_layers, 'block')}, width {d_width}, {d_heads} heads",
                                          f"predicts all {n_patches} patches,",
                                          f"{patch_numbers} numbers each ({enc.patch_size}×{enc.patch_size}×"
                                          f"{enc.in_channels})"], color=MODEL)
    svg.arrow((g2.cx, g2.y + g2.h + 4), decoder.top, color=INK)
    g3 = grid(svg, 400, 276, side, cell, lambda r, c: "#f3c6a0" if hidden[r][c] else "#f4f4f4",
              stroke="#ffffff")
    svg.arrow(decoder.left, (g3.x + g3.w + 6, decoder.cy), color=INK)
    svg.lines(g3.cx, g3.y + g3.h + 20, ["prediction: the loss reads", f"only the {n_hidden} hidden patches"],
              size=11.5)
    loss = svg.box(24, 276, 330, 120, ["**loss: mean squared error on the hidden patches",
                                       "copying the visible ones would be too easy;",
                                       "norm_pix_loss: each target patch minus its mean,",
                                       "divided by √(variance + norm_pix_eps),",
                                       f"norm_pix_eps = {model.norm_pix_eps:g} (MAE's own: 1e-6)"],
                   color=TARGET, size=11.5)
    svg.arrow((g3.x - 6, g3.cy), loss.right, color=TARGET[1])
    svg.lines(24, 450, [f"Fine-tuning and probes keep only the encoder: it then sees all {n_patches} patches "
                        "(no mask) and its patch tokens are averaged (MAEEncoder.forward).",
                        f"The encoder does the heavy work on {n_kept} of {n_patches} patches: that is what "
                        "makes MAE cheap to pretrain (He et al. 2022)."], size=11.5, anchor="start", fill=MUTED)
    return svg



# ---------------------------------------------------------------------------------------------- 04: fusion
def fusion() -> Svg:
    """Notebook 04: two towers that meet in a dot product, against one transformer over image and word tokens."""
    from vlmlearn.contrastive import shapes_clip
    from vlmlearn.data import WordTokenizer, caption_vocabulary
    from vlmlearn.mlm import MaskedCaptionModel
    from vlmlearn.models import SmallCNN

    tok = WordTokenizer(caption_vocabulary(), **literal_kwargs("04", "WordTokenizer"))
    cnn = SmallCNN(**literal_kwargs("04", "SmallCNN"))
    kw = trained_kwargs("04", "MaskedCaptionModel", having=("image_encoder",))
    model = MaskedCaptionModel(vocab_size=tok.vocab_size, image_encoder=cnn.features, **kw)
    n_img, channels = model.image_pos.shape[0], model.image_proj.in_features
    side = round(n_img ** 0.5)
    layers, width, heads = blocks_shape(model.blocks)
    context, vocab = model.pos_embed.shape[0], model.head.out_features
    clip = shapes_clip(tok.vocab_size)
    d = clip.image_encoder.embed_dim
    caption = "a small red circle on the left"
    ids = tok([caption])[0]
    words = [tok.itos[i] for i in ids.tolist() if i != tok.pad_id]
    masked = words.index("red")

    svg = Svg(1000, 450, "Dual encoder against single-stream fusion",
              f"Left: notebook 01's dual encoder embeds image and caption separately into {d}-d vectors that meet "
              f"only in a dot product. Right: notebook 04's model turns the image into {n_img} feature tokens, "
              f"prepends them to the word tokens, and one bidirectional transformer ({count(layers, 'layer')}, width "
              f"{width}) predicts the masked words from both.")
    svg.heading("Where image and text meet: two towers, or one stream",
                "left: vlmlearn.contrastive.shapes_clip (notebook 01); right: vlmlearn.mlm.MaskedCaptionModel "
                "as notebook 04 builds it")
    # left: the dual encoder
    svg.text(170, 82, "dual encoder (CLIP)", size=13, weight="bold")
    im = svg.box(20, 100, 130, 44, ["image"], color=IMAGE)
    tx = svg.box(190, 100, 130, 44, ["caption"], color=TEXT)
    it = svg.box(20, 180, 130, 60, ["image tower", "SmallCNN"], color=IMAGE)
    tt = svg.box(190, 180, 130, 60, ["text tower", "TextTransformer"], color=TEXT)
    svg.arrow(im.bottom, it.top, color=IMAGE[1])
    svg.arrow(tx.bottom, tt.top, color=TEXT[1])
    dot = svg.box(105, 290, 130, 50, ["u · v / T", "one score"], color=TARGET)
    svg.arrow(it.bottom, (it.cx, 265), (dot.cx - 20, 265), (dot.cx - 20, dot.y), color=IMAGE[1])
    svg.arrow(tt.bottom, (tt.cx, 265), (dot.cx + 20, 265), (dot.cx + 20, dot.y), color=TEXT[1])
    svg.text(it.cx, 258, f"u ({d}-d)", size=11, fill=IMAGE[1])
    svg.text(tt.cx, 258, f"v ({d}-d)", size=11, fill=TEXT[1])
    svg.lines(170, 370, ["The towers never see each other: each side", "is embedded once, and retrieval over",
                         "millions of captions is one matrix product."], size=11.5, fill=MUTED)
    svg.line(350, 70, 350, 430, color="#cccccc")
    # right: single stream
    x0 = 380
    svg.text(670, 82, "single stream (VisualBERT, ViLT; this notebook)", size=13, weight="bold")
    im2 = svg.box(x0, 100, 150, 44, ["image"], color=IMAGE)
    fm = svg.box(x0, 170, 150, 60, ["SmallCNN.features", f"{channels} × {side} × {side} map"], color=IMAGE)
    svg.arrow(im2.bottom, fm.top, color=IMAGE[1])
    hidden = parameters("04")["MASK_PROB"]
    cap = svg.box(x0 + 200, 100, 400, 44, [caption.replace("red", tok.itos[tok.mask_id])
                                           + f"   ({hidden:.0%} of the words hidden)"], color=TEXT)
    token, word, ty = 16, 36, 262
    svg.text(x0, ty - 8, f"{n_img} image tokens (Linear {channels} → {width}, + positions)", size=11, anchor="start",
             fill=IMAGE[1])
    for k in range(n_img):
        svg.rect(x0 + k * token, ty, token - 2, token, fill=IMAGE[0], stroke=IMAGE[1])
    wx = x0 + n_img * token + 10
    svg.text(wx, ty - 8, f"word tokens (up to {context}, + positions)", size=11, anchor="start", fill=TEXT[1])
    for k, w in enumerate(words):
        fill = "#ffffff" if k == masked else TEXT[0]
        svg.rect(wx + k * word, ty, word - 2, token + 4, fill=fill, stroke=TEXT[1])
        svg.text(wx + (k + 0.5) * word - 1, ty + 14, "?" if k == masked else w.strip("<>"), size=9 if k != masked
                 else 12, weight="bold" if k == masked else "normal", fill=WRONG[1] if k == masked else INK)
    svg.arrow(fm.bottom, (fm.cx, ty - 18), color=IMAGE[1])
    svg.arrow(cap.bottom, (wx + len(words) * word / 2, ty - 18), color=TEXT[1])
    tr = svg.box(x0, 310, wx + len(words) * word - x0, 56,
                 [f"**one transformer over the {n_img} + {len(words)} tokens: {count(layers, 'layer')}, width {width}, "
                  f"{heads} heads",
                  "bidirectional: every word attends to every image region and every other word"], color=MODEL)
    svg.arrow((wx + (masked + 0.5) * word, ty + token + 6), (wx + (masked + 0.5) * word, tr.y), color=INK)
    out = svg.box(x0 + 120, 384, 420, 44, [f'at each hidden word: logits over the {vocab} words → "{words[masked]}"'],
                  color=TARGET)
    svg.arrow((out.cx, tr.y + tr.h), out.top, color=TARGET[1])
    return svg


# ---------------------------------------------------------------------------------------------- 05: the loop
def caption_paint() -> Svg:
    """Notebook 05: captioner -> synthetic captions -> the pixel-MSE painter; the shipped palette painter (its
    config read from its record); the readers that judge every painting; the cycle."""
    from vlmlearn.data import WordTokenizer, caption_vocabulary
    from vlmlearn.generative import Captioner, CaptionToImage
    from vlmlearn.painter import SHAPES_PAINTER_CHECKPOINT, Painter, fit_reader

    tok = WordTokenizer(caption_vocabulary(), context_length=20)
    p = parameters("05")
    cap = Captioner(vocab_size=tok.vocab_size, **trained_kwargs("05", "Captioner"))
    mse = CaptionToImage(vocab_size=tok.vocab_size, **literal_kwargs("05", "CaptionToImage"))
    record = json.loads(SHAPES_PAINTER_CHECKPOINT.with_suffix(".json").read_text())
    shipped = Painter(**record["config"])
    side = round(cap.image_pos.shape[0] ** 0.5)
    c_layers, c_width = len(cap.decoder.layers), cap.token_embed.embedding_dim
    m_layers, m_width, _ = blocks_shape(mse.text.blocks)
    s_layers, s_width, _ = blocks_shape(shipped.text.blocks)
    start = mse.image_size // 8
    ups = sum(1 for m in mse.decoder if type(m).__name__ == "ConvTranspose2d")
    widths = sorted(set(shipped.channels))
    channels = f"{widths[0]} channels" if len(widths) == 1 else "channels " + "/".join(map(str, shipped.channels))
    blocks = (f"{count(len(shipped.blocks), 'FiLM block')}, {channels}" if shipped.film else
              f"{count(len(shipped.blocks), 'conv block')}, {channels} (caption at the 4 × 4 map only)")
    colours = shipped.head.out_channels - 1
    (n_real,), _ = next((a, kw) for a, kw in calls("05", "labeled") if "split" not in kw)
    reader_steps = inspect.signature(fit_reader).parameters["steps"].default

    svg = Svg(1000, 500, "Captions for unpaired images, images from captions, and the readers that judge them",
              "A captioner trained on the few pairs writes a caption for every unpaired image; the pixel-MSE painter "
              "trains on the pairs plus those synthetic pairs; the shipped palette painter with FiLM was trained on "
              "true pairs; a colour reader and an attribute reader judge every painting; captions of test images are "
              "painted again: image -> caption -> image.")
    svg.heading("Image → caption → image: putting unpaired images to work, and judging the paintings",
                "vlmlearn.generative.Captioner and CaptionToImage built as notebook 05 builds them; "
                "vlmlearn.painter.Painter as its shipped record says")
    pairs = svg.box(20, 75, 170, 56, [f"**the {p['N_PAIRS']:,} pairs", "image + true caption"], color=TARGET)
    unpaired = svg.box(20, 195, 170, 56, [f"**{p['N_UNPAIRED']:,} unpaired images", "no caption at all"],
                       color=IMAGE)
    captioner = svg.box(230, 110, 230, 120, ["**captioner (Captioner)", f"CNN → {side} × {side} grid of image vectors",
                                             f"decoder: {count(c_layers, 'layer')}, width {c_width},",
                                             "cross-attention to the grid",
                                             f"{p['CAPTION_STEPS']:,} steps on the pairs"], color=IMAGE)
    svg.arrow(pairs.right, (captioner.x + 50, pairs.cy), (captioner.x + 50, captioner.y), color=TARGET[1])
    svg.arrow(unpaired.right, (captioner.x, unpaired.cy), color=IMAGE[1])
    synth = svg.box(495, 135, 170, 70, ["synthetic captions", "one per unpaired image", "(greedy decoding)"],
                    color=TEXT)
    svg.arrow(captioner.right, synth.left, color=TEXT[1])
    first = svg.box(700, 75, 285, 130, ["**first painter (CaptionToImage)",
                                        f"text tower: {count(m_layers, 'layer')}, width {m_width}",
                                        f"→ {mse.channels} × {start} × {start} map → {ups} transposed convs",
                                        f"→ 3 × {mse.image_size} × {mse.image_size} image, pixel (MSE) loss",
                                        f"{p['PAINTER_STEPS']:,} steps on pairs + synthetic pairs",
                                        "(and the pairs-only, random-caption arms)"], color=TEXT, size=11.5)
    svg.arrow(synth.right, (first.x, synth.cy), color=TEXT[1])
    svg.arrow((pairs.x + pairs.w, pairs.y + 12), (first.x, pairs.y + 12), color=TARGET[1])
    svg.text(580, pairs.y + 6, "with the synthetic pairs, trains the first painter", size=11, fill=TARGET[1])
    second = svg.box(700, 245, 285, 145, ["**shipped painter (painter.Painter)",
                                          f"text tower: {count(s_layers, 'layer')}, width {s_width}",
                                          f"→ {shipped.channels[0]} × 4 × 4 map → {blocks}",
                                          f"→ background + {colours} colour logits per pixel",
                                          f"palette cross-entropy, background weight {shipped.background_weight:g}",
                                          f"{record['steps']:,} steps on {record['pairs']:,} true pairs,",
                                          "design chosen on validation (make pretrain)"], color=MODEL, size=11.5)
    svg.arrow(captioner.bottom, (captioner.cx, second.cy), second.left, color=MUTED, dash=True)
    svg.text((captioner.cx + second.x) / 2 + 20, second.cy - 8, "the cycle: captions of test images, painted again",
             size=11, fill=MUTED)
    readers = svg.box(230, 420, 440, 64, ["**the readers judge every painting against its caption",
                                          "colour: read_colors; shape, size, position: AttributeReader,",
                                          f"a small CNN trained on {n_real:,} real images ({reader_steps} steps)"],
                      color=IMAGE, size=11.5)
    svg.arrow(second.bottom, (second.cx, readers.y + 22), (readers.x + readers.w, readers.y + 22), color=IMAGE[1])
    svg.arrow(first.right, (first.x + first.w + 8, first.cy), (first.x + first.w + 8, readers.y + 44),
              (readers.x + readers.w, readers.y + 44), color=IMAGE[1])
    svg.text(20, 300, "A caption does not fix where", size=11, anchor="start", fill=MUTED)
    svg.text(20, 315, "exactly an object sits: a pixel", size=11, anchor="start", fill=MUTED)
    svg.text(20, 330, "loss paints the average image,", size=11, anchor="start", fill=MUTED)
    svg.text(20, 345, "a blur. The palette target paints", size=11, anchor="start", fill=MUTED)
    svg.text(20, 360, "each pixel's likeliest class.", size=11, anchor="start", fill=MUTED)
    return svg


# ---------------------------------------------------------------------------------------------- 06: two heads
def vqa_heads() -> Svg:
    """Notebook 06: a new classifier head on the pretrained towers, against answering by image-text matching."""
    from vlmlearn.contrastive import DualEncoder
    from vlmlearn.data import ANSWERS, vqa_statement
    from vlmlearn.models import SmallCNN, TextTransformer
    from vlmlearn.vqa import VQAByMatching, VQAModel

    image = SmallCNN(**literal_kwargs("06", "SmallCNN"))
    text = TextTransformer(vocab_size=64, **literal_kwargs("06", "TextTransformer"))
    dual = DualEncoder(image, text)
    head_model = VQAModel.from_dual_encoder(dual, num_answers=len(ANSWERS))
    matcher = VQAByMatching.from_dual_encoder(dual)
    linears = [m for m in head_model.head if hasattr(m, "out_features")]
    d = image.embed_dim
    question = "what color is the square?"
    fits = [a for a in ANSWERS if vqa_statement(question, a) is not None]
    statements = [vqa_statement(question, a) for a in fits[:3]]

    svg = Svg(980, 470, "Two ways to answer a visual question with pretrained towers",
              f"Top: a new head reads the image vector, the question vector and their product and classifies over "
              f"the {len(ANSWERS)} answers. Bottom: the question is rewritten with each candidate answer as a caption "
              f"and the pretrained similarity scores it against the image, plus a learned bias per answer.")
    svg.heading("Two ways to answer with pretrained towers",
                "vlmlearn.vqa.VQAModel and VQAByMatching, built from notebook 06's dual encoder; "
                f"{len(ANSWERS)} one-word answers")
    im = svg.box(20, 150, 120, 50, ["image"], color=IMAGE)
    it = svg.box(175, 145, 150, 60, ["image tower", f"→ i ({d}-d, unit)"], color=IMAGE)
    svg.arrow(im.right, it.left, color=IMAGE[1])
    # top route: a new head
    svg.text(380, 78, "a new head (VQAModel)", size=13, weight="bold", anchor="start")
    q = svg.box(20, 88, 200, 44, [f'"{question}"'], color=TEXT)
    qt = svg.box(380, 85, 170, 50, ["text tower", f"→ q ({d}-d, unit)"], color=TEXT)
    svg.arrow(q.right, qt.left, color=TEXT[1])
    cat = svg.box(590, 100, 150, 70, ["[i, q, i × q]", f"({3 * d} numbers)"], color=DATA)
    svg.arrow(qt.right, (cat.x, qt.cy), color=TEXT[1])
    svg.arrow(it.right, (355, it.cy), (355, cat.y + cat.h - 12), (cat.x, cat.y + cat.h - 12), color=IMAGE[1])
    mlp = svg.box(780, 95, 180, 80, ["**new MLP head",
                                     " → ".join(str(m.out_features) for m in linears),
                                     "trained from scratch", "on the labeled questions"], color=WRONG)
    svg.arrow(cat.right, mlp.left)
    # bottom route: matching
    svg.text(380, 278, "matching (VQAByMatching): no new head", size=13, weight="bold", anchor="start")
    st = svg.box(20, 335 - (16 + 16 * (len(statements) + 2)) / 2, 300, 16 + 16 * (len(statements) + 2),
                 ["question + each candidate answer:", *[f'"{s}"' for s in statements], "…"], color=TEXT, size=11.5)
    st2 = svg.box(380, 310, 170, 50, ["the same text tower", f"→ one {d}-d vector each"], color=TEXT)
    svg.arrow(st.right, st2.left, color=TEXT[1])
    sim = svg.box(590, 300, 170, 70, ["scale · cos(i, statement)", "+ bias[answer]",
                                      "(scale starts at 1/T)"], color=TARGET)
    svg.arrow(st2.right, sim.left, color=TEXT[1])
    svg.arrow(it.bottom, (it.cx, 245), (sim.cx, 245), sim.top, color=IMAGE[1])
    logits = svg.box(800, 300, 160, 70, [f"{len(matcher.answer_bias)} answer logits",
                                         "−∞ where an answer", "does not fit the question"], color=DATA)
    svg.arrow(sim.right, logits.left)
    svg.arrow((mlp.cx, mlp.y + mlp.h), (mlp.cx, logits.y), color=INK, dash=True)
    svg.lines(20, 425, [f"Both choose among the answers that fit the question ({len(fits)} colours here). "
                        "The head must learn from the labels how answers relate to the features;",
                        "matching asks the question in the language the towers were pretrained on, "
                        "so it can answer zero-shot, before a single label (Song et al. 2022)."],
              size=11.5, anchor="start", fill=MUTED)
    return svg



# ---------------------------------------------------------------------------------------------- 07: CapFilt
def capfilt() -> Svg:
    """Notebook 07: BLIP's captioner -> filter flow, with the notebook's set sizes and threshold."""
    from vlmlearn.capfilt import Bootstrapped, bootstrap_captions
    from vlmlearn.data import WordTokenizer, caption_vocabulary
    from vlmlearn.generative import Captioner

    p = parameters("07")
    web_n = call("07", "noisy_pairs", having=("noise_rate",))[0][0]
    clean_n = call("07", "pairs", having=("start",))[0][0]
    quantile = call("07", "quantile")[0][0]
    tok = WordTokenizer(caption_vocabulary(), **literal_kwargs("07", "WordTokenizer"))
    cap = Captioner(vocab_size=tok.vocab_size)
    side = round(cap.image_pos.shape[0] ** 0.5)
    args = [a for a in inspect.signature(bootstrap_captions).parameters if a in ("captioner", "filter_model",
                                                                                   "threshold")]
    fields = [f for f in Bootstrapped.__dataclass_fields__ if f.endswith("_kept")]

    svg = Svg(1000, 470, "CapFilt: a captioner adds captions, a filter drops the ones that do not fit",
              f"{web_n} web pairs, {p['WEB_NOISE']:.0%} of their captions corrupted. A captioner trained on "
              f"{clean_n} clean pairs writes a synthetic caption for every web image; a filter scores web and "
              f"synthetic captions against their image and keeps those above a threshold; a new CLIP trains on what "
              f"survives plus the clean pairs.")
    svg.heading("CapFilt (BLIP): caption the web images, filter every caption, train on what survives",
                f"vlmlearn.capfilt.bootstrap_captions({', '.join(a + '=' for a in args)}...) as notebook 07 "
                f"calls it; WEB_NOISE = {p['WEB_NOISE']:g}")
    web = svg.box(20, 80, 220, 64, [f"**{web_n:,} web pairs", f"{p['WEB_NOISE']:.0%} of captions corrupted",
                                    "(swapped, one word, junk)"], color=WRONG)
    clean = svg.box(20, 330, 220, 56, [f"**{clean_n:,} clean pairs", "true captions (a curated set)"], color=TARGET)
    decoder = count(len(cap.decoder.layers), "layer")
    captioner = svg.box(290, 180, 230, 96, ["**captioner: Captioner", f"CNN → {side} × {side} grid, decoder {decoder}",
                                            "trained on the clean pairs", "writes 1 caption per web image"],
                        color=IMAGE)
    svg.arrow((clean.x + clean.w, clean.cy - 10), (captioner.cx, clean.cy - 10), captioner.bottom, color=TARGET[1])
    svg.arrow((web.x + web.w, web.cy + 14), (captioner.cx, web.cy + 14), captioner.top, color=IMAGE[1])
    svg.text(captioner.cx + 6, web.cy + 8, "web images", size=11, anchor="start", fill=IMAGE[1])
    flt = svg.box(580, 80, 220, 150, ["**filter: a CLIP trained on", "**the noisy web pairs themselves",
                                       "scores each (image, caption):", "cosine similarity ≥ threshold?",
                                       f"threshold: the clean pairs' {quantile:.0%}", "quantile (most clean pairs "
                                       "pass)"], color=MODEL, size=11.5)
    svg.arrow((web.x + web.w, web.cy - 14), (flt.x, web.cy - 14), color=WRONG[1])
    svg.text(400, web.cy - 20, "web captions", size=11, fill=WRONG[1])
    svg.arrow(captioner.right, (550, captioner.cy), (550, flt.y + flt.h - 30), (flt.x, flt.y + flt.h - 30),
              color=TEXT[1])
    svg.text(560, captioner.cy + 18, "synthetic captions", size=11, anchor="start", fill=TEXT[1])
    drop = svg.box(840, 80, 145, 50, ["dropped", "(score too low)"], color=WRONG, size=11.5)
    kept = svg.box(840, 160, 145, 86, ["**kept web and", "**synthetic pairs", f"`{fields[0]}`", f"`{fields[1]}`"],
                   color=TARGET, size=11)
    svg.arrow((flt.x + flt.w, flt.y + flt.h - 30), (kept.x, flt.y + flt.h - 30), color=TARGET[1])
    svg.arrow((flt.x + flt.w, drop.cy), drop.left, color=WRONG[1])
    new = svg.box(580, 330, 400, 64, ["**a new CLIP on the kept pairs + the clean pairs",
                                      f"{p['CLIP_STEPS']} steps; the baseline: raw web + clean pairs, same steps"],
                  color=TARGET)
    svg.arrow(kept.bottom, (kept.cx, new.y), color=TARGET[1])
    svg.arrow((clean.x + clean.w, clean.cy + 10), (new.x, clean.cy + 10), color=TARGET[1], dash=True)
    svg.text(20, 435, "An image can give zero, one or two pairs. BLIP's filter is an image-text matching model "
                      "fine-tuned on clean data (Li et al. 2022); here, a CLIP trained on the noisy pairs.",
             size=11.5, anchor="start", fill=MUTED)
    return svg


# ---------------------------------------------------------------------------------------------- 08: FixMatch
def fixmatch() -> Svg:
    """Notebook 08: FixMatch's labeled, weak and strong branches, with the notebook's threshold and batch."""
    from vlmlearn.models import count_parameters, digits_cnn
    from vlmlearn.semi import fixmatch_step

    p = parameters("08")
    batch = literal_kwargs("08", "semi_batches")["batch_size"]
    sig = inspect.signature(fixmatch_step).parameters
    weak, strong, weight = sig["weak"].default.__name__, sig["strong"].default.__name__, sig["weight"].default
    tau, mu = p["THRESHOLD"], p["MU"]
    params = count_parameters(digits_cnn())

    svg = Svg(1000, 470, "FixMatch: a confident weak view labels the strong view",
              f"Labeled images train with cross-entropy. Each unlabeled image is seen twice: its weak view's "
              f"prediction, when its top probability is at least {tau:g}, becomes a hard pseudo-label, and the "
              f"strong view is trained to predict it. One model, the same weights, for all three.")
    svg.heading("FixMatch: the weak view labels, the strong view learns",
                f"vlmlearn.semi.fixmatch_step with notebook 08's THRESHOLD = {tau:g} and MU = {mu}; "
                f"batches of {batch} labeled and {mu} × {batch} = {mu * batch} unlabeled images")
    rows = {"lab": 95, "weak": 215, "strong": 345}
    lab = svg.box(20, rows["lab"] - 28, 170, 56, [f"**{batch} labeled images", "x with labels y"], color=TARGET)
    unl = svg.box(20, (rows["weak"] + rows["strong"]) / 2 - 34, 170, 68, [f"**{mu * batch} unlabeled", "images u",
                                                                            "(labels never read)"], color=DATA)
    views = {}
    for key, name, color in (("lab", weak, IMAGE), ("weak", weak, IMAGE), ("strong", strong, WRONG)):
        views[key] = svg.box(240, rows[key] - 24, 150, 48, [f"`{name}`"], color=color, size=11.5)
        svg.box(430, rows[key] - 24, 130, 48, ["model", f"({params:,} parameters)"], color=MODEL, size=11)
        svg.arrow(views[key].right, (430, rows[key]))
    svg.arrow(lab.right, views["lab"].left, color=TARGET[1])
    svg.arrow(unl.right, (215, unl.cy), (215, rows["weak"]), views["weak"].left)
    svg.arrow(unl.right, (215, unl.cy), (215, rows["strong"]), views["strong"].left)
    svg.text(495, (rows["lab"] + rows["weak"]) / 2 + 4, "one model, the same weights", size=10.5, fill=MODEL[1])
    ce = svg.box(600, rows["lab"] - 24, 200, 48, ["cross-entropy with y"], color=TARGET)
    svg.arrow((560, rows["lab"]), ce.left)
    prob = svg.box(600, rows["weak"] - 30, 150, 60, ["p = softmax", "(no gradient)"], color=IMAGE, size=11.5)
    svg.arrow((560, rows["weak"]), prob.left)
    gate = svg.box(780, rows["weak"] - 30, 190, 60, [f"**max p ≥ {tau:g} ?", "yes: ŷ = argmax p",
                                                     "no: this image counts 0"], color=DATA, size=11.5)
    svg.arrow(prob.right, gate.left)
    ce2 = svg.box(600, rows["strong"] - 30, 370, 60, ["cross-entropy of the strong view with ŷ,",
                                                      f"× the mask, averaged over all {mu * batch} images"],
                  color=TARGET, size=11.5)
    svg.arrow((560, rows["strong"]), ce2.left)
    svg.arrow(gate.bottom, (gate.cx, ce2.y), color=INK)
    svg.text(gate.cx + 6, (gate.y + gate.h + ce2.y) / 2 + 4, "ŷ and the mask", size=11, anchor="start")
    svg.box(600, 405, 370, 44, [f"loss = labeled term + {weight:g} × unlabeled term"], color=TARGET, size=12.5)
    svg.lines(20, 415, ["No ramp-up: the threshold keeps early, unconfident", "guesses out (Sohn et al. 2020)."],
              size=11.5, anchor="start", fill=MUTED)
    return svg


# ---------------------------------------------------------------------------------------------- 09: the grid
def protocol() -> Svg:
    """Notebook 09: the controlled grid as the committed benchmark ran it: tasks, methods, label counts, seeds."""
    from vlmlearn.label_efficiency_report import METHOD_NAMES, parse_key

    bench = json.loads((ROOT / "benchmarks" / "results" / "09_label_efficiency.json").read_text())
    seeds = bench["seeds"]
    tasks: dict[str, dict[str, list[str]]] = {}
    for key in bench["metrics"]:
        task, method, labels = parse_key(key)
        tasks.setdefault(task, {}).setdefault(method, []).append(labels)
    height = 120 + 26 * sum(len(m) + 2 for m in tasks.values())
    svg = Svg(1000, height, "The capstone grid: every method under one protocol",
              f"Each filled cell is one method at one label count, run at seeds {seeds}; each method's one "
              f"hyperparameter was chosen once on a small validation split.")
    svg.heading("One protocol for every method",
                f"the cells of benchmarks/results/09_label_efficiency.json: each filled cell ran at "
                f"{len(seeds)} seeds ({', '.join(map(str, seeds))})")
    y = 78
    cell_w, name_w, x0 = 64, 250, 20
    for task, methods in tasks.items():
        sel = bench["selection"].get(task, {})
        columns = list(dict.fromkeys(lab for labs in methods.values() for lab in labs))
        svg.text(x0, y + 16, f"{task}: labels per class", size=13, weight="bold", anchor="start")
        for j, lab in enumerate(columns):
            svg.text(x0 + name_w + (j + 0.5) * cell_w, y + 16, lab, size=12, weight="bold")
        y += 26
        for method, labs in methods.items():
            chosen = sel.get("chosen", {}).get(method)
            note = ", ".join(f"{k} {v:g}" for k, v in chosen.items()) if chosen else ""
            if method in sel.get("fixed", {}):
                note = "notebook 03's recipe"
            svg.text(x0, y + 17, METHOD_NAMES.get(method, method), size=12, anchor="start")
            if note:
                svg.text(x0 + name_w - 8, y + 17, note, size=10.5, anchor="end", fill=MUTED)
            for j, lab in enumerate(columns):
                filled = lab in labs
                svg.rect(x0 + name_w + j * cell_w + 2, y + 2, cell_w - 4, 22, rx=3,
                         fill=IMAGE[0] if filled else "#ffffff", stroke=IMAGE[1] if filled else "#dddddd")
                if filled:
                    svg.text(x0 + name_w + (j + 0.5) * cell_w, y + 17, f"× {len(seeds)}", size=10, fill=IMAGE[1])
            y += 26
        svg.text(x0, y + 16, f"in grey, each method's setting, chosen at seed {sel.get('seed', 0)} on "
                             f"{sel.get('labels_per_class', '?')} validation images per class", size=10.5,
                 anchor="start", fill=MUTED)
        y += 26
    rx = 640
    rules = ["**the rules of the grid", "**(the pitfalls: Oliver et al. 2018)", "",
             "same backbone and the same number of",
             "optimizer steps for every method", "", "the same weak views everywhere; the strong",
             "ones only where a method calls for them", "", "one hyperparameter per method, two values,",
             "chosen once on a validation split no", "larger than the labeled set; a tie goes",
             "to the paper's default", "", "test read once per run; an ordering is",
             "claimed only when the paired 95 % interval", f"over the {len(seeds)} seeds excludes 0"]
    svg.box(rx, 78, 340, 24 + 12 * 1.35 * len(rules), rules, color=DATA, size=12, align="start")
    return svg


# ---------------------------------------------------------------------------------------------- 10: gather
def gathered_loss() -> Svg:
    """Notebook 10: W processes of b pairs, the gathered features, and the full or local logits each computes."""
    from vlmlearn.losses import logits_bytes

    b = parameters("10")["PER_PROCESS_BATCH"]
    world = next(a[1] for a, _ in calls("10", "run_trainer") if a and a[0] == "two")
    n = world * b
    big, gpus = 32_768, 8
    full, local = (logits_bytes(big, gpus, flag) / 2 ** 30 for flag in (False, True))
    colors = [IMAGE, TEXT, TARGET, MODEL]

    svg = Svg(1000, 470, "The gathered contrastive loss on several processes",
              f"{world} processes hold {b} pairs each. Each encodes its own pairs, all_gather gives every process "
              f"the features of all {n} pairs, and each computes either the whole {n} x {n} logits (full loss) or "
              f"only its own {b} rows against all {n} columns (local loss).")
    svg.heading("Many processes, one global batch: gather the features, then the loss",
                f"notebook 10's two-process run: {world} processes × PER_PROCESS_BATCH = {b} pairs, "
                f"a global batch of N = {n}")
    for r in range(world):
        y = 80 + r * 150
        c = colors[r % len(colors)]
        svg.box(20, y, 190, 110, [f"**process (rank) {r}", f"pairs {r * b + 1} to {(r + 1) * b}",
                                  "runs both towers on", "its own pairs only", f"→ {b} image + {b} text features"],
                color=c, size=11.5)
        svg.arrow((210, y + 55), (265, y + 55), color=c[1])
    gather = svg.box(270, 110, 190, 200, ["**all_gather", "torch.distributed.nn", "", "every process now holds",
                                          f"all {n} image and", f"{n} text features,", "in rank order;",
                                          "gradients flow back", "to the process that", "made each feature"],
                     color=DATA, size=11.5)
    cell, mx, my = 28, 560, 100
    for r in range(n):
        for c in range(n):
            rank = r // b
            fill = colors[rank % len(colors)][0]
            svg.rect(mx + c * cell, my + r * cell, cell, cell, fill=fill if r != c else "#9fd39a", stroke="#ffffff")
    for k in range(n):
        svg.text(mx - 10, my + (k + 0.5) * cell + 4, str(k + 1), size=10, fill=MUTED)
        svg.text(mx + (k + 0.5) * cell, my - 6, str(k + 1), size=10, fill=MUTED)
    svg.arrow(gather.right, (mx - 22, gather.cy), color=INK)
    svg.text(mx + n * cell / 2, my + n * cell + 20, f"the {n} × {n} logits (green: the targets)", size=11.5)
    for r in range(world):
        y = my + (r * b + b / 2) * cell
        c = colors[r % len(colors)]
        svg.text(mx + n * cell + 10, y + 4, f"local loss on rank {r}: rows {r * b + 1}–{(r + 1) * b},", size=11,
                 anchor="start", fill=c[1])
        svg.text(mx + n * cell + 10, y + 19, f"labels {r * b + 1}–{(r + 1) * b} of all {n}", size=11,
                 anchor="start", fill=c[1])
    svg.lines(20, 400, [f"Full loss: every process computes all {n} × {n} logits and the same number. Local loss: "
                        f"each computes its {b} × {n} rows (and the same for captions); the mean of the local losses",
                        "is the full loss, and DistributedDataParallel averages the gradients, so both train alike. "
                        f"At N = {big:,} on {gpus} GPUs the two float32 logits matrices take",
                        f"{full:g} GiB per GPU with the full loss and {local:g} GiB with the local one "
                        f"(vlmlearn.losses.logits_bytes: computed from the sizes, not measured)."],
              size=11.5, anchor="start", fill=MUTED)
    return svg


# ---------------------------------------------------------------------------------------------- 12: the gallery
STAGES = ("data and loader", "augmented views", "model", "logits, scale, softmax", "loss", "optimizer step")
FAILURE_STAGE = {1: 0, 6: 1, 7: 2, 2: 3, 5: 3, 4: 4, 8: 4, 3: 5}  # where in the loop each failure of 12 enters


def failures_map() -> Svg:
    """Notebook 12: where in one training step each failure of the gallery enters, and the check that catches it."""
    import re

    from vlmlearn import checks

    cells = json.loads(notebook("12").read_text())["cells"]
    table = next("".join(c["source"]) for c in cells if c["cell_type"] == "markdown"
                 and "| check |" in "".join(c["source"]))
    rows = {}
    for line in table.splitlines():
        cols = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cols) >= 5 and cols[0].isdigit():
            name = re.sub(r"\$\\ln B\$", "ln B", cols[1]).replace("`", "")
            check = cols[-1].strip("`")
            if not hasattr(checks, check.split("(")[0]):
                raise LookupError(f"notebook 12 names {check}, which vlmlearn.checks does not define")
            rows[int(cols[0])] = (name, check)
    svg = Svg(1000, 410, "Where each classic failure enters a training step",
              "One training step as a chain of stages; each failure of notebook 12 is pinned to the stage where "
              "it enters, with the vlmlearn.checks function that catches it.")
    svg.heading("Where each failure enters one training step, and the check that catches it",
                "failures and checks read from notebook 12's table (section 9); the checks are in vlmlearn.checks")
    w, gap, y = 148, 14, 70
    for k, stage in enumerate(STAGES):
        x = 20 + k * (w + gap)
        svg.box(x, y, w, 44, [f"**{stage}"], color=MODEL, size=12)
        if k:
            svg.arrow((x - gap, y + 22), (x, y + 22), head=6)
        pinned = [n for n, s in FAILURE_STAGE.items() if s == k and n in rows]
        above = y + 44
        for j, number in enumerate(sorted(pinned)):
            name, check = rows[number]
            by = y + 70 + j * 140
            svg.line(x + w / 2, above, x + w / 2, by, color="#bbbbbb", dash=True)
            words, lines, current = name.split(), [], ""
            for word in words:
                if len(current) + len(word) > 22:
                    lines.append(current)
                    current = word
                else:
                    current = f"{current} {word}".strip()
            lines.append(current)
            svg.box(x, by, w, 30 + 16 * len(lines), [f"**{number}", *lines], color=WRONG, size=11.5)
            svg.text(x + w / 2, by + 48 + 16 * len(lines), check.split("(")[0], size=8.8, mono=True,
                     fill=TARGET[1])
            above = by + 52 + 16 * len(lines)
            if "(" in check:
                svg.text(x + w / 2, by + 61 + 16 * len(lines), "(" + check.split("(", 1)[1], size=8.8, mono=True,
                         fill=TARGET[1])
                above += 13
    return svg

def generative_vlm() -> Svg:
    """Notebook 11: image tower -> image tokens -> projector -> causal LM, and the three stages that train it."""
    import torch

    from vlmlearn.gvlm import PROMPT
    from vlmlearn.gvlm_train import load_pretrained_gvlm

    model, record = load_pretrained_gvlm("text")
    settings, config = record["settings"], record["config"]
    with torch.no_grad():
        grid_map = model.vision.features(torch.zeros(1, 3, model.image_size, model.image_size))
    c, side = grid_map.shape[1], grid_map.shape[-1]
    linears = [m for m in model.projector.net if hasattr(m, "out_features")]
    sizes = parameters("11")["SIZES"]
    prompt = PROMPT.format(question="what color is the square?")
    svg = Svg(980, 400, "A generative VLM built from the course's parts",
              f"An image goes through notebook 01's CLIP image tower to a {side} x {side} map of {c} channels, "
              f"{side * side} image tokens; the projector maps each into the language model's input space; the LM "
              f"reads the image tokens, then the prompt's words, and writes the answer one word at a time. Below: "
              f"the three stages that train it.")
    svg.heading("A generative VLM from the course's parts",
                "vlmlearn.gvlm.GenerativeVLM as notebook 11 loads it (load_pretrained_gvlm); sizes read from the "
                "shipped checkpoint")
    im = svg.box(20, 80, 90, 50, ["image", f"{model.image_size} × {model.image_size}"], color=IMAGE)
    tower = svg.box(140, 70, 170, 70, ["CLIP image tower", "(notebook 01, frozen)",
                                       f"→ {side} × {side} × {c} map"], color=IMAGE)
    svg.arrow(im.right, tower.left, color=IMAGE[1])
    tokens = svg.box(340, 75, 130, 60, [f"{side * side} image tokens", f"({c}-d each)"], color=IMAGE)
    svg.arrow(tower.right, tokens.left, color=IMAGE[1])
    widths = " → ".join([str(c), *(str(m.out_features) for m in linears)])
    proj = svg.box(500, 70, 150, 70, ["**projector (MLP)", widths, "per token"], color=TARGET)
    svg.arrow(tokens.right, proj.left, color=IMAGE[1])
    lm = svg.box(700, 60, 260, 150, ["**causal LM (transformers' Llama)", f"{config['layers']} layers, width "
                                     f"{config['width']}, {config['heads']} heads",
                                     f"{config['vocab_size']} words, from a local config", "",
                                     f"reads {side * side} image tokens, then words"], color=MODEL)
    svg.arrow(proj.right, (lm.x, proj.cy), color=IMAGE[1])
    words = svg.box(340, 165, 310, 40, [f'"<bos> {prompt}"'], color=TEXT, size=11.5)
    svg.arrow(words.right, (lm.x, words.cy), color=TEXT[1])
    out = svg.box(790, 235, 170, 40, ['"red <eos>", word by word'], color=TEXT, size=11.5)
    svg.arrow((out.cx, lm.y + lm.h), out.top)
    stages = [("**0 · text pretraining", "the LM alone: next word on", f"{4 * settings['text_lines']:,} text lines",
               f"{settings['text_steps']:,} steps"),
              ("**1 · alignment", "captioning: the projector" + (" and LM" if settings["align_lm_lr"] else " alone"),
               f"on {settings['web_pairs']:,} noisy web pairs", f"{settings['align_steps']:,} steps"),
              ("**2 · instruction tuning", "projector + LM: answers as text",
               f"on {' / '.join(f'{n:,}' for n in sizes)} labeled questions,", "web captions kept;",
               f"{parameters('11')['STEPS']:,} steps, best on validation")]
    for k, lines in enumerate(stages):
        b = svg.box(20 + k * 250, 300, 230, 86, list(lines), color=DATA, size=11.5)
        if k:
            svg.arrow((b.x - 20, b.cy), b.left)
    svg.text(20, 290, "how it is trained (make pretrain ships stages 0 and 1; the notebook runs stage 2)", size=12,
             anchor="start", fill=MUTED)
    return svg


DIAGRAMS = {  # file name (notebooks/figures/NAME.svg) -> the function that draws it
    "00_data_views": data_views,
    "01_infonce": infonce,
    "02_siglip": siglip,
    "03_mae": mae,
    "04_fusion": fusion,
    "05_caption_paint": caption_paint,
    "06_vqa_heads": vqa_heads,
    "07_capfilt": capfilt,
    "08_fixmatch": fixmatch,
    "09_protocol": protocol,
    "10_gathered_loss": gathered_loss,
    "11_gvlm": generative_vlm,
    "12_failures_map": failures_map,
}


def draw_all(folder: Path = FIGURES) -> list[Path]:
    """Write every diagram into `folder`; returns the paths written."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, draw in DIAGRAMS.items():
        path = folder / f"{name}.svg"
        path.write_text(draw().write(), encoding="utf-8")
        written.append(path)
    return written


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="compare with the committed diagrams; write nothing")
    args = parser.parse_args()
    if not args.check:
        for path in draw_all():
            print(f"wrote {path.relative_to(ROOT)}")
        return 0
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        stale = [p.name for p in draw_all(Path(tmp))
                 if not (FIGURES / p.name).is_file() or (FIGURES / p.name).read_bytes() != p.read_bytes()]
    if stale:
        print("out of date (run python tools/draw_diagrams.py):", *stale, sep="\n  ")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
