"""The course site `make site` built (build/site): a page for every committed and student notebook, in course
order, README as the landing page, the API reference, and no internal link or anchor that goes nowhere.
Selected with -m site (make site runs it after the build); the default run leaves it out."""
import json
import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

pytestmark = pytest.mark.site
ROOT = Path(__file__).resolve().parents[1]
SITE = ROOT / "build" / "site"
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
STUDENT = sorted((ROOT / "notebooks" / "exercises").glob("[0-9][0-9]_*.ipynb"))


class Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links, self.ids = [], set()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.add(attrs["id"])
        for key in ("href", "src"):
            if attrs.get(key) and not (tag == "link" and attrs.get("rel") in ("preconnect", "dns-prefetch")):
                self.links.append(attrs[key])


def parse(path: Path) -> Links:
    parser = Links()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


@pytest.fixture(scope="module")
def pages():
    if not (SITE / "index.html").is_file():
        pytest.fail(f"no site in {SITE}: run `make site` first")
    return {p: parse(p) for p in SITE.rglob("*.html") if "_static" not in p.parts}  # not the theme's templates


def test_every_notebook_has_a_page_in_course_order(pages):
    for nb in NOTEBOOKS:
        assert (SITE / "notebooks" / f"{nb.stem}.html").is_file(), f"no page for {nb.name}"
    for nb in STUDENT:
        assert (SITE / "notebooks" / "exercises" / f"{nb.stem}.html").is_file(), f"no page for exercises/{nb.name}"
    landing = (SITE / "index.html").read_text(encoding="utf-8")
    if "README.html" in landing and "Course map" not in landing:  # index.html may only redirect to the root page
        landing = (SITE / "README.html").read_text(encoding="utf-8")
    assert "Course map" in landing and "Quick start" in landing, "README is the landing page"
    order = [landing.find(f'href="notebooks/{nb.stem}.html') for nb in NOTEBOOKS]
    assert -1 not in order and order == sorted(order), "the navigation lists the notebooks in course order"


def test_notebook_pages_show_their_outputs_and_the_static_explorer_views(pages):
    page = (SITE / "notebooks" / "00_data_landscape.html").read_text(encoding="utf-8")
    assert page.count("<img") >= 5 and "Static copy of the default view" in page and "ran in " in page
    page = (SITE / "notebooks" / "01_contrastive_alignment.html").read_text(encoding="utf-8")
    assert re.search(r"naive CLIP: \d+ steps in", page), "the final-state line of a training run"


def test_the_api_reference_is_generated_from_the_docstrings(pages):
    api = (SITE / "site" / "api.html").read_text(encoding="utf-8")
    for name in ("vlmlearn.losses.clip_loss", "vlmlearn.train.train", "vlmlearn.explorer.Explorer",
                 "vlmlearn.data.shapes.ShapesWorld", "vlmlearn.run_info"):
        assert f'id="{name}"' in api, f"{name} is not documented"
    assert "(N, D)" in api or "(B, " in api, "docstrings with tensor shapes"


def test_internal_links_and_anchors_resolve(pages):
    broken = []
    for path, parsed in pages.items():
        for link in parsed.links:
            url = urlsplit(link)
            if url.scheme or link.startswith(("//", "mailto:", "javascript:")):
                continue
            target = (path.parent / unquote(url.path)).resolve() if url.path else path
            if target.is_dir():
                target = target / "index.html"
            if not target.exists():
                broken.append(f"{path.relative_to(SITE)}: {link}")
            elif url.fragment and target.suffix == ".html" and url.fragment not in pages[target].ids:
                broken.append(f"{path.relative_to(SITE)}: {link} (no such anchor)")
    assert not broken, f"{len(broken)} broken links, e.g. " + "; ".join(broken[:10])


def test_the_architecture_page_draws_the_layers_and_lists_every_module(pages):
    page = (SITE / "site" / "architecture.html").read_text(encoding="utf-8")
    assert "architecture.svg" in page and "Layer 0: base" in page and "Layer 6: interfaces" in page
    modules = sorted(p.relative_to(ROOT).with_suffix("").as_posix().removesuffix("/__init__").replace("/", ".")
                     for p in (ROOT / "vlmlearn").rglob("*.py") if "__pycache__" not in p.parts)
    missing = [name for name in modules if f">{name}<" not in page]  # each in a table row, as inline code
    assert not missing, f"modules not on the architecture page: {missing}"


def test_notebook_pages_show_their_diagrams(pages):
    """Every figure a notebook or its student copy shows (tools/draw_diagrams.py) is copied into the site and shown
    on its page."""
    image = re.compile(r"!\[[^\]]*\]\(([^)\s]+)")
    for nb in NOTEBOOKS + STUDENT:
        cells = json.loads(nb.read_text(encoding="utf-8"))["cells"]
        shown = [Path(t).name for c in cells if c["cell_type"] == "markdown"
                 for t in image.findall("".join(c["source"])) if not re.match(r"[a-zA-Z][\w+.-]*:", t)]
        html = (SITE / nb.relative_to(ROOT).with_suffix(".html")).read_text(encoding="utf-8")
        for name in shown:
            assert f"_images/{name}" in html and (SITE / "_images" / name).is_file(), f"{nb.name}: {name} not shown"
