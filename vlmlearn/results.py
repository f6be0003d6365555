"""The results contract: each notebook writes its headline numbers to
`build/results/<notebook>.json` (or $VLMLEARN_RESULTS_DIR), and `make course` prints them as a table.

    record_results("00_data_landscape", metrics={...}, baselines={...}, runtime_s=..., seed=SEED)
"""
from __future__ import annotations

import json
import math
import os
import platform
import time
from pathlib import Path


def results_dir() -> Path:
    """$VLMLEARN_RESULTS_DIR, else build/results in the course checkout (wherever the notebook runs
    from), else build/results under the current folder."""
    if os.environ.get("VLMLEARN_RESULTS_DIR"):
        return Path(os.environ["VLMLEARN_RESULTS_DIR"])
    checkout = Path(__file__).resolve().parent.parent
    root = checkout if (checkout / "pyproject.toml").is_file() else Path.cwd()
    return root / "build" / "results"


def record_results(notebook: str, metrics: dict[str, float], baselines: dict[str, float], *,
                   runtime_s: float | None = None, device: str | None = None, seed: int | None = None,
                   folder: str | Path | None = None) -> Path:
    """Write {"notebook", "metrics", "baselines", "runtime_s", "device", "seed"} as JSON.

    Name each baseline after the metric it is for, then the kind: "i2t_r1_chance",
    "i2t_r1_untrained". Values must be finite numbers: a NaN headline is a bug to fix, not a result
    to record. Returns the path written.
    """
    if not notebook or "/" in notebook:
        raise ValueError(f"notebook must be a file stem such as '00_data_landscape', got {notebook!r}")
    for group, values in (("metrics", metrics), ("baselines", baselines)):
        for k, v in values.items():
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v):
                raise ValueError(f"{group}[{k!r}] must be a finite number, got {v!r}")
    if device is None:
        from .train import get_device

        device = f"{get_device().type} ({platform.machine()}, {os.cpu_count()} cores)"
    out = Path(folder or results_dir())
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{notebook}.json"
    record = {"notebook": notebook, "metrics": {k: float(v) for k, v in metrics.items()},
              "baselines": {k: float(v) for k, v in baselines.items()},
              "runtime_s": None if runtime_s is None else round(float(runtime_s), 2),
              "device": device, "seed": seed, "written_at": time.strftime("%Y-%m-%dT%H:%M:%S")}
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
