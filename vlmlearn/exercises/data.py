"""Exercises of notebook 00 (the data landscape): swapping captions to make label noise, and measuring it.
The hints are in `vlmlearn/shipped/hints.json`; the shared machinery is in `_core`."""
from __future__ import annotations

from typing import Callable

from ._core import _expect, _Fail, _run


def check_swap_captions(fn: Callable) -> bool:
    """Exercise (notebook 00): `fn(captions, noise_rate, seed) -> (new_captions, swapped)`.

    Exactly round(noise_rate * N) captions must move to another image (a permutation among the
    chosen ones that leaves none in place), the others stay, the multiset of captions is kept, and
    the same seed gives the same result. `swapped` is a list or array of N booleans.
    """
    def checks():
        caps = [f"caption {i}" for i in range(20)]
        for rate in (0.0, 0.25, 0.5, 1.0):
            new, swapped = fn(list(caps), rate, 0)
            swapped = [bool(s) for s in swapped]
            _expect(len(new) == len(caps) and len(swapped) == len(caps),
                    f"rate={rate}: expected 20 captions and 20 flags, got {len(new)} and {len(swapped)}")
            _expect(sum(swapped) == round(rate * 20),
                    f"rate={rate}: expected {round(rate * 20)} swapped captions, got {sum(swapped)}")
            _expect(sorted(new) == sorted(caps), f"rate={rate}: captions were lost or duplicated: {new}")
            for i, (old, cur, s) in enumerate(zip(caps, new, swapped)):
                _expect(s or cur == old, f"rate={rate}: caption {i} changed but is not flagged as swapped")
                _expect(not s or cur != old, f"rate={rate}: caption {i} is flagged as swapped but stayed in place")
        again, _ = fn(list(caps), 0.5, 0)
        _expect(again == fn(list(caps), 0.5, 0)[0], "the same seed must give the same captions")
        _expect(fn(list(caps), 0.5, 1)[1] is not None, "seed 1 must work too")
        try:
            fn(list(caps), 1.5, 0)
        except ValueError:
            pass
        else:
            raise _Fail("noise_rate=1.5 should raise ValueError (a rate is between 0 and 1)")

    return _run("swap_captions", checks)


def check_noise_rate(fn: Callable, world) -> bool:
    """Exercise (notebook 00): `fn(batch) -> float`, the fraction of pairs whose caption does not
    describe its image, measured with `parse_caption`, compared with the true count."""
    from ..data.captions import label_noise

    def checks():
        for rate in (0.0, 0.3, 0.8):
            b = world.noisy_pairs(300, noise_rate=rate, split="val")
            truth = label_noise(b)
            got = fn(b)
            _expect(isinstance(got, float) or hasattr(got, "__float__"), f"expected a float, got {type(got).__name__}")
            _expect(abs(float(got) - truth) < 1e-9, f"noise_rate={rate}: expected {truth:.3f}, got {float(got):.3f}")

    return _run("measured_noise_rate", checks)
