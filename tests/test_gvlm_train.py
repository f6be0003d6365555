"""Notebook 11's stages and shipped checkpoint (vlmlearn.gvlm_train) and the alignment rows, descriptions and text
corpus of vlmlearn.gvlm: tiny configs, one thread, seconds."""
import pytest
import torch

from vlmlearn.assets import save_weights
from vlmlearn.data import COLORS, ShapesWorld, parse_caption
from vlmlearn.gvlm import GenerativeVLM, caption_ids, causal_lm, chat_tokenizer, describe, text_corpus
from vlmlearn.gvlm_train import (
    ARMS,
    align,
    checkpoint_parts,
    instruction_tune,
    load_pretrained_gvlm,
    load_text_lms,
    pretrain_text_lm,
)
from vlmlearn.models import SmallCNN

WORLD = ShapesWorld(seed=0, image_size=16)
TOK = chat_tokenizer()


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(image_tokens="patches") -> GenerativeVLM:
    torch.manual_seed(0)
    vision = SmallCNN(image_size=16, widths=(8, 16), embed_dim=16)
    with torch.no_grad():  # BatchNorm statistics of ShapesWorld images, so images differ
        vision.train()
        for _ in range(20):
            vision(WORLD.images(64).images)
    return GenerativeVLM(vision.eval(), causal_lm(TOK, width=32, heads=2, layers=2), TOK, image_tokens=image_tokens)


def test_caption_rows_predict_every_caption_word_and_the_end():
    ids, mask = caption_ids(TOK, ["a red circle on the left", "a large blue square at the bottom"])
    assert ids.shape == mask.shape == (2, 9) and ids.dtype == torch.long and mask.dtype == torch.bool
    assert TOK.decode(ids) == ["a red circle on the left", "a large blue square at the bottom"]
    assert ids[0, 0] == TOK.pad_id and ids[0, 1] == ids[1, 0] == TOK.bos_id and (ids[:, -1] == TOK.eos_id).all()
    assert mask.sum(1).tolist() == [7, 8] and not mask[0, :2].any() and not mask[1, 0]  # not the start, nor padding
    with pytest.raises(ValueError, match="at least one caption"):
        caption_ids(TOK, [])


def test_text_corpus_holds_captions_questions_restatements_and_answers_about_written_scenes():
    lines = text_corpus(WORLD, 10)
    assert len(lines) == 40 and lines == text_corpus(WORLD, 10)  # deterministic
    assert lines[:10] == WORLD.pairs(10, start=100_000).captions
    assert all(line.endswith("?") for line in lines[10:20])
    assert all(" . " in line and "answer" not in line for line in lines[20:30])
    qa = WORLD.vqa(10, start=400_000)
    for i, (line, q, a) in enumerate(zip(lines[30:], qa.questions, qa.answers)):
        scene, asked = line.split(" . ")
        assert asked == f"question: {q} answer: {a}"
        objects = range(qa.attributes["n_objects"][i])  # the written scene is the one the answer is about
        assert sorted(o["color"] for o in parse_caption(scene)) == sorted(COLORS[qa.attributes["color"][i, k]]
                                                                        for k in objects)
    assert TOK.unk_id not in TOK(lines)
    with pytest.raises(ValueError, match="n >= 1"):
        text_corpus(WORLD, 0)


def test_each_stage_learns_and_instruction_tuning_keeps_the_best_validation_checkpoint():
    lm = causal_lm(TOK, width=32, heads=2, layers=2)
    history = pretrain_text_lm(lm, text_corpus(WORLD, 40), TOK, steps=30, batch_size=16, lr=3e-3,
                               progress=False)
    assert history.train["loss"][-1] < history.train["loss"][0] - 0.5
    model = GenerativeVLM(tiny().vision, lm, TOK)
    lm_before = {k: v.clone() for k, v in model.lm.state_dict().items()}
    web = WORLD.noisy_pairs(64, start=200_000)
    history = align(model, model.image_features(web.images), web.captions, steps=20, batch_size=32, progress=False)
    assert history.train["loss"][-1] < history.train["loss"][0]
    assert all(torch.equal(v, model.lm.state_dict()[k]) for k, v in lm_before.items()), "alignment: LM frozen"
    align(model, web.images, web.captions, steps=2, lm_lr=1e-3, batch_size=32, progress=False)
    assert not all(torch.equal(v, model.lm.state_dict()[k]) for k, v in lm_before.items()), "lm_lr > 0: LM learns"
    labeled, val = WORLD.vqa(48), WORLD.vqa(24, split="val")
    history = instruction_tune(model, labeled.images, labeled.questions, labeled.answers, val=val, steps=40,
                               eval_every=10, batch_size=16, progress=False)
    curve = history.eval["val_exact"]
    assert history.eval["step"] == [0, 10, 20, 30, 40] and len(curve) == 5  # from the start
    assert history.train["loss"][-1] < history.train["loss"][0]
    from vlmlearn.gvlm import answer
    from vlmlearn.gvlm_eval import vqa_scores

    assert vqa_scores(answer(model, val.images, val.questions), val)["exact"] == max(curve)  # the best one kept
    assert len(describe(model, val.images[:3])) == 3


def test_the_checkpoint_round_trip(tmp_path, monkeypatch):
    models = {arm: tiny(parts["image_tokens"]) for arm, parts in ARMS.items()}
    with torch.no_grad():
        for k, m in enumerate(models.values()):
            m.projector.net[0].weight.fill_(k)
    path = tmp_path / "gvlm.safetensors"
    record = {"model": "shapes-gvlm", "arms": ARMS, "settings": {"seed": 3},
              "config": {"vocab_size": TOK.vocab_size, "context_length": 40, "width": 32, "layers": 2, "heads": 2,
                         "projector": "mlp"}}
    text_lm = causal_lm(TOK, width=32, heads=2, layers=2, seed=5)  # not any arm's LM
    save_weights(checkpoint_parts(models, text_lm), path, record)
    vision = models["text"].vision
    monkeypatch.setattr("vlmlearn.clip_models.load_pretrained_clip",
                        lambda: (type("Clip", (), {"image_encoder": vision})(), None, None))
    for k, arm in enumerate(ARMS):
        loaded, got = load_pretrained_gvlm(arm, path)
        assert got["arms"] == ARMS and loaded.image_tokens == ARMS[arm]["image_tokens"]
        assert (loaded.projector.net[0].weight == k).all()
        assert loaded.lm.lm_head.weight.data_ptr() == loaded.lm.model.embed_tokens.weight.data_ptr()  # still tied
        for key, value in models[arm].lm.state_dict().items():
            assert torch.equal(loaded.lm.state_dict()[key], value), key
    lms = load_text_lms(path)
    for name, expected in (("text", text_lm), ("random", causal_lm(TOK, width=32, heads=2, layers=2, seed=3))):
        assert lms[name].lm_head.weight.data_ptr() == lms[name].model.embed_tokens.weight.data_ptr()
        for key, value in expected.state_dict().items():
            assert torch.equal(lms[name].state_dict()[key], value), f"{name}: {key}"
    assert not torch.equal(lms["text"].model.embed_tokens.weight, models["text"].lm.model.embed_tokens.weight)
    with pytest.raises(ValueError, match="arm must be one of"):
        load_pretrained_gvlm("bigger", path)
    with pytest.raises(FileNotFoundError, match="pretrain_gvlm"):
        load_pretrained_gvlm("text", tmp_path / "none.safetensors")


@pytest.mark.parametrize("scores, best", [([0.1, 0.2, 0.9, 0.3, 0.4], 2), ([0.95, 0.2, 0.9, 0.3, 0.4], 0)])
def test_instruction_tuning_ends_with_the_weights_that_scored_best_on_validation(monkeypatch, scores, best):
    model = tiny()
    snapshots, scripted = [], iter(scores)

    def spy_answer(m, images, questions, **kwargs):
        snapshots.append(m.projector.net[0].weight.detach().clone())
        return ["red"] * len(questions)

    monkeypatch.setattr("vlmlearn.gvlm_train.answer", spy_answer)
    monkeypatch.setattr("vlmlearn.gvlm_train.vqa_scores", lambda texts, batch: {"exact": next(scripted)})
    labeled, val = WORLD.vqa(32), WORLD.vqa(8, split="val")
    history = instruction_tune(model, labeled.images, labeled.questions, labeled.answers, val=val, steps=40,
                               eval_every=10, batch_size=16, progress=False)
    assert history.eval["val_exact"] == scores and history.eval["step"] == [0, 10, 20, 30, 40]
    assert len(snapshots) == 5 and not torch.equal(snapshots[0], snapshots[4])
    assert torch.equal(model.projector.net[0].weight, snapshots[best]), f"the model ends where it scored {max(scores)}"


def test_instruction_tuning_without_validation_ends_with_its_last_weights(monkeypatch):
    def no_answers(*args, **kwargs):
        raise AssertionError("nothing to validate on: no answers should be written")

    monkeypatch.setattr("vlmlearn.gvlm_train.answer", no_answers)
    model, labeled = tiny(), WORLD.vqa(32)
    before = model.projector.net[0].weight.detach().clone()
    history = instruction_tune(model, labeled.images, labeled.questions, labeled.answers, steps=5, batch_size=16,
                               progress=False)
    assert history.eval["step"] == [] and len(history.train["loss"]) == 5
    assert not torch.equal(model.projector.net[0].weight, before)


def test_weight_decay_spares_embeddings_norms_and_biases_and_each_part_keeps_its_rate(monkeypatch):
    made = []

    class Recorded(torch.optim.AdamW):
        def __init__(self, groups, **kwargs):
            super().__init__(groups, **kwargs)
            made.append(self)

    monkeypatch.setattr(torch.optim, "AdamW", Recorded)
    model = tiny()
    labeled, val = WORLD.vqa(16), WORLD.vqa(8, split="val")
    instruction_tune(model, labeled.images, labeled.questions, labeled.answers, val=val, steps=1, projector_lr=0.5,
                     lm_lr=0.25, progress=False)
    setting = {id(p): (g["lr"], g["weight_decay"]) for g in made[-1].param_groups for p in g["params"]}
    names = dict(model.named_parameters())
    for name, p in names.items():
        if name.startswith("vision."):
            assert id(p) not in setting, f"{name}: the tower is frozen"
            continue
        lr = 0.5 if name.startswith("projector.") else 0.25
        decays = p.ndim == 2 and "embed" not in name
        assert setting[id(p)] == (lr, 0.01 if decays else 0.0), name
    in_groups = [p for g in made[-1].param_groups for p in g["params"]]
    assert len(in_groups) == sum(not n.startswith("vision.") for n in names)  # each trainable one once (tied: once)


def test_pretrain_arms_gives_the_same_models_for_the_same_arguments():
    # torch's global generator is seeded differently in every process: the arms must not draw from it unseeded
    from vlmlearn.gvlm_train import pretrain_arms

    def run(draw_before: int):
        vision = tiny().vision  # tiny() seeds the global generator
        torch.rand(draw_before)  # then a different global generator state for each run
        models, lms, _ = pretrain_arms(vision, WORLD, width=32, layers=1, heads=2, text_lines=16, text_steps=2,
                                       web_pairs=64, align_steps=2, question_steps=2, progress=False)
        named = {**{f"arm {a}": m.lm for a, m in models.items()}, **{f"lm {n}": lm for n, lm in lms.items()}}
        return {f"{arm}.{k}": v for arm, m in models.items() for k, v in m.state_dict().items()} | {
            f"{name}.{k}": v for name, m in named.items() for k, v in m.state_dict().items()}

    first, second = run(1), run(7)
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first), "same seed, different weights"
    embedding = {name: first[f"{name}.model.embed_tokens.weight"] for name in ("arm text", "arm pooled",
                                                                               "arm random", "lm text", "lm random")}
    for arm, lm in (("text", "text"), ("pooled", "text"), ("random", "random")):  # each arm trained its own copy
        assert not torch.equal(embedding[f"arm {arm}"], embedding[f"lm {lm}"]), f"{arm}: its LM should have learned"
    assert not torch.equal(embedding["arm text"], embedding["arm pooled"])
    assert not torch.equal(embedding["lm text"], embedding["lm random"])


def _said(objects: list[dict], question: str) -> str:
    """What a scene's object list answers to one of ShapesWorld's questions (a second reading, for the test)."""
    words = question.rstrip("?").split()
    if question == "how many shapes are there?":
        return ["zero", "one", "two"][len(objects)]
    if question.startswith("is there a"):
        return "yes" if any((o["color"], o["shape"]) == (words[3], words[4]) for o in objects) else "no"
    if question.startswith("where is the"):
        found, key = [o for o in objects if (o["color"], o["shape"]) == (words[3], words[4])], "position"
    elif question.startswith("what shape is"):
        found, key = [o for o in objects if o["position"] == words[-1]], "shape"
    else:
        found, key = [o for o in objects if o["shape"] == words[-1]], words[1]  # what color / what size
    return found[0][key] if len(found) == 1 else "?"  # "?": the question is ambiguous for this scene


def test_written_questions_ask_what_the_world_asks_and_answer_from_the_caption():
    from vlmlearn.data.captions import POSITIONS, SHAPES, SIZES
    from vlmlearn.gvlm import written_questions

    world = ShapesWorld(seed=0, image_size=16)
    forms = set(world.vqa(20_000).questions)
    pairs = world.pairs(600)
    used, questions, answers = written_questions(world, pairs.captions, exists_share=0.5, seed=1)
    assert len(used) == len(questions) == len(answers) == 600  # every clean caption states every attribute
    assert set(questions) <= forms, set(questions) - forms  # the world's own forms, nothing else
    a = pairs.attributes
    truth = [[{"color": COLORS[a["color"][i, j]], "shape": SHAPES[a["shape"][i, j]], "size": SIZES[a["size"][i, j]],
               "position": POSITIONS[a["position"][i, j]]} for j in range(a["n_objects"][i])] for i in range(600)]
    checked = [(_said(truth[i], q), a) for i, q, a in zip(used, questions, answers) if _said(truth[i], q) != "?"]
    assert len(checked) > 500 and all(said == a for said, a in checked), [x for x in checked if x[0] != x[1]][:3]
    exists = [a for q, a in zip(questions, answers) if q.startswith("is there")]
    assert 0.5 < len(exists) / 600 < 0.67  # a half, plus a sixth of the rest
    assert 0.3 < exists.count("yes") / len(exists) < 0.8
    assert {q.split()[0] + q.split()[1] for q in questions} >= {"whatcolor", "whatshape", "howmany", "isthere",
                                                                 "whereis", "whatsize"}
    web = world.noisy_pairs(400, start=200_000)
    used, _, _ = written_questions(world, web.captions)
    junk = [i for i, c in enumerate(web.captions) if not parse_caption(c)]
    assert junk and not set(junk) & set(used.tolist()) and len(used) == 400 - len(junk)
    with pytest.raises(ValueError, match=r"exists_share in \[0, 1\], got 1.5"):
        written_questions(world, web.captions, exists_share=1.5)
