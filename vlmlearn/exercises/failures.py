"""Exercise of notebook 12 (classic failures): telling a contrastive loss stuck at chance from one that learns. Only
notebook 12 imports this module (the package's `exercises/__init__.py` does not); its hints are in
`vlmlearn/shipped/hints.json`."""
from __future__ import annotations

import math
from typing import Callable

from ._core import _expect, _run


def check_loss_at_chance(fn: Callable) -> bool:
    """Exercise (notebook 12): `fn(losses, batch_size, *, warmup=0.2, tol=0.1) -> bool`, True when the mean loss after
    the first `warmup` fraction of steps is within `tol` of ln(batch_size); checked against
    `vlmlearn.checks.loss_at_chance`."""
    from ..checks import loss_at_chance

    def checks():
        ln = math.log
        cases = [([ln(4)] * 10, 4, "flat at ln 4"), ([ln(128) + 0.05] * 10, 128, "0.05 above ln 128"),
                 ([5.0] + [0.3] * 9, 128, "falls to 0.3"), ([0.2] * 10, 2, "well below ln 2"),
                 ([9.0, 9.0] + [ln(64)] * 8, 64, "high during warm-up, then at ln 64"),
                 ([ln(32) - 0.2] * 10, 32, "0.2 below ln 32 (tol 0.1)")]
        for losses, b, what in cases:
            want = loss_at_chance(losses, b)
            got = fn(losses, b)
            _expect(bool(got) == want, f"losses {what} ({[round(v, 2) for v in losses[:3]]}, ...), batch_size={b}: "
                                       f"expected {want}, got {got}" + (" (leave the warm-up steps out)"
                                                                         if what.startswith("high") else ""))

    return _run("loss_at_chance", checks)
