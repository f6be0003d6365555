"""The committed notebooks read well on GitHub: executed in order, no errors, no widget state, small."""
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
    assert any("record_results(" in c.source and "assert " in c.source for c in code[-2:]), \
        "one of the last two cells records and asserts the results (the last may set them beside the seeds)"
    assert path.stat().st_size < 2_000_000, f"{path.name} is {path.stat().st_size / 1e6:.1f} MB"
    for cell in code:  # a widget built but not displayed (say, after a ';') is invisible, and hangs papermill
        if "from vlmlearn.widgets import" in cell.source:
            assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in cell.outputs), \
                f"cell {cell.execution_count} builds a widget but does not display it (make it the cell's last expression)"
