"""Plots for the course. Every function returns (fig, axes); none saves files or calls show()."""
from __future__ import annotations

import textwrap
from typing import Sequence

import numpy as np
import torch


def _plt():
    import matplotlib.pyplot as plt

    return plt


def _hwc(img: torch.Tensor) -> np.ndarray:
    img = torch.as_tensor(img).detach().float().cpu()
    if img.ndim == 3 and img.shape[0] in (1, 3):
        img = img.permute(1, 2, 0)
    img = img.squeeze(-1) if img.ndim == 3 and img.shape[-1] == 1 else img
    return img.clamp(0, 1).numpy()


def show_images(images: torch.Tensor, captions: Sequence[str] | None = None, *, ncols: int = 8,
                size: float = 1.6, wrap: int = 22, title: str | None = None, colors: Sequence[str] | None = None):
    """A grid of images (N, C, H, W) in [0, 1], with optional captions under each (wrapped).

    `colors` can tint each caption (e.g. red for a noisy pair).
    """
    plt = _plt()
    n = len(images)
    if n == 0:
        raise ValueError("no images to show")
    if captions is not None and len(captions) != n:
        raise ValueError(f"got {n} images but {len(captions)} captions")
    ncols = min(ncols, n)
    nrows = (n + ncols - 1) // ncols
    text_h = 0.0 if captions is None else 0.14 * max(len(textwrap.wrap(c, wrap)) or 1 for c in captions)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, (size + text_h * size) * nrows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= n:
            continue
        img = _hwc(images[i])
        ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=1, interpolation="nearest")
        if captions is not None:
            ax.set_title("\n".join(textwrap.wrap(captions[i], wrap)), fontsize=7, va="top", y=-0.02,
                         color=colors[i] if colors is not None else "black")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig, axes


def plot_history(history, keys: Sequence[str] | None = None, *, logy: Sequence[str] = ("loss",), smooth: int = 0):
    """One panel per metric: training curves (optionally smoothed) and eval points on top."""
    plt = _plt()
    train, ev = history.train, history.eval
    names = list(keys) if keys else [k for k in dict.fromkeys([*train, *ev]) if k != "step"]
    if not names:
        raise ValueError("the history holds no metrics yet")
    fig, axes = plt.subplots(1, len(names), figsize=(4 * len(names), 3), squeeze=False)
    for ax, name in zip(axes.flat, names):
        if name in train:
            y = np.asarray(train[name], dtype=float)
            if smooth > 1 and len(y) >= smooth:
                y = np.convolve(y, np.ones(smooth) / smooth, mode="valid")
            ax.plot(train["step"][len(train["step"]) - len(y):], y, label="train")
        if name in ev:
            ax.plot(ev["step"], ev[name], "o-", label="eval")
        ax.set_xlabel("step")
        ax.set_ylabel(name)
        ax.set_title(name)
        if name in logy:
            ax.set_yscale("log")
        if name in train and name in ev:
            ax.legend()
    fig.tight_layout()
    return fig, axes


def plot_similarity(sim: torch.Tensor, row_labels: Sequence[str] | None = None, col_labels: Sequence[str] | None = None,
                    *, title: str = "image-text similarity", wrap: int = 40, xlabel: str = "caption",
                    ylabel: str = "image", value: str = "cosine similarity"):
    """A heatmap of a (rows, cols) similarity matrix, e.g. images x captions, with a colour bar named `value`."""
    plt = _plt()
    sim = torch.as_tensor(sim).detach().float().cpu().numpy()
    fig, ax = plt.subplots(figsize=(0.45 * sim.shape[1] + 3, 0.35 * sim.shape[0] + 2))
    im = ax.imshow(sim, cmap="viridis")
    fig.colorbar(im, ax=ax, fraction=0.04, label=value)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if row_labels is not None:
        ax.set_yticks(range(len(row_labels)), [textwrap.shorten(r, wrap) for r in row_labels], fontsize=7)
    if col_labels is not None:
        ax.set_xticks(range(len(col_labels)), [textwrap.shorten(c, wrap) for c in col_labels], fontsize=7,
                      rotation=60, ha="right")
    ax.set_title(title)
    fig.tight_layout()
    return fig, ax


def plot_confusion(cm: torch.Tensor, class_names: Sequence[str], *, normalize: bool = True, title: str = "confusion"):
    """A confusion matrix (rows: true class, columns: predicted), row-normalised by default."""
    plt = _plt()
    cm = torch.as_tensor(cm).float().cpu().numpy()
    if normalize:
        cm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    n = len(class_names)
    fig, ax = plt.subplots(figsize=(0.55 * n + 2, 0.5 * n + 1.5))
    im = ax.imshow(cm, cmap="Blues", vmin=0, vmax=1 if normalize else None)
    fig.colorbar(im, ax=ax, fraction=0.046, label="share of the true class" if normalize else "count")
    for i in range(n):
        for j in range(n):
            ax.text(j, i, f"{cm[i, j]:.2f}" if normalize else f"{int(cm[i, j])}", ha="center", va="center",
                    fontsize=7, color="white" if cm[i, j] > 0.5 * cm.max() else "black")
    ax.set_xticks(range(n), class_names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(n), class_names, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.tight_layout()
    return fig, ax


def plot_embeddings(features: torch.Tensor, labels: Sequence[int], class_names: Sequence[str] | None = None,
                    *, title: str = "embeddings (PCA)"):
    """A 2-D PCA scatter of (N, D) features coloured by label."""
    plt = _plt()
    x = torch.as_tensor(features).detach().float().cpu()
    if x.ndim != 2 or len(x) < 2:
        raise ValueError(f"expected features of shape (N >= 2, D), got {tuple(x.shape)}")
    x = x - x.mean(0)
    _, _, v = torch.linalg.svd(x, full_matrices=False)
    xy = (x @ v[:2].T).numpy()
    labels = np.asarray(labels)
    fig, ax = plt.subplots(figsize=(5, 4.5))
    cmap = plt.get_cmap("tab10" if labels.max() < 10 else "tab20")
    for c in np.unique(labels):
        m = labels == c
        ax.scatter(xy[m, 0], xy[m, 1], s=8, color=cmap(int(c) % cmap.N),
                   label=class_names[c] if class_names is not None else str(c))
    ax.legend(fontsize=7, markerscale=2, loc="best")
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
    fig.tight_layout()
    return fig, ax


def plot_bars(values: dict[str, float], *, title: str = "", xlabel: str = "", ylabel: str = "",
              baseline: float | None = None):
    """A bar chart of named values, with an optional dashed baseline (e.g. chance)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(0.8 * len(values) + 2, 3))
    ax.bar(list(values), list(values.values()), color="tab:blue")
    for i, v in enumerate(values.values()):
        ax.text(i, v, f"{v:.2f}", ha="center", va="bottom", fontsize=8)
    if baseline is not None:
        ax.axhline(baseline, ls="--", color="gray", label="chance")
        ax.legend()
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.tick_params(axis="x", rotation=30)
    fig.tight_layout()
    return fig, ax


# ------------------------------------------------------------------------------ the figure audit
def figure_problems(fig) -> list[str]:
    """What a reader could not read off `fig`: a drawn axis (one with tick labels) without a label, and a heatmap
    (a 2-D colour-mapped image) without a colour bar, or a colour bar without a label. Image grids (axes off) pass."""
    def name(ax):
        return repr(ax.get_title()) if ax.get_title() else f"subplot {fig.axes.index(ax)}"

    problems = []
    bars = {im.colorbar.ax: im for ax in fig.axes for im in ax.images if im.colorbar is not None}
    for ax in fig.axes:
        if ax in bars:
            if not (ax.get_ylabel() or ax.get_xlabel()):
                problems.append(f"the colour bar of {name(bars[ax].axes)} has no label")
            continue
        if not ax.axison:
            continue
        for im in ax.images:
            if im.get_array().ndim == 2 and im.colorbar is None:
                problems.append(f"{name(ax)}: a heatmap without a colour bar")
        for axis, label in ((ax.xaxis, ax.get_xlabel()), (ax.yaxis, ax.get_ylabel())):
            if axis.get_visible() and len(axis.get_ticklocs()) and not label:
                problems.append(f"{name(ax)}: the {axis.axis_name} axis has no label")
    return problems


def audit_figures() -> None:
    """From now on, drawing a figure with `figure_problems` (in a notebook, to PNG, anywhere) raises ValueError
    naming them. `import vlmlearn` turns this on when $VLMLEARN_AUDIT_FIGURES is set, as `make notebooks` and
    tools/refresh_notebooks.py do, so a committed figure cannot lose an axis label or a colour bar unnoticed."""
    from matplotlib.backend_bases import FigureCanvasBase

    if getattr(FigureCanvasBase.print_figure, "audited", False):
        return
    print_figure = FigureCanvasBase.print_figure

    def audited(self, *args, **kwargs):
        problems = figure_problems(self.figure)
        if problems:
            raise ValueError("figure audit: " + "; ".join(problems))
        return print_figure(self, *args, **kwargs)

    audited.audited = True
    FigureCanvasBase.print_figure = audited
