"""The places where a learner's function takes over from the package's: each one really calls it, and the
package's own version (the fallback) passes the check the learner's must pass."""
import torch
import torch.nn.functional as F

from vlmlearn import exercises
from vlmlearn.data import ShapesWorld, WordTokenizer, caption_vocabulary


def _spy(fn):
    calls = []

    def wrapped(*args, **kwargs):
        calls.append(1)
        return fn(*args, **kwargs)

    wrapped.calls = calls
    return wrapped


def test_the_package_versions_pass_the_checks_the_learners_must_pass():
    from vlmlearn.capfilt import keep_most_similar
    from vlmlearn.generative import greedy_decode
    from vlmlearn.label_efficiency import pick_best
    from vlmlearn.losses import clip_loss, logits_bytes
    from vlmlearn.mae import random_masking
    from vlmlearn.mlm import mask_tokens
    from vlmlearn.semi import fixmatch_unlabeled_loss, select_pseudo_labels
    from vlmlearn.vqa import matching_logits

    assert exercises.check_clip_loss(clip_loss) and exercises.check_keep_most_similar(keep_most_similar)
    assert exercises.check_greedy_decode(greedy_decode) and exercises.check_random_masking(random_masking)
    assert exercises.check_mask_tokens(mask_tokens) and exercises.check_fixmatch_loss(fixmatch_unlabeled_loss)
    assert (exercises.check_select_pseudo_labels(select_pseudo_labels)
            and exercises.check_matching_logits(matching_logits))
    assert exercises.check_pick_best(pick_best) and exercises.check_logits_bytes(logits_bytes)


def test_fit_clip_trains_with_the_given_loss_and_the_same_arithmetic_trains_bit_for_bit_the_same():
    from vlmlearn.contrastive import fit_clip, shapes_clip
    from vlmlearn.losses import clip_loss

    def notebook_solution(image_features, text_features, logit_scale):  # notebook 01's solution
        logits_per_image = logit_scale * image_features @ text_features.T
        logits_per_text = logit_scale * text_features @ image_features.T
        labels = torch.arange(len(logits_per_image))
        return (F.cross_entropy(logits_per_image, labels) + F.cross_entropy(logits_per_text, labels)) / 2

    pairs = ShapesWorld(seed=0).pairs(128)
    tok = WordTokenizer(caption_vocabulary(), context_length=20)
    states = []
    for fn in (clip_loss, _spy(notebook_solution)):
        torch.manual_seed(0)
        model = shapes_clip(tok.vocab_size)
        fit_clip(model, pairs.images, tok(pairs.captions), steps=3, batch_size=32, desc=None, loss_fn=fn)
        states.append(model.state_dict())
    assert len(fn.calls) == 3
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])


def test_fixmatch_step_uses_the_given_unlabeled_loss():
    from vlmlearn.semi import fixmatch_step, fixmatch_unlabeled_loss

    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16 * 16, 10))
    batch = (torch.rand(4, 1, 16, 16), torch.arange(4), torch.rand(8, 1, 16, 16))
    torch.manual_seed(0)
    default, _ = fixmatch_step(model, batch, threshold=0.0)
    spy = _spy(fixmatch_unlabeled_loss)
    torch.manual_seed(0)
    mine, metrics = fixmatch_step(model, batch, threshold=0.0, unlabeled_loss=spy)
    assert spy.calls and torch.equal(default, mine) and metrics["mask_rate"] == 1.0


def test_self_training_round_selects_with_the_given_function():
    from vlmlearn.semi import select_pseudo_labels, self_training_round

    teacher = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16 * 16, 3))
    spy = _spy(select_pseudo_labels)
    x, y, info = self_training_round(teacher, torch.rand(2, 1, 16, 16), torch.tensor([0, 1]), torch.rand(5, 1, 16, 16),
                                     0.0, select=spy)
    assert spy.calls and len(x) == 7 and len(info["selected"]) == 5


def test_pretrain_mae_masks_with_the_given_function_and_the_default_draws_the_same_noise():
    from vlmlearn.mae import MAEEncoder, pretrain_mae, random_masking

    spy = _spy(random_masking)
    images = ShapesWorld(seed=0).images(64).images
    a, _ = pretrain_mae(images, steps=2, batch_size=32, desc=None, masking=spy)
    b, _ = pretrain_mae(images, steps=2, batch_size=32, desc=None)
    assert len(spy.calls) == 2 and MAEEncoder.masking is not spy
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_vqa_matcher_scores_with_its_logits_function():
    from vlmlearn.contrastive import shapes_clip
    from vlmlearn.data import ANSWERS
    from vlmlearn.vqa import VQAByMatching, answer_statements, matching_logits

    world = ShapesWorld(seed=0)
    vqa = world.vqa(4)
    tok = WordTokenizer(caption_vocabulary() + [w for q in vqa.questions for w in q.split()] + list(ANSWERS),
                        context_length=20)
    matcher = VQAByMatching.from_dual_encoder(shapes_clip(tok.vocab_size)).eval()
    statements = answer_statements(vqa.questions, tok)
    with torch.no_grad():
        default = matcher(vqa.images, statements)
        matcher.logits = _spy(matching_logits)
        assert torch.equal(matcher(vqa.images, statements), default) and matcher.logits.calls


def test_captioner_generate_is_greedy_decode_with_the_model():
    from vlmlearn.generative import Captioner, greedy_decode

    torch.manual_seed(0)
    cap = Captioner(vocab_size=20, image_size=16, widths=(8, 16), width=16, layers=1, heads=2).eval()
    images = torch.rand(3, 3, 16, 16)
    with torch.no_grad():
        memory = cap.encode_image(images)
        ids = greedy_decode(lambda ids: cap.decode(memory, ids)[:, -1], 3, cap.bos_id, cap.eos_id, cap.pad_id,
                            cap.context_length)
        assert torch.equal(ids, cap.generate(images))
