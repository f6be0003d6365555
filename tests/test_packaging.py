import re
import subprocess
import sys
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: tomli, the same parser, which pytest itself needs there
    import tomli as tomllib

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~ \[]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def test_environment_yml_names_the_same_packages_as_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = {_name(r): r.replace(" ", "") for r in project["dependencies"] + project["optional-dependencies"]["dev"]}
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    listed = {_name(r): r.replace(" ", "") for r in pip if not r.startswith("-e")}
    assert listed == wanted  # same names and the same version ranges


def test_import_is_light_and_offline():
    code = "import sys, vlmlearn, vlmlearn.data.shapes; print(sorted(m for m in ('torchvision', 'transformers', " \
           "'open_clip', 'sklearn', 'matplotlib') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_ci_calls_make_test_and_readme_documents_it():
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    readme = (ROOT / "README.md").read_text()
    assert "make course" in readme and "make test" in readme


def test_notebook_tools_are_the_lab_extra_and_make_install_keeps_them():
    """jupyterlab and papermill are heavy for someone who only imports the helpers: they come with the [lab] extra,
    and dev (make install) repeats every [lab] requirement as written, so the course checkout still gets them."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    runtime = {_name(r) for r in project["dependencies"]}
    assert {_name(r) for r in extras["lab"]} == {"jupyterlab", "papermill", "nbformat", "ipykernel"}
    assert not runtime & {"jupyterlab", "papermill", "nbformat", "ipykernel"}, runtime
    assert set(extras["lab"]) <= set(extras["dev"]), "dev must repeat [lab] as written"


def test_course_without_papermill_names_the_extra(monkeypatch, tmp_path, capsys):
    """A plain `pip install vlmlearn` has no papermill: running notebooks says which extra brings it (once, not as a
    failure per notebook), and the results table still prints."""
    from vlmlearn import course

    monkeypatch.setitem(sys.modules, "papermill", None)  # `import papermill` now raises ImportError
    with pytest.raises(ImportError, match=r"pip install 'vlmlearn\[lab\]'"):
        course.execute_notebook(tmp_path / "00_x.ipynb", tmp_path / "out.ipynb")
    (tmp_path / "00_x.ipynb").write_text("{}")
    with pytest.raises(ImportError, match=r"\[lab\] extra"):
        course.run_notebooks([], tmp_path, tmp_path / "out", None)
    monkeypatch.setenv("VLMLEARN_RESULTS_DIR", str(tmp_path / "results"))
    assert course.main(["--table"]) == 0


def _section(text: str, heading: str) -> str:
    """The README's section under `## heading`, up to the next `## ` heading."""
    start = text.index(f"## {heading}\n")
    end = text.find("\n## ", start + 1)
    return text[start:] if end < 0 else text[start:end]


def test_readme_quick_start_is_set_up_only_and_the_benchmarks_have_their_own_section():
    readme = (ROOT / "README.md").read_text()
    quick, bench = _section(readme, "Quick start"), _section(readme, "Benchmarks")
    assert "make install" in quick and "make test" in quick and "Python 3.10 or newer" in quick
    assert "3.11 or newer for `make site`" in quick, "make site's Python (Sphinx 9) is stated where set-up is"
    benchmark_commands = ("make bench ", "make pretrain", "make bench-throughput", "make bench-capstone",
                          "python benchmarks/")
    for command in benchmark_commands:
        assert command not in quick and command in bench, command
    makefile = (ROOT / "Makefile").read_text()
    assert "sys.version_info < (3, 11)" in makefile and "tools/venv.sh" in makefile


def test_readme_pip_extras_exist_and_its_own_environment_snippet_runs(tmp_path, monkeypatch):
    """Every `[extra]` a README pip command names is declared, and the section's Python block (the shipped files,
    loaded from another folder) runs as written."""
    readme = (ROOT / "README.md").read_text()
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    named = {e for line in readme.splitlines() if "pip install" in line
             for group in re.findall(r"\[([\w,]+)\]'", line) for e in group.split(",")}
    assert named and named <= set(extras), named - set(extras)
    own = _section(readme, "Use it in your own environment")
    assert "ipykernel install" in own and "Colab" in own and "vlmlearn/shipped/" in own
    (snippet,) = [b for b in re.findall(r"```python\n(.*?)```", own, re.S) if "SHIPPED" in b]
    monkeypatch.chdir(tmp_path)
    exec(compile(snippet, "README snippet", "exec"), {})
