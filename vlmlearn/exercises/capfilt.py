"""Exercise of notebook 07: CapFilt's loop (BLIP's caption bootstrapping), whose kept pairs train the CapFilt CLIP of
the notebook. Its hints are in `vlmlearn/shipped/hints.json`; the shared machinery is in `_core`. Notebook 07 imports
it from here, so no other notebook's benchmark fingerprint moves with it."""
from __future__ import annotations

from typing import Callable

from ._core import _expect, _Fail, _run


def capfilt_pairs(images, web_captions: list[str], captioner, filter_model, tokenizer, threshold: float):
    """The pairs `vlmlearn.capfilt.bootstrap_captions` keeps, as `(images (M, C, S, S), captions (M,))`: the
    reference the exercise is checked against, and what the notebook trains on until the learner's loop passes."""
    from ..capfilt import bootstrap_captions

    kept = bootstrap_captions(images, web_captions, captioner=captioner, filter_model=filter_model,
                              tokenizer=tokenizer, threshold=threshold)
    return kept.images, kept.captions


def check_capfilt(fn: Callable) -> bool:
    """Exercise (notebook 07): `fn(images, web_captions, captioner, filter_model, tokenizer, threshold) -> (images,
    captions)`: every image captioned by `captioner.generate`, web and synthetic captions scored against their image
    by `filter_model` (`pair_similarity`), those >= threshold kept, web pairs first, then synthetic ones, each in
    image order. Checked against `vlmlearn.capfilt.bootstrap_captions` on small random models, at three thresholds."""
    import torch

    from ..contrastive import DualEncoder, pair_similarity
    from ..data import ShapesWorld, WordTokenizer, caption_vocabulary
    from ..generative import Captioner
    from ..models import SmallCNN, TextTransformer

    tok = WordTokenizer(caption_vocabulary(), context_length=20)
    torch.manual_seed(0)
    captioner = Captioner(vocab_size=tok.vocab_size, width=16, layers=1, heads=2, widths=(8, 8, 8)).eval()
    filter_model = DualEncoder(SmallCNN(image_size=32, widths=(8, 8, 8), embed_dim=16),
                               TextTransformer(vocab_size=tok.vocab_size, context_length=20, width=16, layers=1,
                                               heads=2, embed_dim=16)).eval()
    web = ShapesWorld(seed=0, image_size=32).noisy_pairs(12, noise_rate=0.5)

    def checks():
        synthetic = tok.decode(captioner.generate(web.images))
        scores = torch.cat([pair_similarity(filter_model, tok, web.images, web.captions),
                            pair_similarity(filter_model, tok, web.images, synthetic)])
        for quantile in (0.0, 0.5, 0.9):
            images, captions = web.images, list(web.captions)
            threshold = scores.quantile(quantile).item()
            case = f"{len(images)} web pairs, threshold {threshold:.3f} (the {quantile:.0%} quantile of the scores)"
            got = fn(images, captions, captioner, filter_model, tok, threshold)
            if not (isinstance(got, tuple) and len(got) == 2):
                raise _Fail(f"{case}: expected (images, captions), got {type(got).__name__}")
            got_images, got_captions = got[0], list(got[1])
            want_images, want_captions = capfilt_pairs(images, captions, captioner, filter_model, tok, threshold)
            web_only = [c for c, s in zip(captions, scores[:len(images)]) if s >= threshold]
            if got_captions != want_captions:
                if sorted(got_captions) == sorted(want_captions):
                    raise _Fail(f"{case}: the right pairs in another order; put the kept web pairs first, then the "
                                "kept synthetic pairs, each in image order (the training batches depend on it)")
                if got_captions == web_only and web_only != want_captions:
                    raise _Fail(f"{case}: only web captions came back; keep the synthetic captions that pass the "
                                "filter too (an image can give zero, one or two pairs)")
                if len(got_captions) > len(want_captions):
                    raise _Fail(f"{case}: {len(got_captions)} pairs kept, expected {len(want_captions)}: is every "
                                "caption, synthetic ones included, scored and held to the threshold (>=)?")
                raise _Fail(f"{case}: expected {len(want_captions)} pairs starting {want_captions[:2]}, got "
                            f"{len(got_captions)} starting {got_captions[:2]}")
            _expect(isinstance(got_images, torch.Tensor) and torch.equal(got_images, want_images),
                    f"{case}: the captions are right but the images are not theirs: expected a tensor of shape "
                    f"{tuple(want_images.shape)}, each kept caption's own image, in the same order")

    return _run("capfilt", checks)
