"""The generative VLM of notebook 11 (vlmlearn.gvlm, vlmlearn.gvlm_eval): tiny configs, one thread, a few seconds."""
import numpy as np
import pytest
import torch

from vlmlearn.data import ShapesWorld
from vlmlearn.gvlm import (
    DESCRIBE,
    GenerativeVLM,
    alignment_step,
    answer,
    causal_lm,
    chat_ids,
    chat_tensors,
    chat_tokenizer,
    describe,
    greedy_decode_with_cache,
    instruction_step,
    library_generate,
    positions_from_mask,
    read_scenes,
    scene_question,
    set_trainable,
    text_step,
)
from vlmlearn.gvlm_eval import exact_matches, hallucinations, normalize_answer, valid_answers, vqa_scores
from vlmlearn.models import SmallCNN
from vlmlearn.train import minibatches, train

WORLD = ShapesWorld(seed=0, image_size=16)
VQA = WORLD.vqa(16)
TOK = chat_tokenizer()
CALIBRATION = WORLD.images(64).images
MISMATCH = ("expected device", "same device", "at least two devices")


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(**kwargs) -> GenerativeVLM:
    """A 16 px SmallCNN (a 4 x 4 map of 16 channels: 16 image tokens) and a 2-layer Llama of width 32 (one layer
    cannot learn 16 questions by heart: the last token, always ":", attends the same way whatever the question)."""
    torch.manual_seed(0)
    vision = SmallCNN(image_size=16, widths=(8, 16), embed_dim=16)
    with torch.no_grad():  # random filters, but BatchNorm statistics of ShapesWorld images, so images differ
        vision.train()
        for _ in range(30):
            vision(CALIBRATION)
    return GenerativeVLM(vision, causal_lm(TOK, width=32, heads=2, layers=2), TOK, **kwargs)


def test_chat_rows_are_left_padded_with_the_answer_masked_in():
    ids, mask = chat_ids(TOK, ["what shape is on the left?", "what color is the square?"], ["circle", "red"])
    assert ids.dtype == torch.long and mask.dtype == torch.bool and ids.shape == mask.shape == (2, 14)
    assert TOK.decode(ids) == ["question : what shape is on the left ? answer : circle",
                               "question : what color is the square ? answer : red"]
    assert ids[1, 0] == TOK.pad_id and ids[1, 1] == TOK.bos_id and (ids[:, -1] == TOK.eos_id).all()
    assert mask.sum(1).tolist() == [2, 2] and mask[:, -2:].all()  # the answer word and the end token only
    prompts, none = chat_ids(TOK, VQA.questions)
    assert not none.any() and (TOK.decode(prompts[:, -2:])[0] == "answer :")  # generation starts after "answer :"
    images, ids, mask = chat_tensors(TOK, VQA.images, [DESCRIBE] * 16, WORLD.pairs(16).captions)
    assert len(images) == len(ids) == 16 and TOK.unk_id not in ids
    with pytest.raises(ValueError, match="2 questions but 1 answers"):
        chat_ids(TOK, ["a?", "b?"], ["c"])
    with pytest.raises(ValueError, match="non-empty question"):
        chat_ids(TOK, ["what?", " "])
    with pytest.raises(ValueError, match="16 images but 3 questions"):
        chat_tensors(TOK, VQA.images, VQA.questions[:3], VQA.answers[:3])


@pytest.mark.parametrize("kwargs, k", [({}, 16), ({"shuffle": 2}, 4), ({"image_tokens": "pooled"}, 1),
                                       ({"projector": "linear"}, 16)])
def test_shapes_and_dtypes(kwargs, k):
    model = tiny(**kwargs).train()
    assert model.lm.training and not model.vision.training  # the frozen tower keeps its BatchNorm statistics
    ids, _ = chat_ids(TOK, VQA.questions[:4], VQA.answers[:4])
    embeds, mask, positions = model.embed(VQA.images[:4], ids)
    assert embeds.shape == (4, k + ids.shape[1], 32) and embeds.dtype == torch.float32
    assert mask.dtype == positions.dtype == torch.long and mask.shape == positions.shape == embeds.shape[:2]
    assert (positions.max(1).values == mask.sum(1) - 1).all()  # positions count the real tokens only
    logits = model(VQA.images[:4], ids)
    assert logits.shape == (4, k + ids.shape[1], TOK.vocab_size) and logits.dtype == torch.float32
    features = model.image_features(VQA.images[:4])
    assert features.shape[0] == 4 and features.ndim == 3
    torch.testing.assert_close(model(features, ids), logits)  # precomputed tokens give the same answer


def test_padding_changes_nothing_a_row_computes():
    model = tiny().eval()
    short, long = "is there a red circle?", "what shape is on the left?"
    alone, _ = chat_ids(TOK, [short], ["one"])
    both, _ = chat_ids(TOK, [short, long], ["one", "circle"])
    assert (both[0] == TOK.pad_id).sum() == 1  # the short row is padded by one token
    with torch.no_grad():
        a = model(VQA.images[:1], alone)[0]
        b = model(VQA.images[:2], both)[0]
    torch.testing.assert_close(b[16 + 1:], a[16:], atol=1e-5, rtol=1e-4)  # image tokens, then the words after the pad


def _loud(model):
    """Random weights large enough that greedy answers differ between rows and some end early."""
    torch.manual_seed(1)
    with torch.no_grad():
        for p in model.lm.parameters():
            if p.ndim == 2:
                p.normal_(0, 0.3)
    return model.eval()


def test_kv_cache_decoder_equals_the_librarys_generate():
    model = _loud(tiny())
    images, (prompts, _) = VQA.images, chat_ids(TOK, VQA.questions)
    ours = greedy_decode_with_cache(model, images, prompts, max_new_tokens=10)
    theirs = library_generate(model, images, prompts, max_new_tokens=10)
    assert torch.equal(ours, theirs)
    assert len(set(map(tuple, ours.tolist()))) > 3, "a test of equal outputs needs different outputs"
    ended = (ours == TOK.eos_id).any(1)
    assert ended.any() and not ended.all(), "some rows should end early, some run to max_new_tokens"
    # and both equal greedy decoding without a cache: the whole sequence through the LM again at every step
    embeds, mask, _ = model.embed(images, prompts)
    new = []
    with torch.no_grad():
        for _ in range(ours.shape[1]):
            logits = model.lm(inputs_embeds=embeds, attention_mask=mask, position_ids=positions_from_mask(mask)).logits
            new.append(logits[:, -1].argmax(-1))
            embeds = torch.cat([embeds, model.lm.get_input_embeddings()(new[-1])[:, None]], dim=1)
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
    for row, full in zip(ours.tolist(), torch.stack(new, 1).tolist()):
        end = row.index(TOK.eos_id) + 1 if TOK.eos_id in row else len(row)
        assert row[:end] == full[:end] and all(t == TOK.pad_id for t in row[end:])


def test_alignment_trains_the_projector_only():
    model = tiny()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match="projector only"):
        alignment_step(model, chat_tensors(TOK, VQA.images, [DESCRIBE] * 16, WORLD.pairs(16).captions))
    params = set_trainable(model, projector=True, lm=False)
    assert {id(p) for p in params} == {id(p) for p in model.projector.parameters()}
    pairs = WORLD.noisy_pairs(32, noise_rate=0.3)
    data = minibatches(*chat_tensors(TOK, pairs.images, [DESCRIBE] * 32, pairs.captions), batch_size=16)
    history = train(model, torch.optim.AdamW(params, lr=1e-2), alignment_step, data, steps=5, progress=False)
    assert history.train["loss"][-1] < history.train["loss"][0]
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith("projector.") for k in changed), sorted(changed)  # BatchNorm stats too


def test_instruction_loss_counts_the_answer_tokens_only():
    model = tiny()
    images, ids, mask = chat_tensors(TOK, VQA.images[:4], VQA.questions[:4], VQA.answers[:4])
    seen = {}
    hook = model.lm.lm_head.register_forward_hook(lambda module, inputs, out: seen.update(logits=out))
    loss, _ = instruction_step(model, (images, ids, mask))
    hook.remove()
    logits = seen["logits"]
    grad, = torch.autograd.grad(loss, logits)
    text = grad[:, -ids.shape[1]:-1]  # logits at text position t predict token t + 1
    predicts_answer = mask[:, 1:]
    assert (text[~predicts_answer] == 0).all() and (grad[:, :-ids.shape[1]] == 0).all()  # question, image, padding
    assert (text[predicts_answer].abs().sum(-1) > 0).all()
    # the loss is the mean cross-entropy of the answer words and the end token, by hand
    rows, cols = predicts_answer.nonzero(as_tuple=True)
    by_hand = torch.nn.functional.cross_entropy(logits[:, -ids.shape[1]:-1][rows, cols], ids[:, 1:][rows, cols])
    torch.testing.assert_close(loss, by_hand)


def test_a_tiny_model_learns_16_questions_by_heart():
    model = tiny()
    params = set_trainable(model, projector=True, lm=True)
    data = minibatches(*chat_tensors(TOK, VQA.images, VQA.questions, VQA.answers), batch_size=16)
    train(model, torch.optim.AdamW(params, lr=3e-3), instruction_step, data, steps=300, grad_clip=1.0, progress=False)
    predictions = answer(model, VQA.images, VQA.questions)
    assert exact_matches(predictions, VQA.answers).mean() == 1.0, list(zip(predictions, VQA.answers))
    assert predictions == answer(model, VQA.images, VQA.questions, decode=greedy_decode_with_cache)


def test_text_step_ignores_padding():
    lm = causal_lm(TOK, width=32, heads=2, layers=1)
    ids = TOK(WORLD.texts(8).captions)[:, :16]
    padded = torch.cat([ids, torch.zeros(8, 5, dtype=torch.long)], dim=1)
    loss, _ = text_step(lm, (ids,))
    torch.testing.assert_close(text_step(lm, (padded,))[0], loss)
    assert abs(loss.item() - np.log(TOK.vocab_size)) < 1.0  # an untrained LM is near chance


def test_bad_inputs_say_what_is_wrong():
    model = tiny()
    ids, _ = chat_ids(TOK, VQA.questions[:2])
    with pytest.raises(ValueError, match=r"expected images of shape \(B, 3, 16, 16\)"):
        model(torch.rand(2, 3, 32, 32), ids)
    with pytest.raises(ValueError, match="2 images but 3 texts"):
        model(VQA.images[:2], torch.cat([ids, ids[:1]]))
    with pytest.raises(ValueError, match="int64"):
        model(VQA.images[:2], ids.float())
    with pytest.raises(ValueError, match=r"image features \(B, K, 16\)"):
        model(torch.rand(2, 16, 8), ids)
    with pytest.raises(ValueError, match="image_tokens"):
        tiny(image_tokens="cls")
    with pytest.raises(ValueError, match="kind"):
        tiny(projector="conv")
    with pytest.raises(ValueError, match="pixel shuffle by 3"):
        tiny(shuffle=3)(VQA.images[:2], ids)
    with pytest.raises(ValueError, match="words but the tokenizer"):
        GenerativeVLM(SmallCNN(image_size=16, widths=(8, 16)), causal_lm(chat_tokenizer(["zebra"]), width=32), TOK)
    with pytest.raises(ValueError, match="divisible"):
        causal_lm(TOK, width=30, heads=4)
    with pytest.raises(ValueError, match="2 images but 3 questions"):
        answer(model, VQA.images[:2], VQA.questions[:3])


def test_judging_free_text_answers():
    assert normalize_answer(" The Red.") == "red" and normalize_answer("a large  square!") == "large square"
    assert exact_matches(["Red.", "two shapes", "yes"], ["red", "two", "yes"]).tolist() == [True, False, True]
    texts = ["a small red circle on the left", "blue", "a red square", "yes", "two shapes", "a blue circle"]
    red_circle = {"n_objects": np.ones(5, int), "color": np.tile([0, -1], (5, 1)), "shape": np.tile([0, -1], (5, 1))}
    red_circle_blue_square = {"n_objects": np.array([2]), "color": np.array([[0, 2]]), "shape": np.array([[0, 1]])}
    assert hallucinations(texts[:5], red_circle).tolist() == [False, True, True, False, False]
    assert hallucinations(texts[5:], red_circle_blue_square).tolist() == [False]  # a binding error, not made up
    with pytest.raises(ValueError, match="6 texts for 5 images"):
        hallucinations(texts, red_circle)
    assert valid_answers(["red", "left", "Yes", "red"], ["what color is the square?", "where is the red circle?",
                                                        "is there a red circle?", "how many shapes are there?"]
                         ).tolist() == [True, True, True, False]
    b = WORLD.vqa(200, split="test")
    scores = vqa_scores(b.answers, b)
    assert scores["exact"] == scores["valid"] == 1.0 and scores["hallucination"] == 0.0
    assert {f"exact_{t}" for t in ("color", "shape", "count", "exists", "position", "size")} <= scores.keys()
    with pytest.raises(ValueError, match="predictions but"):
        exact_matches(["a"], [])
    with pytest.raises(ValueError, match="VQA batch"):
        vqa_scores(["a"], WORLD.pairs(1))


def _no_mismatch(name, call):
    try:
        call()
    except Exception as error:  # reading meta data fails by design; a device mismatch is the bug
        if any(m in str(error) for m in MISMATCH):
            raise AssertionError(f"{name}: {error}") from error


def test_devices_tensors_follow_the_model():
    model = tiny().to("meta")
    images, ids, mask = (t.to("meta") for t in chat_tensors(TOK, VQA.images[:4], VQA.questions[:4], VQA.answers[:4]))
    lm = causal_lm(TOK, width=32, heads=2, layers=1).to("meta")
    set_trainable(model, projector=True, lm=False)
    for name, call in [("instruction_step", lambda: instruction_step(model, (images, ids, mask))),
                       ("alignment_step", lambda: alignment_step(model, (images, ids, mask))),
                       ("text_step", lambda: text_step(lm, (ids,))),
                       ("answer", lambda: answer(model, VQA.images[:4], VQA.questions[:4])),  # CPU inputs
                       ("answer, own decoder", lambda: answer(model, VQA.images[:4], VQA.questions[:4],
                                                              decode=greedy_decode_with_cache)),
                       ("image_features", lambda: model.image_features(VQA.images[:4])),
                       ("read_scenes", lambda: read_scenes(lm, TOK, ["a red circle"] * 2, VQA.questions[:2]))]:
        _no_mismatch(name, call)
    with pytest.raises(AssertionError, match="forgot"):  # the audit catches a CPU tensor meeting the model
        _no_mismatch("forgot", lambda: model(VQA.images[:4], ids))


def _decoder_without_cache(model, images, ids, max_new_tokens=8):
    """Right answers, the slow way: the whole sequence through the LM at every step."""
    embeds, mask, _ = model.embed(images, ids)
    tok, out = model.tokenizer, []
    done = torch.zeros(len(ids), dtype=torch.bool)
    for _ in range(max_new_tokens):
        logits = model.lm(inputs_embeds=embeds, attention_mask=mask, position_ids=positions_from_mask(mask)).logits
        token = logits[:, -1].argmax(-1).masked_fill(done, tok.pad_id)
        out.append(token)
        done |= token == tok.eos_id
        if done.all():
            break
        embeds = torch.cat([embeds, model.lm.get_input_embeddings()(token)[:, None]], dim=1)
        mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
    return torch.stack(out, dim=1)


def test_the_kv_decode_exercise_check(capsys):
    from vlmlearn.exercises.gvlm import QUESTIONS, _tiny_vlm, check_kv_decode

    model, images = _tiny_vlm()
    ids, _ = chat_ids(model.tokenizer, QUESTIONS)
    ended = (library_generate(model, images, ids) == model.tokenizer.eos_id).any(1)
    assert ended.any() and not ended.all(), "the check's case has answers that end early and answers that run on"
    assert check_kv_decode(greedy_decode_with_cache)
    assert not check_kv_decode(_decoder_without_cache)
    assert "without a cache" in capsys.readouterr().out

    def no_padding(model, images, ids, max_new_tokens=8):  # keeps writing after the end token
        new = greedy_decode_with_cache(model, images, ids, max_new_tokens=max_new_tokens)
        return torch.where(new == model.tokenizer.pad_id, model.tokenizer.eos_id, new)

    assert not check_kv_decode(no_padding)
    assert "the library writes" in capsys.readouterr().out

    def not_yet(model, images, ids, max_new_tokens=8):
        raise NotImplementedError

    assert not check_kv_decode(not_yet)
    assert "not implemented yet" in capsys.readouterr().out
    assert not check_kv_decode(_stuck_positions)  # every new token at the same position: RoPE sees no order
    assert "position" in capsys.readouterr().out


def _stuck_positions(model, images, ids, max_new_tokens=8):
    """A KV-cache decoder with one realistic bug: each new token goes in one past the prompt, never further."""
    from transformers import DynamicCache

    from vlmlearn.gvlm import _cache_keyword

    embeds, mask, positions = model.embed(images, ids)
    cache, keyword, tok = DynamicCache(), _cache_keyword(model.lm), model.tokenizer
    logits = model.lm(inputs_embeds=embeds, attention_mask=mask, position_ids=positions, use_cache=True,
                      **{keyword: cache}).logits[:, -1]
    done, out = torch.zeros(len(ids), dtype=torch.bool), []
    for _ in range(max_new_tokens):
        token = logits.argmax(-1).masked_fill(done, tok.pad_id)
        out.append(token)
        done |= token == tok.eos_id
        if done.all():
            break
        mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
        logits = model.lm(inputs_embeds=model.lm.get_input_embeddings()(token[:, None]), attention_mask=mask,
                          position_ids=positions[:, -1:] + 1, use_cache=True, **{keyword: cache}).logits[:, -1]
    return torch.stack(out, dim=1)


def test_describe_leaves_room_for_the_longest_caption_the_world_writes():
    # 18 words, "a photo of a large green circle on the right and a small red triangle at the top", and the end token
    import inspect

    longest = max(len(c.split()) for c in WORLD.pairs(2000).captions + WORLD.noisy_pairs(2000).captions)
    assert inspect.signature(describe).parameters["max_new_tokens"].default >= longest + 1


def test_read_scenes_answers_each_row_as_if_alone():
    lm = _loud(tiny()).lm
    scenes = WORLD.pairs(16).captions
    together = read_scenes(lm, TOK, scenes, VQA.questions, max_new_tokens=6)
    alone = [read_scenes(lm, TOK, [s], [q], max_new_tokens=6)[0] for s, q in zip(scenes, VQA.questions)]
    assert together == alone  # left padding changes no row's answer
    assert len(set(together)) > 3, "a test of equal answers needs different answers"
    for text, scene, question in zip(together, scenes, VQA.questions):  # greedy, after `<bos> {scene_question}`
        prompt = torch.tensor([TOK.encode(scene_question(scene, question))[:-1]])
        with torch.no_grad():
            first = lm(prompt).logits[0, -1].argmax()
        assert text.split()[:1] == TOK.decode(first[None, None])[0].split()
    with pytest.raises(ValueError, match="2 scenes but 3 questions"):
        read_scenes(lm, TOK, scenes[:2], VQA.questions[:3])
