"""Reading notebook 09's grid (`benchmarks/results/09_label_efficiency.json`, written by
`benchmarks/label_efficiency.py` through `label_efficiency`): tables, verdicts and plots. Nothing here trains.

    print(grid_table(bench, "digits"))                  # mean ± std, one row per method, one column per label count
    verdicts(bench, "digits", baseline="supervised")   # the best method per label count, and whether it is noise
    fig, axes = plot_label_efficiency(bench)           # accuracy against labels per class, both tasks

`bench` is the benchmark record: {"seeds", "metrics": {"<task>_<method>_<labels>": {"per_seed", "mean", "std"}},
"runs": {key: {seed: {"curve", "confusion"}}}, ...}.
"""
from __future__ import annotations

import numpy as np

from .data import SHAPES
from .results import ordering

METHOD_NAMES = {"supervised": "supervised only", "pseudolabel": "pseudo-label (Lee)", "selftraining": "self-training",
                "pi": "Π-model", "meanteacher": "Mean Teacher", "fixmatch": "FixMatch", "zeroshot": "zero-shot CLIP",
                "probe_clip": "probe on CLIP", "ft_clip": "fine-tune CLIP", "ft_mae": "fine-tune MAE",
                "scratch_cnn": "CNN from scratch", "scratch_vit": "ViT from scratch",
                "fixmatch_clip": "FixMatch from CLIP"}


def parse_key(key: str) -> tuple[str, str, str]:
    """"shapes_probe_clip_5" -> ("shapes", "probe_clip", "5")."""
    task, rest = key.split("_", 1)
    method, labels = rest.rsplit("_", 1)
    return task, method, labels


def grid(bench: dict, task: str) -> dict[str, dict[str, dict]]:
    """{method: {labels: {"per_seed", "mean", "std"}}} of one task, in the benchmark's order."""
    out: dict[str, dict[str, dict]] = {}
    for key, m in bench["metrics"].items():
        t, method, labels = parse_key(key)
        if t == task:
            out.setdefault(method, {})[labels] = m
    if not out:
        tasks = sorted({parse_key(k)[0] for k in bench["metrics"]})
        raise ValueError(f"no metrics for task {task!r}; the benchmark has {tasks}")
    return out


def grid_table(bench: dict, task: str) -> str:
    """Mean ± std over the seeds, one row per method, one column per label count."""
    table = grid(bench, task)
    columns = list(dict.fromkeys(labels for row in table.values() for labels in row))
    lines = [f"{task + ': labels per class':22s}" + "".join(f"{c:>15s}" for c in columns)]
    for method, row in table.items():
        cells = [f"{row[c]['mean']:.3f} ± {row[c]['std']:.3f}" if c in row else "" for c in columns]
        lines.append(f"{METHOD_NAMES.get(method, method):22s}" + "".join(f"{c:>15s}" for c in cells))
    return "\n".join(lines)


def verdicts(bench: dict, task: str, *, baseline: str) -> list[str]:
    """For each label count: the best method by mean, and whether it beats the runner-up and `baseline` (the paired
    95 % interval of the difference excludes 0, `results.ordering`) or is within noise."""
    table = grid(bench, task)
    columns = list(dict.fromkeys(labels for row in table.values() for labels in row))
    lines = []
    for labels in columns:
        ranked = sorted((m for m in table if labels in table[m]), key=lambda m: -table[m][labels]["mean"])
        if len(ranked) < 2:
            continue
        best, second = ranked[:2]

        def key(m):
            return f"{task}_{m}_{labels}"

        where = "every label" if labels == "all" else f"{labels} per class"
        line = f"{where}: best {METHOD_NAMES[best]} {table[best][labels]['mean']:.3f}; " + \
               ordering(bench, key(best), key(second))
        base = baseline if baseline in table and labels in table[baseline] else None
        if base and base not in (best, second):
            line += "; " + ordering(bench, key(best), key(base))
        lines.append(line)
    return lines


def plot_label_efficiency(bench: dict, *, all_x: float = 130.0):
    """Accuracy against labels per class (log axis), one line per method with ± std bars, digits and
    shapes side by side. Digits' "all" is drawn at `all_x` labels per class; zero-shot as a line."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    for ax, task in zip(axes, ("digits", "shapes")):
        for method, row in grid(bench, task).items():
            if method == "zeroshot":
                ax.axhline(row["0"]["mean"], color="k", ls="--", lw=1.2, label=f"{METHOD_NAMES[method]} (0 labels)")
                continue
            xs = [all_x if c == "all" else int(c) for c in row]
            ax.errorbar(xs, [m["mean"] for m in row.values()], yerr=[m["std"] for m in row.values()], marker="o",
                        ms=4, capsize=3, label=METHOD_NAMES.get(method, method))
        ticks = sorted({all_x if c == "all" else int(c) for row in grid(bench, task).values() for c in row if c != "0"})
        ax.set_xscale("log")
        ax.set_xticks(ticks, ["all" if t == all_x else str(t) for t in ticks])
        ax.set_xlabel("labels per class (log scale)")
        ax.set_ylabel("test accuracy")
        ax.set_title(f"{task}: mean ± std over seeds {bench['seeds']}")
        ax.axhline(0.1 if task == "digits" else 1 / len(SHAPES), color="gray", ls=":", lw=1, label="chance")
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig, axes


def plot_run(bench: dict, task: str, method: str, labels: str):
    """One cell of the grid: its test accuracy during training at every seed, and its confusion
    matrix at the first seed. Returns (figure, one line of text)."""
    import matplotlib.pyplot as plt

    key = f"{task}_{method}_{labels}"
    if key not in bench["metrics"]:
        raise ValueError(f"{key!r} is not in the benchmark; it has e.g. {list(bench['metrics'])[:3]}")
    runs, m = bench["runs"][key], bench["metrics"][key]
    classes = [str(d) for d in range(10)] if task == "digits" else list(SHAPES)
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), gridspec_kw={"width_ratios": [1.4, 1]})
    for seed, run in runs.items():
        if run["curve"]:
            steps, accs = zip(*run["curve"])
            axes[0].plot(steps, accs, marker=".", label=f"seed {seed}")
    axes[0].set_xlabel("step")
    axes[0].set_ylabel("test accuracy")
    axes[0].set_ylim(0, 1.02)
    axes[0].set_title(f"{METHOD_NAMES.get(method, method)}, {labels} labels per class")
    if any(run["curve"] for run in runs.values()):
        axes[0].legend(fontsize=8)
    else:
        axes[0].text(0.5, 0.5, "no training: nothing to plot", ha="center", transform=axes[0].transAxes)
    first = runs[str(bench["seeds"][0])]["confusion"]
    if first is None:
        axes[1].axis("off")
        axes[1].text(0.5, 0.5, "no confusion matrix stored", ha="center")
    else:
        cm = np.array(first, dtype=float)
        cm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
        image = axes[1].imshow(cm, cmap="Blues", vmin=0, vmax=1)
        fig.colorbar(image, ax=axes[1], fraction=0.046, label="share of the true class")
        axes[1].set_xticks(range(len(classes)), classes, rotation=45, ha="right", fontsize=8)
        axes[1].set_yticks(range(len(classes)), classes, fontsize=8)
        axes[1].set_xlabel("predicted")
        axes[1].set_ylabel("true")
        axes[1].set_title(f"confusion, seed {bench['seeds'][0]} (rows sum to 1)")
    fig.tight_layout()
    per_seed = ", ".join(f"{v:.3f}" for v in m["per_seed"])
    return fig, f"{key}: {m['mean']:.3f} ± {m['std']:.3f} over seeds {bench['seeds']} ({per_seed})"
