"""The learner's copies of the notebooks, notebooks/exercises/NN_*.ipynb, generated from cell tags.

    python tools/make_student_notebooks.py            # write every student copy
    python tools/make_student_notebooks.py --check    # exit 1 if a committed copy is out of date

Tags in the full notebooks (notebooks/NN_*.ipynb, the executed reading copies):
    exercise   the learner's function, a stub that raises NotImplementedError (kept)
    hint       a cell that prints a hint, `hint(1)` or `hint(2)` (kept)
    check      the check, and the switch to the learner's function once it passes (kept)
    solution   the answer: code or markdown (left out)
Everything else is kept as it is; every output and execution count is cleared and widget state dropped, so the
learner runs the notebook from the top and sees their own results. The copies live one folder down, so a markdown
image with a relative path (`![...](figures/x.svg)`, tools/draw_diagrams.py) is pointed one folder up.
"""
import argparse
import copy
import re
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
STUDENT = NOTEBOOKS / "exercises"


# a markdown image whose target is a relative path: not a URL (scheme:), an absolute path or an anchor
RELATIVE_IMAGE = re.compile(r"(!\[[^\]]*\]\()(?![a-zA-Z][\w+.-]*:|/|#)([^)\s]+)")


def tags(cell) -> list[str]:
    return cell.metadata.get("tags", [])


def one_folder_down(markdown: str) -> str:
    """Relative image paths of a notebook in notebooks/, as seen from notebooks/exercises/."""
    return RELATIVE_IMAGE.sub(lambda m: m.group(1) + "../" + m.group(2), markdown)


def student_copy(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The notebook without solution cells, with every output cleared."""
    out = copy.deepcopy(nb)
    out.cells = [c for c in out.cells if "solution" not in tags(c)]
    for cell in out.cells:
        if "exercise" in tags(cell) and "NotImplementedError" not in cell.source:
            raise ValueError("an exercise cell must raise NotImplementedError until the learner fills it in:\n"
                             f"{cell.source[:200]}")
        cell.metadata.pop("execution", None)
        if cell.cell_type == "markdown":
            cell.source = one_folder_down(cell.source)
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    out.metadata.pop("widgets", None)
    return out


def has_exercises(nb: nbformat.NotebookNode) -> bool:
    return any("exercise" in tags(c) for c in nb.cells)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="compare with the committed copies; write nothing")
    args = parser.parse_args()
    stale = []
    for path in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        if not has_exercises(nb):
            continue
        text = nbformat.writes(student_copy(nb)) + "\n"
        target = STUDENT / path.name
        if args.check:
            if not target.is_file() or target.read_text() != text:
                stale.append(target)
        else:
            target.parent.mkdir(exist_ok=True)
            target.write_text(text)
            print(f"wrote {target.relative_to(ROOT)}")
    if stale:
        print("out of date (run python tools/make_student_notebooks.py):", *stale, sep="\n  ")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
