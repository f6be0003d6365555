"""The course's diagrams (tools/draw_diagrams.py): the committed SVGs are what the code draws today, they follow the
configs and parameters they show, and every figure a notebook shows exists, from the reading copy and from the student
copy one folder down."""
import fnmatch
import importlib.util
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
FIGURES = ROOT / "notebooks" / "figures"
FULL = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
STUDENT = sorted((ROOT / "notebooks" / "exercises").glob("[0-9][0-9]_*.ipynb"))
IMAGE = re.compile(r"!\[[^\]]*\]\(([^)\s]+)")
SVG = "{http://www.w3.org/2000/svg}"


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


draw = load("draw_diagrams")
student = load("make_student_notebooks")


def images(path: Path) -> list[str]:
    """The targets of the markdown images of a notebook."""
    cells = nbformat.read(path, as_version=4).cells
    return [t for c in cells if c.cell_type == "markdown" for t in IMAGE.findall(c.source)]


def test_committed_diagrams_are_what_the_code_draws(tmp_path):
    written = draw.draw_all(tmp_path)
    assert sorted(p.name for p in written) == sorted(p.name for p in FIGURES.glob("*.svg")), \
        "every SVG in notebooks/figures/ has a drawing function in tools/draw_diagrams.py, and the reverse"
    stale = [p.name for p in written if p.read_bytes() != (FIGURES / p.name).read_bytes()]
    assert not stale, f"{stale} no longer show what the code says: run python tools/draw_diagrams.py"


def test_every_diagram_is_a_well_formed_svg_with_a_title_and_a_description():
    for path in sorted(FIGURES.glob("*.svg")):
        root = ET.parse(path).getroot()
        assert root.tag == f"{SVG}svg", path.name
        assert root.find(f"{SVG}title").text and root.find(f"{SVG}desc").text, f"{path.name}: for screen readers"


def test_a_diagram_follows_the_config_and_the_parameters_it_shows(monkeypatch):
    from vlmlearn import mae

    monkeypatch.setitem(mae.SHAPES_MAE_CONFIG, "decoder_depth", 3)
    assert "3 blocks, width 64" in draw.mae().write()  # the decoder, read from the config
    read = draw.parameters
    monkeypatch.setattr(draw, "parameters", lambda prefix: {**read(prefix), "THRESHOLD": 0.7})
    assert "max p ≥ 0.7 ?" in draw.fixmatch().write()


def test_the_notebook_readers_return_literals_only(tmp_path, monkeypatch):
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("A = 3\nB = (1, 2)  # a comment", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("%matplotlib inline\nm = Model(width=4, encoder=cnn.features, n=10_000)\n"
                                  "x = world.pairs(1_000, start=5)\nm2 = Model(width=5)")])
    nbformat.write(nb, tmp_path / "99_test.ipynb")
    monkeypatch.setattr(draw, "NOTEBOOKS", tmp_path)
    assert draw.parameters("99") == {"A": 3, "B": (1, 2)}
    assert draw.literal_kwargs("99", "Model") == {"width": 4, "n": 10_000}  # cnn.features is no literal
    assert draw.call("99", "pairs", having=("start",)) == ([1_000], {"start": 5})
    assert [kw["width"] for _, kw in draw.calls("99", "Model")] == [4, 5]
    with pytest.raises(LookupError, match="no call"):
        draw.call("99", "Model", having=("depth",))


@pytest.mark.parametrize("path", FULL + STUDENT, ids=lambda p: p.parent.name + "/" + p.stem)
def test_every_image_a_notebook_shows_exists(path):
    for target in images(path):
        if re.match(r"[a-zA-Z][\w+.-]*:", target):  # a URL or an attachment
            continue
        assert (path.parent / target).resolve().is_file(), f"{path.name} shows {target}, which does not exist"


def test_every_numbered_notebook_shows_its_diagram():
    shown = {Path(t).name for path in FULL for t in images(path)}
    for path in FULL:
        assert any(Path(t).name.startswith(path.name[:2]) for t in images(path)), f"{path.name} shows no diagram"
    unshown = sorted(p.name for p in FIGURES.glob("*.svg") if p.name not in shown)
    assert not unshown, f"diagrams no notebook shows: {unshown}"


def test_student_copies_show_the_same_figures_one_folder_up():
    for path in STUDENT:
        full = images(ROOT / "notebooks" / path.name)
        assert images(path) == [t if re.match(r"[a-zA-Z][\w+.-]*:|/", t) else "../" + t for t in full]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(
        "![a](figures/x.svg), ![b](https://example.org/y.png) and [a link](figures/x.svg)")])
    assert student.student_copy(nb).cells[0].source == \
        "![a](../figures/x.svg), ![b](https://example.org/y.png) and [a link](figures/x.svg)"


def test_the_site_does_not_exclude_the_figures():
    """`make site` builds from the repository root and copies every image a page shows into build/site/_images;
    tests/test_site.py checks the built pages (make site)."""
    config = {}
    exec((ROOT / "site" / "conf.py").read_text(), config)
    for pattern in config["exclude_patterns"]:
        assert not fnmatch.fnmatch("notebooks/figures/01_infonce.svg", pattern), pattern
