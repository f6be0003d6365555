"""The layers of the vlmlearn package, in one table: tests/test_layers.py checks every import against it, and this
script draws the course site's architecture page from it (site/architecture.md and site/architecture.svg).

    python tools/layers.py            # rewrite the page and the drawing from the table and the modules' docstrings
    python tools/layers.py --check    # exit 1 when the committed page is not what the table and docstrings give

A module imports only from its own layer or below. Nothing is imported to find out: the modules are read with `ast`
(every import statement, also those inside functions), so this runs without torch.
"""
from __future__ import annotations

import argparse
import ast
import re
import sys
from html import escape
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "vlmlearn"
PAGE = ROOT / "site" / "architecture.md"
DRAWING = ROOT / "site" / "architecture.svg"

LAYER_NAMES = {
    0: "base",
    1: "data",
    2: "building blocks",
    3: "the training loop",
    4: "objectives and their recipes",
    5: "experiments",
    6: "interfaces",
}

# A key "pkg.*" gives a package and every module in it one layer. Modules named here that do not exist (yet) are
# allowed; a module of the package that is not named here fails tests/test_layers.py.
LAYERS = {
    "vlmlearn.runtime": 0,
    "vlmlearn.optim": 0,
    "vlmlearn.assets": 0,
    "vlmlearn.results": 0,
    "vlmlearn.provenance": 0,
    "vlmlearn.viz": 0,
    "vlmlearn.source": 0,
    "vlmlearn.data.*": 1,
    "vlmlearn.models": 2,
    "vlmlearn.losses": 2,
    "vlmlearn.eval": 2,
    "vlmlearn.augment": 2,
    "vlmlearn.soups": 2,
    "vlmlearn.train": 3,
    "vlmlearn.contrastive": 4,
    "vlmlearn.mae": 4,
    "vlmlearn.mlm": 4,
    "vlmlearn.vitmae": 4,
    "vlmlearn.semi": 4,
    "vlmlearn.generative": 4,
    "vlmlearn.vqa": 4,
    "vlmlearn.capfilt": 4,
    "vlmlearn.gvlm": 4,
    "vlmlearn.gvlm_eval": 4,
    "vlmlearn.clip_models": 5,
    "vlmlearn.clip_finetune": 5,
    "vlmlearn.gvlm_train": 5,
    "vlmlearn.label_efficiency": 5,
    "vlmlearn.label_efficiency_report": 5,
    "vlmlearn.widgets": 6,
    "vlmlearn.explorer": 6,
    "vlmlearn.exercises.*": 6,
    "vlmlearn.checks": 6,
    "vlmlearn.painter": 6,  # its models and readers are layer 4; painting_explorer (an interface) moves to widgets next
    "vlmlearn.course": 6,
    "vlmlearn.train_clip": 6,
    "vlmlearn.eval_retrieval": 6,
    "vlmlearn": 6,  # the package's __init__: lazy imports only
}


def modules(package: Path = PACKAGE) -> dict[str, Path]:
    """Every module of the package by dotted name ("vlmlearn.data" for vlmlearn/data/__init__.py), sorted."""
    found = {}
    for path in package.rglob("*.py"):
        parts = path.relative_to(package.parent).with_suffix("").parts
        if "__pycache__" in parts:
            continue
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return dict(sorted(found.items()))


def layer_of(module: str) -> int | None:
    """The module's layer from LAYERS: its own entry, else the "pkg.*" entry of the nearest package holding it."""
    if module in LAYERS:
        return LAYERS[module]
    parts = module.split(".")
    for end in range(len(parts), 0, -1):
        key = ".".join(parts[:end]) + ".*"
        if key in LAYERS:
            return LAYERS[key]
    return None


def imports(module: str, path: Path, known: set[str]) -> list[tuple[str, int]]:
    """(imported module of the package, line) for every import in the file, at any depth, relative ones resolved.
    `from pkg import name` counts as importing pkg.name when that is a module, else pkg itself."""
    is_package = path.name == "__init__.py"
    here = module.split(".") if is_package else module.split(".")[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            targets = [_deepest_known(alias.name, known) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[:len(here) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            targets = [f"{source}.{alias.name}" if f"{source}.{alias.name}" in known else _deepest_known(source, known)
                       for alias in node.names]
        else:
            continue
        found += [(target, node.lineno) for target in targets if target and target != module]
    return sorted(set(found), key=lambda edge: (edge[1], edge[0]))


def _deepest_known(name: str, known: set[str]) -> str | None:
    """The longest prefix of a dotted name that is a module of the package (None for other libraries)."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        if ".".join(parts[:end]) in known:
            return ".".join(parts[:end])
    return None


def import_graph(package: Path = PACKAGE) -> dict[str, list[tuple[str, int]]]:
    """Module -> [(imported module, line)], for every module of the package."""
    found = modules(package)
    return {name: imports(name, path, set(found)) for name, path in found.items()}


def cycles(graph: dict[str, list[tuple[str, int]]]) -> list[list[str]]:
    """The import cycles: each strongly connected group of two or more modules (Tarjan), sorted."""
    index, low, stack, on_stack, groups = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target, _ in graph.get(node, []):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(groups)


def shortest_loop(graph: dict[str, list[tuple[str, int]]], group: list[str]) -> list[str]:
    """One shortest import loop through the group's first module, e.g. [a, b, a] (breadth first within the group)."""
    start, members = group[0], set(group)
    paths, queue = {start: [start]}, [start]
    for node in queue:
        for target, _ in graph.get(node, []):
            if target == start:
                return paths[node] + [start]
            if target in members and target not in paths:
                paths[target] = paths[node] + [target]
                queue.append(target)
    return group  # not reached: every module of a strongly connected group lies on a loop through the others


def summary(path: Path) -> str:
    """What lives in a module, in one sentence: the first sentence of its docstring ("" without one)."""
    doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
    paragraph = " ".join(doc.split("\n\n")[0].split())
    sentence = re.split(r"(?<=[.!?])\s+(?=[A-Z`\"])", paragraph)[0]
    return sentence.rstrip(":") + ("" if sentence.endswith((".", "!", "?")) else ".") if sentence else ""


def by_layer(package: Path = PACKAGE) -> dict[int, list[str]]:
    """Layer -> the package's modules in it (every layer, even an empty one), in name order."""
    table = {layer: [] for layer in LAYER_NAMES}
    for name in modules(package):
        layer = layer_of(name)
        if layer is not None:
            table[layer].append(name)
    return table


def short(module: str) -> str:
    return "vlmlearn (__init__)" if module == "vlmlearn" else module.removeprefix("vlmlearn.")


def drawing(package: Path = PACKAGE) -> str:
    """An SVG of the layers, the top one first, each a band holding its modules; imports point down."""
    width, left, band_pad, chip_h, gap, char_w = 980, 236, 10, 26, 8, 7.4
    rows, y = [], 40
    for layer, names in sorted(by_layer(package).items(), reverse=True):
        chips, x, line = [], left + band_pad, 0
        for name in names:
            chip_w = len(short(name)) * char_w + 18
            if x + chip_w > width - band_pad and x > left + band_pad:
                x, line = left + band_pad, line + 1
            chips.append((x, line, chip_w, short(name)))
            x += chip_w + gap
        height = (line + 1) * (chip_h + gap) + 2 * band_pad - gap
        rows.append((layer, y, height, chips))
        y += height + 14
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{y + 6}" viewBox="0 0 {width} {y + 6}" '
           f'font-family="DejaVu Sans Mono, Menlo, Consolas, monospace" font-size="12">',
           '<title>The layers of vlmlearn: a module imports only from its own layer or below</title>',
           '<rect width="100%" height="100%" fill="#ffffff"/>',
           '<text x="10" y="22" font-size="14" font-family="DejaVu Sans, Helvetica, Arial, sans-serif" fill="#222">'
           'vlmlearn, top layer first: a module imports only from its own layer or below</text>']
    for layer, top, height, chips in rows:
        shade = 245 - 10 * layer
        out.append(f'<rect x="4" y="{top}" width="{width - 8}" height="{height}" rx="6" '
                   f'fill="rgb({shade},{shade},{min(255, shade + 12)})" stroke="#9aa3b5"/>')
        out.append(f'<text x="14" y="{top + 22}" font-size="13" font-weight="bold" fill="#222">layer {layer}</text>')
        out.append(f'<text x="14" y="{top + 40}" font-size="11" fill="#444">{escape(LAYER_NAMES[layer])}</text>')
        for x, line, chip_w, label in chips:
            cy = top + band_pad + line * (chip_h + gap)
            out.append(f'<rect x="{x:.0f}" y="{cy}" width="{chip_w:.0f}" height="{chip_h}" rx="4" fill="#ffffff" '
                       f'stroke="#5b6b8c"/>')
            out.append(f'<text x="{x + 9:.0f}" y="{cy + 17}" fill="#1a1a1a">{escape(label)}</text>')
        if not chips:
            out.append(f'<text x="{left + band_pad}" y="{top + 27}" fill="#777">(no module yet)</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def page(package: Path = PACKAGE) -> str:
    """site/architecture.md: the drawing, then per layer a table of its modules and what lives in each."""
    found = modules(package)
    lines = [
        "# Architecture",
        "",
        "% generated by `python tools/layers.py` from its layer table and the modules' docstrings: edit those",
        "",
        "The `vlmlearn` package is built in layers. A module imports only from its own layer or below (also inside "
        "functions), and no two modules import each other, directly or round a loop: `tests/test_layers.py` checks "
        "every import against the table in `tools/layers.py`, the same table this page is drawn from.",
        "",
        "![The layers of vlmlearn, the top layer first, each holding its modules](architecture.svg)",
        "",
    ]
    for layer, names in sorted(by_layer(package).items(), reverse=True):
        lines += [f"## Layer {layer}: {LAYER_NAMES[layer]}", ""]
        if not names:
            lines += ["No module yet.", ""]
            continue
        lines += ["| module | what lives there |", "|---|---|"]
        lines += [f"| `{name}` | {_markdown(summary(found[name]))} |" for name in names]
        lines.append("")
    return "\n".join(lines)


def _markdown(text: str) -> str:
    """A docstring's words as a Markdown table cell: `$` (not maths), `<` (not HTML) and `|` (not a column) escaped
    outside code spans, `|` inside them too."""
    parts = text.split("`")
    for i in range(0, len(parts), 2):  # the text between code spans
        parts[i] = re.sub(r"([$<])", r"\\\1", parts[i])
    return "`".join(parts).replace("|", "\\|")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only say whether the committed page is current")
    args = parser.parse_args(argv)
    wanted = {PAGE: page(), DRAWING: drawing()}
    if args.check:
        stale = [p for p, text in wanted.items() if not p.is_file() or p.read_text(encoding="utf-8") != text]
        for p in stale:
            print(f"{p.relative_to(ROOT)} is out of date: run python tools/layers.py", file=sys.stderr)
        return 1 if stale else 0
    for p, text in wanted.items():
        p.write_text(text, encoding="utf-8")
        print(f"wrote {p.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
