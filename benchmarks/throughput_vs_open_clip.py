"""Training throughput of `vlmlearn.train_clip` beside `open_clip_train`: same model, data and settings.

    python benchmarks/throughput_vs_open_clip.py            # make bench-throughput: about 3 minutes on 2 cores
    python benchmarks/throughput_vs_open_clip.py --images 512 --epochs 1 --repeats 1 --out build/tp.json   # a smoke run

- Model: vlmlearn/shipped/model_configs/vlmlearn-tiny.json, registered with open_clip (`open_clip.add_model_config`),
  so both trainers build the identical architecture and train transform with `open_clip.create_model_and_transforms`
  (a ViT on 32 px images in 4 px patches and a text transformer with CLIP's BPE vocabulary, 2 layers of width 128 each).
- Data: ShapesWorld training pairs exported as an open_clip CSV (tab-separated PNG paths and captions).
- Settings, the same for both: one process, --batch-size, --epochs, fp32, --workers DataLoader workers, AdamW with the
  same lr, wd and warm-up, seed 0, no validation, no checkpoint until the end.
- Measure: samples per second over every training step, from each trainer's own step timing (open_clip_train's
  "Batch (t)" window means, vlmlearn's per-window samples_per_second), which leaves out start-up (imports, model
  creation, reading the CSV); also the steady state (each trainer's first window of every epoch left out) and the
  whole command's wall-clock time. The trainers run alternately, `--repeats` times each.

Writes benchmarks/results/10_throughput_vs_open_clip.json.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CONFIG = HERE.parent / "vlmlearn" / "shipped" / "model_configs" / "vlmlearn-tiny.json"
OPEN_CLIP_MAIN = ("import sys, open_clip; open_clip.add_model_config(sys.argv.pop(1)); "
                  "from open_clip_train.main import main; main(sys.argv[1:])")
# "Train Epoch: 0 [ 1280/4096 (31%)] Data (t): 0.010 Batch (t): 0.254, ..."
OPEN_CLIP_LINE = re.compile(r"Train Epoch: (\d+) \[\s*(\d+)/(\d+).*?Batch \(t\): ([0-9.]+)")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=int, default=4096)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--log-every", type=int, default=8)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--out", type=Path, default=HERE / "results" / "10_throughput_vs_open_clip.json")
    return p


def common_flags(args) -> list[str]:
    return ["--train-data", "pairs.csv", "--dataset-type", "csv", "--batch-size", str(args.batch_size),
            "--epochs", str(args.epochs), "--lr", "5e-4", "--wd", "0.2", "--warmup", "10", "--precision", "fp32",
            "--workers", str(args.workers), "--log-every-n-steps", str(args.log_every), "--save-frequency", "0",
            "--seed", "0"]


def open_clip_windows(log: str, batch: int) -> list[dict]:
    """open_clip_train's log -> [{"epoch", "steps", "seconds"}] per window (its Batch (t) is the window mean)."""
    windows, previous = [], {}
    for epoch, done, _, mean in OPEN_CLIP_LINE.findall(log):
        epoch, steps_done = int(epoch), int(done) // batch
        steps = steps_done - previous.get(epoch, 0)
        previous[epoch] = steps_done
        windows.append({"epoch": epoch, "steps": steps, "seconds": steps * float(mean)})
    return windows


def vlmlearn_windows(log_path: Path, batch: int, steps_per_epoch: int) -> list[dict]:
    windows, last = [], 0
    for line in log_path.read_text().splitlines():
        r = json.loads(line)
        if "samples_per_second" in r:
            steps = r["step"] - last
            windows.append({"epoch": (last) // steps_per_epoch, "steps": steps,
                            "seconds": steps * batch / r["samples_per_second"]})
            last = r["step"]
    return windows


def rates(windows: list[dict], batch: int) -> dict:
    first_of_epoch = {w["epoch"]: i for i, w in reversed(list(enumerate(windows)))}
    steady = [w for i, w in enumerate(windows) if i not in first_of_epoch.values()]

    def total(ws):
        return sum(w["steps"] for w in ws) * batch / sum(w["seconds"] for w in ws) if ws else float("nan")

    return {"steps": sum(w["steps"] for w in windows), "samples_per_second": total(windows),
            "steady_samples_per_second": total(steady), "train_seconds": sum(w["seconds"] for w in windows)}


def run(command: list[str], cwd: Path) -> tuple[str, float]:
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHONWARNINGS": "ignore"}
    t0 = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{' '.join(command[:4])} failed:\n{done.stderr[-3000:]}")
    return done.stdout + done.stderr, time.perf_counter() - t0


def main() -> None:
    from vlmlearn import clip_models
    from vlmlearn.data import ShapesWorld, export_csv_pairs
    from vlmlearn.provenance import stamp
    from vlmlearn.results import versions

    args = build_parser().parse_args()
    t0 = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="throughput_"))
    export_csv_pairs(ShapesWorld(seed=0, image_size=32).pairs(args.images), work)
    steps_per_epoch = args.images // args.batch_size
    results = {"open_clip_train": [], "vlmlearn.train_clip": []}
    for repeat in range(args.repeats):
        name = f"oc{repeat}"
        log, wall = run([sys.executable, "-c", OPEN_CLIP_MAIN, str(CONFIG), *common_flags(args), "--model", CONFIG.stem,
                         "--csv-separator", "\t", "--logs", str(work / "logs"), "--name", name, "--report-to", ""],
                        work)
        results["open_clip_train"].append({**rates(open_clip_windows(log, args.batch_size), args.batch_size),
                                           "wall_seconds": wall})
        name = f"vl{repeat}"
        _, wall = run([sys.executable, "-m", "vlmlearn.train_clip", *common_flags(args), "--model", str(CONFIG),
                       "--logs", str(work / "logs"), "--name", name], work)
        results["vlmlearn.train_clip"].append({**rates(vlmlearn_windows(work / "logs" / name / "log.jsonl",
                                                                        args.batch_size, steps_per_epoch),
                                                       args.batch_size),
                                               "wall_seconds": wall})
        for trainer, runs in results.items():
            r = runs[-1]
            print(f"repeat {repeat} {trainer:20s} {r['steps']} steps  {r['samples_per_second']:7.1f} samples/s  "
                  f"(steady {r['steady_samples_per_second']:7.1f})  command {r['wall_seconds']:.1f} s")

    def mean(trainer, key):
        return sum(r[key] for r in results[trainer]) / len(results[trainer])

    summary = {key: {"open_clip_train": mean("open_clip_train", key),
                     "vlmlearn.train_clip": mean("vlmlearn.train_clip", key),
                     "ratio": mean("vlmlearn.train_clip", key) / mean("open_clip_train", key)}
               for key in ("samples_per_second", "steady_samples_per_second")}
    summary["wall_seconds"] = {t: mean(t, "wall_seconds") for t in results}
    record = {"benchmark": "throughput_vs_open_clip", "model": json.loads(CONFIG.read_text()),
              "model_parameters": sum(p.numel() for p in clip_models.create(str(CONFIG)).model.parameters()),
              "settings": {"images": args.images, "batch_size": args.batch_size, "epochs": args.epochs,
                           "steps": steps_per_epoch * args.epochs, "workers": args.workers, "precision": "fp32",
                           "processes": 1, "cpus": os.cpu_count(), "repeats": args.repeats},
              "summary": summary, "runs": results, "runtime_s": round(time.perf_counter() - t0, 1),
              "versions": versions(), **stamp(__file__)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=1))
    s = summary["samples_per_second"]
    print(f"vlmlearn.train_clip {s['vlmlearn.train_clip']:.1f} samples/s, open_clip_train {s['open_clip_train']:.1f}: "
          f"ratio {s['ratio']:.2f} (steady state {summary['steady_samples_per_second']['ratio']:.2f}); "
          f"wrote {args.out}")


if __name__ == "__main__":
    main()
