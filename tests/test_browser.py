"""Every explorer moved in a real browser: JupyterLab on 127.0.0.1 with a fresh token, headless Chromium (Debian's
`chromium`, driven by Playwright with `executable_path`; no browser download). For each notebook with an explorer,
a copy of it holds its title, a stand-in cell (tests/widget_standins.py: the explorer's inputs, built small) and the
notebook's own explorer cells; JupyterLab runs them, then every control (slider, dropdown, text box) is changed once
and the explorer's output must change (its text or its image bytes). Screenshots of each state go to build/browser/.
Run with `make test-browser` (-m browser); the default run leaves it out."""
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

import widget_standins

pytestmark = pytest.mark.browser
ROOT = Path(__file__).resolve().parents[1]
SHOTS = ROOT / "build" / "browser"
CHROMIUM = os.environ.get("CHROMIUM", shutil.which("chromium") or "/usr/bin/chromium")
NOTEBOOKS = [p for p in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")) if p.name[:2] in widget_standins.NEEDS]
CONTROLS = ".widget-slider .noUi-handle, .widget-dropdown select, .widget-text input"


def browser_copy(path: Path, folder: Path) -> Path:
    """The notebook's title, a stand-in cell for what its explorer reads, and its explorer cells, as they are."""
    nb = nbformat.read(path, as_version=4)
    explorer = [c for c in nb.cells if c.cell_type == "code" and widget_standins.is_explorer_cell(c.source)]
    standin = nbformat.v4.new_code_cell(
        f"import sys\nsys.path.insert(0, {str(ROOT / 'tests')!r})\nfrom widget_standins import standins\n"
        f"globals().update(standins({path.name[:2]!r}))  "
        f"# stand-ins for: {', '.join(widget_standins.NEEDS[path.name[:2]]) or 'nothing'}")
    cells = [nb.cells[0], standin] + [nbformat.v4.new_code_cell(c.source) for c in explorer]
    copy = nbformat.v4.new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                                          "language": "python"}})
    nbformat.write(copy, folder / path.name)
    return folder / path.name


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A JupyterLab server on 127.0.0.1 with a fresh token, serving the browser copies; yields (url, token)."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"no Chromium at {CHROMIUM}: install Debian's chromium package (apt-get install chromium)")
    folder = tmp_path_factory.mktemp("lab")
    for path in NOTEBOOKS:
        browser_copy(path, folder)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    token = secrets.token_hex(16)
    settings = folder / ".settings" / "@jupyterlab" / "notebook-extension"
    settings.mkdir(parents=True)
    (settings / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
    (settings.parent / "apputils-extension").mkdir()
    (settings.parent / "apputils-extension" / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False}))  # no news pop-up over the screenshots
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(folder / ".config"), "JUPYTER_RUNTIME_DIR": str(folder / ".runtime")}
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={folder}", "--LabApp.expose_app_in_browser=True",
         f"--LabApp.user_settings_dir={folder / '.settings'}", f"--LabApp.workspaces_dir={folder / '.workspaces'}",
         "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
         "--LabApp.extension_manager=readonly", "--allow-root"],
        cwd=folder, env=env, stdout=subprocess.DEVNULL, stderr=open(folder / "server.log", "w"))
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2)
            break
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                pytest.fail(f"JupyterLab did not start: {(folder / 'server.log').read_text()[-2000:]}")
            time.sleep(0.5)
    yield url, token
    server.terminate()
    server.wait(30)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    playwright = sync_playwright().start()
    chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=[
        "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"])
    yield chromium
    chromium.close()
    playwright.stop()


OUTPUT = """root => Array.from(root.querySelectorAll('.widget-output'))
    .map(o => o.innerText + Array.from(o.querySelectorAll('img')).map(i => i.src).join('')).join('|')"""


def change(control, kind: str) -> str:
    """Change one control as a learner would; return what was done."""
    if kind == "select":
        options = control.evaluate("s => Array.from(s.options).map(o => o.value)")
        current = control.evaluate("s => s.value")
        new = options[(options.index(current) + 1) % len(options)]
        control.select_option(new)
        return f"picked option {new!r}"
    if kind == "slider":
        control.focus()
        control.press("PageUp")
        return "slider up one page"
    if control.get_attribute("type") == "number":
        control.fill(str(int(control.input_value()) + 1))
    else:
        control.fill("a small green triangle on the right")
    control.press("Enter")
    return f"typed {control.input_value()!r}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_control_of_the_explorer_changes_its_output_in_jupyterlab(path, lab, browser):
    url, token = lab
    SHOTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto(f"{url}/lab/workspaces/{path.stem}/tree/{path.name}?token={token}&reset")  # a fresh workspace each
        page.wait_for_function("""() => { const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
            return w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel
                   && w.sessionContext.kernelDisplayStatus === 'idle'; }""", timeout=120_000)
        page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
        root = page.locator(".jp-OutputArea-output .widget-vbox").first
        root.wait_for(timeout=180_000)
        page.wait_for_function(f"() => ({OUTPUT})(document.querySelector('.jp-OutputArea-output .widget-vbox'))"
                               ".length > 0", timeout=60_000)
        root.scroll_into_view_if_needed()
        root.screenshot(path=SHOTS / f"{path.stem}_0_default.png")
        controls = root.locator(CONTROLS)
        kinds = controls.evaluate_all("cs => cs.map(c => c.tagName === 'SELECT' ? 'select' "
                                      ": c.classList.contains('noUi-handle') ? 'slider' : 'text')")
        assert kinds, "no controls found in the explorer"
        for k in reversed(range(len(kinds))):  # the first control picks what the others act on, as in test_widgets
            before = root.evaluate(OUTPUT)
            done = change(controls.nth(k), kinds[k])
            try:
                page.wait_for_function(f"b => ({OUTPUT})(document.querySelector('.jp-OutputArea-output .widget-vbox'))"
                                       " !== b && !document.querySelector("
                                       "'.jp-OutputArea-output .widget-vbox .widget-output:empty')",
                                       arg=before, timeout=60_000)
            except Exception:
                root.screenshot(path=SHOTS / f"{path.stem}_{len(kinds) - k}_{kinds[k]}_unchanged.png")
                raise AssertionError(f"{path.stem}: control {k} ({kinds[k]}, {done}) did not change the output")
            page.wait_for_timeout(300)  # let the new image paint before the screenshot
            root.screenshot(path=SHOTS / f"{path.stem}_{len(kinds) - k}_{kinds[k]}.png")
        assert not errors, f"errors in the page: {errors}"
    except Exception:
        page.screenshot(path=SHOTS / f"{path.stem}_failed.png")
        raise
        assert not page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']").count(), \
            page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']").first.inner_text()
    finally:
        page.evaluate("window.jupyterapp && window.jupyterapp.shell.currentWidget.sessionContext.shutdown()")
        page.close()
