"""Every numbered notebook is framed: learning objectives and a time estimate (from the budget table) right after the
title, and at the end a summary (what you saw, what it means, what the papers found at scale) and self-check
questions whose answers the student copy leaves out."""
import importlib.util
import math
import re
from pathlib import Path

import nbformat
import pytest

from vlmlearn.results import BUDGETS_S

ROOT = Path(__file__).resolve().parents[1]
FRAMED = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
spec = importlib.util.spec_from_file_location("make_student_notebooks", ROOT / "tools" / "make_student_notebooks.py")
tool = importlib.util.module_from_spec(spec)
spec.loader.exec_module(tool)
TIME = re.compile(r"about (\d+) minutes? on a 2-core laptop CPU")
SELF_CHECK = re.compile(r"^## (?:\d+ · )?Self-check$", re.M)


def solution(cell) -> bool:
    return "solution" in cell.metadata.get("tags", [])


def stated_minutes(cells) -> int:
    found = TIME.search(cells[1].source)
    assert found, 'the objectives cell should say "about N minutes on a 2-core laptop CPU"'
    return int(found[1])


@pytest.mark.parametrize("path", FRAMED, ids=lambda p: p.stem)
def test_objectives_and_time_follow_the_title(path):
    cells = nbformat.read(path, as_version=4).cells
    assert cells[0].cell_type == "markdown" and cells[0].source.startswith(f"# {path.name[:2]} · ")
    assert cells[1].cell_type == "markdown" and cells[1].source.startswith("## Learning objectives"), \
        "the cell after the title states the learning objectives"
    bullets = [line for line in cells[1].source.splitlines() if line.startswith("- ")]
    assert 3 <= len(bullets) <= 5, f"3 to 5 objectives, found {len(bullets)}"
    assert stated_minutes(cells) == math.ceil(BUDGETS_S[path.stem] / 60), \
        f"the time estimate is the CPU budget ({BUDGETS_S[path.stem]} s in vlmlearn/shipped/budgets.json), rounded up"


def test_the_time_check_rounds_the_budget_up():
    cells = [nbformat.v4.new_markdown_cell("# 99 · x"),
             nbformat.v4.new_markdown_cell("**Time:** about 1 minute on a 2-core laptop CPU")]
    assert stated_minutes(cells) == math.ceil(60 / 60) == 1
    assert math.ceil(61 / 60) == 2 and math.ceil(180 / 60) == 3


@pytest.mark.parametrize("path", FRAMED, ids=lambda p: p.stem)
def test_a_summary_and_self_checks_close_the_notebook(path):
    cells = nbformat.read(path, as_version=4).cells
    markdown = [(i, c) for i, c in enumerate(cells) if c.cell_type == "markdown"]
    summaries = [i for i, c in markdown if c.source.startswith("## Summary")]
    references = [i for i, c in markdown if "## References" in c.source]
    assert len(summaries) == 1 and references and summaries[0] < references[-1], \
        "one summary, before the references"
    summary = cells[summaries[0]].source
    for part in ("**What you saw.**", "**What it means.**", "**At scale.**"):
        assert part in summary, f"the summary says {part}"
    checks = [i for i, c in markdown if SELF_CHECK.search(c.source)]
    assert len(checks) == 1, "one self-check section"
    questions = re.findall(r"^\d+\. ", SELF_CHECK.split(cells[checks[0]].source)[1], re.M)
    assert len(questions) >= 2, "at least two self-check questions"
    answers = []
    for cell in cells[checks[0] + 1:]:
        if not solution(cell):
            break
        answers.append(cell)
    assert answers and all(c.cell_type == "markdown" for c in answers), \
        "the answers follow the questions, in markdown cells tagged 'solution'"


@pytest.mark.parametrize("path", FRAMED, ids=lambda p: p.stem)
def test_the_student_copy_asks_the_self_checks_without_the_answers(path):
    full = nbformat.read(path, as_version=4).cells
    copy = nbformat.read(tool.STUDENT / path.name, as_version=4).cells
    (question,) = [c.source for c in copy if c.cell_type == "markdown" and SELF_CHECK.search(c.source)]
    assert question in [c.source for c in full]
    answers = {c.source for c in full if solution(c) and c.cell_type == "markdown"}
    assert answers and not answers & {c.source for c in copy}, "the student copy leaves the answers out"
    assert copy[1].source == full[1].source, "the student copy keeps the objectives"
