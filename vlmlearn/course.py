"""Run the whole course headless and print the results table.

    python -m vlmlearn.course                 # every notebook in notebooks/, in order
    python -m vlmlearn.course 00 01           # only the notebooks whose names start so
    python -m vlmlearn.course --table         # just print the table from build/results

Executed copies go to build/notebooks/, results to build/results/ (see vlmlearn.results). `execute_notebook`
is the one place that drives papermill (`benchmarks/notebook_seeds.py` runs each seed through it). papermill comes
with the `[lab]` extra (and `make install`), not with a plain `pip install vlmlearn`: `--table` runs without it.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from .results import load_results, results_table


def execute_notebook(path: Path, out: Path, *, parameters: dict | None = None) -> None:
    """Run the notebook at `path` headless through papermill, in its own folder, with its parameters cell
    overridden by `parameters` (e.g. {"SEED": 1}), and write the executed copy to `out`. Raises what a cell raised."""
    papermill = require_papermill()
    papermill.execute_notebook(str(path), str(out), parameters=parameters or {}, cwd=str(path.parent),
                               progress_bar=False, kernel_name="python3")


def require_papermill():
    """The papermill module, or an ImportError that names the extra that installs it."""
    try:
        import papermill
    except ImportError as error:
        raise ImportError("running notebooks headless needs papermill, which vlmlearn's [lab] extra installs: "
                          "pip install 'vlmlearn[lab]' (in a clone: pip install -e '.[lab]'; make install has it)"
                          ) from error
    return papermill


def run_notebooks(names: list[str], notebooks: Path, out: Path, seed: int | None) -> list[tuple[str, float, str]]:
    require_papermill()  # before the loop, which reports each notebook's failure and goes on
    out.mkdir(parents=True, exist_ok=True)
    paths = sorted(notebooks.glob("[0-9][0-9]_*.ipynb"))
    if names:
        paths = [p for p in paths if any(p.stem.startswith(n) for n in names)]
    if not paths:
        raise SystemExit(f"no notebooks matching {names or '*'} in {notebooks}")
    summary = []
    for path in paths:
        print(f"running {path.name} ...", flush=True)
        t0 = time.perf_counter()
        params = {} if seed is None else {"SEED": seed}
        try:
            execute_notebook(path, out / path.name, parameters=params)
            status = "ok"
        except Exception as e:  # report and go on: one broken notebook should not hide the others
            status = f"FAILED: {type(e).__name__}: {str(e).strip().splitlines()[-1][:200]}"
        summary.append((path.name, time.perf_counter() - t0, status))
        print(f"  {status} in {summary[-1][1]:.0f} s", flush=True)
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help="notebook name prefixes, e.g. 00 01")
    parser.add_argument("--table", action="store_true", help="only print the results table")
    parser.add_argument("--seed", type=int, default=None, help="pass SEED to every notebook")
    parser.add_argument("--notebooks", type=Path, default=Path("notebooks"))
    parser.add_argument("--out", type=Path, default=Path("build/notebooks"))
    args = parser.parse_args(argv)
    failed = False
    if not args.table:
        summary = run_notebooks(args.names, args.notebooks, args.out, args.seed)
        failed = any(s != "ok" for _, _, s in summary)
        print()
    print(results_table(load_results()))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
