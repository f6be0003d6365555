"""The machinery every exercise shares: the hints (`hints` reads them from `vlmlearn/shipped/hints.json`, keyed by
exercise name), `use` and `predicted` for the notebooks, and `_run` / `_expect` / `_Fail`, which turn a check's cases
into one printed verdict. No exercise lives here: each sits in its topic's module.

The hints are course text, not code: they live in a data file, so rewording one changes no notebook's benchmark
fingerprint (`vlmlearn.provenance` fingerprints the code that computes results)."""
from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Callable

HINTS_FILE = Path(__file__).resolve().parents[1] / "shipped" / "hints.json"


@functools.cache
def _hints() -> dict[str, list[str]]:
    return json.loads(HINTS_FILE.read_text())


def hints(name: str) -> Callable[[int], None]:
    """`hint(level)` for the exercise `name`: level 1 points the way, level 2 names the functions to use (never the
    line itself)."""
    if name not in _hints():
        raise ValueError(f"no hints for {name!r}; there are hints for {sorted(_hints())}")

    def hint(level: int = 1) -> None:
        levels = _hints()[name]
        if not 1 <= level <= len(levels):
            raise ValueError(f"hint level must be 1 to {len(levels)}, got {level}")
        print(f"{name}, hint {level} of {len(levels)}: {levels[level - 1]}")

    return hint


def use(mine: Callable, package: Callable, passed: bool) -> Callable:
    """The function the notebook goes on with: `mine` once its check passed, else `package` (and it says so)."""
    if passed:
        print(f"The cells below use your {mine.__name__}.")
        return mine
    print(f"{mine.__name__} has not passed its check yet: the cells below use the package's "
          f"{package.__module__}.{package.__qualname__} instead, and run on.")
    return package


def predicted(guess, measured: str) -> None:
    """Print the learner's prediction beside what the experiment measured."""
    if guess in (None, "", "..."):
        print(f"Measured: {measured}. (Write your prediction in `my_prediction` before running, then compare.)")
    else:
        print(f"You predicted: {guess}\nMeasured:      {measured}")


class _Fail(Exception):
    pass


def _expect(cond: bool, message: str) -> None:
    if not cond:
        raise _Fail(message)


def _run(name: str, checks: Callable[[], None]) -> bool:
    try:
        checks()
    except NotImplementedError:
        print(f"{name}: not implemented yet. Write it in its cell above (hint(1) and hint(2) help), then run this "
              f"check again.")
        return False
    except _Fail as e:
        print(f"{name}: ✗ {e}")
        return False
    print(f"{name}: ✓ all checks passed")
    return True
