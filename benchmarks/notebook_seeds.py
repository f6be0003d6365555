"""A notebook's headline numbers at several seeds: the notebook itself, run with SEED = 0 to 4.

    python benchmarks/notebook_seeds.py 01_contrastive_alignment            # seeds 0 to 4
    python benchmarks/notebook_seeds.py 07_pseudo_labeling --seeds 0 1 2   # fewer
    python benchmarks/notebook_seeds.py 05_generative_unpaired --set N_PAIRS=2000   # another setting:
        # writes benchmarks/results/05_generative_unpaired_2000_pairs.json

Each run goes through papermill (`vlmlearn.course.execute_notebook`) with its own results folder
(build/benchmarks/<notebook>/seed<N>), so the numbers come from exactly the code the learner runs, seeds
being the only loop. Writes benchmarks/results/<notebook>.json ({"notebook", "seeds", "metrics": {key:
{"per_seed", "mean", "std"}}, "runtime_s", "versions"} and the stamp of the notebook's code: fingerprint, commit,
machine), which the notebook then shows beside its live run. Each run uses the 2 threads the notebooks set: two seeds
at once with one thread each gave about 10 % more steps per second on a 2-core machine, but one thread rounds
differently from two, so its numbers would not be the ones a learner's run reproduces.
"""
import argparse
import json
import os
import time
from pathlib import Path

from vlmlearn.course import execute_notebook
from vlmlearn.results import write_benchmark

ROOT = Path(__file__).resolve().parents[1]


def run_seeds(notebook: str, seeds: list[int], settings: dict[str, int] | None = None) -> Path:
    """Run the notebook at each seed (and `settings`, parameters other than SEED) and write its seed file, named
    <notebook>.json, or with one setting <notebook>_<value>_<name>.json (N_PAIRS=2000: ..._2000_pairs.json)."""
    settings = settings or {}
    name = notebook + "".join(f"_{v}_{k.lower().removeprefix('n_')}" for k, v in settings.items())
    out = ROOT / "build" / "benchmarks" / name
    runs, t0 = [], time.perf_counter()
    for seed in seeds:
        folder = out / f"seed{seed}"
        folder.mkdir(parents=True, exist_ok=True)
        os.environ["VLMLEARN_RESULTS_DIR"] = str(folder)
        print(f"{notebook}: seed {seed} ...", flush=True)
        execute_notebook(ROOT / "notebooks" / f"{notebook}.ipynb", folder / f"{notebook}.ipynb",
                         parameters={"SEED": seed, **settings})
        runs.append(json.loads((folder / f"{notebook}.json").read_text())["metrics"])
    path = write_benchmark(name, seeds, runs, runtime_s=time.perf_counter() - t0,
                           source=ROOT / "notebooks" / f"{notebook}.ipynb")
    for key, m in json.loads(path.read_text())["metrics"].items():
        print(f"{key:32s} {m['mean']:8.3f} ± {m['std']:.3f}   {', '.join(f'{v:.3f}' for v in m['per_seed'])}")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebooks", nargs="+", help="notebook stems, e.g. 01_contrastive_alignment")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--set", nargs="*", default=[], metavar="NAME=VALUE",
                        help="integer parameters other than SEED, e.g. N_PAIRS=2000")
    args = parser.parse_args()
    try:
        settings = {k: int(v) for k, v in (item.split("=") for item in args.set)}
    except ValueError:
        parser.error(f"--set takes NAME=INTEGER items, got {args.set}")
    for notebook in args.notebooks:
        if not (ROOT / "notebooks" / f"{notebook}.ipynb").is_file():
            raise SystemExit(f"no notebook notebooks/{notebook}.ipynb")
        print(f"wrote {run_seeds(notebook, args.seeds, settings)}")


if __name__ == "__main__":
    main()
