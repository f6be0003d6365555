"""Exercise of notebook 05 (generative models): greedy decoding of a caption. Its hints are in
`vlmlearn/shipped/hints.json`; the shared machinery is in `_core`."""
from __future__ import annotations

from typing import Callable

from ._core import _expect, _run


def check_greedy_decode(fn: Callable) -> bool:
    """Exercise (notebook 05): `fn(next_logits, batch_size, bos_id, eos_id, pad_id, max_length) -> ids`.

    next_logits(ids (B, t)) gives the logits (B, V) of the next word. Start every row with bos_id,
    append the argmax word until the row has produced eos_id or max_length tokens; after its end
    token a row holds pad_id only. Returns (B, max_length) int64."""
    import torch

    def checks():
        # a toy "model" that writes row 0: 5 6 <end> 5 5 ... and row 1: 7 8 9 7 8 9 (never ending)
        script = torch.tensor([[5, 6, 3, 5, 5, 5, 5, 5], [7, 8, 9, 7, 8, 9, 7, 8]])

        def next_logits(ids):
            return torch.nn.functional.one_hot(script[:, ids.shape[1] - 1], 10).float()

        ids = torch.as_tensor(fn(next_logits, 2, 2, 3, 0, 7))
        _expect(tuple(ids.shape) == (2, 7), f"expected shape (2, 7), got {tuple(ids.shape)}")
        _expect(ids[:, 0].tolist() == [2, 2], "every caption starts with the start token")
        _expect(ids[1].tolist() == [2, 7, 8, 9, 7, 8, 9],
                f"a row without an end token runs to max_length: expected [2, 7, 8, 9, 7, 8, 9], got {ids[1].tolist()}")
        _expect(ids[0].tolist() == [2, 5, 6, 3, 0, 0, 0],
                f"after the end token a row holds padding only: expected [2, 5, 6, 3, 0, 0, 0], got {ids[0].tolist()}")

    return _run("greedy_decode", checks)
