"""vlmlearn: helpers for a notebook course on how vision-language models learn from labeled and
unlabeled data.

Modules (import what you need; `import vlmlearn` itself loads nothing heavy), by layer (site/architecture.md):

- base: `runtime` (device, seeds, eval_mode, processes), `optim` (groups, schedules), `assets` (shipped files),
  `results`, `provenance`, `viz`
- data: `data` (ShapesWorld, the real digits, COCO / Flickr30K / CSV / folder formats, tokenizers)
- building blocks: `models` (SmallCNN, TextTransformer, transformer_blocks), `losses`, `eval`, `augment`
- the loop: `train`
- objectives: `contrastive`, `mae`, `mlm`, `semi`, `generative`, `vqa`, `capfilt`
- experiments: `clip_models`, `label_efficiency` (and `label_efficiency_report`)
- interfaces: `exercises`, `widgets`, `course`, `python -m vlmlearn.train_clip`, `python -m vlmlearn.eval_retrieval`
"""
import os
import time

__version__ = "0.1.0"
_IMPORTED_AT = time.perf_counter()  # run_info's clock: the notebooks import vlmlearn in their first cells
if os.environ.get("VLMLEARN_AUDIT_FIGURES"):  # every figure drawn must label its axes and colour bars (viz)
    from .viz import audit_figures

    audit_figures()
_LIBRARIES = ("torch", "torchvision", "transformers", "open_clip_torch", "numpy", "matplotlib", "ipywidgets")


def device(prefer: str | None = None):
    """The device the course runs on: $VLMLEARN_DEVICE (or `prefer`) when set, else cuda, then mps,
    then cpu. The same as `vlmlearn.runtime.get_device`; imported lazily so `import vlmlearn` stays light."""
    from .runtime import get_device

    return get_device(prefer)


def run_info(notebook: str | None = None) -> str:
    """One line for the end of a notebook: seconds since `vlmlearn` was imported (against the notebook's CPU budget,
    `vlmlearn.results.BUDGETS_S`, when its name is given), the device (with CPU threads or the GPU's name) and the
    versions of Python and the libraries the course runs on, e.g.
    "ran in 131 s of its 240 s budget on cpu (2 threads); Python 3.11.7, torch 2.14.1, ..., vlmlearn 0.1.0"."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    import torch

    from .results import BUDGETS_S

    if notebook is not None and notebook not in BUDGETS_S:
        raise ValueError(f"no budget for {notebook!r}; the notebooks with one: {sorted(BUDGETS_S)}")
    dev = device()
    where = (f"{dev.type} ({torch.get_num_threads()} threads)" if dev.type == "cpu"
             else f"{dev.type} ({torch.cuda.get_device_name(dev)})" if dev.type == "cuda" else dev.type)
    versions = [f"Python {platform.python_version()}"]
    for name in _LIBRARIES:
        try:
            versions.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            versions.append(f"{name} not installed")
    budget = "" if notebook is None else f" of its {BUDGETS_S[notebook]} s budget"
    return (f"ran in {time.perf_counter() - _IMPORTED_AT:.0f} s{budget} on {where}; " + ", ".join(versions)
            + f", vlmlearn {__version__}")
