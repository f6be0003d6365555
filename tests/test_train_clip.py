"""The command-line trainer and retrieval evaluation on real-format files the tests write (ShapesWorld exports)."""
import json
import os
import subprocess
import sys

import pytest
import torch

from vlmlearn.data import export_coco_captions, export_csv_pairs, export_flickr30k, read_pairs
from vlmlearn.data.loader import Collate, StepLoader, TrainPairs
from vlmlearn.train import train as vlmlearn_train

TINY_OPEN_CLIP = {"embed_dim": 32,
                  "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 8},
                  "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """ShapesWorld pairs exported in every format: 256 training images, 64 validation images."""
    from vlmlearn.data import ShapesWorld, paraphrases

    root = tmp_path_factory.mktemp("formats")
    world = ShapesWorld(seed=0, image_size=32)
    train, val = world.pairs(256), world.pairs(64, split="val")
    out = {"csv": export_csv_pairs(train, root / "csv"), "coco": export_coco_captions(train, root / "coco",
                                                                                      captions=paraphrases(train.attributes)),
           "flickr30k": export_flickr30k(train, root / "flickr", split="train"),
           "val": export_flickr30k(val, root / "flickr_val", split="val"),
           "test": export_flickr30k(val, root / "flickr_test", split="test")}
    folder = root / "folder" / "part0"
    export_coco_captions(train, root / "folder_src")
    folder.mkdir(parents=True)
    for i, caption in enumerate(train.captions[:64]):
        (folder / f"{i:04d}.png").write_bytes((root / "folder_src" / "images" / f"{i:06d}.png").read_bytes())
        (folder / f"{i:04d}.txt").write_text(caption)
    out["folder"] = root / "folder"
    out["config"] = root / "tiny-clip.json"
    out["config"].write_text(json.dumps(TINY_OPEN_CLIP))
    return out


def _train(files, tmp_path, *extra, kind="csv", data=None):
    from vlmlearn.train_clip import main

    argv = ["--train-data", str(data or files[kind]), "--dataset-type", kind, "--logs", str(tmp_path), "--name", "run",
            "--batch-size", "32", "--epochs", "1", "--warmup", "2", "--workers", "0", "--log-every-n-steps", "1",
            "--lr", "2e-3", *extra]
    summary = main(argv)
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    return summary, log


@pytest.mark.parametrize("kind", ["csv", "coco", "flickr30k", "folder"])
def test_trains_on_every_dataset_type(files, tmp_path, kind):
    summary, log = _train(files, tmp_path, kind=kind)
    steps = (64 if kind == "folder" else 256) // 32
    assert summary["steps"] == steps
    assert log[0]["event"] == "start" and log[0]["images"] == (64 if kind == "folder" else 256)
    losses = [r["loss"] for r in log if "loss" in r]
    assert len(losses) == steps and all(0 < x < 10 for x in losses)
    assert log[-1]["event"] == "done"
    assert {p.name for p in (tmp_path / "run").iterdir()} >= {"config.json", "log.jsonl", "model.safetensors",
                                                               "model.json", "checkpoints"}


def test_learns_and_validates_on_held_out_pairs(files, tmp_path):
    summary, log = _train(files, tmp_path, "--epochs", "12", "--val-data", str(files["val"]),
                          "--val-dataset-type", "flickr30k", "--val-frequency", "6", kind="coco")
    vals = [r["val"] for r in log if "val" in r and "step" in r]
    assert [r["step"] for r in log if "val" in r and "step" in r] == [48, 96]
    assert vals[-1] == summary["val"]
    losses = [r["loss"] for r in log if "loss" in r]
    assert sum(losses[-8:]) / 8 < 0.6 * sum(losses[:8]) / 8
    # 64 validation images, 1 caption each: chance R@1 is 1/64 and R@10 is 10/64
    assert summary["val"]["t2i_r10"] > 0.4 and summary["val"]["i2t_r10"] > 0.4, summary["val"]


def test_missing_and_corrupt_images_are_reported_by_path_and_counted(files, tmp_path):
    csv = files["csv"].read_text().splitlines()
    (files["csv"].parent / "images" / "broken.png").write_bytes(b"not a png")
    bad = tmp_path / "pairs.csv"
    bad.write_text("\n".join([csv[0], *csv[1:64], "images/broken.png\ta broken image",
                              "images/gone.png\ta lost image"]))
    summary, log = _train(files, tmp_path, "--images", str(files["csv"].parent), "--epochs", "3", data=bad)
    skipped = [r for r in log if r.get("event") == "skipped"]
    assert [r["path"].endswith("gone.png") for r in skipped] == [True] and "not found" in skipped[0]["reason"]
    corrupt = [r for r in log if r.get("event") == "corrupt_image"]
    assert corrupt and all("broken.png" in r["problem"] and "cannot decode" in r["problem"] for r in corrupt)
    assert sum(r["corrupt_images"] for r in log if "corrupt_images" in r) == len(corrupt) == 3  # read once an epoch
    assert summary["steps"] == 3 * 2  # 64 images: the broken one was replaced, batches kept their size


STOP_AFTER = """
import sys
import vlmlearn.train

def stop_after(steps, train=vlmlearn.train.train):  # as if the run was killed after saving step `steps`
    def interrupted(*args, callbacks=(), **kwargs):
        def stop(state):
            state.stop = state.stop or state.step == steps
        return train(*args, callbacks=[*callbacks, stop], **kwargs)
    vlmlearn.train.train = interrupted
"""
_STOP_AFTER_NAMES: dict = {}
exec(STOP_AFTER, _STOP_AFTER_NAMES)  # the same code the torchrun test's script runs
stop_after = _STOP_AFTER_NAMES["stop_after"]


def test_an_interrupted_run_resumes_where_it_stopped(files, tmp_path, monkeypatch):
    _, full = _train(files, tmp_path / "a", "--epochs", "4")
    monkeypatch.setattr("vlmlearn.train.train", vlmlearn_train)
    stop_after(16)
    _, first = _train(files, tmp_path / "b", "--epochs", "4")
    monkeypatch.setattr("vlmlearn.train.train", vlmlearn_train)
    _, second = _train(files, tmp_path / "b", "--epochs", "4", "--resume", "latest")

    def losses(log, start=0):
        return [r["loss"] for r in log if "loss" in r and r["step"] > start]

    assert len(losses(first)) == 16 and len(losses(second, 16)) == 16
    assert losses(second, 16) == pytest.approx(losses(full, 16), abs=1e-5)


def test_torchrun_two_processes_then_resume_on_one(files, tmp_path):
    """Two processes (gloo, DataLoader workers, an open_clip model) stopped after 2 of 4 epochs, resumed on one
    process: the same losses as one process for all 4 epochs (the global batch, its captions and crops do not
    change)."""
    common = ["--train-data", str(files["csv"]), "--batch-size", "16", "--warmup", "2", "--log-every-n-steps", "1",
              "--model", str(files["config"]), "--lr", "1e-3", "--logs", str(tmp_path), "--epochs", "4"]
    script = tmp_path / "interrupted.py"
    script.write_text(STOP_AFTER + "stop_after(16)\nfrom vlmlearn.train_clip import main\nmain()\n")
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           str(script), "--", *common, "--name", "two", "--workers", "1"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    from vlmlearn.train_clip import main

    main([*common, "--name", "two", "--workers", "0", "--resume", "latest"])
    main([*common, "--name", "one", "--workers", "2", "--batch-size", "32"])

    def read(name):
        return [json.loads(x) for x in (tmp_path / name / "log.jsonl").read_text().splitlines()]

    two, one = read("two"), read("one")
    starts = [r for r in two if r.get("event") == "start"]
    assert [(r["world_size"], r["per_process_batch"], r["global_batch"]) for r in starts] == [(2, 16, 32), (1, 32, 32)]

    def loss(log):
        return {r["step"]: r["loss"] for r in log if "loss" in r}

    assert len(loss(one)) == 4 * 256 // 32
    assert loss(two) == pytest.approx(loss(one), abs=2e-4)


def test_step_loader_splits_each_global_batch_the_same_way_for_any_world_size(files):
    data = read_pairs("csv", files["csv"])
    one = StepLoader(TrainPairs(data, lambda im: torch.zeros(1)), 32, collate=Collate(len))
    shares = [StepLoader(TrainPairs(data, lambda im: torch.zeros(1)), 32, collate=Collate(len), rank=r, world=4)
              for r in range(4)]
    for step in (0, 7, 8, 30):
        assert sum((s.indices(step) for s in shares), []) == one.indices(step)
    epoch = sorted(i for step in range(8) for i, _ in one.indices(step))
    assert epoch == list(range(256))  # each image once an epoch
    assert one.indices(8) != one.indices(0)  # a new order next epoch
    with pytest.raises(ValueError, match="does not split evenly over 3"):
        StepLoader(TrainPairs(data, lambda im: im), 32, collate=Collate(len), world=3)


def test_crops_depend_on_the_image_and_its_number_not_on_the_reader(files):
    from torchvision.transforms import v2 as T

    crop = T.Compose([T.RandomResizedCrop(16, scale=(0.3, 1.0)), T.PILToTensor()])
    pairs = TrainPairs(read_pairs("csv", files["csv"]), crop)
    torch.manual_seed(1)
    first = pairs[(3, 12345)][0]
    torch.manual_seed(2)
    state = torch.get_rng_state()
    assert torch.equal(pairs[(3, 12345)][0], first)
    assert torch.equal(torch.get_rng_state(), state)  # the caller's generator is left as it was
    assert not torch.equal(pairs[(3, 777)][0], first)


def test_read_pairs_says_what_is_wrong(files, tmp_path):
    with pytest.raises(ValueError, match="dataset type must be one of"):
        read_pairs("webdataset", files["csv"])
    with pytest.raises(FileNotFoundError, match="not found"):
        read_pairs("coco", tmp_path / "nothing.json")
    with pytest.raises(ValueError, match="no image with a caption.*split='test'"):
        read_pairs("flickr30k", files["flickr30k"], split="test")
    (tmp_path / "f").mkdir()
    (tmp_path / "f" / "a.png").write_bytes((files["folder"] / "part0" / "0000.png").read_bytes())
    with pytest.raises(ValueError, match=r"expected a non-empty a.txt"):
        read_pairs("folder", tmp_path / "f")
    data = read_pairs("flickr30k", files["flickr30k"])
    assert len(data) == 256 and data.skipped == []


def test_eval_retrieval_matches_the_in_memory_evaluation(files, tmp_path):
    """The command's files, transforms and DataLoader give the recall the notebooks' code computes from tensors."""
    from vlmlearn.data import load_flickr30k
    from vlmlearn.eval import retrieval_recall
    from vlmlearn.eval_retrieval import main

    _train(files, tmp_path, "--epochs", "4", kind="coco")
    out = main(["--data", str(files["test"]), "--pretrained", str(tmp_path / "run" / "model.safetensors"),
                "--workers", "2", "--batch-size", "20", "--output", str(tmp_path / "scores.json")])
    from vlmlearn import clip_models

    bundle = clip_models.load(tmp_path / "run" / "model.safetensors")
    test = load_flickr30k(files["test"], files["test"].parent / "images", split="test")
    with torch.no_grad():
        sim = (bundle.model.encode_image(test.images())
               @ bundle.model.encode_text(bundle.tokenizer([c[0] for c in test.captions])).T)
    expected = retrieval_recall(sim, torch.arange(len(test)), ks=(1, 5, 10))
    assert {k: out[k] for k in expected} == pytest.approx(expected, abs=1e-6)
    assert out["images"] == 64 and out["captions"] == 64 and out["t2i_r10"] > 10 / 64
    assert json.loads((tmp_path / "scores.json").read_text())["metrics"]["text_retrieval_recall@1"] == out["i2t_r1"]


def test_eval_retrieval_on_an_open_clip_model_from_a_local_file(files, tmp_path):
    import open_clip

    from vlmlearn.eval_retrieval import main

    open_clip.add_model_config(files["config"])
    torch.manual_seed(0)
    model, _, preprocess = open_clip.create_model_and_transforms("tiny-clip")
    torch.save(model.state_dict(), tmp_path / "random.pt")
    out = main(["--data", str(files["test"]), "--model", str(files["config"]),
                "--pretrained", str(tmp_path / "random.pt"), "--workers", "0"])
    from vlmlearn.data import load_flickr30k
    from vlmlearn.eval import retrieval_recall

    test = load_flickr30k(files["test"], files["test"].parent / "images", split="test")
    tokenizer = open_clip.get_tokenizer("tiny-clip")
    from PIL import Image

    with torch.no_grad():
        img = model.eval().encode_image(torch.stack([preprocess(Image.open(p).convert("RGB")) for p in test.paths]),
                                        normalize=True)
        sim = img @ model.encode_text(tokenizer([c[0] for c in test.captions]), normalize=True).T
    expected = retrieval_recall(sim, torch.arange(len(test)), ks=(1, 5, 10))
    assert {k: out[k] for k in expected} == pytest.approx(expected, abs=1e-6)
    with pytest.raises(FileNotFoundError, match="nothing is downloaded"):
        main(["--data", str(files["test"]), "--model", "ViT-B-32", "--pretrained", str(tmp_path / "absent.pt")])
