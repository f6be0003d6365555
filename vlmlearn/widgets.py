"""The notebooks' interactive explorers (ipywidgets), one per lesson. Each builds on a plain function that tests can
call.

Every explorer is a `vlmlearn.explorer.Explorer` (controls over `Panel` areas, with a static copy of its first view);
the machinery lives there, the lessons' explorers here.
"""
from __future__ import annotations

import ipywidgets as W

from .data.shapes import ShapesWorld
from .explorer import Explorer, Panel
from .runtime import eval_mode

WORLD_VIEWS = ("clean pairs", "noisy web pairs", "unpaired images", "unpaired text", "labeled: shape",
               "labeled: color", "VQA", "held-out combinations", "binding pairs")


def world_view(view: str, *, seed: int = 0, noise_rate: float = 0.3, n: int = 16, image_size: int = 32):
    """Draw `n` samples of one view: (images or None, texts, text colours).

    Noisy captions are coloured red; binding pairs show caption / swapped twin.
    """
    world = ShapesWorld(seed=seed, image_size=image_size)
    colors = None
    if view == "clean pairs":
        b = world.pairs(n)
        texts = b.captions
    elif view == "noisy web pairs":
        b = world.noisy_pairs(n, noise_rate=noise_rate)
        texts = [f"[{k}] {c}" if k else c for c, k in zip(b.captions, b.noise_kind)]
        colors = ["tab:red" if x else "black" for x in b.is_noisy]
    elif view == "unpaired images":
        b = world.images(n)
        texts = [""] * n
    elif view == "unpaired text":
        return None, world.texts(n).captions, None
    elif view.startswith("labeled: "):
        b = world.labeled(n, attribute=view.split(": ")[1])
        texts = [f"label: {b.classes[y]}" for y in b.labels]
    elif view == "VQA":
        b = world.vqa(n)
        texts = [f"{q} → {a}" for q, a in zip(b.questions, b.answers)]
    elif view == "held-out combinations":
        b = world.heldout_pairs(n)
        texts = b.captions
    elif view == "binding pairs":
        b = world.binding_pairs(n)
        texts = [f"✓ {c}\n✗ {s}" for c, s in zip(b.captions, b.swapped_captions)]
    else:
        raise ValueError(f"view must be one of {WORLD_VIEWS}, got {view!r}")
    return b.images, texts, colors


def world_browser(n: int = 16):
    """An `Explorer` to browse ShapesWorld: pick the view, the noise rate, the seed and the image size."""
    from .viz import show_images

    view = W.Dropdown(options=WORLD_VIEWS, value="noisy web pairs", description="view")
    noise = W.FloatSlider(value=0.3, min=0.0, max=1.0, step=0.05, description="noise rate")
    seed = W.IntText(value=0, description="seed")
    size = W.Dropdown(options=(16, 32, 48, 64), value=32, description="image size")

    def draw():
        images, texts, colors = world_view(view.value, seed=seed.value, noise_rate=noise.value, n=n,
                                           image_size=size.value)
        if images is None:
            return None, "\n".join(texts)
        return show_images(images, texts, colors=colors, ncols=8, wrap=24)[0], None

    panel = Panel(draw)
    for w in (view, noise, seed, size):
        w.observe(panel.update, names="value")
    return Explorer([W.HBox([view, noise]), W.HBox([seed, size]), panel.out], [panel])


def retrieval_explorer(model, tokenizer, images, captions, *, k: int = 5):
    """Type a caption to see the top-k images; pick an image to see its top-k captions.

    `model` has encode_image / encode_text (a DualEncoder or an open_clip CLIP); `images` is
    (N, 3, S, S) and `captions` the candidate texts. Returns an `Explorer`.
    """
    from .contrastive import image_text_similarity
    from .viz import show_images

    sim = image_text_similarity(model, tokenizer, images, captions)  # (N_img, N_txt), computed once
    query = W.Text(value=captions[0], description="caption", layout=W.Layout(width="520px"))
    pick = W.IntSlider(value=0, min=0, max=len(images) - 1, description="image")

    def top_images():
        scores = image_text_similarity(model, tokenizer, images, [query.value])[:, 0]
        top = scores.topk(k).indices
        fig, _ = show_images(images[top], [f"{s:.2f}" for s in scores[top]], ncols=k, size=1.4,
                             title=f"top {k} images for: {query.value}")
        return fig, None

    def top_captions():
        scores = sim[pick.value]
        fig, _ = show_images(images[pick.value:pick.value + 1], size=1.4, title=f"image {pick.value}")
        return fig, "\n".join(f"{scores[j]:.2f}  {captions[j]}" for j in scores.topk(k).indices)

    images_panel, captions_panel = Panel(top_images), Panel(top_captions)
    query.observe(images_panel.update, names="value")
    pick.observe(captions_panel.update, names="value")
    return Explorer([W.HTML("<b>text → images</b>"), query, images_panel.out,
                     W.HTML("<b>image → captions</b>"), pick, captions_panel.out], [images_panel, captions_panel])


def filter_trade_off(scores, is_noisy, keep_fraction: float) -> dict[str, float]:
    """Keep the top `keep_fraction` of pairs by score: how clean is what is kept, and how much clean
    data is thrown away? Returns kept, noise_kept (fraction of kept pairs that are noisy),
    noise_removed (fraction of noisy pairs dropped) and clean_lost (fraction of clean pairs dropped)."""
    import torch

    from .capfilt import keep_most_similar

    scores, is_noisy = torch.as_tensor(scores), torch.as_tensor(is_noisy, dtype=torch.bool)
    keep = keep_most_similar(scores, keep_fraction)
    n_noisy, n_clean = max(int(is_noisy.sum()), 1), max(int((~is_noisy).sum()), 1)
    return {"kept": int(keep.sum()), "noise_kept": (is_noisy & keep).sum().item() / max(int(keep.sum()), 1),
            "noise_removed": (is_noisy & ~keep).sum().item() / n_noisy,
            "clean_lost": (~is_noisy & ~keep).sum().item() / n_clean}


def _slider_figure(slider, draw) -> Explorer:
    """A slider above a `Panel` that shows draw(slider.value) -> (figure, text), redrawn on change."""
    panel = Panel(lambda: draw(slider.value))
    slider.observe(panel.update, names="value")
    return Explorer([slider, panel.out], [panel])


def filter_explorer(scores, is_noisy):
    """A slider over the fraction of pairs to keep, with the filtering trade-off it buys (an `Explorer`)."""
    import matplotlib.pyplot as plt
    import numpy as np

    fractions = np.linspace(0.05, 1.0, 20)
    curves = [filter_trade_off(scores, is_noisy, f) for f in fractions]

    def draw(value):
        now = filter_trade_off(scores, is_noisy, value)
        fig, ax = plt.subplots(figsize=(6, 3))
        for key, label in (("noise_kept", "noise in kept pairs"), ("noise_removed", "noisy pairs removed"),
                           ("clean_lost", "clean pairs lost")):
            ax.plot(fractions, [c[key] for c in curves], label=label)
        ax.axvline(value, color="k", ls="--")
        ax.set_xlabel("fraction of pairs kept")
        ax.set_ylabel("fraction")
        ax.legend(fontsize=8)
        return fig, (f"keep {now['kept']} pairs: {now['noise_kept']:.1%} noisy; removes {now['noise_removed']:.1%} "
                     f"of the noise and loses {now['clean_lost']:.1%} of the clean pairs")

    return _slider_figure(W.FloatSlider(value=0.6, min=0.05, max=1.0, step=0.05, description="keep"), draw)


def threshold_trade_off(probs, true_labels, threshold: float) -> dict[str, float]:
    """Pseudo-labels above a confidence threshold: coverage (fraction passing), precision (fraction
    of those that are right) and the count per predicted class."""
    import torch

    from .semi import confident_mask

    probs, true_labels = torch.as_tensor(probs), torch.as_tensor(true_labels)
    mask = confident_mask(probs, threshold)
    pred = probs.argmax(-1)
    return {"coverage": mask.float().mean().item(),
            "precision": (pred == true_labels)[mask].float().mean().item() if mask.any() else float("nan"),
            "per_class": torch.bincount(pred[mask], minlength=probs.shape[1]).tolist()}


def threshold_explorer(probs, true_labels):
    """A slider over a pseudo-labeling confidence threshold: coverage, precision, class balance (an `Explorer`)."""
    import matplotlib.pyplot as plt
    import numpy as np

    grid = np.linspace(0.5, 1.0, 26)
    curves = [threshold_trade_off(probs, true_labels, t) for t in grid]

    def draw(value):
        now = threshold_trade_off(probs, true_labels, value)
        fig, axes = plt.subplots(1, 2, figsize=(9, 3))
        axes[0].plot(grid, [c["coverage"] for c in curves], label="coverage")
        axes[0].plot(grid, [c["precision"] for c in curves], label="precision")
        axes[0].axvline(value, color="k", ls="--")
        axes[0].set_xlabel("threshold")
        axes[0].set_ylabel("fraction of the pool")
        axes[0].legend()
        axes[1].bar(range(len(now["per_class"])), now["per_class"])
        axes[1].set_title("pseudo-labels per class")
        axes[1].set_xlabel("class")
        axes[1].set_ylabel("pseudo-labels")
        fig.tight_layout()
        return fig, f"threshold {value:.2f}: {now['coverage']:.1%} of the pool labeled, {now['precision']:.1%} correct"

    return _slider_figure(W.FloatSlider(value=0.95, min=0.5, max=1.0, step=0.01, description="threshold"), draw)


def mask_ratio_explorer(model, images, *, seed: int = 0):
    """A slider over the mask ratio that re-runs a trained `MaskedAutoencoder` on `images` (B, C, S, S):
    rows show the masked input, the target and the prediction (see `MaskedAutoencoder.reconstruct`)."""
    import torch

    from .viz import show_images

    device = next(model.parameters()).device
    on_model = images.to(device)
    space = "normalised patches" if model.norm_pix_loss else "pixels"

    def draw(ratio):
        noise = torch.rand(len(images), model.encoder.num_patches, generator=torch.Generator().manual_seed(seed))
        with torch.no_grad():
            out = model(on_model, ratio, noise.to(device))
            masked, target, pred = (t.cpu() for t in model.reconstruct(on_model, ratio, noise.to(device)))
        fig, _ = show_images(torch.cat([masked, target, pred]), ncols=len(images), size=1.0,
                             title=f"mask ratio {ratio:.2f}: input / target / prediction ({space})")
        return fig, f"{int(model.encoder.num_patches * (1 - ratio))} of {model.encoder.num_patches} patches visible; " \
                    f"loss on the hidden patches {out.loss.item():.4f}"

    return _slider_figure(W.FloatSlider(value=0.75, min=0.0, max=0.95, step=0.05, description="mask ratio"), draw)


def masked_word_predictions(models: dict, tokenizer, image, caption: str, position: int, *, k: int = 5):
    """Mask word `position` (0 = first word) of `caption` and ask each model for its top-k words.

    models maps a name to (model, uses_image). Returns {name: [(word, probability), ...]}.
    """
    import torch

    ids = tokenizer([caption])
    words = int((ids != tokenizer.pad_id).sum()) - 2
    if not 0 <= position < words:
        raise ValueError(f"position must be in [0, {words}) for a caption of {words} words, got {position}")
    ids[0, position + 1] = tokenizer.mask_id
    out = {}
    for name, (model, uses_image) in models.items():
        device = next(model.parameters()).device
        with eval_mode(model), torch.no_grad():
            logits = model(ids.to(device), image[None].to(device) if uses_image else None)[0, position + 1]
        p, i = logits.softmax(-1).cpu().topk(k)
        out[name] = [(tokenizer.itos[j], q) for j, q in zip(i.tolist(), p.tolist())]
    return out


def masked_word_explorer(models: dict, tokenizer, images, captions):
    """Pick a test image and a word of its caption: each model's top guesses for the masked word (an `Explorer`)."""
    import matplotlib.pyplot as plt

    from .viz import _hwc

    index = W.IntSlider(value=0, min=0, max=len(images) - 1, description="image")
    word = W.Dropdown(description="mask word")

    def set_words(*_):
        words = captions[index.value].split()
        word.options = [(f"{i}: {w}", i) for i, w in enumerate(words)]
        word.value = min(2, len(words) - 1)

    def draw():
        caption = captions[index.value]
        words = caption.split()
        shown = " ".join("____" if i == word.value else w for i, w in enumerate(words))
        preds = masked_word_predictions(models, tokenizer, images[index.value], caption, word.value)
        fig, axes = plt.subplots(1, 1 + len(preds), figsize=(2.2 + 3 * len(preds), 2.2))
        axes[0].imshow(_hwc(images[index.value]))
        axes[0].axis("off")
        for ax, (name, top) in zip(axes[1:], preds.items()):
            ax.barh([w for w, _ in top][::-1], [p for _, p in top][::-1], color="tab:blue")
            ax.set_xlim(0, 1)
            ax.set_xlabel("probability")
            ax.set_ylabel("guess")
            ax.set_title(name, fontsize=9)
        fig.suptitle(shown, fontsize=9)
        fig.tight_layout()
        return fig, None

    panel = Panel(draw)

    def update(*_):
        if word.value is not None:  # set_words empties the options before it picks a word
            panel.update()

    set_words()
    index.observe(set_words, names="value")
    index.observe(update, names="value")
    word.observe(update, names="value")
    return Explorer([W.HBox([index, word]), panel.out], [panel])


def caption_painter(model, tokenizer, examples: list[str]):
    """Type a caption (or pick an example) and see what a `CaptionToImage` model paints for it.
    Words outside the vocabulary are shown, since the model reads them as <unk>. Returns an `Explorer`."""
    import matplotlib.pyplot as plt
    import torch

    from .viz import _hwc

    text = W.Text(value=examples[0], description="caption", layout=W.Layout(width="520px"))
    pick = W.Dropdown(options=examples, value=examples[0], description="example")

    def draw():
        unknown = [w for w in text.value.lower().split() if w not in tokenizer.stoi]
        with eval_mode(model), torch.no_grad():
            image = model(tokenizer([text.value]).to(next(model.parameters()).device))[0].cpu()
        fig, ax = plt.subplots(figsize=(2.5, 2.5))
        ax.imshow(_hwc(image))
        ax.axis("off")
        return fig, f"not in the vocabulary (read as <unk>): {unknown}" if unknown else None

    panel = Panel(draw)
    pick.observe(lambda change: setattr(text, "value", change["new"]), names="value")
    text.observe(panel.update, names="value")
    return Explorer([pick, text, panel.out], [panel])


def label_efficiency_explorer(bench: dict):
    """Pick a task, a method and a label count of the capstone's committed grid (notebook 09): its
    learning curves at every seed and its confusion matrix (`label_efficiency_report.plot_run`).
    Returns an `Explorer`."""
    from .label_efficiency_report import METHOD_NAMES, grid, plot_run

    if not isinstance(bench, dict) or "runs" not in bench:
        raise ValueError("expected the capstone's grid, load_benchmark('09_label_efficiency') from the course "
                         f"repository (benchmarks/results/), got {type(bench).__name__}; outside the repository pass "
                         "load_benchmark(..., folder=<its benchmarks/results>)")
    task = W.Dropdown(options=["digits", "shapes"], value="digits", description="task")
    method = W.Dropdown(description="method")
    labels = W.Dropdown(description="labels/class")
    panel = Panel(lambda: plot_run(bench, task.value, method.value, labels.value))

    def methods(_=None):
        table = grid(bench, task.value)
        method.options = [(METHOD_NAMES.get(m, m), m) for m in table]
        method.value = "fixmatch" if "fixmatch" in table else next(iter(table))

    def counts(_=None):
        options = list(grid(bench, task.value)[method.value])
        labels.options = options
        labels.value = "2" if "2" in options else options[0]

    def update(_=None):
        if labels.value is not None:  # counts() empties the options before it picks one
            panel.update()

    methods(), counts()
    task.observe(lambda _: (methods(), counts(), update()), names="value")
    method.observe(lambda _: (counts(), update()), names="value")
    labels.observe(update, names="value")
    return Explorer([W.HBox([task, method, labels]), panel.out], [panel])
