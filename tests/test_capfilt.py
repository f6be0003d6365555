import pytest
import torch

from vlmlearn.capfilt import bootstrap_captions
from vlmlearn.contrastive import DualEncoder, pair_similarity
from vlmlearn.data import WordTokenizer, caption_vocabulary
from vlmlearn.generative import Captioner
from vlmlearn.models import SmallCNN, TextTransformer


def test_bootstrap_keeps_exactly_the_pairs_at_or_above_the_threshold(world):
    torch.manual_seed(0)
    tok = WordTokenizer(caption_vocabulary(), context_length=20)
    captioner = Captioner(vocab_size=tok.vocab_size, width=32, layers=1, heads=2, widths=(8, 16, 16))
    clip = DualEncoder(SmallCNN(image_size=32, widths=(8, 16), embed_dim=16),
                       TextTransformer(vocab_size=tok.vocab_size, context_length=20, width=16, layers=1, heads=2,
                                       embed_dim=16))
    web = world.noisy_pairs(12, noise_rate=0.5)
    everything = bootstrap_captions(web.images, web.captions, captioner=captioner, filter_model=clip, tokenizer=tok,
                                    threshold=-2.0, batch_size=5)
    assert len(everything.captions) == 24 and everything.source.count("synthetic") == 12
    assert len(everything.synthetic) == 12 and torch.allclose(everything.web_scores,
                                                             pair_similarity(clip, tok, web.images, web.captions))
    t = float(everything.web_scores.median())
    some = bootstrap_captions(web.images, web.captions, captioner=captioner, filter_model=clip, tokenizer=tok,
                              threshold=t)
    assert torch.equal(some.web_kept, everything.web_scores >= t)
    assert len(some.captions) == int(some.web_kept.sum() + some.synthetic_kept.sum()) == len(some.images)
    kept_web = [c for c, s in zip(some.captions, some.source) if s == "web"]
    assert kept_web == [c for c, k in zip(web.captions, some.web_kept) if k]
    none = bootstrap_captions(web.images, web.captions, captioner=captioner, filter_model=clip, tokenizer=tok,
                              threshold=2.0)
    assert len(none.captions) == 0 and none.images.shape[0] == 0


def _capfilt_loop(bug=None):
    """A learner's CapFilt loop: right, or with one classic bug."""
    @torch.no_grad()
    def loop(images, web_captions, captioner, filter_model, tokenizer, threshold):
        synthetic = tokenizer.decode(captioner.generate(images))
        web_ok = pair_similarity(filter_model, tokenizer, images, web_captions) >= threshold
        synthetic_ok = pair_similarity(filter_model, tokenizer, images, synthetic) >= threshold
        if bug == "synthetic unfiltered":
            synthetic_ok = torch.ones_like(synthetic_ok)
        web = [(i, web_captions[i]) for i in range(len(images)) if web_ok[i]]
        syn = [(i, synthetic[i]) for i in range(len(images)) if synthetic_ok[i]]
        kept = {"web only": web, "interleaved": sorted(web + syn, key=lambda p: p[0])}.get(bug, web + syn)
        chosen = images[:len(kept)] if bug == "wrong images" else images[[i for i, _ in kept]]
        return chosen, [caption for _, caption in kept]

    return loop


@pytest.mark.parametrize("bug, says", [("web only", "keep the synthetic captions"), ("interleaved", "another order"),
                                       ("synthetic unfiltered", "held to the threshold"),
                                       ("wrong images", "not theirs")])
def test_the_capfilt_check_passes_the_loop_and_names_each_bug(bug, says, capsys):
    from vlmlearn.exercises.capfilt import check_capfilt

    assert check_capfilt(_capfilt_loop())
    assert not check_capfilt(_capfilt_loop(bug))
    assert says in capsys.readouterr().out
