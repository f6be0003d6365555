"""A real install works: the wheel `pip install .` builds, installed into a folder of its own and imported from another
folder, loads both shipped checkpoints and reads the bundled samples from the installed package data, never from the
checkout. `make wheel-test` runs it (part of `make test`); selected with -m wheel, the default run leaves it out.

How it stays away from the checkout:
- the wheel is built from a copy of pyproject.toml, README.md and vlmlearn/, so setuptools' build/lib from an earlier
  build cannot slip a stale module into it (and the checkout is not written to);
- `pip install --no-deps --target` installs it into a folder of its own (its own dist-info, its package data);
- the smoke script runs in a temporary folder with `python -I` (no PYTHONPATH, no script or current folder on
  sys.path) and puts that folder first on sys.path. torch and the other dependencies come from this interpreter's
  site-packages; the editable install of the checkout there is a finder that Python consults only after sys.path, and
  the script asserts that every vlmlearn module it loaded came from the installed copy."""
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.wheel
ROOT = Path(__file__).resolve().parents[1]

SMOKE = r'''
import json, sys
installed = sys.argv[1]
sys.path.insert(0, installed)
from importlib import metadata

import vlmlearn
import vlmlearn.data
from vlmlearn.assets import course_checkout
from vlmlearn.clip_models import load_pretrained_clip
from vlmlearn.mae import load_pretrained_mae

clip, tokenizer, clip_record = load_pretrained_clip()
mae, mae_record = load_pretrained_mae()
pairs = vlmlearn.data.read_pairs("coco", vlmlearn.data.SAMPLES_DIR / "coco" / "captions.json")
image, captions = pairs[0]
print(json.dumps({
    "version": metadata.version("vlmlearn"),
    "modules": {name: getattr(module, "__file__", None) for name, module in sys.modules.items()
                if name == "vlmlearn" or name.startswith("vlmlearn.")},
    "checkout": str(course_checkout()),
    "clip": [type(clip).__name__, clip_record["model"], tokenizer.vocab_size],
    "mae": [type(mae).__name__, mae_record["model"]],
    "samples": [len(pairs), str(pairs.paths[0]), list(image.shape), len(captions)],
}))
'''


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    source, out = tmp_path_factory.mktemp("source"), tmp_path_factory.mktemp("wheel")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    shutil.copytree(ROOT / "vlmlearn", source / "vlmlearn", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "-q", "-w", str(out)],
                   check=True, capture_output=True, text=True)
    (built,) = out.glob("vlmlearn-*.whl")
    return built


def test_the_wheel_holds_the_package_and_its_shipped_files_only(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert {name.split("/")[0] for name in names} == {"vlmlearn", wheel.name.split("-py")[0] + ".dist-info"}
    shipped = ROOT / "vlmlearn" / "shipped"
    wanted = {f"vlmlearn/shipped/{p.relative_to(shipped).as_posix()}" for p in shipped.rglob("*") if p.is_file()}
    assert wanted <= set(names), f"shipped files missing from the wheel: {sorted(wanted - set(names))[:5]}"
    modules = {f"vlmlearn/{p.relative_to(ROOT / 'vlmlearn').as_posix()}" for p in (ROOT / "vlmlearn").rglob("*.py")
               if "__pycache__" not in p.parts}
    assert modules <= set(names), f"modules missing from the wheel: {sorted(modules - set(names))}"


def test_the_wheel_asks_for_jupyterlab_and_papermill_only_with_the_lab_extra(wheel):
    """`pip install vlmlearn` brings the helpers; `pip install 'vlmlearn[lab]'` adds JupyterLab and papermill."""
    archive = zipfile.ZipFile(wheel)
    metadata = archive.read(next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))).decode()
    requires = [line.split(":", 1)[1].strip() for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    assert "Provides-Extra: lab" in metadata
    for name in ("jupyterlab", "papermill"):
        mine = [r for r in requires if r.startswith(name)]
        assert mine and all('extra == "lab"' in r or 'extra == "dev"' in r for r in mine), mine
    assert any(r.startswith("torch>=") and "extra" not in r for r in requires)


def test_the_installed_wheel_loads_the_checkpoints_and_samples_from_another_folder(wheel, tmp_path):
    installed, elsewhere = tmp_path / "installed", tmp_path / "elsewhere"
    elsewhere.mkdir()
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q", "--target",
                    str(installed), str(wheel)], check=True, capture_output=True, text=True)
    (elsewhere / "smoke.py").write_text(SMOKE)
    env = {key: value for key, value in os.environ.items()
           if key not in ("PYTHONPATH", "VLMLEARN_CHECKOUT", "PYTHONSTARTUP")}
    run = subprocess.run([sys.executable, "-I", "smoke.py", str(installed)], cwd=elsewhere, env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    found = json.loads(run.stdout.strip().splitlines()[-1])

    outside = {name: path for name, path in found["modules"].items()
               if path is not None and not Path(path).resolve().is_relative_to(installed.resolve())}
    assert not outside, f"vlmlearn modules loaded from outside the installed wheel: {outside}"
    assert found["version"] == wheel.name.split("-")[1]
    assert found["checkout"] == "None", "run outside the course repository, nothing should point into it"
    assert found["clip"][:2] == ["DualEncoder", "shapes-clip"] and found["clip"][2] > 10
    assert found["mae"] == ["MaskedAutoencoder", "shapes-mae"]
    count, first_path, shape, captions = found["samples"]
    assert count == 24 and captions >= 1 and shape == [3, 32, 32]
    assert Path(first_path).resolve().is_relative_to(installed.resolve())
