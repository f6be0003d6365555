import pytest
import torch

from vlmlearn.data import OpenClipTokenizer, WordTokenizer, caption_vocabulary


def test_word_tokenizer_round_trip(world):
    caps = world.pairs(50).captions
    tok = WordTokenizer(caption_vocabulary(), context_length=24)
    ids = tok(caps)
    assert ids.shape == (50, 24) and ids.dtype == torch.long
    assert (ids[:, 0] == tok.bos_id).all()
    assert tok.decode(ids) == caps
    assert tok.vocab_size == 5 + len(caption_vocabulary())


def test_word_tokenizer_unknown_words_truncation_and_errors():
    tok = WordTokenizer.from_texts(["a red circle"], context_length=4)
    ids = tok(["a blue circle on the left"])
    assert ids[0, 2].item() == tok.unk_id and ids[0, -1].item() == tok.eos_id
    with pytest.raises(ValueError, match="text strings"):
        tok([None])
    with pytest.raises(ValueError, match="context_length"):
        WordTokenizer(["a"], context_length=2)


def test_open_clip_tokenizer_offline_and_same_interface():
    import open_clip

    tok = OpenClipTokenizer(context_length=20)
    ids = tok(["a small red circle on the left"])
    assert ids.shape == (1, 20) and ids.dtype == torch.long and tok.vocab_size == 49408
    ref = open_clip.get_tokenizer("ViT-B-32")(["a small red circle on the left"])[:, :20]
    assert torch.equal(ids, ref.long())
    assert tok.decode(ids) == ["a small red circle on the left"]
    last = (ids != tok.pad_id).sum(1) - 1
    assert ids[0, last].item() == tok.eos_id  # pooling at the last non-pad token finds <end>


def test_word_tokenizer_as_transformers_tokenizer_gives_the_same_ids():
    from vlmlearn.data import caption_vocabulary

    tok = WordTokenizer(caption_vocabulary(), context_length=20)
    hf = tok.to_transformers()
    for text in ["A small red circle on the left.", "there is a  cyan cross, at the top!", "zebra"]:
        assert hf(text)["input_ids"] == tok.encode(text)
    assert (hf.pad_token_id, hf.mask_token_id, len(hf)) == (tok.pad_id, tok.mask_id, tok.vocab_size)


def test_open_clip_tokenizer_loads_without_warnings_at_every_supported_version():
    """At the floors, open_clip imports a timm module newer timm deprecates: a learner should not see that."""
    import subprocess
    import sys

    code = "from vlmlearn.data import OpenClipTokenizer; OpenClipTokenizer()"
    done = subprocess.run([sys.executable, "-W", "error::FutureWarning", "-W", "error::DeprecationWarning:vlmlearn",
                           "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and not done.stderr, done.stderr[-1500:]
