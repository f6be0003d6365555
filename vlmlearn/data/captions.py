"""ShapesWorld's words: the attribute vocabulary, caption templates, and everything that writes or
rewrites a caption (paraphrases, hard negatives, wrong-attribute noise, VQA statements).

One rule lives here: **no rewrite names a held-out colour x shape combination.** Held-out
combinations exist for compositional zero-shot tests (`ShapesWorld.heldout_pairs`); if a training
text named one, even as a negative, the text tower would learn it, and a model could learn "that
combination is always wrong" instead of reading the caption. Rewriters take the world's
`heldout` mask (colours x shapes, bool; every `Batch` carries its world's) and *redraw* a rewrite
that would name one, so every caption still gets its rewrite.

    caption_from_attributes(batch.attributes, batch.template)  # the clean captions
    hard_negative_captions(batch)                             # each caption subtly wrong
    parse_caption("a small red circle on the left")           # and back to attributes
"""
from __future__ import annotations

import re
from typing import Callable

import numpy as np

SHAPES = ("circle", "square", "triangle", "cross", "diamond")
COLORS = ("red", "green", "blue", "yellow", "purple", "orange", "white", "cyan")
SIZES = ("small", "large")
POSITIONS = ("left", "right", "top", "bottom", "center")
ATTRIBUTES = {"shape": SHAPES, "color": COLORS, "size": SIZES, "position": POSITIONS}
POSITION_PHRASE = {"left": "on the left", "right": "on the right", "top": "at the top",
                   "bottom": "at the bottom", "center": "in the center"}
ONE_OBJECT_TEMPLATES = ("a {o} {p}", "there is a {o} {p}", "{P} there is a {o}", "a photo of a {o} {p}")
TWO_OBJECT_TEMPLATES = ("a {o} {p} and a {o2} {p2}", "there is a {o} {p} and a {o2} {p2}",
                        "{P} there is a {o} and {p2} a {o2}", "a photo of a {o} {p} and a {o2} {p2}")
JUNK_TEMPLATES = ("IMG_{n}.jpg", "DSC{n}", "click here for more", "free shipping on all orders",
                  "stock photo {n}", "untitled image", "best price guaranteed", "screenshot {n}")
COUNT_WORDS = ("zero", "one", "two")
QUESTION_TYPES = ("color", "shape", "count", "exists", "position", "size")
ANSWERS = COLORS + SHAPES + SIZES + POSITIONS + ("one", "two", "yes", "no")
FUNCTION_WORDS = ("a", "the", "there", "is", "photo", "of", "on", "at", "in")


# ------------------------------------------------------------------ attributes <-> captions
def _object_words(attributes: dict[str, np.ndarray], i: int, k: int) -> str:
    return (f"{SIZES[attributes['size'][i, k]]} {COLORS[attributes['color'][i, k]]} "
            f"{SHAPES[attributes['shape'][i, k]]}")


def content_keys(attributes: dict[str, np.ndarray]) -> list[str]:
    """One string per sample naming what it shows ("small red circle left & ..."), objects sorted."""
    keys = []
    for i in range(len(attributes["n_objects"])):
        objs = sorted(_object_words(attributes, i, k) + " " + POSITIONS[attributes["position"][i, k]]
                      for k in range(attributes["n_objects"][i]))
        keys.append(" & ".join(objs))
    return keys


def caption_from_attributes(attributes: dict[str, np.ndarray], template: np.ndarray) -> list[str]:
    """Render captions from attributes with the given template ids (see the `*_TEMPLATES` tuples)."""
    out = []
    for i, t in enumerate(template):
        n = attributes["n_objects"][i]
        p = [POSITION_PHRASE[POSITIONS[attributes["position"][i, k]]] for k in range(n)]
        o = [_object_words(attributes, i, k) for k in range(n)]
        if n == 1:
            out.append(ONE_OBJECT_TEMPLATES[t].format(o=o[0], p=p[0], P=p[0]))
        else:
            out.append(TWO_OBJECT_TEMPLATES[t].format(o=o[0], p=p[0], P=p[0], o2=o[1], p2=p[1]))
    return out


def paraphrases(attributes: dict[str, np.ndarray]) -> list[list[str]]:
    """Every template's caption for each sample: N lists of 4 captions (like COCO's 5 per image)."""
    n = len(attributes["n_objects"])
    per_template = [caption_from_attributes(attributes, np.full(n, t)) for t in range(len(ONE_OBJECT_TEMPLATES))]
    return [list(caps) for caps in zip(*per_template)]


def parse_caption(caption: str) -> list[dict[str, str]]:
    """Read the objects back out of a ShapesWorld caption, question or statement (exact for every
    template). Returns one dict per object with keys shape, color, size, position (None where the
    text does not say); [] for junk alt-text.

    >>> parse_caption("a small red circle on the left")
    [{'size': 'small', 'color': 'red', 'shape': 'circle', 'position': 'left'}]
    """
    objects = []
    for clause in re.sub(r"[,.?]", " ", caption.lower()).split(" and "):
        words = clause.split()
        obj = {name: next((w for w in words if w in values), None)
               for name, values in (("size", SIZES), ("color", COLORS), ("shape", SHAPES),
                                    ("position", POSITIONS))}
        if obj["shape"] is not None:
            objects.append(obj)
    return objects


def caption_matches(caption: str, attributes: dict[str, np.ndarray], i: int) -> bool:
    """True when the caption describes exactly the objects of sample i."""
    parsed = sorted(" ".join(o[a] or "?" for a in ("size", "color", "shape", "position"))
                    for o in parse_caption(caption))
    return " & ".join(parsed) == content_keys({k: v[i:i + 1] for k, v in attributes.items()})[0]


def label_noise(batch) -> float:
    """The fraction of a batch's captions that do not describe their own image (`caption_matches`): the label
    noise of a noisy web batch, which is below its noise rate when a corrupted caption fits by luck."""
    if batch.captions is None or len(batch.captions) == 0:
        raise ValueError("expected a batch with captions (e.g. world.noisy_pairs(n, noise_rate=0.3)), got none")
    return float(np.mean([not caption_matches(c, batch.attributes, i) for i, c in enumerate(batch.captions)]))


def caption_vocabulary() -> list[str]:
    """Every word a ShapesWorld caption can use (junk alt-text aside), sorted."""
    words = {w for t in ONE_OBJECT_TEMPLATES + TWO_OBJECT_TEMPLATES for w in t.split() if "{" not in w}
    words |= {w for phrase in POSITION_PHRASE.values() for w in phrase.split()}
    return sorted(words | set(SHAPES) | set(COLORS) | set(SIZES) | set(POSITIONS))


# ------------------------------------------------------------------ the held-out rule
def _mask(heldout: np.ndarray | None) -> np.ndarray:
    return np.zeros((len(COLORS), len(SHAPES)), bool) if heldout is None else heldout


def names_heldout(attributes: dict[str, np.ndarray], heldout: np.ndarray | None) -> np.ndarray:
    """(N,) bool: does sample i have an object whose colour x shape combination is held out?"""
    color, shape = attributes["color"], attributes["shape"]
    return (_mask(heldout)[color.clip(0), shape.clip(0)] & (shape >= 0)).any(1)


def text_names_heldout(text: str, heldout: np.ndarray | None) -> bool:
    """Does a caption, question or statement name a held-out colour x shape combination?"""
    return any(o["color"] is not None and _mask(heldout)[COLORS.index(o["color"]), SHAPES.index(o["shape"])]
               for o in parse_caption(text))


def _shift_to_allowed(old: np.ndarray, shift: np.ndarray, n: int, allowed: Callable) -> np.ndarray:
    """old + shift (mod n), with shift in 1..n-1; where `allowed(candidate)` (a bool array) is false,
    the next shift is tried, so the result always differs from `old` and is always allowed."""
    out = np.full_like(old, -1)
    for j in range(n - 1):
        candidate = (old + 1 + (shift - 1 + j) % (n - 1)) % n
        take = (out < 0) & allowed(candidate)
        out[take] = candidate[take]
    if (out < 0).any():
        raise ValueError("no allowed value to change to; hold out fewer combinations")
    return out


# ------------------------------------------------------------------ rewrites
def hard_negative_captions(batch) -> list[str]:
    """Hard negatives (NegCLIP): each caption made wrong in the way that is hardest to notice.

    Two objects swap colours ("a red circle and a blue square" -> "a blue circle and a red
    square": the same words, bound differently). Where that would name a held-out combination,
    the two objects trade places instead (the same words again, bound to the other position). A
    lone object keeps its colour but gets another shape ("a small red circle" -> "a small red
    square"), the next one that is not held out for its colour: shape is the attribute these models
    read least well. Same template as the batch's own captions; no object size is ever changed.
    """
    a = {k: v.copy() for k, v in batch.attributes.items()}
    two = a["n_objects"] == 2
    swapped = {k: v.copy() for k, v in a.items()}
    swapped["color"][two] = swapped["color"][two, ::-1]
    colour_swap = two & ~names_heldout(swapped, batch.heldout)
    a["color"][colour_swap] = a["color"][colour_swap, ::-1]
    trade = two & ~colour_swap
    a["position"][trade] = a["position"][trade, ::-1]
    one = ~two
    colour = a["color"][one, 0]
    a["shape"][one, 0] = _shift_to_allowed(a["shape"][one, 0], 1 + batch.index[one] % (len(SHAPES) - 1),
                                           len(SHAPES), lambda s: ~_mask(batch.heldout)[colour, s])
    return caption_from_attributes(a, batch.template)


def size_swapped_captions(batch) -> list[str]:
    """Each two-object caption with its objects' sizes swapped: "a small red circle ... and a large
    blue square ..." -> "a large red circle ... and a small blue square ...".

    A binding test that `hard_negative_captions` never trains on (it never touches sizes), so a
    model passes it only by binding words to objects in general, not by memorising one swap.
    Needs two objects of different sizes in every sample (`ShapesWorld.binding_pairs` draws them).
    """
    a = {k: v.copy() for k, v in batch.attributes.items()}
    if (a["n_objects"] != 2).any() or (a["size"][:, 0] == a["size"][:, 1]).any():
        raise ValueError("size_swapped_captions needs two objects of different sizes in every sample "
                         "(use ShapesWorld.binding_pairs)")
    a["size"] = a["size"][:, ::-1].copy()
    return caption_from_attributes(a, batch.template)


def wrong_attribute_captions(attributes: dict[str, np.ndarray], template: np.ndarray, heldout: np.ndarray | None, *,
                             obj: np.ndarray, which: np.ndarray, draw: np.ndarray) -> list[str]:
    """Web-caption noise: one colour, shape or size word of one object changed.

    Per sample (all (N,) arrays): `obj` (0 or 1) picks the object, `which` (0 colour, 1 shape,
    2 size) the attribute, `draw` (uniform in [0, 1)) the new value among the other values; a new
    colour or shape that would make a held-out combination moves on to the next value that does not.
    """
    a = {k: v.copy() for k, v in attributes.items()}
    rows = np.arange(len(template))
    held = _mask(heldout)
    for a_id, name in enumerate(("color", "shape", "size")):
        r, k = rows[which == a_id], obj[which == a_id]
        other = {"color": a["shape"][r, k], "shape": a["color"][r, k]}.get(name)
        allowed = {"color": lambda c: ~held[c, other], "shape": lambda s: ~held[other, s],
                   "size": lambda v: np.ones(len(v), bool)}[name]
        n = len(ATTRIBUTES[name])
        shift = 1 + np.minimum((draw[which == a_id] * (n - 1)).astype(np.int64), n - 2)
        a[name][r, k] = _shift_to_allowed(a[name][r, k], shift, n, allowed)
    return caption_from_attributes(a, template)


def drop_function_words(captions: list[str], p: float, seed: int = 0) -> list[str]:
    """Word dropout that keeps meaning: each function word ("a", "the", "there", ...) is dropped
    with probability p; attribute words and "and" always stay, so `parse_caption` still reads the
    same objects. A text perturbation for consistency training."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p must be in [0, 1], got {p}")
    rng = np.random.default_rng(seed)
    return [" ".join(w for w in c.split() if w not in FUNCTION_WORDS or rng.random() >= p) for c in captions]


# ------------------------------------------------------------------ questions as captions
_QUESTION_PATTERNS = (  # (question type, pattern, statement made from the groups and the answer)
    ("color", re.compile(r"what color is the (\w+)\?"), lambda g, a: f"a {a} {g[0]}"),
    ("size", re.compile(r"what size is the (\w+)\?"), lambda g, a: f"a {a} {g[0]}"),
    ("shape", re.compile(r"what shape is (.+)\?"), lambda g, a: f"a {a} {g[0]}"),
    ("position", re.compile(r"where is the (\w+) (\w+)\?"), lambda g, a: f"a {g[0]} {g[1]} {POSITION_PHRASE[a]}"),
    ("count", re.compile(r"how many shapes are there\?"), lambda g, a: f"{a} {'shape' if a == 'one' else 'shapes'}"),
    ("exists", re.compile(r"is there a (\w+) (\w+)\?"), lambda g, a: f"{'a' if a == 'yes' else 'no'} {g[0]} {g[1]}"),
)
ANSWERS_BY_TYPE = {"color": COLORS, "shape": SHAPES, "count": COUNT_WORDS[1:], "exists": ("yes", "no"),
                   "position": POSITIONS, "size": SIZES}


def vqa_statement(question: str, answer: str, heldout: np.ndarray | None = None) -> str | None:
    """Rewrite a ShapesWorld question and a candidate answer as the caption they would make together,
    or None when the answer does not fit the question, or when the statement would name a
    combination the world holds out (`heldout`, optional; no such statement can be true there).

    >>> vqa_statement("what color is the square?", "red")
    'a red square'
    >>> vqa_statement("where is the red circle?", "left")
    'a red circle on the left'
    >>> vqa_statement("is there a red circle?", "no")
    'no red circle'

    This is how a CLIP-style model can answer a question without a new head: score each candidate
    statement against the image (see `vlmlearn.vqa.VQAByMatching`). Count and yes/no statements
    ("two shapes", "no red circle") use words no caption contains; fine-tuning has to teach them.
    """
    for qtype, pattern, make in _QUESTION_PATTERNS:
        m = pattern.fullmatch(question)
        if m:
            if answer not in ANSWERS_BY_TYPE[qtype]:
                return None
            statement = make(m.groups(), answer)
            return None if text_names_heldout(statement, heldout) else statement
    raise ValueError(f"not a ShapesWorld question: {question!r} (see ShapesWorld.vqa for the question forms)")
