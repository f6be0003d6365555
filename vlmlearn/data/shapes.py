"""ShapesWorld: a procedural image-caption world with exact ground truth.

Every sample is a function of ``(seed, view, split, index)`` alone, computed by a counter-based hash
(splitmix64), so sample *i* is the same whether you draw it alone or in a batch of 10,000, and no
world needs storage. Images are drawn for a whole batch at once with numpy (no per-image Python
loop): each shape is a signed-distance function evaluated on the pixel grid, which also gives
anti-aliased edges for free.

    world = ShapesWorld(seed=0, image_size=32)
    batch = world.pairs(1000)            # clean image-caption pairs
    batch.images.shape                   # torch.Size([1000, 3, 32, 32]), float32 in [0, 1]
    batch.captions[0]                    # 'a small red circle on the left'
    batch.attributes["color"][0]         # array([0, -1]): object 0 is red, no second object
"""
from __future__ import annotations

from dataclasses import dataclass, fields, replace

import numpy as np
import torch

from .captions import (
    ANSWERS,
    ATTRIBUTES,
    COLORS,
    COUNT_WORDS,
    JUNK_TEMPLATES,
    ONE_OBJECT_TEMPLATES,
    POSITION_PHRASE,
    POSITIONS,
    QUESTION_TYPES,
    SHAPES,
    SIZES,
    caption_from_attributes,
    caption_vocabulary,
    content_keys,
    hard_negative_captions,
    names_heldout,
    size_swapped_captions,
    wrong_attribute_captions,
)

SPLITS = ("train", "val", "test")

RGB = np.array([[220, 40, 40], [40, 180, 60], [50, 90, 235], [235, 215, 40],
                [160, 60, 210], [245, 140, 30], [240, 240, 240], [40, 215, 215]], np.float32) / 255
POSITION_XY = np.array([[0.25, 0.5], [0.75, 0.5], [0.5, 0.25], [0.5, 0.75], [0.5, 0.5]], np.float32)
RADIUS = np.array([0.13, 0.21], np.float32)  # object radius as a fraction of the image side
NOISE_KINDS = ("swap", "attribute", "junk")
_VIEWS = {name: i for i, name in enumerate(
    ("pairs", "images", "texts", "labeled", "vqa", "heldout", "binding", "noise"))}


def _splitmix(x: np.ndarray) -> np.ndarray:
    """One round of the splitmix64 finaliser, vectorised over uint64 arrays (wraps mod 2**64)."""
    with np.errstate(over="ignore"):  # the wrap-around is the point
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def _uniform(key: np.ndarray, *draws) -> np.ndarray:
    """Uniform floats in [0, 1) from a per-sample key and draw ids; arrays broadcast."""
    h = key
    for d in draws:
        h = _splitmix(h ^ np.asarray(d, dtype=np.uint64))
    return (h >> np.uint64(40)).astype(np.float32) * np.float32(2.0 ** -24)


def _pick(u: np.ndarray, n: int) -> np.ndarray:
    return np.minimum((u * n).astype(np.int64), n - 1)


@dataclass
class Batch:
    """A batch from one ShapesWorld view. Fields a view does not produce are None.

    attributes maps "shape", "color", "size", "position" to int arrays of shape (N, 2), one column
    per object (-1 where an image has one object), and "n_objects" to an (N,) array. Class indices
    follow SHAPES, COLORS, SIZES and POSITIONS.
    """

    index: np.ndarray                      # (N,) sample indices within the view and split
    attributes: dict[str, np.ndarray]      # ground truth for every sample, always present
    images: torch.Tensor | None = None     # (N, 3, S, S) float32 in [0, 1]
    captions: list[str] | None = None      # what the view pairs with each image (maybe noisy)
    template: np.ndarray | None = None     # (N,) caption template id
    labels: torch.Tensor | None = None     # (N,) int64 class labels (labeled view)
    classes: tuple[str, ...] | None = None  # class names for labels
    questions: list[str] | None = None     # VQA questions
    answers: list[str] | None = None       # VQA answers, words from ANSWERS
    question_type: np.ndarray | None = None  # (N,) index into QUESTION_TYPES
    clean_captions: list[str] | None = None  # noisy view: the true captions
    is_noisy: np.ndarray | None = None     # noisy view: (N,) bool, caption was corrupted
    noise_kind: list[str] | None = None    # noisy view: "" or one of NOISE_KINDS
    swapped_captions: list[str] | None = None  # binding view: colors swapped between objects
    size_swapped_captions: list[str] | None = None  # binding view: sizes swapped between objects
    heldout: np.ndarray | None = None      # (colors, shapes) bool: what the world holds out; no rewrite names it

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, key) -> "Batch":
        """Subset every field with an int array, a bool mask or a slice."""
        key = np.arange(len(self))[key]
        out = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if v is None or f.name in ("classes", "heldout"):
                out[f.name] = v
            elif isinstance(v, dict):
                out[f.name] = {k: a[key] for k, a in v.items()}
            elif isinstance(v, list):
                out[f.name] = [v[i] for i in np.atleast_1d(key)]
            elif isinstance(v, torch.Tensor):
                out[f.name] = v[torch.as_tensor(key)]
            else:
                out[f.name] = v[key]
        return replace(self, **out)

    def content_keys(self) -> list[str]:
        """One string per sample naming what it shows, ignoring jitter and background noise.

        Two samples with the same key are described by the same set of captions, which is what
        retrieval must count as a hit (see vlmlearn.eval.retrieval_recall).
        """
        return content_keys(self.attributes)


class ShapesWorld:
    """A deterministic world of shapes with captions, labels and questions.

    Args:
        seed: names the world; the same seed always gives the same samples.
        image_size: side of the square images in pixels (16 to 64).
        two_object_prob: chance that a paired image holds two objects.
        heldout_per_color: colour x shape combinations held out per colour. No view except
            `heldout_pairs` ever shows or names them (not even as a negative or a wrong caption:
            see `vlmlearn.data.captions`), for compositional zero-shot tests.
        background_noise: standard deviation-like amplitude of the per-pixel background noise.
    """

    def __init__(self, *, seed: int = 0, image_size: int = 32, two_object_prob: float = 0.5,
                 heldout_per_color: int = 1, background_noise: float = 0.08):
        if not 16 <= image_size <= 64:
            raise ValueError(f"image_size must be between 16 and 64 pixels, got {image_size}")
        if not 0.0 <= two_object_prob <= 1.0:
            raise ValueError(f"two_object_prob must be in [0, 1], got {two_object_prob}")
        if not 0 <= heldout_per_color < len(SHAPES) - 1:
            raise ValueError(f"heldout_per_color must be in [0, {len(SHAPES) - 2}], got {heldout_per_color}")
        self.seed, self.image_size = seed, image_size
        self.two_object_prob, self.background_noise = two_object_prob, background_noise
        # Hold out shape (c + j + offset) % 5 for colour c: every colour loses the same number of
        # shapes and every shape stays seen with most colours.
        offset = int(_pick(_uniform(np.uint64(seed), 7), len(SHAPES)))
        held = np.zeros((len(COLORS), len(SHAPES)), bool)
        for c in range(len(COLORS)):
            for j in range(heldout_per_color):
                held[c, (c + j + offset) % len(SHAPES)] = True
        self.heldout_mask = held  # (colors, shapes) bool
        self.heldout_combos = [(COLORS[c], SHAPES[s]) for c, s in zip(*np.nonzero(held))]
        self.vocabulary = caption_vocabulary()

    def __repr__(self) -> str:
        return f"ShapesWorld(seed={self.seed}, image_size={self.image_size})"

    # ---------------------------------------------------------------- sampling attributes
    def _keys(self, view: str, split: str, start: int, n: int) -> tuple[np.ndarray, np.ndarray]:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        if n < 0 or start < 0:
            raise ValueError(f"n and start must be non-negative, got n={n}, start={start}")
        index = np.arange(start, start + n, dtype=np.int64)
        base = _splitmix(np.uint64(self.seed) ^ _splitmix(np.uint64(_VIEWS[view] * 8 + SPLITS.index(split))))
        return index, _splitmix(base ^ index.astype(np.uint64))

    def _attributes(self, key: np.ndarray, n_objects: np.ndarray, heldout: bool = False) -> dict:
        n = len(key)
        allowed = self.heldout_mask if heldout else ~self.heldout_mask
        combos = np.argwhere(allowed)  # (K, 2) rows of (color, shape)
        attrs = {a: np.full((n, 2), -1, np.int64) for a in ATTRIBUTES}
        attrs["n_objects"] = n_objects.astype(np.int64)
        first = combos[_pick(_uniform(key, 1), len(combos))]
        attrs["color"][:, 0], attrs["shape"][:, 0] = first[:, 0], first[:, 1]
        # Second objects differ from the first in colour and shape so that every caption and
        # question names one object unambiguously. Redraw the clashes with fresh draw ids.
        two = n_objects == 2
        pending = two.copy()
        for attempt in range(100):
            second = combos[_pick(_uniform(key, 100 + attempt), len(combos))]
            ok = pending & (second[:, 0] != first[:, 0]) & (second[:, 1] != first[:, 1])
            attrs["color"][ok, 1], attrs["shape"][ok, 1] = second[ok, 0], second[ok, 1]
            pending &= ~ok
            if not pending.any():
                break
        else:  # pragma: no cover - needs a colour or shape world with a single combination
            raise ValueError("cannot find two distinct objects; hold out fewer combinations")
        attrs["size"][:, 0] = _pick(_uniform(key, 2), 2)
        attrs["size"][two, 1] = _pick(_uniform(key[two], 3), 2)
        # One object: any position. Two: left/right or top/bottom, in either order, never touching.
        attrs["position"][:, 0] = _pick(_uniform(key, 4), len(POSITIONS))
        vertical = _uniform(key[two], 5) < 0.5
        flip = (_uniform(key[two], 6) < 0.5).astype(np.int64)
        pair = np.where(vertical, 2, 0)  # left=0/right=1, top=2/bottom=3
        attrs["position"][two, 0] = pair + flip
        attrs["position"][two, 1] = pair + 1 - flip
        return attrs

    def _n_objects(self, key: np.ndarray, two_object_prob: float) -> np.ndarray:
        return np.where(_uniform(key, 0) < two_object_prob, 2, 1)

    # ---------------------------------------------------------------- drawing
    def render(self, key: np.ndarray, attrs: dict[str, np.ndarray]) -> torch.Tensor:
        """Draw images for per-sample keys and attributes: (N, 3, S, S) float32 in [0, 1].

        Pixel values are multiples of 1/255, so PNG files hold them exactly.
        """
        chunk = max(64, 2 ** 21 // self.image_size ** 2)  # bounds memory at large image sizes
        parts = [self._render(key[i:i + chunk], {k: v[i:i + chunk] for k, v in attrs.items()})
                 for i in range(0, len(key), chunk)]
        if not parts:
            return torch.zeros(0, 3, self.image_size, self.image_size)
        return torch.from_numpy(np.concatenate(parts)).float().div_(255)

    def _render(self, key: np.ndarray, attrs: dict[str, np.ndarray]) -> np.ndarray:
        n, s = len(key), self.image_size
        # Background: a dim random grey-ish colour plus per-pixel noise from the hash.
        base = 0.06 + 0.28 * _uniform(key[:, None], 10, np.arange(3))  # (N, 3)
        pixel = np.arange(s * s, dtype=np.uint64)
        noise = (_uniform(key[:, None], 11, pixel) - 0.5).reshape(n, 1, s, s) * (2 * self.background_noise)
        img = base[:, :, None, None] + noise  # (N, 3, S, S)
        grid = (np.arange(s, dtype=np.float32) + 0.5)[None, :]
        for k in range(2):
            has = attrs["shape"][:, k] >= 0
            if not has.any():
                continue
            idx = np.nonzero(has)[0]
            kk = key[idx]
            r = RADIUS[attrs["size"][idx, k]] * s  # (M,) radius in pixels
            jitter = (_uniform(kk[:, None], 20 + k, np.arange(2)) - 0.5) * 0.08 * s
            cx, cy = (POSITION_XY[attrs["position"][idx, k]] * s + jitter).T
            dx = (grid - cx[:, None])[:, None, :] / r[:, None, None]  # (M, 1, S)
            dy = (grid - cy[:, None])[:, :, None] / r[:, None, None]  # (M, S, 1)
            dist = np.empty((len(idx), s, s), np.float32)
            for shape_id in range(len(SHAPES)):
                m = attrs["shape"][idx, k] == shape_id
                if m.any():
                    dist[m] = _sdf(shape_id, dx[m], dy[m])
            alpha = np.clip(0.5 - dist * r[:, None, None], 0.0, 1.0)[:, None]  # (M, 1, S, S)
            color = RGB[attrs["color"][idx, k]] + (_uniform(kk[:, None], 30 + k, np.arange(3)) - 0.5) * 0.08
            img[idx] = img[idx] * (1 - alpha) + color[:, :, None, None] * alpha
        return np.clip(np.rint(img * 255), 0, 255).astype(np.uint8)

    # ---------------------------------------------------------------- views
    def _batch(self, view: str, n: int, split: str, start: int, two_object_prob: float,
               heldout: bool = False, with_images: bool = True, accept=None) -> tuple[Batch, np.ndarray]:
        """Draw a view's samples. `accept(attributes) -> (N,) bool` redraws (with a new key, still
        a function of the index alone) every sample it rejects, so n samples always come back."""
        index, key = self._keys(view, split, start, n)
        attrs = self._attributes(key, self._n_objects(key, two_object_prob), heldout)
        for attempt in range(200 if accept else 0):
            redo = ~accept(attrs)
            if not redo.any():
                break
            if attempt == 199:  # pragma: no cover - needs a world where almost nothing is accepted
                raise ValueError(f"could not draw {view} samples that pass its constraint")
            key = key.copy()
            key[redo] = _splitmix(key[redo] ^ np.uint64(0xD1CE + attempt))
            fresh = self._attributes(key[redo], self._n_objects(key[redo], two_object_prob), heldout)
            for k in attrs:
                attrs[k][redo] = fresh[k]
        template = _pick(_uniform(key, 8), len(ONE_OBJECT_TEMPLATES))
        images = self.render(key, attrs) if with_images else None
        return Batch(index=index, attributes=attrs, images=images, template=template, heldout=self.heldout_mask), key

    def pairs(self, n: int, *, split: str = "train", start: int = 0) -> Batch:
        """Clean, curated image-caption pairs (the COCO / Flickr30K stand-in)."""
        b, _ = self._batch("pairs", n, split, start, self.two_object_prob)
        b.captions = caption_from_attributes(b.attributes, b.template)
        return b

    def noisy_pairs(self, n: int, *, noise_rate: float = 0.3, kinds: tuple[str, ...] = NOISE_KINDS,
                    split: str = "train", start: int = 0) -> Batch:
        """Web-style pairs: a `noise_rate` fraction of captions is corrupted by one of `kinds`.

        The images and their true captions are those of `pairs` (same split and index), so a noisy
        set can be compared with its clean twin. Kinds:

        - "swap": the caption belongs to another image of the world;
        - "attribute": one colour, shape or size word is wrong;
        - "junk": alt-text that describes nothing ("IMG_0423.jpg", "click here for more").
        """
        if not 0.0 <= noise_rate <= 1.0:
            raise ValueError(f"noise_rate must be in [0, 1], got {noise_rate}")
        bad = [k for k in kinds if k not in NOISE_KINDS]
        if bad or not kinds:
            raise ValueError(f"kinds must be a non-empty subset of {NOISE_KINDS}, got {kinds}")
        b = self.pairs(n, split=split, start=start)
        _, key = self._keys("noise", split, start, n)
        noisy = _uniform(key, 0) < noise_rate
        kind = np.array(kinds)[_pick(_uniform(key, 1), len(kinds))]
        captions, kind_out = list(b.captions), [""] * n
        for name in kinds:
            sel = np.nonzero(noisy & (kind == name))[0]
            if len(sel) == 0:
                continue
            for i, text in zip(sel, self._corrupt(name, key[sel], b, sel)):
                captions[i], kind_out[i] = text, name
        b.clean_captions, b.captions = b.captions, captions
        b.is_noisy, b.noise_kind = noisy, kind_out
        return b

    def _corrupt(self, kind: str, key: np.ndarray, b: Batch, sel: np.ndarray) -> list[str]:
        if kind == "swap":  # the caption of a random other sample of the world
            other_key = _splitmix(key ^ np.uint64(0xC0FFEE))
            other = self._attributes(other_key, self._n_objects(other_key, self.two_object_prob))
            return caption_from_attributes(other, _pick(_uniform(other_key, 8), len(ONE_OBJECT_TEMPLATES)))
        if kind == "attribute":  # one colour, shape or size word of one object made wrong
            attrs = {k: v[sel] for k, v in b.attributes.items()}
            obj = np.where(attrs["n_objects"] == 2, _pick(_uniform(key, 2), 2), 0)
            return wrong_attribute_captions(attrs, b.template[sel], self.heldout_mask, obj=obj,
                                            which=_pick(_uniform(key, 3), 3), draw=_uniform(key, 4))
        numbers = _pick(_uniform(key, 5), 9000) + 1000
        return [JUNK_TEMPLATES[t].format(n=num) for t, num in
                zip(_pick(_uniform(key, 6), len(JUNK_TEMPLATES)), numbers)]

    def images(self, n: int, *, split: str = "train", start: int = 0) -> Batch:
        """Unpaired images: no captions. Ground truth stays in `attributes`, for evaluation only."""
        b, _ = self._batch("images", n, split, start, self.two_object_prob)
        return b

    def texts(self, n: int, *, split: str = "train", start: int = 0) -> Batch:
        """Unpaired captions: text with no image (a different stream from `images`)."""
        b, _ = self._batch("texts", n, split, start, self.two_object_prob, with_images=False)
        b.captions = caption_from_attributes(b.attributes, b.template)
        return b

    def labeled(self, n: int, *, attribute: str = "shape", split: str = "train", start: int = 0) -> Batch:
        """One-object images with a class label for `attribute` (shape, color, size or position)."""
        if attribute not in ATTRIBUTES:
            raise ValueError(f"attribute must be one of {tuple(ATTRIBUTES)}, got {attribute!r}")
        b, _ = self._batch("labeled", n, split, start, 0.0)
        b.labels = torch.from_numpy(b.attributes[attribute][:, 0].copy())
        b.classes = ATTRIBUTES[attribute]
        return b

    def vqa(self, n: int, *, split: str = "train", start: int = 0) -> Batch:
        """Visual questions with one-word answers (answer vocabulary: ANSWERS).

        Question types (QUESTION_TYPES): "what color is the square?", "what shape is on the
        left?", "how many shapes are there?", "is there a red circle?", "where is the red
        circle?", "what size is the circle?".
        """
        b, key = self._batch("vqa", n, split, start, self.two_object_prob)
        a = b.attributes
        qtype = _pick(_uniform(key, 40), len(QUESTION_TYPES))
        obj = np.where(a["n_objects"] == 2, _pick(_uniform(key, 41), 2), 0)
        present = _uniform(key, 42) < 0.5
        seen = np.argwhere(~self.heldout_mask)  # "is there a ...?" names only combinations the world shows
        absent_color, absent_shape = seen[_pick(_uniform(key, 43), len(seen))].T
        questions, answers = [], []
        for i in range(n):
            k = obj[i]
            color, shape = COLORS[a["color"][i, k]], SHAPES[a["shape"][i, k]]
            t = QUESTION_TYPES[qtype[i]]
            if t == "color":
                q, ans = f"what color is the {shape}?", color
            elif t == "shape":
                q, ans = f"what shape is {POSITION_PHRASE[POSITIONS[a['position'][i, k]]]}?", shape
            elif t == "count":
                q, ans = "how many shapes are there?", COUNT_WORDS[a["n_objects"][i]]
            elif t == "exists":
                if not present[i]:
                    color, shape = COLORS[absent_color[i]], SHAPES[absent_shape[i]]
                there = any(COLORS[a["color"][i, j]] == color and SHAPES[a["shape"][i, j]] == shape
                            for j in range(a["n_objects"][i]))
                q, ans = f"is there a {color} {shape}?", "yes" if there else "no"
            elif t == "position":
                q, ans = f"where is the {color} {shape}?", POSITIONS[a["position"][i, k]]
            else:
                q, ans = f"what size is the {shape}?", SIZES[a["size"][i, k]]
            questions.append(q)
            answers.append(ans)
        b.questions, b.answers, b.question_type = questions, answers, qtype
        b.labels = torch.tensor([ANSWERS.index(x) for x in answers], dtype=torch.int64)
        b.classes = ANSWERS
        return b

    def heldout_pairs(self, n: int, *, split: str = "test", start: int = 0) -> Batch:
        """One-object pairs whose colour x shape combination no other view ever shows."""
        if not self.heldout_mask.any():
            raise ValueError("this world holds out no combinations (heldout_per_color=0)")
        b, _ = self._batch("heldout", n, split, start, 0.0, heldout=True)
        b.captions = caption_from_attributes(b.attributes, b.template)
        return b

    def binding_pairs(self, n: int, *, split: str = "test", start: int = 0) -> Batch:
        """Two-object images with their caption and two swapped twins, each the same bag of words
        for a different scene, so a model that reads captions as bags of words scores 50 %:

        - `swapped_captions`: colours swapped, "a small red circle ... and a large blue square ..."
          -> "a small blue circle ... and a large red square ..." (the kind of hard negative
          NegCLIP training uses: the in-distribution probe);
        - `size_swapped_captions`: sizes swapped, "a large red circle ... and a small blue square
          ..." (a swap no training negative makes: the out-of-distribution probe).

        Scenes are drawn so that both objects differ in size and both colour-swapped objects are
        seen combinations: images and both twins name only combinations seen in training.
        """
        def accept(a):
            swapped = {**a, "color": a["color"][:, ::-1]}
            return (a["size"][:, 0] != a["size"][:, 1]) & ~names_heldout(swapped, self.heldout_mask)

        b, _ = self._batch("binding", n, split, start, 1.0, accept=accept)
        b.captions = caption_from_attributes(b.attributes, b.template)
        b.swapped_captions = hard_negative_captions(b)  # colours swapped (every swap is seen, by construction)
        b.size_swapped_captions = size_swapped_captions(b)
        return b


def _sdf(shape_id: int, dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """Approximate signed distance (in radii, negative inside) of shape `shape_id` at (dx, dy)."""
    ax, ay = np.abs(dx), np.abs(dy)
    name = SHAPES[shape_id]
    if name == "circle":
        return np.sqrt(dx * dx + dy * dy) - 1.0
    if name == "square":
        return np.maximum(ax, ay) - 0.8
    if name == "diamond":
        return (ax + ay - 1.1) * np.float32(0.7071)
    if name == "triangle":  # apex up at (0, -1), base at y = 0.75
        side = (1.7 * ax - 0.95 * (dy + 1.0)) * np.float32(1 / np.hypot(1.7, 0.95))
        return np.maximum(dy - 0.75, side)
    # cross: the union of a vertical and a horizontal bar
    return np.minimum(np.maximum(ax - 0.3, ay - 0.95), np.maximum(ax - 0.95, ay - 0.3))
