"""Exercise of notebook 06 (supervised fine-tuning): VQA answer-by-matching logits. The check sits under its
hints; the shared machinery is in `_core`."""
from __future__ import annotations

from typing import Callable

from ._core import _expect, _run


def check_matching_logits(fn: Callable) -> bool:
    """Exercise (notebook 06): `fn(image, text, q, a, scale, bias) -> (B, A)` answer-by-matching logits, -inf where
    an answer is not a candidate; checked against `vlmlearn.vqa.matching_logits` (smallest case first)."""
    import torch
    import torch.nn.functional as F

    from ..vqa import matching_logits

    def checks():
        g = torch.Generator().manual_seed(0)
        cases = ((1, 2, [(0, 1)]), (2, 3, [(0, 0), (0, 2), (1, 1)]),
                 (4, 5, [(i, j) for i in range(4) for j in range(5) if (i + j) % 2]))
        for b, n_answers, pairs in cases:
            q = torch.tensor([p[0] for p in pairs])
            a = torch.tensor([p[1] for p in pairs])
            image = F.normalize(torch.randn(b, 3, generator=g), dim=-1)
            text = F.normalize(torch.randn(len(pairs), 3, generator=g), dim=-1)
            bias = torch.randn(n_answers, generator=g)
            want = matching_logits(image, text, q, a, torch.tensor(10.0), bias)
            got = fn(image, text, q, a, torch.tensor(10.0), bias)
            shown = pairs if len(pairs) < 4 else f"{len(pairs)} pairs"
            case = f"B={b} questions, A={n_answers} answers, candidates (q, a)={shown}"
            _expect(isinstance(got, torch.Tensor) and tuple(got.shape) == (b, n_answers),
                    f"{case}: expected logits of shape {(b, n_answers)}, got {getattr(got, 'shape', got)}")
            _expect(torch.equal(torch.isinf(got), torch.isinf(want)),
                    f"{case}: expected -inf exactly where an answer is not a candidate: {torch.isinf(want).tolist()}, "
                    f"got {torch.isinf(got).tolist()}")
            _expect(torch.allclose(got[~torch.isinf(want)], want[~torch.isinf(want)], atol=1e-5),
                    f"{case}: expected {want[~torch.isinf(want)].tolist()}, got {got[~torch.isinf(want)].tolist()}")

    return _run("matching_logits", checks)
