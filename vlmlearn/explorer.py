"""The machinery of every explorer: `Panel` (an output area redrawn from a plain drawing function) and `Explorer`
(controls over panels). No lesson lives here; the explorers themselves are in `vlmlearn.widgets`.

An explorer is made of standard ipywidgets 8 controls over `Output` areas (no front-end code of its own, so it runs in
JupyterLab, Notebook 7, VS Code and Colab). Displayed in a notebook, it also leaves a static PNG of its first view below
itself, so a reader without a running kernel (GitHub, nbviewer, the course site) sees what it shows.
"""
from __future__ import annotations

import io

import ipywidgets as W


class Panel:
    """An `Output` area that shows `draw() -> (matplotlib figure or None, text or None)`, redrawn by `update`.
    It keeps a PNG of its first view, with the text set under the figure, for `Explorer.snapshot`."""

    def __init__(self, draw):
        self.draw, self.out, self.first_png = draw, W.Output(), None

    def update(self, *_):
        import matplotlib.pyplot as plt
        from IPython.display import display

        fig, text = self.draw()
        with self.out:
            self.out.clear_output(wait=True)
            if fig is not None:
                display(fig)
            if text:
                print(text)
        if self.first_png is None:
            self.first_png = _png(fig, text)
        if fig is not None:
            plt.close(fig)


def _png(fig, text: str | None) -> bytes:
    """The figure (or an empty one) with `text` under it, as PNG bytes."""
    import matplotlib.pyplot as plt

    if fig is None:
        fig = plt.figure(figsize=(6, 0.2 + 0.18 * len((text or "").splitlines())))
    if text:
        fig.text(0.01, 0, text, ha="left", va="top", fontsize=8, family="monospace")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80, bbox_inches="tight", facecolor="white")
    plt.close(fig)
    return buffer.getvalue()


class Explorer(W.VBox):
    """A VBox of controls and `Panel`s. `snapshot()` is a PNG of the panels' first views, stacked; displaying the
    explorer shows the live widget, then that PNG with the controls' default values."""

    def __init__(self, children, panels: list[Panel]):
        super().__init__(children)
        self.panels = panels
        for panel in panels:
            panel.update()

    def control_widgets(self) -> list:
        """Every control (a described value widget: slider, dropdown, text box), top to bottom."""
        found, todo = [], list(self.children)
        while todo:
            w = todo.pop(0)
            todo.extend(getattr(w, "children", ()))
            if isinstance(w, W.ValueWidget) and getattr(w, "description", ""):
                found.append(w)
        return found

    def controls(self) -> dict[str, object]:
        """The value of every control, by its description (dropdowns give their option's label)."""
        return {w.description: getattr(w, "label", None) or w.value for w in self.control_widgets()}

    def snapshot(self) -> bytes:
        """The panels' first views (PNGs stacked top to bottom) as one PNG."""
        from PIL import Image

        images = [Image.open(io.BytesIO(p.first_png)).convert("RGB") for p in self.panels]
        sheet = Image.new("RGB", (max(i.width for i in images), sum(i.height for i in images)), "white")
        y = 0
        for image in images:
            sheet.paste(image, (0, y))
            y += image.height
        buffer = io.BytesIO()
        sheet.save(buffer, format="png", optimize=True)
        return buffer.getvalue()

    def _ipython_display_(self):
        from IPython.display import Image, display

        display(self._repr_mimebundle_(), raw=True)
        settings = ", ".join(f"{k} {v}" for k, v in self.controls().items())
        print(f"Static copy of the default view ({settings}), for readers without a running kernel:")
        display(Image(self.snapshot()))
