"""vlmlearn: helpers for a notebook course on how vision-language models learn from labeled and
unlabeled data.

Modules (import what you need; `import vlmlearn` itself loads nothing heavy):
    vlmlearn.data       ShapesWorld, the real digits, COCO / Flickr30K / CSV / folder formats, tokenizers
    vlmlearn.models     small encoders: SmallCNN, TinyViT, TextTransformer
    vlmlearn.train      the training loop, seeds, devices, checkpoints
    vlmlearn.eval       retrieval recall, zero-shot classification, linear probes, accuracy, confusion
    vlmlearn.viz        image grids, training curves, heatmaps, confusion matrices, embedding plots
    vlmlearn.results    record_results: the headline numbers every notebook writes
    vlmlearn.exercises  automatic checks for the notebooks' exercises
    vlmlearn.widgets    interactive explorers
"""
__version__ = "0.1.0"


def device(prefer: str | None = None):
    """The device the course runs on: $VLMLEARN_DEVICE (or `prefer`) when set, else cuda, then mps,
    then cpu. The same as `vlmlearn.train.get_device`; imported lazily so `import vlmlearn` stays light."""
    from .train import get_device

    return get_device(prefer)
