"""The Makefile's set-up steps, run for real with stand-in interpreters (small shell scripts that answer the version
checks and record what they were asked to do), so nothing is installed: the Python-version guard, a broken .venv made
again, make site's Python 3.11 check, make test-oldest's Python 3.10 check, and Chromium found as tests/test_browser.py
finds it."""
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs make")


def _python(path: Path, *, version: str, log: Path | None = None) -> Path:
    """A stand-in interpreter: `--version` prints Python <version>; `-c` (a version check) passes when the check's
    numbers are not above <version>; `-m venv DIR` makes DIR/bin/python, a stand-in of the same version; anything
    else (pip) succeeds. Every call is appended to `log`."""
    major, minor = version.split(".")[:2]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"""#!/bin/sh
{f'echo "$@" >> {log}' if log else ''}
case "$1" in
  --version) echo "Python {version}" ;;
  -c) case "$2" in
        *"!= (3, 10)"*) [ "{major}.{minor}" = "3.10" ] ;;
        *"< (3, 11)"*) [ {minor} -ge 11 ] ;;
        *"< (3, 10)"*) [ {minor} -ge 10 ] ;;
      esac ;;
  -m) if [ "$2" = venv ]; then mkdir -p "$3/bin"; cp "$0" "$3/bin/python"; touch "$3/pyvenv.cfg"; fi ;;
esac
""")
    path.chmod(0o755)
    return path


def _make(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["make", "--no-print-directory", "-C", str(ROOT), *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=60)


def test_an_old_python_is_refused_with_what_was_found(tmp_path):
    old = _python(tmp_path / "bin" / "python3", version="3.9.18")
    run = _make("install", f"VENV={tmp_path / 'venv'}", f"PYTHON={old}")
    assert run.returncode != 0
    assert "needs Python 3.10 or newer" in run.stderr and "Python 3.9.18" in run.stderr, run.stderr
    assert "PYTHON=python3.11" in run.stderr
    assert not (tmp_path / "venv").exists()


def test_a_venv_without_pip_is_made_again(tmp_path):
    log = tmp_path / "calls.log"
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "pyvenv.cfg").touch()
    (venv / "bin" / "python").write_text("#!/bin/sh\nexit 1\n")  # what a failed `python3 -m venv` leaves
    (venv / "bin" / "python").chmod(0o755)
    good = _python(tmp_path / "bin" / "python3", version="3.11.7", log=log)
    run = _make("install", f"VENV={venv}", f"PYTHON={good}")
    assert run.returncode == 0, run.stderr
    assert "no working python or pip" in run.stdout and "making it again" in run.stdout
    calls = log.read_text()
    assert f"-m venv {venv}" in calls and "-m pip install -e .[dev]" in calls, calls
    assert (venv / ".installed").exists()


def test_a_folder_that_is_not_a_venv_is_never_removed(tmp_path):
    venv = tmp_path / "mine"
    venv.mkdir()
    (venv / "keep.txt").write_text("a user's file")
    run = _make("install", f"VENV={venv}", f"PYTHON={_python(tmp_path / 'python3', version='3.11.7')}")
    assert run.returncode != 0 and "not a virtual environment" in run.stderr
    assert (venv / "keep.txt").exists()


def test_site_names_python_3_11(tmp_path):
    venv = tmp_path / "venv"
    _python(venv / "bin" / "python", version="3.10.14")
    (venv / "pyvenv.cfg").touch()
    (venv / ".installed").touch()
    run = _make("site", f"VENV={venv}")
    assert run.returncode != 0
    assert "need Python 3.11 or newer (Sphinx 9)" in run.stderr and "Python 3.10.14" in run.stderr, run.stderr
    assert not (venv / ".site-installed").exists()


def test_test_oldest_names_the_python_3_10_it_needs_before_installing_anything(tmp_path):
    stand_in = _python(tmp_path / "bin" / "python3", version="3.11.7")  # installs nothing, should the check slip
    for oldest in (tmp_path / "absent" / "python3.10", _python(tmp_path / "python3.12", version="3.12.1")):
        run = _make("test-oldest", f"OLDEST_PYTHON={oldest}", f"VENV={tmp_path / 'venv'}", f"PYTHON={stand_in}")
        assert run.returncode != 0
        assert "needs a Python 3.10 interpreter" in run.stderr and "OLDEST_PYTHON=/path/to/python3.10" in run.stderr
        assert not (tmp_path / "venv").exists(), "the check runs before any install"
    assert "Python 3.12.1" in run.stderr


def test_chromium_is_found_as_the_browser_test_finds_it(tmp_path):
    """On the PATH first (tests/test_browser.py: $CHROMIUM, else shutil.which("chromium")), $CHROMIUM overriding."""
    chromium = tmp_path / "bin" / "chromium"
    chromium.parent.mkdir()
    chromium.write_text("#!/bin/sh\n")
    chromium.chmod(0o755)
    path = f"{chromium.parent}{os.pathsep}{os.environ['PATH']}"
    env = {k: v for k, v in os.environ.items() if k != "CHROMIUM"}
    found = subprocess.run(["make", "--no-print-directory", "-n", "-C", str(ROOT), "test-browser"],
                           capture_output=True, text=True, env={**env, "PATH": path}, timeout=60).stdout
    assert f"CHROMIUM={chromium} " in found, found
    chosen = _make("-n", "test-browser", env={"PATH": path, "CHROMIUM": "/opt/chrome/chromium"}).stdout
    assert "CHROMIUM=/opt/chrome/chromium " in chosen
