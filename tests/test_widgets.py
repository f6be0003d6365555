"""Every explorer built from its notebook's stand-ins (tests/widget_standins.py): each control is wired to a redraw
that changes what the explorer shows, and displaying an explorer leaves the live widget and a static PNG of its
default view. tests/test_browser.py does the same through JupyterLab in Chromium."""
import io

import ipywidgets as W
import pytest
from IPython.core.interactiveshell import InteractiveShell
from PIL import Image

import widget_standins
from vlmlearn import widgets
from vlmlearn.explorer import Explorer, _png
from widget_standins import is_explorer_cell

EXPLORERS = {
    "00": lambda ns: widgets.world_browser(n=8),
    "01": lambda ns: widgets.retrieval_explorer(ns["fixed"], ns["tok"], ns["world"].pairs(12).images,
                                                ns["world"].pairs(12).captions, k=3),
    "02": lambda ns: widgets.filter_explorer(ns["scores"], ns["is_noisy"]),
    "03": lambda ns: widgets.mask_ratio_explorer(ns["mae"], ns["probe_test"].images[:4]),
    "04": lambda ns: widgets.masked_word_explorer({"text only": (ns["text_model"], False),
                                                   "with image": (ns["image_model"], True)}, ns["tok"],
                                                  ns["test"].images, ns["test"].captions),
    "05": lambda ns: ns["painting_explorer"](ns["painter"], ns["reader"], ns["tok"],
                                             ["a large red circle in the center", "a small blue square on the left"]),
    "06": lambda ns: explorer_from_cell("06", ns),  # built in the notebook's own cell from vlmlearn.explorer
    "07": lambda ns: widgets.threshold_explorer(ns["teacher_probs"], ns["pool_truth"]),
    "09": lambda ns: widgets.label_efficiency_explorer(ns["bench"]),
    "10": lambda ns: explorer_from_cell("10", ns),  # built in the notebook's own cell from vlmlearn.explorer
    "11": lambda ns: explorer_from_cell("11", ns),
}


def explorer_from_cell(notebook: str, ns: dict):
    """Run the notebook's explorer cell in `ns` (its stand-ins) and return the explorer its last line builds."""
    import ast
    import json
    from pathlib import Path

    path = next(Path(__file__).parents[1].glob(f"notebooks/{notebook}_*.ipynb"))
    source = next("".join(c["source"]) for c in json.loads(path.read_text())["cells"]
                  if c["cell_type"] == "code" and is_explorer_cell("".join(c["source"])))
    tree = ast.parse(source)
    last = tree.body.pop()
    exec(compile(tree, path.name, "exec"), ns)
    return eval(compile(ast.Expression(last.value), path.name, "eval"), ns)


def change(control):
    """Move a control by one step, as a learner would."""
    if isinstance(control, W.Dropdown):
        control.index = (control.index + 1) % len(control.options)
    elif isinstance(control, (W.IntSlider, W.FloatSlider)):  # five steps, as PageUp moves it in the browser
        control.value = (control.value + 5 * control.step if control.value + 5 * control.step <= control.max
                         else control.min)
    elif isinstance(control, W.IntText):
        control.value += 1
    else:
        control.value = "a small green triangle on the right"


def shown(explorer):
    """What each panel would show now, as PNG bytes."""
    return [_png(*panel.draw()) for panel in explorer.panels]


@pytest.mark.parametrize("notebook", sorted(EXPLORERS))
def test_every_control_redraws_what_the_explorer_shows(notebook, monkeypatch):
    explorer = EXPLORERS[notebook](widget_standins.standins(notebook))
    assert isinstance(explorer, Explorer) and explorer.panels
    redraws = []
    for panel in explorer.panels:
        monkeypatch.setattr(panel, "draw", lambda draw=panel.draw: redraws.append(1) or draw())
    found = explorer.control_widgets()
    assert found and all(isinstance(c, (W.Dropdown, W.IntSlider, W.FloatSlider, W.IntText, W.Text))
                         for c in found), found
    for control in reversed(found):  # the first control picks what the others act on (e.g. the noisy view's noise rate)
        before = shown(explorer)
        n = len(redraws)
        change(control)
        assert len(redraws) > n, f"{notebook}: changing {control.description} redrew nothing"
        assert shown(explorer) != before, f"{notebook}: changing {control.description} left the view unchanged"


def test_displaying_an_explorer_leaves_a_static_copy_of_its_default_view(world):
    explorer = widgets.world_browser(n=8)
    png = explorer.snapshot()
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG" and image.width > 200 and image.height > 50
    assert explorer.controls() == {"view": "noisy web pairs", "noise rate": 0.3, "seed": 0, "image size": "32"}
    shell = InteractiveShell.instance()
    data, _ = shell.display_formatter.format(explorer)
    assert data == {}  # displayed through _ipython_display_: the widget, then the static copy
    explorer.children[0].children[0].index = 0  # a learner's change does not alter the static copy
    assert explorer.snapshot() == png


def test_a_two_panel_explorer_stacks_both_views():
    ns = widget_standins.standins("01")
    explorer = EXPLORERS["01"](ns)
    heights = [Image.open(io.BytesIO(p.first_png)).height for p in explorer.panels]
    assert Image.open(io.BytesIO(explorer.snapshot())).height == sum(heights)


def test_standins_name_what_the_notebooks_explorer_cells_read():
    import json
    from pathlib import Path

    for path in sorted(Path(__file__).parents[1].glob("notebooks/[0-9][0-9]_*.ipynb")):
        cells = [c for c in json.loads(path.read_text())["cells"] if is_explorer_cell("".join(c["source"]))]
        if cells:
            assert path.name[:2] in widget_standins.NEEDS, f"{path.name} has an explorer without stand-ins"
    with pytest.raises(ValueError, match="notebooks with explorers"):
        widget_standins.standins("99")


def test_the_capstone_explorer_says_what_it_needs_when_the_grid_is_missing():
    with pytest.raises(ValueError, match="expected the capstone's grid.*got NoneType"):
        widgets.label_efficiency_explorer(None)  # what load_benchmark gives outside the course repository
