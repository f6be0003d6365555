"""Fine-tuning from pretrained weights with the command-line trainer, on the bundled CSV samples (24 images) and a tiny
open_clip ViT: locked towers, gradient accumulation, webdataset shards, TensorBoard, SigLIP, open_clip's files both
ways, and the errors bad input gets."""
import json

import pytest
import torch

from vlmlearn.data.loader import SAMPLES_DIR

CSV = SAMPLES_DIR / "csv" / "pairs.csv"
TINY = {"embed_dim": 16,
        "vision_cfg": {"image_size": 32, "layers": 2, "width": 32, "head_width": 16, "patch_size": 8},
        "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2}}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny open_clip model config and a "pretrained" checkpoint of it, saved as open_clip_train saves one."""
    import open_clip

    root = tmp_path_factory.mktemp("tiny")
    config = root / "tiny-ft.json"
    config.write_text(json.dumps(TINY))
    open_clip.add_model_config(config)
    torch.manual_seed(0)
    model = open_clip.create_model("tiny-ft")
    weights = root / "pretrained.pt"
    torch.save({"epoch": 3, "name": "pre", "state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}},
               weights)
    return {"config": config, "weights": weights, "state": model.state_dict()}


def run(tmp_path, *extra, name="run", data=CSV):
    from vlmlearn.train_clip import main

    summary = main(["--train-data", str(data), "--logs", str(tmp_path), "--name", name, "--batch-size", "8",
                    "--epochs", "1", "--warmup", "1", "--workers", "0", "--log-every-n-steps", "1", "--lr", "1e-3",
                    *extra])
    log = [json.loads(line) for line in (tmp_path / name / "log.jsonl").read_text().splitlines()]
    return summary, log


@pytest.fixture(scope="module")
def locked(tiny, tmp_path_factory):
    """Two epochs from the pretrained checkpoint with the image tower locked, reported to TensorBoard."""
    root = tmp_path_factory.mktemp("locked")
    summary, log = run(root, "--model", str(tiny["config"]), "--pretrained", str(tiny["weights"]), "--lock-image",
                       "--epochs", "2", "--report-to", "tensorboard")
    return root / "run", summary, log


def test_lock_image_keeps_every_image_weight_and_trains_the_text_tower(tiny, locked):
    from vlmlearn import clip_models

    folder, summary, log = locked
    after = clip_models.load(folder / "model.safetensors").model.state_dict()
    image = [k for k in after if k.startswith("visual.")]
    text = [k for k in after if k.startswith(("transformer.", "token_embedding", "ln_final", "text_projection"))]
    assert image and text
    assert all(torch.equal(after[k], tiny["state"][k]) for k in image)
    moved = [k for k in text if not torch.equal(after[k], tiny["state"][k])]
    assert len(moved) > len(text) // 2, moved
    start = log[0]
    frozen = sum(tiny["state"][k].numel() for k in image)
    assert start["trainable_parameters"] == sum(v.numel() for v in tiny["state"].values()) - frozen
    assert summary["steps"] == 2 * 24 // 8


def test_tensorboard_events_are_written_and_read_back(locked):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    folder, summary, log = locked
    events = EventAccumulator(str(folder / "tensorboard"))
    events.Reload()
    losses = events.Scalars("train/loss")
    assert [e.step for e in losses] == list(range(1, summary["steps"] + 1))
    assert [e.value for e in losses] == pytest.approx([r["loss"] for r in log if "loss" in r], rel=1e-6)
    assert "train/lr" in events.Tags()["scalars"]


def test_open_clip_loads_the_run_and_gives_the_same_embeddings(locked, tiny):
    import open_clip

    from vlmlearn import clip_models

    folder, _, _ = locked
    config = json.loads((folder / "open_clip_config.json").read_text())
    assert config["model_cfg"] == TINY and config["preprocess_cfg"]["size"] in (32, (32, 32), [32, 32])
    theirs, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{folder}")
    ours = clip_models.load(folder / "model.safetensors")
    from PIL import Image

    images = torch.stack([preprocess(Image.open(p).convert("RGB"))
                          for p in sorted((CSV.parent / "images").glob("*.png"))[:4]])
    ids = open_clip.get_tokenizer(f"local-dir:{folder}")(["a red circle", "a small blue square"])
    with torch.no_grad():
        assert torch.allclose(theirs.eval().encode_image(images), ours.model.encode_image(images), atol=1e-6)
        assert torch.allclose(theirs.encode_text(ids), ours.model.encode_text(ours.tokenizer(
            ["a red circle", "a small blue square"])), atol=1e-6)
    also, _, _ = open_clip.create_model_and_transforms("tiny-ft", pretrained=str(folder / "model.safetensors"))
    assert all(torch.equal(a, b) for a, b in zip(also.state_dict().values(), theirs.state_dict().values()))


def test_lock_text_with_unlocked_layers_follows_open_clip(tiny):
    import open_clip

    from vlmlearn.clip_finetune import lock_towers

    model = open_clip.create_model("tiny-ft")
    lock_towers(model, text=True, text_unlocked_layers=2, freeze_layer_norm=True)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    # open_clip's text groups: embeddings, block 0, (block 1 + ln_final), projection: the last two are unlocked
    assert {n for n in trainable if not n.startswith("visual.")} == {
        n for n, _ in model.named_parameters() if n.startswith("transformer.resblocks.1.") and ".ln_" not in n
    } | {"text_projection", "logit_scale"}
    assert all(p.requires_grad for n, p in model.named_parameters() if n.startswith("visual."))


def test_accumulated_gradient_is_the_whole_batch_gradient(tiny):
    """--accum-freq 2 on a batch of 8 gives the gradient of the loss over all 8 (to float precision), whichever
    micro-batch each row was computed in; the trainer's stand-in loss hands that gradient to `train`."""
    import open_clip

    from vlmlearn.clip_finetune import contrastive_step
    from vlmlearn.losses import clip_loss

    torch.manual_seed(1)
    model = open_clip.create_model("tiny-ft")
    images, ids = torch.rand(8, 3, 32, 32), torch.randint(1, 1000, (8, 16))

    def gradient(accum):
        model.zero_grad()
        loss, _ = contrastive_step(clip_loss, accum_freq=accum)(model, (images, ids))
        loss.backward()
        return loss.item(), {n: p.grad.clone() for n, p in model.named_parameters()}

    (whole, g1), (accumulated, g2) = gradient(1), gradient(2)
    assert accumulated == pytest.approx(whole, abs=1e-6)
    for name in g1:
        assert torch.allclose(g1[name], g2[name], atol=1e-6, rtol=1e-4), name


def test_accum_freq_2_at_batch_4_trains_as_batch_8(tiny, tmp_path):
    """The same global batches (8 images a step) and the same gradients, so the same losses step after step; AdamW's
    rescaling leaves weights equal only to float noise (see test_distributed's note on Adam), losses agree to 1e-4."""
    common = ("--model", str(tiny["config"]), "--pretrained", str(tiny["weights"]), "--epochs", "2")
    _, eight = run(tmp_path, *common, name="eight")
    _, four = run(tmp_path, *common, "--batch-size", "4", "--accum-freq", "2", name="four")
    assert four[0]["global_batch"] == eight[0]["global_batch"] == 8 and four[0]["accum_freq"] == 2
    losses = [[r["loss"] for r in log if "loss" in r] for log in (eight, four)]
    assert len(losses[0]) == 6
    assert losses[1] == pytest.approx(losses[0], abs=1e-4)


def test_webdataset_shards_train_and_count_their_samples(tmp_path):
    wds = pytest.importorskip("webdataset")
    rows = [line.split("\t") for line in CSV.read_text().splitlines()[1:]]
    first_caption = {}
    for path, caption in rows:
        first_caption.setdefault(path, caption)
    shards = tmp_path / "shards"
    shards.mkdir()
    items = sorted(first_caption.items())
    for s in range(2):
        with wds.TarWriter(str(shards / f"{s:05d}.tar")) as sink:
            for i, (path, caption) in enumerate(items[s * 12:(s + 1) * 12]):
                sample = {"__key__": f"{s:05d}{i:04d}", "png": (CSV.parent / path).read_bytes(), "txt": caption}
                if s == 1 and i == 0:
                    del sample["txt"]  # a sample without its caption: skipped and said so
                sink.write(sample)
    summary, log = run(tmp_path, "--dataset-type", "webdataset", "--train-num-samples", "23",
                       data=str(shards / "{00000..00001}.tar"))
    assert log[0]["images"] == 23 and log[0]["skipped"] == 1
    skipped = [r for r in log if r.get("event") == "skipped"]
    assert skipped[0]["path"].endswith("00001.tar/000010000") and "no caption" in skipped[0]["reason"]
    assert summary["steps"] == 23 // 8 and not [r for r in log if r.get("event") == "train_num_samples"]
    from vlmlearn.data.tar_shards import TarPairs, read_shards

    data = read_shards(str(shards / "00000.tar") + "::" + str(shards / "00001.tar"))
    assert [s.caption for s in data.samples] == [c for p, c in items if p != items[12][0]]
    image, caption, problems = TarPairs(data, lambda im: im.size)[(5, 0)]
    assert image == (32, 32) and caption == items[5][1] and problems == []
    with pytest.raises(FileNotFoundError, match="shard not found: .*00002.tar"):
        run(tmp_path, "--dataset-type", "webdataset", data=str(shards / "{00000..00002}.tar"), name="missing")


def test_siglip_trains_an_open_clip_model_with_a_bias_and_saves_it(tiny, tmp_path):
    from vlmlearn import clip_models

    summary, log = run(tmp_path, "--model", str(tiny["config"]), "--pretrained", str(tiny["weights"]), "--siglip")
    bundle = clip_models.load(tmp_path / "run" / "model.safetensors")
    assert bundle.record["model"] == "tiny-ft-sigmoid" and bundle.record["config"]["init_logit_bias"] == -10
    assert bundle.model.logit_bias is not None and bundle.model.logit_bias.item() != -10  # it was trained
    assert 0 < summary["final_loss"] < 50
    with pytest.raises(ValueError, match="--siglip needs a model with a logit_bias"):
        run(tmp_path, "--siglip", name="shapes")


def test_resume_from_an_open_clip_checkpoint(tiny, tmp_path):
    """open_clip_train's checkpoint after 1 epoch: the weights, the AdamW moments (matched by parameter name across
    the two trainers' different group orders) and the schedule continue; training goes on at step 3 of 6."""
    import open_clip

    from vlmlearn.clip_finetune import resume_from_open_clip
    from vlmlearn.optim import param_groups, warmup_cosine

    torch.manual_seed(2)
    model = open_clip.create_model("tiny-ft")
    named = list(model.named_parameters())

    def no_decay(n, p):
        return p.ndim < 2 or "bn" in n or "ln" in n or "bias" in n or "logit_scale" in n

    groups = [[p for n, p in named if no_decay(n, p)], [p for n, p in named if not no_decay(n, p)]]
    opt = torch.optim.AdamW([{"params": groups[0], "weight_decay": 0.0}, {"params": groups[1], "weight_decay": 0.1}])
    for n, p in named:
        p.grad = torch.randn_like(p)
    opt.step()
    saved = {"epoch": 1, "name": "oc", "state_dict": {f"module.{k}": v for k, v in model.state_dict().items()},
             "optimizer": opt.state_dict()}
    torch.save(saved, tmp_path / "epoch_1.pt")

    fresh = open_clip.create_model("tiny-ft")
    ours = torch.optim.AdamW(param_groups(fresh, 0.1))
    scheduler = torch.optim.lr_scheduler.LambdaLR(ours, warmup_cosine(6, warmup=1))
    step = resume_from_open_clip(saved, tmp_path / "latest.pt", model=fresh, optimizer=ours, scheduler=scheduler,
                                 steps_per_epoch=3, source="--resume epoch_1.pt", model_name="tiny-ft")
    assert step == 3 and scheduler.last_epoch == 3
    for (name, p), q in zip(model.named_parameters(), fresh.parameters()):
        assert torch.equal(ours.state[q]["exp_avg"], opt.state[p]["exp_avg"]), name

    summary, log = run(tmp_path, "--model", str(tiny["config"]), "--resume", str(tmp_path / "epoch_1.pt"),
                       "--epochs", "2")
    assert [r["step"] for r in log if "loss" in r] == [4, 5, 6]


def test_bad_input_gets_a_clear_error(tiny, tmp_path, monkeypatch, capsys):
    import huggingface_hub.constants

    from vlmlearn.train_clip import parse_args

    other = {**TINY, "text_cfg": {**TINY["text_cfg"], "width": 64}}
    (tmp_path / "other.json").write_text(json.dumps(other))
    with pytest.raises(ValueError, match=r"does not fit --model other.*expected \(.*64.*\), found \(.*32"):
        run(tmp_path, "--model", str(tmp_path / "other.json"), "--pretrained", str(tiny["weights"]))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(FileNotFoundError, match="not in the local Hugging Face cache.*huggingface-cli download"):
        run(tmp_path, "--model", "ViT-B-32", "--pretrained", "laion2b_s34b_b79k")
    with pytest.raises(FileNotFoundError, match="not an open_clip tag of 'ViT-B-32'.*laion2b_s34b_b79k"):
        run(tmp_path, "--model", "ViT-B-32", "--pretrained", "no-such-tag")
    with pytest.raises(ValueError, match="holds a 'tiny-ft' model, --model asks for 'ViT-B-32'"):
        run(tmp_path, "--model", str(tiny["config"]), "--pretrained", str(tiny["weights"]), name="first")
        run(tmp_path, "--model", "ViT-B-32", "--pretrained", str(tmp_path / "first" / "model.safetensors"))
    with pytest.raises(SystemExit):
        parse_args(["--train-data", str(CSV), "--report-to", "wandb"])
    assert "invalid choice: 'wandb' (choose from" in capsys.readouterr().err
    with pytest.raises(ValueError, match="--accum-freq must be at least 1, got 0"):
        run(tmp_path, "--accum-freq", "0")
