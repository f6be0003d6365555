"""The exercise of notebook 11: greedy decoding with a KV cache."""
from __future__ import annotations

from typing import Callable

from ._core import _expect, _run

QUESTIONS = ["what color is the square?", "how many shapes are there?", "is there a red circle?",
             "what shape is on the left?", "where is the triangle?", "what size is the blue cross?"]


def _tiny_vlm():
    """A small GenerativeVLM with loud random weights: greedy answers differ between rows and some end early."""
    import torch

    from ..gvlm import GenerativeVLM, causal_lm, chat_tokenizer
    from ..models import SmallCNN

    tok = chat_tokenizer()
    with torch.random.fork_rng():  # the notebook's random draws stay what they were
        torch.manual_seed(4)  # a draw where two of the six answers end before max_new_tokens
        vision = SmallCNN(image_size=16, widths=(8, 16), embed_dim=16)
        model = GenerativeVLM(vision, causal_lm(tok, width=32, heads=2, layers=2), tok)
        for p in model.lm.parameters():
            if p.ndim == 2:
                p.data.normal_(0, 0.3)
        images = torch.rand(6, 3, 16, 16)
    return model.eval(), images


def check_kv_decode(fn: Callable) -> bool:
    """Exercise (notebook 11): `fn(model, images, ids, max_new_tokens=8) -> new ids (B, T)`, greedy decoding with a
    KV cache: the prompt (image tokens and words, `model.embed`) through the LM once, then one new token per call at
    the next position, the attention mask one longer each step; each row padded after its end token; stops when every
    row has ended or after max_new_tokens. Compared with the library's `generate` (`vlmlearn.gvlm.library_generate`)
    on a small model whose six prompts have different lengths, and the LM's calls are counted: after the first, each
    must pass one token."""
    import functools

    import torch

    from ..gvlm import chat_ids, library_generate

    def checks():
        model, images = _tiny_vlm()
        ids, _ = chat_ids(model.tokenizer, QUESTIONS)
        want = library_generate(model, images, ids, max_new_tokens=8)
        calls, forward = [], model.lm.forward

        @functools.wraps(forward)  # the same signature: code that inspects it (which cache keyword?) sees the LM's
        def counted(*args, **kwargs):
            embeds = kwargs.get("inputs_embeds")
            token_ids = kwargs.get("input_ids", args[0] if args else None)
            calls.append((embeds if embeds is not None else token_ids).shape[1])
            return forward(*args, **kwargs)

        model.lm.forward = counted
        try:
            got = fn(model, images, ids, max_new_tokens=8)
        finally:
            del model.lm.forward
        _expect(torch.is_tensor(got) and got.dtype == torch.long and got.ndim == 2 and len(got) == 6,
                f"expected new ids (6, T) int64 for six prompts, got {getattr(got, 'shape', type(got).__name__)} "
                f"{getattr(got, 'dtype', '')}")
        prompt = 16 + ids.shape[1]  # 16 image tokens, then the left-padded words
        _expect(len(calls) > 0 and calls[0] == prompt,
                f"the first call should read the whole prompt, {prompt} positions (16 image tokens and "
                f"{ids.shape[1]} words), got {calls[:1] or 'no call of model.lm'}")
        _expect(all(n == 1 for n in calls[1:]),
                f"after the prefill each call should pass only the new token (the cache holds the rest); the calls "
                f"passed {calls} positions: the whole sequence again at every step is decoding without a cache")
        _expect(got.shape == want.shape,
                f"the library writes {want.shape[1]} tokens for these prompts (every row ends by then, or 8 is "
                f"reached), yours {got.shape[1]}: stop when every row has ended or after max_new_tokens")
        tok = model.tokenizer
        for row, (mine, theirs) in enumerate(zip(got.tolist(), want.tolist())):
            _expect(mine == theirs,
                    f"prompt {row} ({QUESTIONS[row]!r}, {int((ids[row] == tok.pad_id).sum())} padding tokens): the "
                    f"library writes {theirs}, yours {mine}. Wrong from the first new token: the prefill; from the "
                    f"second on: the new token's position (one past the row's last, padding not counted) or the "
                    f"attention mask (one longer each step); after an end token a row holds padding "
                    f"({tok.pad_id}) only")

    return _run("kv_decode", checks)
