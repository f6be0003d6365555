"""Student notebooks: generated from cell tags, in sync, free of solutions, and their exercise cells run."""
import importlib.util
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("make_student_notebooks", ROOT / "tools" / "make_student_notebooks.py")
tool = importlib.util.module_from_spec(spec)
spec.loader.exec_module(tool)

FULL = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
WITH_EXERCISES = [p for p in FULL if tool.has_exercises(nbformat.read(p, as_version=4))]
KEPT_TAGS = {"exercise", "hint", "check"}


def test_student_copies_are_committed_and_in_sync():
    assert WITH_EXERCISES, "no notebook has cells tagged 'exercise'"
    for path in WITH_EXERCISES:
        committed = tool.STUDENT / path.name
        assert committed.is_file(), f"missing {committed}: run python tools/make_student_notebooks.py"
        fresh = nbformat.writes(tool.student_copy(nbformat.read(path, as_version=4))) + "\n"
        assert committed.read_text() == fresh, \
            f"{committed.name} is out of date: run python tools/make_student_notebooks.py"
    assert sorted(p.name for p in tool.STUDENT.glob("*.ipynb")) == [p.name for p in WITH_EXERCISES], \
        "an orphan student copy"


@pytest.mark.parametrize("path", WITH_EXERCISES, ids=lambda p: p.stem)
def test_every_exercise_notebook_has_the_three_depths_and_a_driving_exercise(path):
    cells = nbformat.read(path, as_version=4).cells

    def tagged(tag):
        return [c for c in cells if tag in c.metadata.get("tags", [])]

    assert tagged("exercise") and tagged("solution")
    assert any("use(" in c.source for c in tagged("check")), \
        "a learner's function must drive the notebook: use(mine, package, passed)"
    hint_levels = {level for c in tagged("hint") for level in (1, 2) if f"hint({level})" in c.source}
    assert hint_levels == {1, 2}, "hints at two levels, hint(1) and hint(2), before the solution"
    assert any("my_prediction" in c.source for c in cells) and any("predicted(" in c.source for c in cells), \
        "a predict-then-run exercise: my_prediction, then predicted(my_prediction, measured)"
    assert any(c.cell_type == "markdown" and "Explore" in c.source for c in cells), "an open question to explore"
    kind = [(set(c.metadata.get("tags", [])) & {"exercise", "hint", "solution"} or {""}).pop() for c in cells]
    for e in (i for i, k in enumerate(kind) if k == "exercise"):
        s = next(i for i in range(e, len(kind)) if kind[i] == "solution")
        assert "hint" in kind[e:s], f"cell {e}: hints come between an exercise and its solution"


def test_student_copies_hold_no_solution_and_no_outputs():
    for path in WITH_EXERCISES:
        nb = nbformat.read(tool.STUDENT / path.name, as_version=4)
        assert not any("solution" in c.metadata.get("tags", []) for c in nb.cells)
        assert all(not c.outputs and c.execution_count is None for c in nb.cells if c.cell_type == "code")
        assert all("NotImplementedError" in c.source for c in nb.cells if "exercise" in c.metadata.get("tags", []))


def test_the_tool_drops_solutions_and_refuses_an_exercise_that_gives_the_answer():
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("def f():\n    raise NotImplementedError", metadata={"tags": ["exercise"]}),
        nbformat.v4.new_code_cell("def f():\n    return 42", metadata={"tags": ["solution"]},
                                  outputs=[nbformat.v4.new_output("stream", text="42")], execution_count=2),
        nbformat.v4.new_markdown_cell("**Answer.** 42", metadata={"tags": ["solution"]})])
    student = tool.student_copy(nb)
    assert [c.source for c in student.cells] == ["def f():\n    raise NotImplementedError"]
    nb.cells[0].source = "def f():\n    return 42"
    with pytest.raises(ValueError, match="NotImplementedError"):
        tool.student_copy(nb)


def test_an_open_question_keeps_an_empty_cell_to_work_in_and_an_exercise_keeps_its_stub():
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("### Explore: which ratio?"),
        nbformat.v4.new_code_cell("# Answer, measured\nprint(0.75)", metadata={"tags": ["solution"]}),
        nbformat.v4.new_markdown_cell("**Answer.** 75 %", metadata={"tags": ["solution"]}),
        nbformat.v4.new_markdown_cell("## Self-check\n1. Why?"),
        nbformat.v4.new_markdown_cell("**Answer 1.** Because.", metadata={"tags": ["solution"]}),
        nbformat.v4.new_code_cell("def f():\n    raise NotImplementedError", metadata={"tags": ["exercise"]}),
        nbformat.v4.new_code_cell("hint(2)", metadata={"tags": ["hint"]}),
        nbformat.v4.new_code_cell("def f():\n    return 42", metadata={"tags": ["solution"]})])
    student = tool.student_copy(nb)
    kinds = [(c.cell_type, c.source.split("\n")[0]) for c in student.cells]
    assert kinds == [("markdown", "### Explore: which ratio?"), ("code", tool.WORK_CODE.strip()),
                     ("markdown", "## Self-check"), ("markdown", tool.WORK_MARKDOWN),
                     ("code", "def f():"), ("code", "hint(2)")]
    assert [c.id for c in student.cells] == [c.id for c in tool.student_copy(nb).cells] == \
        [nb.cells[0].id, f"{nb.cells[1].id}-work", nb.cells[3].id, f"{nb.cells[4].id}-work", nb.cells[5].id,
         nb.cells[6].id], "the working cells' ids are made the same way every time"
    nbformat.validate(student)


@pytest.mark.parametrize("path", WITH_EXERCISES, ids=lambda p: p.stem)
def test_student_exercise_cells_run_and_fall_back_to_the_package(path):
    """The parameters and imports cells, then every exercise, hint and check cell of the student copy, as a learner
    who has written nothing yet runs them: no error, and each check says the package's version stands in."""
    from nbclient import NotebookClient

    nb = nbformat.read(tool.STUDENT / path.name, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    nb.cells = code[:2] + [c for c in code[2:] if KEPT_TAGS & set(c.metadata.get("tags", []))]
    NotebookClient(nb, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(tool.STUDENT)}}).execute()
    checks = [c for c in nb.cells if "check" in c.metadata.get("tags", [])]

    def text(c):
        return "".join(o.get("text", "") for o in c.outputs)

    assert any("not implemented yet" in text(c) for c in checks)
    assert any("the package's" in text(c) for c in checks if "use(" in c.source)
    assert any("hint 2 of" in text(c) for c in nb.cells if "hint" in c.metadata.get("tags", []))


def test_use_picks_the_learners_function_only_after_it_passed(capsys):
    from vlmlearn.exercises import use

    def mine(x):
        return x

    def package(x):
        return -x

    assert use(mine, package, True) is mine and "your mine" in capsys.readouterr().out
    assert use(mine, package, False) is package
    assert "has not passed its check yet" in capsys.readouterr().out


def test_hints_and_predictions_say_what_they_should(capsys):
    from vlmlearn.exercises import hints, predicted

    hint = hints("clip_loss")
    hint(1)
    hint(2)
    out = capsys.readouterr().out
    assert "hint 1 of 2" in out and "hint 2 of 2" in out and "cross_entropy" in out
    with pytest.raises(ValueError, match="1 to 2"):
        hint(3)
    with pytest.raises(ValueError, match="no hints for"):
        hints("nothing")
    predicted("...", "0.5")
    assert "Write your prediction" in capsys.readouterr().out
    predicted("about half", "0.5")
    assert "You predicted: about half" in capsys.readouterr().out


def test_checks_name_what_is_wrong(capsys):
    from vlmlearn.exercises import check_logits_bytes
    from vlmlearn.losses import logits_bytes

    assert check_logits_bytes(logits_bytes)
    assert not check_logits_bytes(lambda n, w, local, b=4: 2 * n * n * b)  # forgot the local loss
    assert "local_loss=True: expected 16 bytes (two 1 x 2 float32 matrices), got 32" in capsys.readouterr().out


def test_label_noise_counts_captions_that_do_not_fit():
    from vlmlearn.data import ShapesWorld, label_noise

    world = ShapesWorld(seed=0)
    assert label_noise(world.pairs(200)) == 0.0
    junk = world.noisy_pairs(400, noise_rate=1.0, kinds=("junk",))
    assert label_noise(junk) == 1.0
    mixed = world.noisy_pairs(2000, noise_rate=0.3)
    # a corrupted caption rarely fits by luck
    assert label_noise(mixed) == pytest.approx(sum(mixed.is_noisy) / 2000, abs=0.02)
    with pytest.raises(ValueError, match="captions"):
        label_noise(world.images(4))


def test_every_exercise_in_the_notebooks_has_two_hints_and_hint_2_never_writes_the_line():
    """Each `hints("name")` a notebook calls has a hint 1 and a hint 2 in vlmlearn/shipped/hints.json, and hint 2
    names functions without writing the code: no assignment, no `return`, no statement separated by `;` as code."""
    import json
    import re

    from vlmlearn.exercises._core import HINTS_FILE

    table = json.loads(HINTS_FILE.read_text())
    called = {name for path in FULL for cell in nbformat.read(path, as_version=4).cells
              if cell.cell_type == "code" for name in re.findall(r'hints\("(\w+)"\)', cell.source)}
    assert called and called <= set(table), f"notebooks ask for hints that do not exist: {called - set(table)}"
    assert set(table) <= called, f"hints no notebook asks for: {set(table) - called}"
    for name, levels in table.items():
        assert len(levels) == 2 and all(isinstance(h, str) and len(h) > 40 for h in levels), name
        assert not re.search(r"\w\s=\s|\breturn\b", levels[1]), f"hint 2 of {name} writes the line"
