"""Exercise of notebook 09 (label efficiency): picking a hyper-parameter by its validation score. Its hints are in
`vlmlearn/shipped/hints.json`; the shared machinery is in `_core`."""
from __future__ import annotations

from typing import Callable

from ._core import _expect, _Fail, _run


def check_pick_best(fn: Callable) -> bool:
    """Exercise (notebook 09): `fn(values, val_scores) -> the value with the best validation score`, ties to the
    first listed (the default); a length mismatch raises ValueError."""
    def checks():
        for values, scores, want in (([0.95], [0.5], 0.95), ([0.95, 0.8], [0.6, 0.7], 0.8),
                                     ([0.95, 0.8], [0.7, 0.7], 0.95), ([1, 3, 10], [0.2, 0.9, 0.9], 3),
                                     ([1, 3, 10], [0.9, 0.2, 0.95], 10)):
            got = fn(values, scores)
            tie = " (a tie goes to the first value, the default)" if len(set(scores)) < len(scores) else ""
            _expect(got == want, f"values={values}, val_scores={scores}: expected {want}, got {got}{tie}")
        try:
            fn([1, 2], [0.5])
        except ValueError:
            pass
        else:
            raise _Fail("values=[1, 2], val_scores=[0.5]: expected a ValueError (one score per value)")

    return _run("pick_best", checks)
