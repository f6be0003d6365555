"""Interactive explorers (ipywidgets). Each builds on a plain function that tests can call."""
from __future__ import annotations

from .data.shapes import ShapesWorld

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
    """A widget to browse ShapesWorld: pick the view, the noise rate, the seed and the image size."""
    import ipywidgets as W
    import matplotlib.pyplot as plt
    from IPython.display import display

    from .viz import show_images

    view = W.Dropdown(options=WORLD_VIEWS, value="noisy web pairs", description="view")
    noise = W.FloatSlider(value=0.3, min=0.0, max=1.0, step=0.05, description="noise rate")
    seed = W.IntText(value=0, description="seed")
    size = W.Dropdown(options=(16, 32, 48, 64), value=32, description="image size")
    out = W.Output()

    def update(*_):
        images, texts, colors = world_view(view.value, seed=seed.value, noise_rate=noise.value, n=n,
                                           image_size=size.value)
        with out:
            out.clear_output(wait=True)
            if images is None:
                print("\n".join(texts))
            else:
                fig, _ = show_images(images, texts, colors=colors, ncols=8, wrap=24)
                display(fig)
                plt.close(fig)

    for w in (view, noise, seed, size):
        w.observe(update, names="value")
    update()
    return W.VBox([W.HBox([view, noise]), W.HBox([seed, size]), out])
