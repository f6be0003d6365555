"""benchmarks/throughput_vs_open_clip.py: its log readers, and a tiny run of both trainers on the same CSV."""
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "throughput_vs_open_clip.py"
spec = importlib.util.spec_from_file_location("throughput", SCRIPT)
throughput = importlib.util.module_from_spec(spec)
spec.loader.exec_module(throughput)

# verbatim open_clip_train log lines (as long as open_clip writes them: wrapping them would hide the format)
OPEN_CLIP_LOG = """
2026-12-01,12:25:40 | INFO | Train Epoch: 0 [  128/4096 (3%)] Data (t): 1.201 Batch (t): 2.000, 64.0/s, 64.0/s/gpu LR: 0.000050 Logit Scale: 14.286 Contrastive_loss: 4.8 (4.8) Loss: 4.8 (4.8)
2026-12-01,12:25:44 | INFO | Train Epoch: 0 [ 1152/4096 (28%)] Data (t): 0.010 Batch (t): 0.500, 256.0/s, 256.0/s/gpu LR: 0.000450 Logit Scale: 14.290 Contrastive_loss: 4.5 (4.6) Loss: 4.5 (4.6)
2026-12-01,12:25:48 | INFO | Train Epoch: 0 [ 2176/4096 (53%)] Data (t): 0.010 Batch (t): 0.250, 512.0/s, 512.0/s/gpu LR: 0.000450 Logit Scale: 14.290 Contrastive_loss: 4.5 (4.6) Loss: 4.5 (4.6)
2026-12-01,12:25:52 | INFO | Train Epoch: 1 [  128/4096 (3%)] Data (t): 1.000 Batch (t): 1.000, 128.0/s, 128.0/s/gpu LR: 0.000450 Logit Scale: 14.290 Contrastive_loss: 4.5 (4.6) Loss: 4.5 (4.6)
2026-12-01,12:25:56 | INFO | Train Epoch: 1 [ 1152/4096 (28%)] Data (t): 0.010 Batch (t): 0.500, 256.0/s, 256.0/s/gpu LR: 0.000450 Logit Scale: 14.290 Contrastive_loss: 4.5 (4.6) Loss: 4.5 (4.6)
"""  # noqa: E501


def test_open_clip_log_windows_and_rates():
    windows = throughput.open_clip_windows(OPEN_CLIP_LOG, 128)
    assert [(w["epoch"], w["steps"]) for w in windows] == [(0, 1), (0, 8), (0, 8), (1, 1), (1, 8)]
    assert [w["seconds"] for w in windows] == [2.0, 4.0, 2.0, 1.0, 4.0]
    r = throughput.rates(windows, 128)
    assert r["steps"] == 26 and r["samples_per_second"] == pytest.approx(26 * 128 / 13.0)
    assert r["steady_samples_per_second"] == pytest.approx(24 * 128 / 10.0)  # first window of each epoch left out


def test_vlmlearn_log_windows(tmp_path):
    log = tmp_path / "log.jsonl"
    rows = [{"event": "start"}, {"step": 4, "samples_per_second": 64.0}, {"step": 8, "samples_per_second": 128.0},
            {"step": 10, "samples_per_second": 128.0}]
    log.write_text("\n".join(json.dumps(r) for r in rows))
    windows = throughput.vlmlearn_windows(log, 32, steps_per_epoch=8)
    assert [(w["epoch"], w["steps"], w["seconds"]) for w in windows] == [(0, 4, 2.0), (0, 4, 1.0), (1, 2, 0.5)]


def test_both_trainers_run_on_the_same_exported_csv(tmp_path):
    pytest.importorskip("open_clip_train.main")
    out = tmp_path / "tp.json"
    done = subprocess.run([sys.executable, str(SCRIPT), "--images", "256", "--batch-size", "32", "--epochs", "2",
                           "--repeats", "1", "--log-every", "2", "--workers", "1", "--out", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    record = json.loads(out.read_text())
    for trainer in ("open_clip_train", "vlmlearn.train_clip"):
        run = record["runs"][trainer][0]
        assert run["steps"] == 16 and run["samples_per_second"] > 0, (trainer, run)
    assert record["summary"]["samples_per_second"]["ratio"] > 0 and record["model_parameters"] > 1e6
