"""The results contracts. Each notebook writes its headline numbers to
`build/results/<notebook>.json` (or $VLMLEARN_RESULTS_DIR), and `make course` prints them as a table.
`make bench` re-runs notebooks at five seeds and commits `benchmarks/results/<notebook>.json`, stamped with the
fingerprint of the code that produced it; a notebook shows its live run beside those numbers (`seed_table`) and claims
an ordering only when the paired 95 % interval of the difference excludes 0 (`ordering`). `BUDGETS_S` holds each
notebook's CPU budget.

    record_results("00_data_landscape", metrics={...}, baselines={...}, runtime_s=..., seed=SEED)
"""
from __future__ import annotations

import json
import math
import os
import platform
import time
import warnings
from importlib import metadata
from pathlib import Path

from .assets import course_checkout

# Each notebook's CPU budget in seconds: "Restart & Run All" on a 2-core laptop CPU must finish within it. The README's
# table and each notebook's first and last cells read this table; tests/test_notebook_hygiene.py holds every committed
# run to it. A data file, not code: a new notebook's budget changes no code fingerprint (`vlmlearn.provenance`).
BUDGETS_S: dict[str, int] = json.loads((Path(__file__).parent / "shipped" / "budgets.json").read_text())


def budget(notebook: str) -> str:
    """One line for a notebook's introduction: its CPU budget (`BUDGETS_S`), e.g. "CPU budget: 180 s on 2 cores"."""
    if notebook not in BUDGETS_S:
        raise ValueError(f"no budget for {notebook!r}; the notebooks with one: {sorted(BUDGETS_S)}")
    return (f"CPU budget: {BUDGETS_S[notebook]} s on a 2-core laptop (vlmlearn.results.BUDGETS_S); "
            f"the last cell prints how long this run took")


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
    carries added: "runtime_s" (whole seconds since `started`, a `time.perf_counter()` reading), "versions" and,
    given the `script` that wrote it, its stamp (`vlmlearn.provenance.stamp`: fingerprint, commit, machine)."""
    from .provenance import machine, stamp

    record = {**record, "runtime_s": round(time.perf_counter() - started), "versions": versions(), "machine": machine()}
    if script is not None:
        record.update(stamp(script))
    path = Path(folder or benchmark_dir()) / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1) + "\n")
    return path


def write_benchmark(notebook: str, seeds: list[int], runs: list[dict[str, float]], *, runtime_s: float,
                    folder: str | Path | None = None, source: str | Path | None = None) -> Path:
    """Write {"notebook", "seeds", "metrics": {key: {"per_seed", "mean", "std"}}, "runtime_s", "versions"} from one
    metrics dict per seed (the keys every run has), stamped (`vlmlearn.provenance.stamp`) with the notebook file
    `source` that produced it (default: notebooks/<notebook>.ipynb of the course checkout): its fingerprint, the commit
    and the machine. Returns the path written."""
    from .provenance import stamp

    if len(seeds) != len(runs) or not runs:
        raise ValueError(f"expected one metrics dict per seed, got {len(runs)} runs for seeds {seeds}")
    keys = [k for k in runs[0] if all(k in r for r in runs)]
    metrics = {}
    for k in keys:
        values = [round(float(r[k]), 6) for r in runs]  # metrics arrive as float32: keep the digits that mean something
        mean = sum(values) / len(values)
        std = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
        metrics[k] = {"per_seed": values, "mean": round(mean, 6), "std": round(std, 6)}
    source = Path(source or (course_checkout() or Path.cwd()) / "notebooks" / f"{notebook}.ipynb")
    record = {"notebook": notebook, "seeds": list(seeds), "metrics": metrics, "runtime_s": round(runtime_s, 1),
              "versions": versions(), **stamp(source)}
    path = Path(folder or benchmark_dir()) / f"{notebook}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2) + "\n")
    return path


def load_benchmark(name: str, folder: str | Path | None = None) -> dict | None:
    """The committed benchmark file benchmarks/results/<name>.json (a notebook's seeds, or a grid such as
    "03_finetune_recipe"), or None when `make bench` has not written it (or there is no course checkout to read it
    from). A file made by code that has changed since is returned with a warning that says so
    (`vlmlearn.provenance.staleness`)."""
    from .provenance import staleness

    if folder is None and course_checkout() is None:
        return None
    path = Path(folder or benchmark_dir()) / f"{name}.json"
    if not path.is_file():
        return None
    record = json.loads(path.read_text())
    if folder is None and (problem := staleness(record, name=f"benchmarks/results/{path.name}",
                                                refresh=f"make bench NB={name[:2]}")):
        warnings.warn(problem, stacklevel=2)
    return record


# A run repeated on the same machine with the same code and seed gives the committed numbers to this tolerance (three
# notebooks re-run at seed 0 on a second machine of the same kind matched their seed files to 0.001). On another CPU,
# float rounding differs and compounds through training: a seed's numbers can move as far as a change of seed does.
REPRODUCE_TOL = 0.001


def seed_table(live: dict[str, float], benchmark: dict | None, keys: list[str], *, seed: int | None = None) -> str:
    """This run's numbers beside the committed seeds: per key, the live value, the committed value at this run's
    `seed` (flagged with * when they differ by more than REPRODUCE_TOL), mean ± std over the seeds, the mean's 95 %
    interval (Student t) and every seed. A header names the machine of each; a footer says what a flag means there."""
    from .provenance import machine

    if benchmark is None:
        return "no committed multi-seed results yet (make bench)"
    seeds = benchmark["seeds"]
    here, there = machine(), benchmark.get("machine", "a machine it does not name")
    column = seed if seed in seeds else None
    lines = [f"this run:  {here}", f"committed: {there}" + (" (the same machine)" if here == there else ""),
             f"{'metric':28s} {'this run':>9s} {f'seed {column}' if column is not None else '':>9s} "
             f"{'mean ± std':>15s}  {'95 % CI of the mean':>19s}   per seed ({', '.join(map(str, seeds))})"]
    flagged = False
    for k in keys:
        m = benchmark["metrics"].get(k)
        if m is None:  # a metric added since the benchmark last ran
            lines.append(f"{k:28s} {live[k]:9.3f} {'':9s} {'not benched yet':>15s}   (make bench)")
            continue
        committed = ""
        if column is not None:
            value = m["per_seed"][seeds.index(column)]
            flag = abs(live[k] - value) > REPRODUCE_TOL
            flagged |= flag
            committed = f"{value:.3f}{'*' if flag else ' '}"
        _, low, high = mean_interval(m["per_seed"])
        per_seed = ", ".join(f"{v:.3f}" for v in m["per_seed"])
        lines.append(f"{k:28s} {live[k]:9.3f} {committed:>9s} {m['mean']:8.3f} ± {m['std']:.3f}  "
                     f"[{low:7.3f}, {high:7.3f}]   {per_seed}")
    if flagged:
        lines.append(f"* this run differs from the committed run of seed {column} by more than {REPRODUCE_TOL}: "
                     + ("same machine, so the code or data changed since `make bench` (fingerprints say which)"
                        if here == there else "another CPU, whose float rounding compounds through training; "
                        "compare with the spread across seeds instead (notebook 00 shows it)"))
    return "\n".join(lines)


def t_quantile(p: float, df: int) -> float:
    """The `p` quantile (0.5 < p < 1) of Student's t distribution with `df` (a positive integer) degrees of freedom,
    equal to `scipy.stats.t.ppf(p, df)` to 1e-9: bisection on the t CDF, which for an integer df is a finite series
    in theta = atan(t / sqrt(df)) (Abramowitz & Stegun 26.7.3-4)."""
    if not 0.5 < p < 1:
        raise ValueError(f"p must be between 0.5 and 1, got {p}")
    if df < 1 or int(df) != df:
        raise ValueError(f"df must be a positive integer, got {df}")

    def central(t: float) -> float:  # P(|T| < t)
        theta = math.atan(t / math.sqrt(df))
        c2, term = math.cos(theta) ** 2, 1.0
        if df % 2:  # odd: 2/pi (theta + sin cos (1 + 2/3 cos^2 + 2*4/(3*5) cos^4 + ...))
            total = 1.0 if df > 1 else 0.0
            for k in range(1, (df - 1) // 2):
                term *= c2 * 2 * k / (2 * k + 1)
                total += term
            return 2 / math.pi * (theta + math.sin(theta) * math.cos(theta) * total)
        total = 1.0  # even: sin (1 + 1/2 cos^2 + 1*3/(2*4) cos^4 + ...)
        for k in range(1, df // 2):
            term *= c2 * (2 * k - 1) / (2 * k)
            total += term
        return math.sin(theta) * total

    lo, hi = 0.0, 1.0
    while central(hi) < 2 * p - 1:
        hi *= 2
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if central(mid) < 2 * p - 1 else (lo, mid)
        if hi - lo < 1e-12:
            break
    return (lo + hi) / 2


def mean_interval(values: list[float], level: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high): the mean of `values` and its `level` confidence interval from Student's t (n - 1 degrees of
    freedom, the sample standard deviation). With one value, or none that differ, the interval is the mean itself."""
    n = len(values)
    if n == 0:
        raise ValueError("mean_interval needs at least one value")
    mean = sum(values) / n
    if n == 1:
        return mean, mean, mean
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = t_quantile(0.5 + level / 2, n - 1) * sd / math.sqrt(n)
    return mean, mean - half, mean + half


def paired_difference(benchmark: dict, a: str, b: str, *, lower_is_better: bool = False) -> dict:
    """How much better metric `a` is than `b`, seed by seed: {"mean", "low", "high", "n", "ahead"} where mean and
    [low, high] are the mean per-seed difference and its 95 % paired-t interval, and "ahead" counts the seeds at which
    `a` is better. Differences are "better minus worse" in the metric's direction: with `lower_is_better`, b - a."""
    x, y = benchmark["metrics"][a]["per_seed"], benchmark["metrics"][b]["per_seed"]
    if len(x) != len(y):
        raise ValueError(f"{a} has {len(x)} seeds and {b} {len(y)}; a paired difference needs the same seeds")
    gaps = [(v - u) if lower_is_better else (u - v) for u, v in zip(x, y)]
    mean, low, high = mean_interval(gaps)
    return {"mean": mean, "low": low, "high": high, "n": len(gaps), "ahead": sum(g > 0 for g in gaps)}


def ordering(benchmark: dict, a: str, b: str, *, lower_is_better: bool = False) -> str:
    """A sentence comparing metrics a and b over the committed seeds, e.g. "a beats b: a - b = +0.043, 95 % CI
    [+0.021, +0.065] (paired t over 5 seeds; a ahead at 5/5)". "beats" only where the paired interval excludes 0,
    otherwise "within noise"; a seed count alone decides nothing. With `lower_is_better` (an error, a loss) the smaller
    value wins and the difference is still printed as a - b."""
    d = paired_difference(benchmark, a, b, lower_is_better=lower_is_better)
    sign = -1 if lower_is_better else 1
    low, high = sorted((sign * d["low"], sign * d["high"]))
    detail = (f"{a} - {b} = {sign * d['mean']:+.3f}, 95 % CI [{low:+.3f}, {high:+.3f}] (paired t over {d['n']} seeds; "
              f"{a} ahead at {d['ahead']}/{d['n']}{', lower is better' if lower_is_better else ''})")
    if d["n"] < 2:
        return f"one seed cannot order {a} and {b}: {detail}"
    if d["low"] > 0:
        return f"{a} beats {b}: {detail}"
    if d["high"] < 0:
        return f"{b} beats {a}: {detail}"
    return f"{a} and {b} are within noise: {detail}"
