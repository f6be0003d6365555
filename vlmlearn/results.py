"""The results contracts. Each notebook writes its headline numbers to
`build/results/<notebook>.json` (or $VLMLEARN_RESULTS_DIR), and `make course` prints them as a table.
`make bench` re-runs notebooks at three seeds and commits `benchmarks/results/<notebook>.json`; a
notebook shows its live run beside those numbers and claims an ordering only when every seed agrees
or the gap exceeds two standard deviations (`ordering`).

    record_results("00_data_landscape", metrics={...}, baselines={...}, runtime_s=..., seed=SEED)
"""
from __future__ import annotations

import json
import math
import os
import platform
import time
from importlib import metadata
from pathlib import Path

from .assets import course_checkout


def results_dir() -> Path:
    """$VLMLEARN_RESULTS_DIR, else build/results in the course checkout (`assets.course_checkout`), else
    build/results under the current folder."""
    if os.environ.get("VLMLEARN_RESULTS_DIR"):
        return Path(os.environ["VLMLEARN_RESULTS_DIR"])
    return (course_checkout() or Path.cwd()) / "build" / "results"


def benchmark_dir() -> Path:
    """benchmarks/results/ of the course checkout, where `make bench` commits the multi-seed results; a
    FileNotFoundError outside a checkout (set $VLMLEARN_CHECKOUT to point at one)."""
    checkout = course_checkout()
    if checkout is None:
        raise FileNotFoundError(f"no course checkout (a folder holding benchmarks/results/) at or above {Path.cwd()}; "
                                f"run from the course repository or set VLMLEARN_CHECKOUT")
    return checkout / "benchmarks" / "results"


def record_results(notebook: str, metrics: dict[str, float], baselines: dict[str, float], *,
                   runtime_s: float | None = None, device: str | None = None, seed: int | None = None,
                   splits: dict[str, str] | None = None, folder: str | Path | None = None) -> Path:
    """Write {"notebook", "metrics", "baselines", "runtime_s", "device", "seed", "splits"} as JSON.

    Name each baseline after the metric it is for, then the kind: "i2t_r1_chance",
    "i2t_r1_untrained". Values must be finite numbers: a NaN headline is a bug to fix, not a result
    to record. `splits` says which data split each metric was measured on ("test", "val", ...);
    when given, it must name every metric. Returns the path written.
    """
    if not notebook or "/" in notebook:
        raise ValueError(f"notebook must be a file stem such as '00_data_landscape', got {notebook!r}")
    if splits is not None and set(splits) != set(metrics):
        raise ValueError(f"splits must name the split of every metric; missing {sorted(set(metrics) - set(splits))}, "
                         f"unknown {sorted(set(splits) - set(metrics))}")
    for group, values in (("metrics", metrics), ("baselines", baselines)):
        for k, v in values.items():
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v):
                raise ValueError(f"{group}[{k!r}] must be a finite number, got {v!r}")
    if device is None:
        from .runtime import get_device

        device = f"{get_device().type} ({platform.machine()}, {os.cpu_count()} cores)"
    out = Path(folder or results_dir())
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{notebook}.json"
    record = {"notebook": notebook, "metrics": {k: float(v) for k, v in metrics.items()},
              "baselines": {k: float(v) for k, v in baselines.items()},
              "runtime_s": None if runtime_s is None else round(float(runtime_s), 2),
              "device": device, "seed": seed, "splits": splits, "written_at": time.strftime("%Y-%m-%dT%H:%M:%S")}
    path.write_text(json.dumps(record, indent=2))
    return path


def load_results(folder: str | Path | None = None) -> list[dict]:
    folder = Path(folder or results_dir())
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]


def results_table(records: list[dict]) -> str:
    """A plain-text table: notebook, runtime, then each metric with its baselines."""
    if not records:
        return "no results yet: run the notebooks (make course)"
    rows = [("notebook", "runtime", "metric", "value", "baselines")]
    for r in records:
        first = True
        for k, v in r["metrics"].items():
            base = ", ".join(f"{b}={x:.3g}" for b, x in r["baselines"].items() if b.startswith(k + "_"))
            runtime = f"{r['runtime_s']:.0f} s" if first and r.get("runtime_s") is not None else ""
            rows.append((r["notebook"] if first else "", runtime, k, f"{v:.4g}", base))
            first = False
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def versions() -> dict[str, str]:
    """Python's version and those of the libraries a result depends on."""
    found = {"python": platform.python_version()}
    for package in ("torch", "torchvision", "transformers", "open_clip_torch", "numpy", "scikit-learn"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    return found


def write_record(name: str, record: dict, *, started: float, folder: str | Path | None = None,
                 script: str | Path | None = None) -> Path:
    """Write a benchmark script's `record` to benchmarks/results/<name>.json (or `folder`), with what every such file
    carries added: "runtime_s" (whole seconds since `started`, a `time.perf_counter()` reading), "versions", the
    "machine" and, given the `script` that wrote it, its "fingerprint" (`vlmlearn.provenance`)."""
    from .provenance import code_fingerprint, machine

    record = {**record, "runtime_s": round(time.perf_counter() - started), "versions": versions(), "machine": machine()}
    if script is not None:
        record["fingerprint"] = code_fingerprint(script=script)
    path = Path(folder or benchmark_dir()) / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1) + "\n")
    return path


def write_benchmark(notebook: str, seeds: list[int], runs: list[dict[str, float]], *, runtime_s: float,
                    folder: str | Path | None = None) -> Path:
    """Write {"notebook", "seeds", "metrics": {key: {"per_seed", "mean", "std"}}, "runtime_s", "versions"}
    from one metrics dict per seed (the keys every run has). Returns the path written."""
    if len(seeds) != len(runs) or not runs:
        raise ValueError(f"expected one metrics dict per seed, got {len(runs)} runs for seeds {seeds}")
    keys = [k for k in runs[0] if all(k in r for r in runs)]
    metrics = {}
    for k in keys:
        values = [round(float(r[k]), 6) for r in runs]  # metrics arrive as float32: keep the digits that mean something
        mean = sum(values) / len(values)
        std = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
        metrics[k] = {"per_seed": values, "mean": round(mean, 6), "std": round(std, 6)}
    record = {"notebook": notebook, "seeds": list(seeds), "metrics": metrics, "runtime_s": round(runtime_s, 1),
              "versions": versions(), "machine": f"{platform.machine()}, {os.cpu_count()} cores"}
    path = Path(folder or benchmark_dir()) / f"{notebook}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2) + "\n")
    return path


def load_benchmark(notebook: str, folder: str | Path | None = None) -> dict | None:
    """The committed multi-seed results of a notebook, or None when `make bench` has not written them (or
    there is no course checkout to read them from)."""
    if folder is None and course_checkout() is None:
        return None
    path = Path(folder or benchmark_dir()) / f"{notebook}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def seed_table(live: dict[str, float], benchmark: dict | None, keys: list[str]) -> str:
    """This run's numbers beside the committed seeds: key, live, mean ± std, per seed."""
    if benchmark is None:
        return "no committed multi-seed results yet (make bench)"
    seeds = ", ".join(map(str, benchmark["seeds"]))
    lines = [f"{'metric':28s} {'this run':>9s} {'mean ± std':>15s}   per seed ({seeds})"]
    for k in keys:
        m = benchmark["metrics"].get(k)
        if m is None:  # a metric added since the benchmark last ran
            lines.append(f"{k:28s} {live[k]:9.3f} {'not benched yet':>15s}   (make bench)")
            continue
        per_seed = ", ".join(f"{v:.3f}" for v in m["per_seed"])
        lines.append(f"{k:28s} {live[k]:9.3f} {m['mean']:8.3f} ± {m['std']:.3f}   {per_seed}")
    return "\n".join(lines)


def ordering(benchmark: dict, a: str, b: str, *, lower_is_better: bool = False) -> str:
    """A sentence comparing metrics a and b over the committed seeds: "a beats b" only when it does
    at every seed or the mean gap exceeds two standard deviations of the per-seed gap; otherwise
    "within noise". With `lower_is_better` (an error, a loss) the smaller value wins; gaps are
    printed as how much better the winner is."""
    x, y = benchmark["metrics"][a]["per_seed"], benchmark["metrics"][b]["per_seed"]
    gaps = [(v - u) if lower_is_better else (u - v) for u, v in zip(x, y)]
    mean = sum(gaps) / len(gaps)
    std = math.sqrt(sum((g - mean) ** 2 for g in gaps) / len(gaps))
    n = len(gaps)
    if all(g > 0 for g in gaps) or mean > 2 * std > 0:
        return f"{a} beats {b} at {sum(g > 0 for g in gaps)} of {n} seeds (gap {mean:+.3f} ± {std:.3f})"
    if all(g < 0 for g in gaps) or -mean > 2 * std > 0:
        return f"{b} beats {a} at {sum(g < 0 for g in gaps)} of {n} seeds (gap {-mean:+.3f} ± {std:.3f})"
    return f"{a} and {b} are within noise (gap {mean:+.3f} ± {std:.3f} over {n} seeds)"
