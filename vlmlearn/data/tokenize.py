"""Two tokenizers behind one small interface.

    tok = WordTokenizer.from_texts(captions)        # a word per token, built from the captions
    tok = OpenClipTokenizer(context_length=32)      # open_clip's byte-pair encoding (offline)
    ids = tok(["a small red circle on the left"])   # LongTensor (B, context_length)

Both pad with `tok.pad_id` (0), start with a start token and end with an end token, so a text
encoder can pool at the last non-pad position whichever tokenizer made the ids.
"""
from __future__ import annotations

import re
from collections import Counter
from typing import Iterable, Protocol

import torch


class Tokenizer(Protocol):
    vocab_size: int
    context_length: int
    pad_id: int

    def __call__(self, texts: str | list[str]) -> torch.Tensor: ...
    def decode(self, ids: torch.Tensor) -> list[str]: ...


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9_]+|[^\sa-z0-9_]", text.lower())


def trim_padding(ids: torch.Tensor, pad_id: int = 0) -> torch.Tensor:
    """Drop trailing positions that are padding in every sequence: ids (..., L) -> (..., L') with L'
    the longest sequence. Short texts padded to a long context waste most of a transformer's time."""
    used = (ids != pad_id).reshape(-1, ids.shape[-1]).any(0).nonzero()
    return ids[..., : int(used.max()) + 1 if len(used) else 1]


class WordTokenizer:
    """A word-level tokenizer: lower-case words and punctuation, one id each.

    Special tokens: <pad>=0, <unk>=1, <bos>=2, <eos>=3, <mask>=4. Words not in the vocabulary map
    to <unk>; texts longer than context_length are truncated (the end token is kept).
    """

    specials = ("<pad>", "<unk>", "<bos>", "<eos>", "<mask>")

    def __init__(self, vocab: Iterable[str], *, context_length: int = 32):
        words = [w for w in vocab if w not in self.specials]
        self.itos = list(self.specials) + sorted(set(words), key=words.index)
        self.stoi = {w: i for i, w in enumerate(self.itos)}
        self.pad_id, self.unk_id, self.bos_id, self.eos_id, self.mask_id = range(5)
        if context_length < 3:
            raise ValueError(f"context_length must be at least 3, got {context_length}")
        self.context_length = context_length

    @classmethod
    def from_texts(cls, texts: Iterable[str], *, min_count: int = 1, context_length: int = 32) -> "WordTokenizer":
        counts = Counter(w for t in texts for w in _words(t))
        return cls(sorted(w for w, c in counts.items() if c >= min_count), context_length=context_length)

    @property
    def vocab_size(self) -> int:
        return len(self.itos)

    def encode(self, text: str) -> list[int]:
        ids = [self.stoi.get(w, self.unk_id) for w in _words(text)][: self.context_length - 2]
        return [self.bos_id, *ids, self.eos_id]

    def __call__(self, texts: str | list[str]) -> torch.Tensor:
        """(B, context_length) int64 ids, padded with pad_id."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        out = torch.full((len(texts), self.context_length), self.pad_id, dtype=torch.long)
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise ValueError(f"expected text strings, got {type(t).__name__} at position {i}")
            ids = self.encode(t)
            out[i, : len(ids)] = torch.tensor(ids)
        return out

    def decode(self, ids: torch.Tensor) -> list[str]:
        """Ids (B, L) back to text, stopping at the end token and dropping specials."""
        texts = []
        for row in torch.as_tensor(ids).reshape(-1, torch.as_tensor(ids).shape[-1]).tolist():
            words = []
            for i in row:
                if i == self.eos_id:
                    break
                if i >= len(self.itos):
                    raise ValueError(f"token id {i} is outside the vocabulary of size {self.vocab_size}")
                if i >= len(self.specials) or i == self.unk_id or i == self.mask_id:
                    words.append(self.itos[i])
            texts.append(" ".join(words))
        return texts

    def to_transformers(self):
        """The same vocabulary as a transformers `PreTrainedTokenizerFast` (same ids, same special
        tokens), so library utilities such as `DataCollatorForLanguageModeling` can use it."""
        from tokenizers import Regex
        from tokenizers import Tokenizer as HFTokenizer
        from tokenizers.models import WordLevel
        from tokenizers.normalizers import Lowercase
        from tokenizers.pre_tokenizers import Sequence, Split
        from tokenizers.processors import TemplateProcessing
        from transformers import PreTrainedTokenizerFast

        backend = HFTokenizer(WordLevel(dict(self.stoi), unk_token="<unk>"))
        backend.normalizer = Lowercase()
        backend.pre_tokenizer = Sequence([Split(Regex(r"\s+"), behavior="removed"),  # words and punctuation, as _words
                                           Split(Regex(r"[^a-z0-9_]"), behavior="isolated")])
        backend.post_processor = TemplateProcessing(single="<bos> $A <eos>", special_tokens=[
            ("<bos>", self.bos_id), ("<eos>", self.eos_id)])
        return PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>", unk_token="<unk>",
                                       bos_token="<bos>", eos_token="<eos>", mask_token="<mask>")


class OpenClipTokenizer:
    """open_clip's CLIP byte-pair tokenizer (49,408 tokens), with a shorter context by default.

    The BPE merges ship inside the open_clip package, so this works offline. Ids: <start>=49406,
    <end>=49407, padding 0.
    """

    def __init__(self, *, context_length: int = 32):
        import warnings

        # open_clip 2.24 (our floor) imports timm.models.layers, which newer timm deprecates
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Importing from timm.models.layers is deprecated", FutureWarning)
            from open_clip.tokenizer import SimpleTokenizer

        self._tok = SimpleTokenizer(context_length=context_length)
        self.context_length = context_length
        self.vocab_size = len(self._tok.encoder)
        self.pad_id = 0
        self.bos_id, self.eos_id = self._tok.sot_token_id, self._tok.eot_token_id

    def __call__(self, texts: str | list[str]) -> torch.Tensor:
        return self._tok(texts).long()

    def decode(self, ids: torch.Tensor) -> list[str]:
        texts = []
        for row in torch.as_tensor(ids).reshape(-1, torch.as_tensor(ids).shape[-1]).tolist():
            row = row[1:] if row and row[0] == self.bos_id else row
            row = row[: row.index(self.eos_id)] if self.eos_id in row else row
            texts.append(self._tok.decode([i for i in row if i != self.pad_id]).strip())
        return texts
