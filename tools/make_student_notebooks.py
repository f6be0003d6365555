"""The learner's copies of the notebooks, notebooks/exercises/NN_*.ipynb, generated from cell tags.

    python tools/make_student_notebooks.py            # write every student copy
    python tools/make_student_notebooks.py --check    # exit 1 if a committed copy is out of date

Tags in the full notebooks (notebooks/NN_*.ipynb, the executed reading copies):
    exercise   the learner's function, a stub that raises NotImplementedError (kept)
    hint       a cell that prints a hint, `hint(1)` or `hint(2)` (kept)
    check      the check, and the switch to the learner's function once it passes (kept)
    solution   the answer: code or markdown (left out)
Where answers to an open question are left out (an "Explore" prompt, a self-check, anything not an exercise with its
own stub), an empty cell to work in takes their place: a code cell where the answer was measured, a markdown cell
where it was written. Everything else is kept as it is; every output and execution count is cleared and widget
state dropped, so the learner runs the notebook from the top and sees their own results. The copies live one folder
down, so a markdown image with a relative path (`![...](figures/x.svg)`, tools/draw_diagrams.py) is pointed one
folder up.
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


WORK_CODE = "# Your turn: work out the answer here, then compare with the reading copy (one folder up).\n"
WORK_MARKDOWN = "**Your answer.** *(Double-click to write it here, then compare with the reading copy, one folder up.)*"


def working_cell(dropped: list, after) -> nbformat.NotebookNode | None:
    """The cell that takes the place of the `dropped` solution cells in the student copy, or None where the learner
    already has one: an exercise's own stub (the kept cell `after` them is then its hint or the stub)."""
    if after is not None and {"exercise", "hint"} & set(tags(after)):
        return None
    if any(c.cell_type == "code" for c in dropped):
        cell = nbformat.v4.new_code_cell(WORK_CODE)
    else:
        cell = nbformat.v4.new_markdown_cell(WORK_MARKDOWN)
    cell.id = f"{dropped[0].get('id', 'answer')}-work"[:64]  # the same every time the copy is made
    return cell


def student_copy(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The notebook without solution cells, an empty working cell where an open question's answer was, and every
    output cleared."""
    out = copy.deepcopy(nb)
    cells, dropped = [], []
    for cell in out.cells + [None]:
        if cell is not None and "solution" in tags(cell):
            dropped.append(cell)
            continue
        if dropped and (work := working_cell(dropped, cells[-1] if cells else None)) is not None:
            cells.append(work)
        dropped = []
        if cell is not None:
            cells.append(cell)
    out.cells = cells
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
