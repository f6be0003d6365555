"""Exercise of notebook 06: WiSE-FT's weight interpolation. Its hints are in `vlmlearn/shipped/hints.json`; the
shared machinery is in `_core`. Notebook 06 imports it from here (`vlmlearn.exercises` re-exports it once that file
next changes, which re-makes every notebook's benchmark fingerprint)."""
from __future__ import annotations

from typing import Callable

from ._core import _expect, _run


def check_interpolate_weights(fn: Callable) -> bool:
    """Exercise (notebook 06): `fn(start, end, alpha) -> dict`, two state dicts mixed as WiSE-FT mixes them;
    checked against `vlmlearn.soups.interpolate_weights` (smallest case first)."""
    import torch

    from ..soups import interpolate_weights

    def checks():
        g = torch.Generator().manual_seed(0)
        start = {"weight": torch.tensor([0.0, 2.0]), "bias": torch.tensor([1.0]),
                 "bn.running_mean": torch.randn(3, generator=g), "bn.num_batches_tracked": torch.tensor(0)}
        end = {"weight": torch.tensor([4.0, 2.0]), "bias": torch.tensor([-1.0]),
               "bn.running_mean": torch.randn(3, generator=g), "bn.num_batches_tracked": torch.tensor(100)}
        for alpha in (0.0, 1.0, 0.25):
            got = fn(start, end, alpha)
            want = interpolate_weights(start, end, alpha)
            case = f"alpha = {alpha}, start {dict((k, v.tolist()) for k, v in start.items())}"
            found = sorted(got) if isinstance(got, dict) else type(got).__name__
            _expect(isinstance(got, dict) and set(got) == set(want),
                    f"{case}: expected a dict with the keys {sorted(want)}, got {found}")
            for k, v in want.items():
                same = isinstance(got[k], torch.Tensor) and got[k].dtype == v.dtype and torch.allclose(got[k], v)
                _expect(same, f"{case}: expected {k} = {v.tolist()} ({v.dtype}), got {got[k]!r}")

    return _run("interpolate_weights", checks)
