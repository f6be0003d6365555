import math
from pathlib import Path

import pytest
import torch

from vlmlearn.contrastive import (
    DualEncoder,
    binding_accuracy,
    clip_step,
    image_text_similarity,
    object_prompts,
    retrieval_metrics,
    siglip_step,
    zero_shot_accuracy,
)
from vlmlearn.data import ShapesWorld, WordTokenizer, caption_vocabulary, hard_negative_captions
from vlmlearn.models import SmallCNN, TextTransformer
from vlmlearn.optim import clamp_logit_scales_
from vlmlearn.runtime import set_seed
from vlmlearn.train import minibatches, train


@pytest.fixture(scope="module")
def tok():
    return WordTokenizer(caption_vocabulary(), context_length=20)


def tiny(tok, **kw):
    set_seed(0)
    return DualEncoder(SmallCNN(image_size=16, widths=(16, 32, 32), embed_dim=32),
                       TextTransformer(vocab_size=tok.vocab_size, context_length=20, width=32, layers=1, heads=2,
                                       embed_dim=32), **kw)


def test_dual_encoder_outputs_and_temperature(tok):
    model = tiny(tok)
    img, txt, scale = model(torch.rand(4, 3, 16, 16), tok(["a red circle"] * 4))
    assert img.shape == txt.shape == (4, 32)
    assert torch.allclose(img.norm(dim=-1), torch.ones(4)) and torch.allclose(txt.norm(dim=-1), torch.ones(4))
    assert scale.item() == pytest.approx(1 / 0.07)
    model.logit_scale.data.fill_(math.log(1000))
    clamp_logit_scales_(model)
    assert model.scale().item() == pytest.approx(100.0)  # clamped in place as in CLIP
    with pytest.raises(ValueError, match="3 images but 4 captions"):
        model(torch.rand(3, 3, 16, 16), tok(["a"] * 4))


def test_clip_step_with_hard_negatives_and_siglip_step(tok):
    model = tiny(tok)
    images, ids = torch.rand(6, 3, 16, 16), tok(["a red circle on the left"] * 3 + ["a blue square on the right"] * 3)
    loss, metrics = clip_step(model, (images, ids, ids.flip(0)))
    loss.backward()
    assert loss.item() > 0 and metrics["temperature"] == pytest.approx(0.07, rel=1e-4)
    assert all(p.grad is not None for p in model.text_encoder.parameters())
    with pytest.raises(ValueError, match="logit_bias"):
        siglip_step(model, (images, ids))
    sig = tiny(tok, logit_bias=-10.0)
    loss, _ = siglip_step(sig, (images, ids))
    loss.backward()
    assert sig.logit_bias.grad is not None


def test_training_learns_retrieval_beyond_chance(world, tok):
    from vlmlearn.data import ShapesWorld

    small = ShapesWorld(seed=0, image_size=16)
    pairs = small.pairs(3000)
    model = tiny(tok)
    test = small.pairs(300, split="test")
    before = retrieval_metrics(model, tok, test)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    train(model, opt, clip_step, minibatches(pairs.images, tok(pairs.captions), batch_size=128), steps=80,
          progress=False)
    after = retrieval_metrics(model, tok, test)
    assert after["i2t_r1"] > before["i2t_r1"] + 0.2 and after["t2i_r5"] > 0.6
    acc = zero_shot_accuracy(model, tok, small.labeled(300, attribute="color", split="test"), object_prompts())
    # colour is learned first
    assert acc["color"] > 0.125 + 0.2 and 0 <= acc["combo"] <= min(acc["color"], acc["shape"])
    sim = image_text_similarity(model, tok, test.images[:5], test.captions[:7])
    assert sim.shape == (5, 7) and sim.abs().max() <= 1.0 + 1e-5


def test_prompts_and_hard_negatives(world):
    prompts = object_prompts()
    assert len(prompts) == 4 * 2 * 5 and all(p.count("{}") == 1 for p in prompts)
    assert "a small {} on the left" in prompts and "there is a large {} at the top" in prompts
    assert object_prompts(["a {o} {p}"])[:1] == ["a small {} on the left"]
    b = world.pairs(100)
    negatives = hard_negative_captions(b)
    two = b.attributes["n_objects"] == 2
    for i, (c, n) in enumerate(zip(b.captions, negatives)):
        assert c != n
        if two[i]:
            assert sorted(c.split()) == sorted(n.split())  # the same words, bound differently


class CaptionLookup(torch.nn.Module):
    """A stub dual encoder: every image embeds to the same vector, and a caption scores 1 with it
    when it is in `believed`, else 0. Ties between a caption and its twin must count as chance."""

    def __init__(self, tok, believed):
        super().__init__()
        self.tok, self.believed = tok, {tuple(t.tolist()) for t in tok(list(believed))}
        self.anchor = torch.nn.Parameter(torch.tensor([1.0, 0.0]))

    def encode_image(self, images):
        return self.anchor.expand(len(images), 2)

    def encode_text(self, ids):
        hit = torch.tensor([tuple(t.tolist()) in self.believed for t in ids])
        return torch.stack([hit.float(), (~hit).float()], -1)


def test_binding_accuracy_reads_the_chosen_twins_and_counts_ties_as_chance(tok):
    b = ShapesWorld(seed=0, image_size=16).binding_pairs(40)
    knows_colour_binding = CaptionLookup(tok, b.captions + b.size_swapped_captions)
    assert binding_accuracy(knows_colour_binding, tok, b) == 1.0
    assert binding_accuracy(knows_colour_binding, tok, b, swap="size") == 0.5  # every pair a tie
    confused = CaptionLookup(tok, b.swapped_captions)
    assert binding_accuracy(confused, tok, b) == 0.0 and binding_accuracy(confused, tok, b, swap="size") == 0.5
    with pytest.raises(ValueError, match="'color' or 'size'"):
        binding_accuracy(confused, tok, b, swap="shape")
    with pytest.raises(ValueError, match="binding_pairs"):
        binding_accuracy(confused, tok, ShapesWorld(seed=0, image_size=16).pairs(10))


def test_the_shipped_clip_checkpoint_is_what_its_script_writes():
    import importlib.util

    from vlmlearn.clip_models import SHAPES_CLIP_CHECKPOINT, load_pretrained_clip
    from vlmlearn.contrastive import SHAPES_CLIP_CONFIG

    spec = importlib.util.spec_from_file_location(
        "pretrain_clip", Path(__file__).resolve().parents[1] / "benchmarks" / "pretrain_clip.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    defaults = script.build_parser().parse_args([])
    model, tok, record = load_pretrained_clip()  # safetensors: no code runs when loading
    assert record["config"] == SHAPES_CLIP_CONFIG and not model.training
    assert (record["steps"], record["seed"], record["batch_size"], record["pairs"]) == (
        defaults.steps, defaults.seed, defaults.batch_size, defaults.pairs)
    assert record["runtime_s"] > 0 and "torch" in record["versions"]
    assert SHAPES_CLIP_CHECKPOINT.stat().st_size < 4_000_000
    test = ShapesWorld(seed=5, image_size=32).labeled(300, split="test")
    assert zero_shot_accuracy(model, tok, test, object_prompts())["shape"] > 0.8  # trained weights (chance 0.2)


def test_load_pretrained_clip_says_what_is_missing_or_stale(tmp_path, tok):
    import json

    from vlmlearn.assets import save_weights
    from vlmlearn.clip_models import load_pretrained_clip
    from vlmlearn.contrastive import SHAPES_CLIP_CONFIG, shapes_clip

    save_weights(shapes_clip(tok.vocab_size), tmp_path / "clip.safetensors")
    with pytest.raises(FileNotFoundError, match="clip.json"):
        load_pretrained_clip(tmp_path / "clip.safetensors")
    (tmp_path / "clip.json").write_text(json.dumps({"config": SHAPES_CLIP_CONFIG, "vocab_size": tok.vocab_size}))
    with pytest.raises(ValueError, match="a 'model' entry"):  # the record format before one format for all
        load_pretrained_clip(tmp_path / "clip.safetensors")
    words = tok.itos[len(tok.specials):]
    (tmp_path / "clip.json").write_text(json.dumps({"model": "shapes-clip", "config": SHAPES_CLIP_CONFIG,
                                                    "vocab": [*words, "zebra"]}))
    with pytest.raises(ValueError, match="does not fit the model its record describes"):
        load_pretrained_clip(tmp_path / "clip.safetensors")
    (tmp_path / "clip.json").write_text(json.dumps({"model": "shapes-mae", "config": {}}))
    with pytest.raises(ValueError, match="expected 'shapes-clip'"):
        load_pretrained_clip(tmp_path / "clip.safetensors")


def test_fit_clip_is_notebook_01s_recipe_and_learns(world, tok):
    from vlmlearn.contrastive import fit_clip, shapes_clip
    from vlmlearn.eval import relevance_from_keys

    pairs, test = world.pairs(2048), world.pairs(200, split="test")
    set_seed(0)
    model = shapes_clip(tok.vocab_size)
    history = fit_clip(model, pairs.images, tok(pairs.captions), steps=40, batch_size=128, desc=None)
    assert not model.training and len(history.train["loss"]) == 40
    assert history.train["loss"][-1] < 0.5 * history.train["loss"][0]
    keys = test.content_keys()
    chance = relevance_from_keys(keys, keys).float().mean(1).mean().item()  # about 0.006
    assert retrieval_metrics(model, tok, test)["i2t_r1"] > 3 * chance
