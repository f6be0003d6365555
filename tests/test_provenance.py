import shutil
import sys
from pathlib import Path

import pytest

from vlmlearn import provenance

ROOT = Path(__file__).resolve().parents[1]


def _notebook(path, *cells):
    import nbformat

    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells]), path)
    return path


def test_fingerprint_ignores_comments_docstrings_and_layout(tmp_path):
    a = _notebook(tmp_path / "a.ipynb", "%matplotlib inline\nimport torch\nx = 1  # one\n")
    b = _notebook(tmp_path / "b.ipynb", "%matplotlib inline\nimport torch\n\n\nx = (1)\n")
    c = _notebook(tmp_path / "c.ipynb", "%matplotlib inline\nimport torch\nx = 2\n")
    assert provenance.code_fingerprint(notebook=a) == provenance.code_fingerprint(notebook=b)
    assert provenance.code_fingerprint(notebook=a) != provenance.code_fingerprint(notebook=c)
    with pytest.raises(ValueError, match="exactly one"):
        provenance.code_fingerprint(notebook=a, script=a)


def test_fingerprint_follows_the_package_modules_a_script_imports(tmp_path, monkeypatch):
    """A copy of the package: editing a module that the script imports (through another) changes the fingerprint;
    editing a docstring or a module it does not import does not."""
    package = tmp_path / "vlmlearn"
    shutil.copytree(ROOT / "vlmlearn", package, ignore=shutil.ignore_patterns("shipped", "__pycache__"))
    monkeypatch.setattr(provenance, "PACKAGE", package)
    script = tmp_path / "run.py"
    script.write_text("from vlmlearn.mae import pretrain_mae\n")  # mae imports optim, which must count
    before = provenance.code_fingerprint(script=script)
    optim = package / "optim.py"
    docstring_edit = optim.read_text().replace('"""How parameters are optimised', '"""How the parameters are optimised')
    optim.write_text(docstring_edit)
    assert provenance.code_fingerprint(script=script) == before
    (package / "vqa.py").write_text((package / "vqa.py").read_text() + "\nX = 1\n")
    assert provenance.code_fingerprint(script=script) == before
    optim.write_text(optim.read_text().replace("(step + 1) / warmup", "step / warmup"))
    assert provenance.code_fingerprint(script=script) != before


def test_machine_names_the_cpu_and_torch():
    text = provenance.machine()
    assert "cores" in text and "torch" in text and "threads" in text


def test_profile_splits_a_cells_time_by_kind_of_work(tmp_path, monkeypatch):
    sys.path.insert(0, str(ROOT / "tools"))
    monkeypatch.setenv("MPLBACKEND", "agg")
    try:
        import profile_notebook
    finally:
        sys.path.remove(str(ROOT / "tools"))
    monkeypatch.chdir(tmp_path)  # profile() moves into the notebook's folder
    path = _notebook(tmp_path / "nb.ipynb", "%matplotlib inline\nimport torch\nfrom torch import nn\n"
                     "from vlmlearn.data import ShapesWorld\nfrom vlmlearn.train import minibatches, train\n",
                     "import time\nimport matplotlib.pyplot as plt\n"
                     "batch = ShapesWorld(seed=0, image_size=16).labeled(256, attribute='shape')\n"
                     "model = nn.Sequential(nn.Flatten(), nn.Linear(768, 5))\n"
                     "opt = torch.optim.SGD(model.parameters(), lr=0.1)\n"
                     "step = lambda m, b: (nn.functional.cross_entropy(m(b[0]), b[1]), {})\n"
                     "h = train(model, opt, step, minibatches(batch.images, batch.labels, batch_size=32), steps=30,\n"
                     "          eval_fn=lambda m: {'acc': time.sleep(0.05) or 0.0}, eval_every=10, progress=False)\n"
                     "plt.plot([1, 2]); plt.xlabel('x'); plt.ylabel('y')\n")
    rows = profile_notebook.profile(path)
    assert [r["cell"] for r in rows] == [0, 1]
    split = rows[1]["split"]
    assert split["data"] > 0 and split["training steps"] > 0 and split["evaluation"] >= 0.15 and split["plotting"] > 0
    assert sum(split.values()) <= rows[1]["seconds"] + 1e-3  # each second counted once
    text = profile_notebook.table("nb", rows, 1.0, top=1)
    assert "| 1 |" in text and "training steps" in text


def test_staleness_names_the_change_and_the_command(tmp_path, monkeypatch):
    package = tmp_path / "vlmlearn"
    shutil.copytree(ROOT / "vlmlearn", package, ignore=shutil.ignore_patterns("shipped", "__pycache__"))
    (tmp_path / "benchmarks").mkdir()
    monkeypatch.setattr(provenance, "PACKAGE", package)
    script = tmp_path / "benchmarks" / "make.py"
    script.write_text("from vlmlearn.optim import warmup_cosine\n")
    record = {"model": "x", **provenance.stamp(script)}
    assert record["produced_by"] == "benchmarks/make.py" and len(record["fingerprint"]) == 16
    assert provenance.staleness(record, name="x.json", refresh="make bench NB=03") is None
    optim = package / "optim.py"
    optim.write_text(optim.read_text() + "\nCHANGED = 1\n")
    problem = provenance.staleness(record, name="x.json", refresh="make bench NB=03")
    assert problem.startswith(f"x.json was produced by code with fingerprint {record['fingerprint']}")
    assert problem.endswith("re-make it with `make bench NB=03`")
    assert "no fingerprint" in provenance.staleness({"model": "x"}, name="x.json", refresh="r")
    script.unlink()
    assert "no longer exists" in provenance.staleness(record, name="x.json", refresh="r")


def test_a_stale_checkpoint_is_loaded_with_a_warning(tmp_path):
    import json
    import warnings

    import torch

    from vlmlearn import assets

    record = {"model": "linear", **provenance.stamp(ROOT / "benchmarks" / "pretrain_clip.py")}
    path = assets.save_weights(torch.nn.Linear(2, 2), tmp_path / "w.safetensors", record)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assets.read_checkpoint(path, writer="make pretrain")  # fresh: silent
    path.with_suffix(".json").write_text(json.dumps({**record, "fingerprint": "0" * 16}))
    with pytest.warns(UserWarning, match=r"w.json was produced by code with fingerprint 0{16}.*`make pretrain`"):
        assets.read_checkpoint(path, writer="make pretrain")


def _bench():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import bench
    finally:
        sys.path.pop(0)
    return bench


def test_bench_knows_every_committed_product():
    """Every benchmark file and shipped checkpoint record is one of benchmarks/bench.py's products, so none can go
    stale unnoticed."""
    bench = _bench()
    committed = {str(p.relative_to(ROOT)) for p in (ROOT / "benchmarks" / "results").glob("*.json")}
    committed |= {str(p.relative_to(ROOT)) for p in (ROOT / "vlmlearn" / "shipped" / "checkpoints").glob("*.json")}
    assert committed == {p.path for p in bench.PRODUCTS}


@pytest.mark.parametrize("product", _bench().PRODUCTS, ids=lambda p: p.path.split("/")[-1])
def test_committed_product_matches_the_code_that_makes_it(product):
    """A committed benchmark file or shipped checkpoint carries the fingerprint of the code that now produces it; the
    failure names the file and the command that re-makes it (benchmarks/bench.py)."""
    reason = _bench().why_stale(product)
    assert reason is None, reason
