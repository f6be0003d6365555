"""What produced a result: a fingerprint of the code that ran and a description of the machine it ran on.

A fingerprint hashes the code of a notebook's cells (or a script) and the source of every `vlmlearn` module it
imports, transitively, normalised so that comments, docstrings and formatting do not count: the `ast.dump` of each
file with its docstrings removed. Two runs with the same fingerprint ran the same code; any change that could change a
number changes it. Nothing here imports the rest of the package or runs the code it reads.
"""
from __future__ import annotations

import ast
import hashlib
import json
import os
import platform
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent


def _strip_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) \
                and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
            node.body = body[1:] or [ast.Pass()]
    return tree


def _normalised(source: str) -> tuple[str, ast.AST | None]:
    """(text to hash, parsed tree or None). Notebook magics (%, !) are kept as stripped text lines."""
    code = "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines())
    magics = "\n".join(line.strip() for line in source.splitlines() if line.lstrip().startswith(("%", "!")))
    try:
        tree = _strip_docstrings(ast.parse(code))
    except SyntaxError:
        return source.strip(), None
    return ast.dump(tree) + magics, tree


def _imported_modules(tree: ast.AST, module: str = "") -> set[str]:
    """Names of the vlmlearn modules a tree imports (relative imports resolved against `module`)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "vlmlearn"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                package = module.split(".") if _is_package(module) else module.split(".")[:-1]
                package = package[: len(package) - (node.level - 1)]
                base = ".".join(package + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            if base.split(".")[0] != "vlmlearn":
                continue
            found.add(base)
            found |= {f"{base}.{a.name}" for a in node.names if _source_of(f"{base}.{a.name}") is not None}
    return found


def _is_package(module: str) -> bool:
    return (PACKAGE.parent.joinpath(*module.split(".")) / "__init__.py").is_file()


def _source_of(module: str) -> Path | None:
    path = PACKAGE.parent.joinpath(*module.split("."))
    if (path / "__init__.py").is_file():
        return path / "__init__.py"
    return path.with_suffix(".py") if path.with_suffix(".py").is_file() else None


def code_fingerprint(*, notebook: str | Path | None = None, script: str | Path | None = None) -> str:
    """sha256 (first 16 hex digits) of a notebook's code cells or a script, and of every vlmlearn module they import,
    transitively (parent packages included), each normalised as the module docstring says."""
    if (notebook is None) == (script is None):
        raise ValueError("give exactly one of notebook= or script=")
    if notebook is not None:
        cells = json.loads(Path(notebook).read_text())["cells"]
        sources = ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]
    else:
        sources = [Path(script).read_text()]
    digest, todo, seen = hashlib.sha256(), set(), set()
    for source in sources:
        text, tree = _normalised(source)
        digest.update(text.encode())
        if tree is not None:
            todo |= _imported_modules(tree)
    while todo:
        module = todo.pop()
        parts = module.split(".")
        todo |= {".".join(parts[:i]) for i in range(1, len(parts))} - seen  # importing a.b.c runs a and a.b
        if module in seen or _source_of(module) is None:
            seen.add(module)
            continue
        seen.add(module)
        text, tree = _normalised(_source_of(module).read_text())
        if tree is not None:
            todo |= _imported_modules(tree, module) - seen
    for module in sorted(seen):
        source = _source_of(module)
        if source is not None:
            digest.update(module.encode() + _normalised(source.read_text())[0].encode())
    return digest.hexdigest()[:16]


def machine() -> str:
    """The CPU model, the threads torch uses and the library versions, e.g.
    "AMD EPYC 7763 (x86_64), 2 cores, torch 2.14.1 (2 threads), numpy 2.4.6"."""
    import numpy
    import torch

    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{model} ({platform.machine()}), {os.cpu_count()} cores, torch {torch.__version__} "
            f"({torch.get_num_threads()} threads), numpy {numpy.__version__}")


def commit() -> str:
    """The git commit the course checkout is at ("<sha>+dirty" when tracked files other than the products themselves,
    benchmarks/results/ and the shipped checkpoints, differ from it), or "unknown" outside a git checkout."""
    import subprocess

    root = PACKAGE.parent
    products = [":(exclude)benchmarks/results", ":(exclude)vlmlearn/shipped/checkpoints"]
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".", *products],
                               cwd=root, capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return sha.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def stamp(produced_by: str | Path) -> dict:
    """What a benchmark file or checkpoint record carries about its making: {"produced_by": the notebook or script,
    relative to the course checkout when inside it, "fingerprint", "commit", "machine"}."""
    path = Path(produced_by).resolve()
    root = PACKAGE.parent
    kind = {"notebook": path} if path.suffix == ".ipynb" else {"script": path}
    return {"produced_by": str(path.relative_to(root)) if path.is_relative_to(root) else str(path),
            "fingerprint": code_fingerprint(**kind), "commit": commit(), "machine": machine()}


def staleness(record: dict, *, name: str, refresh: str) -> str | None:
    """None when `record` (a benchmark file's or checkpoint's JSON, called `name` in messages) carries the fingerprint
    of the code that now produces it, or when vlmlearn is installed outside a course checkout (nothing to compare
    with); otherwise why not, ending with `refresh`, the command that re-makes it."""
    if not (PACKAGE.parent / "benchmarks").is_dir():
        return None
    if "fingerprint" not in record or "produced_by" not in record:
        return f"{name} names no fingerprint of the code that produced it; re-make it with `{refresh}`"
    source = PACKAGE.parent / record["produced_by"]
    if not source.is_file():
        return f"{name} was produced by {record['produced_by']}, which no longer exists; re-make it with `{refresh}`"
    now = code_fingerprint(**({"notebook": source} if source.suffix == ".ipynb" else {"script": source}))
    if now != record["fingerprint"]:
        return (f"{name} was produced by code with fingerprint {record['fingerprint']}; {record['produced_by']} and "
                f"the vlmlearn modules it imports now give {now}: re-make it with `{refresh}`")
    return None
