"""Where a notebook's time goes: the wall time of every code cell, and for the slowest cells how it splits between
data generation, training steps, evaluation passes, plotting and the rest; plus the process start-up (imports).

    python tools/profile_notebook.py notebooks/01_contrastive_alignment.ipynb      # print the table
    python tools/profile_notebook.py notebooks/0*.ipynb --write                     # and commit-ready tables
    make profile NB=01                                                              # the same through make

The cells run in one IPython shell in this process, top to bottom, in the notebook's folder (as the kernel runs them;
each open figure is drawn to a PNG after its cell, as the inline backend does). The split comes from timers wrapped
around the functions that do each kind of work (ShapesWorld's views and the digits loader; `train`'s steps and its
`evaluate` calls; the package's evaluation helpers; matplotlib's drawing), each second counted once, for the innermost
timer running. `--write` saves the table to benchmarks/results/profile/<notebook>.md with the fingerprint of the code
it measured (`vlmlearn.provenance.code_fingerprint`) and the machine.
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import importlib
import io
import os
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "profile"
IMPORTS = "import torch, torchvision, transformers, open_clip, matplotlib.pyplot, ipywidgets, vlmlearn.train"

# (category, module, attribute path) of every function a timer goes around; the innermost running timer gets the time
TIMED = [
    ("data", "vlmlearn.data.shapes", "ShapesWorld." + view) for view in
    ("pairs", "noisy_pairs", "images", "texts", "labeled", "vqa", "heldout_pairs", "binding_pairs")
] + [
    ("data", "vlmlearn.data.digits", "load_digits_split"),
    ("training steps", "vlmlearn.train", "train"),
    ("evaluation", "vlmlearn.train", "evaluate"),
    ("evaluation", "vlmlearn.eval", "embed"),
    ("evaluation", "vlmlearn.eval", "linear_probe"),
    ("evaluation", "vlmlearn.contrastive", "retrieval_metrics"),
    ("evaluation", "vlmlearn.contrastive", "zero_shot_accuracy"),
    ("evaluation", "vlmlearn.contrastive", "binding_accuracy"),
    ("evaluation", "vlmlearn.vqa", "vqa_accuracy"),
    ("evaluation", "vlmlearn.semi", "predict_probs"),
    ("plotting", "matplotlib.backend_bases", "FigureCanvasBase.print_figure"),
    ("plotting", "matplotlib.figure", "Figure.draw"),
]
CATEGORIES = ("data", "training steps", "evaluation", "plotting")


class Clock:
    """Exclusive time per category: a timer's seconds minus those of the timers running inside it."""

    def __init__(self):
        self.totals: dict[str, float] = defaultdict(float)
        self.stack: list[list] = []  # [category, start, seconds of the timers inside]

    def wrap(self, category: str, fn):
        @functools.wraps(fn)
        def timed(*args, **kwargs):
            self.stack.append([category, time.perf_counter(), 0.0])
            try:
                return fn(*args, **kwargs)
            finally:
                cat, start, inner = self.stack.pop()
                spent = time.perf_counter() - start
                self.totals[cat] += spent - inner
                if self.stack:
                    self.stack[-1][2] += spent

        return timed

    def install(self) -> None:
        """Wrap every function of TIMED where it is defined, before any notebook imports it."""
        for category, module_name, path in TIMED:
            owner = importlib.import_module(module_name)
            *parents, name = path.split(".")
            for parent in parents:
                owner = getattr(owner, parent)
            setattr(owner, name, self.wrap(category, getattr(owner, name)))

    def take(self) -> dict[str, float]:
        out, self.totals = dict(self.totals), defaultdict(float)
        return out


def start_up_seconds() -> float:
    """A fresh interpreter importing what the notebooks import first (the kernel's start-up, roughly)."""
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", IMPORTS], check=True, capture_output=True)
    return time.perf_counter() - t0


def render_open_figures() -> None:
    """What the kernel's inline backend does after each cell: every open figure drawn to a PNG, then closed."""
    import matplotlib.pyplot as plt

    for number in plt.get_fignums():
        plt.figure(number).savefig(io.BytesIO(), format="png", bbox_inches="tight")
    plt.close("all")


def profile(path: Path) -> list[dict]:
    """Run the notebook's code cells in order; one row per cell: index, seconds, first line, time by category."""
    import nbformat
    from IPython.core.interactiveshell import InteractiveShell

    clock = Clock()
    clock.install()
    shell = InteractiveShell.instance()
    nb = nbformat.read(path, as_version=4)
    rows = []
    os.chdir(path.parent)
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        source = "\n".join(line for line in cell.source.splitlines() if not line.startswith("%matplotlib"))
        t0 = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            result = shell.run_cell(source, store_history=True)
            render_open_figures()
        seconds = time.perf_counter() - t0
        if not result.success:
            raise SystemExit(f"{path.name}: cell {index} raised {result.error_in_exec or result.error_before_exec!r}")
        code_lines = [line for line in cell.source.splitlines() if line.strip() and not line.startswith(("%", "#"))]
        first = code_lines[0] if code_lines else ""
        rows.append({"cell": index, "seconds": seconds, "first_line": first, "split": clock.take()})
    return rows


def table(name: str, rows: list[dict], start_up: float, *, top: int) -> str:
    total = sum(r["seconds"] for r in rows)
    lines = [f"# {name}: {total:.1f} s in {len(rows)} code cells, plus {start_up:.1f} s of start-up (imports)", "",
             "| cell | seconds | share | first line |", "|---:|---:|---:|---|"]
    for r in rows:
        first = r["first_line"].replace("|", "\\|")[:70]
        lines.append(f"| {r['cell']} | {r['seconds']:.2f} | {r['seconds'] / total:.0%} | `{first}` |")
    slowest = sorted(rows, key=lambda r: -r["seconds"])[:top]
    lines += ["", f"Where the {len(slowest)} slowest cells spend it (seconds; each second counted once):", "",
              "| cell | seconds | " + " | ".join(CATEGORIES) + " | other |",
              "|---:|---:|" + "---:|" * (len(CATEGORIES) + 1)]
    for r in slowest:
        parts = [r["split"].get(c, 0.0) for c in CATEGORIES]
        lines.append(f"| {r['cell']} | {r['seconds']:.2f} | " + " | ".join(f"{p:.2f}" for p in parts)
                     + f" | {max(0.0, r['seconds'] - sum(parts)):.2f} |")
    totals = {c: sum(r["split"].get(c, 0.0) for r in rows) for c in CATEGORIES}
    lines += ["", "Whole notebook: " + ", ".join(f"{c} {v:.1f} s" for c, v in totals.items())
              + f", other {total - sum(totals.values()):.1f} s."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebook", type=Path)
    parser.add_argument("--top", type=int, default=5, help="how many of the slowest cells to split")
    parser.add_argument("--write", action="store_true", help="save to benchmarks/results/profile/<notebook>.md")
    args = parser.parse_args(argv)
    path = args.notebook.resolve()
    if not path.is_file():
        raise SystemExit(f"no notebook at {path}")
    os.environ["MPLBACKEND"] = "agg"
    start_up = start_up_seconds()
    rows = profile(path)
    text = table(path.stem, rows, start_up, top=args.top)
    print(text)
    if args.write:
        from vlmlearn.provenance import code_fingerprint, machine

        OUT.mkdir(parents=True, exist_ok=True)
        fingerprint = code_fingerprint(notebook=path)
        footer = f"\nMeasured on {machine()} by `python tools/profile_notebook.py`; code fingerprint {fingerprint}.\n"
        (OUT / f"{path.stem}.md").write_text(text + footer)


if __name__ == "__main__":
    main()
