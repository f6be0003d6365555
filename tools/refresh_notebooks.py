"""Execute notebooks in place, top to bottom, and tidy them for committing.

    python tools/refresh_notebooks.py notebooks/00_data_landscape.ipynb [...]

Outputs (plots included) are kept so the notebooks read well on GitHub; widget state is stripped
(it is large and goes stale), execution counts run 1, 2, 3, ... and the file size is reported. Figures are audited
(VLMLEARN_AUDIT_FIGURES: an axis without a label or a heatmap without a colour bar is an error).
"""
import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient


def refresh(path: Path, timeout: int = 600) -> None:
    os.environ["VLMLEARN_AUDIT_FIGURES"] = "1"  # the kernel inherits it; vlmlearn.viz.audit_figures
    nb = nbformat.read(path, as_version=4)
    t0 = time.perf_counter()
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    try:
        client.execute()
    except Exception as e:  # keep what ran, for reading, without touching the committed notebook
        failed = Path("build/failed") / path.name
        failed.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, failed)
        raise SystemExit(f"{path}: {type(e).__name__}; the partly executed notebook is in {failed}")
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                raise SystemExit(f"{path}: a cell raised {out['ename']}: {out['evalue']}")
    nbformat.write(nb, path)
    print(f"{path}: {time.perf_counter() - t0:.0f} s, {path.stat().st_size / 1e6:.2f} MB")


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        refresh(Path(arg))
