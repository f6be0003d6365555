"""The committed notebooks read well on GitHub: executed in order, no errors, no widget state, small."""
import re
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("[0-9][0-9]_*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_committed_notebook_is_executed_clean_and_small(path):
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert [c.execution_count for c in code] == list(range(1, len(code) + 1)), "execution counts must run 1, 2, 3, ..."
    assert not any(o.output_type == "error" for c in code for o in c.outputs), "an error output was committed"
    assert "widgets" not in nb.metadata, "widget state must be stripped (tools/refresh_notebooks.py does it)"
    assert sum("parameters" in c.metadata.get("tags", []) for c in code) == 1, "one cell tagged 'parameters'"
    assert any("record_results(" in c.source and "assert " in c.source for c in code[-3:-1]), \
        "one of the two cells before the run_info footer records and asserts the results (the second may set them " \
        "beside the seeds)"
    assert any("record_results(" in c.source and "splits=" in c.source for c in code), \
        "the results must say which split every metric was measured on (record_results(..., splits=...))"
    assert path.stat().st_size < 2_000_000, f"{path.name} is {path.stat().st_size / 1e6:.1f} MB"
    for cell in code:  # a widget built but not displayed (say, after a ';') is invisible, and hangs papermill
        if "from vlmlearn.widgets import" in cell.source:
            assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in cell.outputs), (
                f"cell {cell.execution_count} builds a widget but does not display it "
                "(make it the cell's last expression)")
            assert any("image/png" in o.get("data", {}) for o in cell.outputs), (
                f"cell {cell.execution_count}: no static copy of the explorer's default view "
                "(display a vlmlearn.explorer.Explorer)")


BAR = re.compile(r"^(?P<desc>.+?):\s+\d+%\|")  # a tqdm bar's text; in a saved notebook it stays at its first state


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_committed_notebook_reads_without_a_kernel(path):
    """Each progress bar's run leaves a plain final-state line, and the notebook ends with its runtime, device and
    versions (vlmlearn.run_info)."""
    code = [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]
    for cell in code:
        bars = [m["desc"] for o in cell.outputs if (m := BAR.match("".join(o.get("data", {}).get("text/plain", ""))))]
        text = "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")
        for desc in bars:
            assert re.search(rf"^{re.escape(desc)}: \d+ steps in [\d.]+ s", text, re.M), \
                f"cell {cell.execution_count}: the run {desc!r} shows a bar but no final-state line"
    assert f'run_info("{path.stem}")' in code[-1].source, f'the last cell prints vlmlearn.run_info("{path.stem}")'
    assert f'budget("{path.stem}")' in code[1].source, \
        f'the setup cell (after the parameters) prints the budget, vlmlearn.results.budget("{path.stem}")'


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_committed_run_is_within_its_budget(path):
    """The committed run of every notebook finished within its CPU budget (vlmlearn.results.BUDGETS_S)."""
    from vlmlearn.results import BUDGETS_S

    last = [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"][-1]
    line = "".join(o.get("text", "") for o in last.outputs)
    found = re.match(r"ran in (\d+) s of its (\d+) s budget on \w+", line)
    assert found, f"the last cell's output should start 'ran in N s of its M s budget on ...', found {line[:80]!r}"
    seconds, budget = map(int, found.groups())
    assert budget == BUDGETS_S[path.stem], f"printed budget {budget} s, BUDGETS_S says {BUDGETS_S[path.stem]} s"
    assert seconds <= budget, f"the committed run took {seconds} s, over its {budget} s budget"


def test_readme_budgets_are_the_package_table():
    from vlmlearn.results import BUDGETS_S

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    rows = dict(re.findall(r"^\| \[(\d\d_\w+)\]\(notebooks/.*\| (\d+) s \|$", readme, re.M))
    assert {k: int(v) for k, v in rows.items()} == BUDGETS_S, "README's CPU budget column must equal BUDGETS_S"


CITATION = re.compile(r"et al\.|arXiv|\b(19|20)\d{2}\b")  # a literature figure names its source
ALLOWED = re.compile(r"\btarget|\bchance\b|\bat least\b")   # targets and chance levels are not measurements
DECIMAL = re.compile(r"(?<![\w.])\d+\.\d+(?![\w.])")


def measured_numbers_in_markdown(source: str) -> list[str]:
    """Sentences of a markdown cell that quote a decimal number which is neither code (a setting),
    a target or chance level, nor a cited literature figure: numbers of a run belong in outputs."""
    if source.lstrip().startswith("## References"):
        return []
    text = re.sub(r"`[^`]*`|\$[^$]*\$", "", source)
    sentences = re.split(r"(?<=[.!?])\s+(?=[A-Z*(])|\n\s*\n|\n\s*[-*] |\n\s*\d+\. ", text)
    return [s.strip() for s in sentences if DECIMAL.search(s) and not CITATION.search(s) and not ALLOWED.search(s)]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_markdown_quotes_no_measured_numbers(path):
    nb = nbformat.read(path, as_version=4)
    found = [(i, s) for i, c in enumerate(nb.cells) if c.cell_type == "markdown"
             for s in measured_numbers_in_markdown(c.source)]
    assert not found, "numbers of a run belong in printed outputs, not in markdown: " + "; ".join(
        f"cell {i}: {s[:120]!r}" for i, s in found)


def test_the_markdown_number_check_tells_results_from_settings():
    assert measured_numbers_in_markdown("Retrieval reaches 0.93 after training.")
    assert measured_numbers_in_markdown("- FixMatch: 0.98\n- supervised: 0.72")
    assert not measured_numbers_in_markdown("Set `THRESHOLD = 0.95` and retrain.")
    assert not measured_numbers_in_markdown("FixMatch reaches 94.93 % with 250 labels (Sohn et al. 2020, Table 2).")
    assert not measured_numbers_in_markdown("The target is 0.80; chance is 0.125.")
    assert not measured_numbers_in_markdown("## References\n- MAE, 2022, 68.0 % linear probe")


@pytest.mark.parametrize("path", [p for p in NOTEBOOKS if not p.stem.startswith("00_")], ids=lambda p: p.stem)
def test_notebook_chooses_its_device_one_way_and_prints_it(path):
    code = "\n".join(c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code")
    assert "device = vlmlearn.device()" in code and 'print(f"device: {device}")' in code
    assert "get_device" not in code, "choose the device with vlmlearn.device() ($VLMLEARN_DEVICE overrides it)"


OPTIMIZER = re.compile(r"torch\.optim\.(?!lr_scheduler|swa_utils)\w+\((?P<arg>[^)]*)")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_optimizer_gets_its_parameter_groups_from_the_one_helper(path):
    code = "\n".join(c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code")
    for match in OPTIMIZER.finditer(code):
        assert "param_groups(" in match.group("arg") or match.group("arg").strip() == "groups", (
            f"{path.stem}: {match.group(0)!r}: build the groups with vlmlearn.optim.param_groups (no weight decay "
            f"on the temperature, biases, norms or embeddings)")
