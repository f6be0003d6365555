"""The package's own code, read on the page: a notebook shows the model it trains instead of importing a black box.

    show_source(MaskedAutoencoder, "__init__", "forward")   # prints where it lives, then the two methods

One source of truth: what is printed is read from the module file at run time, so it is the code that runs.
"""
from __future__ import annotations

import inspect
import textwrap
from pathlib import Path


def source(obj, *members: str) -> str:
    """The source of a class or function `obj`, or of the named `members` (methods) of a class, each headed by its
    file and line numbers ("# vlmlearn/mae.py, lines 104-112"), dedented, separated by a blank line."""
    if members and not inspect.isclass(obj):
        raise ValueError(f"members name methods of a class; {getattr(obj, '__name__', obj)!r} is not a class")
    parts = []
    for target, name in ([(obj, obj.__qualname__)] if not members else
                         [(_member(obj, m), f"{obj.__qualname__}.{m}") for m in members]):
        target = inspect.unwrap(target)  # a decorated function (@torch.no_grad()) is read from its own file
        lines, start = inspect.getsourcelines(target)
        where = _relative(inspect.getsourcefile(target))
        parts.append(f"# {where}, lines {start}-{start + len(lines) - 1}: {name}\n" + textwrap.dedent("".join(lines)))
    return "\n".join(parts)


def show_source(obj, *members: str) -> None:
    """Print `source(obj, *members)`."""
    print(source(obj, *members), end="")


def _member(cls: type, name: str):
    if name not in vars(cls):
        own = sorted(k for k, v in vars(cls).items() if inspect.isfunction(v) or isinstance(v, (staticmethod,
                                                                                                 classmethod)))
        raise ValueError(f"{cls.__qualname__} defines no method {name!r}; its own methods: {own}")
    member = vars(cls)[name]
    return member.__func__ if isinstance(member, (staticmethod, classmethod)) else member


def _relative(path: str) -> str:
    """A path below the package's parent folder as `vlmlearn/...`; anything else as given."""
    root = Path(__file__).resolve().parents[1]
    try:
        return Path(path).resolve().relative_to(root).as_posix()
    except ValueError:
        return path
