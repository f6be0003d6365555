"""The package's layering: every module has a layer in tools/layers.py's table, imports only from its own layer or
below (every import, also those inside functions), and no modules import each other round a loop. The course site's
architecture page is drawn from the same table and must be current. Nothing of vlmlearn is imported: modules are read
with `ast`."""
import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("vlmlearn_layers", ROOT / "tools" / "layers.py")
layers = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(layers)


def _where(module: str) -> str:
    return f"{module} (layer {layers.layer_of(module)}, {layers.LAYER_NAMES[layers.layer_of(module)]})"


def test_every_module_has_a_layer():
    missing = [name for name in layers.modules() if layers.layer_of(name) is None]
    assert not missing, (f"modules with no layer: {', '.join(missing)}; add each to LAYERS in tools/layers.py "
                         f"(layers: {layers.LAYER_NAMES}), then run python tools/layers.py to redraw the site's page")


def test_modules_import_only_from_their_own_layer_or_below():
    graph = layers.import_graph()
    upward = [f"{layers.modules()[module].relative_to(ROOT)}:{line}: {_where(module)} imports {_where(target)}"
              for module, edges in graph.items() if layers.layer_of(module) is not None
              for target, line in edges if layers.layer_of(target) is not None
              and layers.layer_of(target) > layers.layer_of(module)]
    assert not upward, "imports from a higher layer:\n" + "\n".join(upward)


def test_no_import_cycles():
    graph = layers.import_graph()
    loops = layers.cycles(graph)
    assert not loops, "modules that import each other (directly or round a loop): " + "; ".join(
        " -> ".join(layers.shortest_loop(graph, group)) + (f" ({len(group)} modules tangled: {', '.join(group)})"
                                                           if len(group) > 2 else "") for group in loops)


def test_the_check_sees_imports_at_any_depth_and_relative_ones(tmp_path):
    package = tmp_path / "vlmlearn"
    (package / "data").mkdir(parents=True)
    for name in ("__init__.py", "runtime.py", "widgets.py", "data/__init__.py", "data/shapes.py"):
        (package / name).write_text("")
    (package / "runtime.py").write_text("import os\n\n\ndef f():\n"
                                        "    from . import widgets\n    from .data import shapes\n")
    (package / "data" / "shapes.py").write_text("from ..runtime import f\nimport vlmlearn.data\n")
    graph = layers.import_graph(package)
    assert graph["vlmlearn.runtime"] == [("vlmlearn.widgets", 5), ("vlmlearn.data.shapes", 6)]
    assert graph["vlmlearn.data.shapes"] == [("vlmlearn.runtime", 1), ("vlmlearn.data", 2)]
    assert [layers.layer_of(m) for m in ("vlmlearn.runtime", "vlmlearn.widgets", "vlmlearn.data.shapes")] == [0, 6, 1]
    assert layers.cycles(graph) == [["vlmlearn.data.shapes", "vlmlearn.runtime"]]
    loop = layers.shortest_loop(graph, ["vlmlearn.data.shapes", "vlmlearn.runtime"])
    assert loop == ["vlmlearn.data.shapes", "vlmlearn.runtime", "vlmlearn.data.shapes"]


def test_the_architecture_page_is_current():
    stale = [path.relative_to(ROOT) for path, text in ((layers.PAGE, layers.page()), (layers.DRAWING, layers.drawing()))
             if not path.is_file() or path.read_text(encoding="utf-8") != text]
    assert not stale, f"{', '.join(map(str, stale))} out of date: run python tools/layers.py"


def test_every_public_module_is_on_the_api_page():
    page = (ROOT / "site" / "api.md").read_text()
    private = ("vlmlearn.exercises.",)  # the exercise registry is documented as vlmlearn.exercises
    missing = [name for name in layers.modules() if name != "vlmlearn.data" and not name.startswith(private)
               and f".. automodule:: {name}\n" not in page]
    assert not missing, f"modules missing from site/api.md (add an automodule section each): {', '.join(missing)}"
