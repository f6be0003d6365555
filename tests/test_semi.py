import functools
import math

import pytest
import torch

from vlmlearn import semi
from vlmlearn.augment import weak_augment
from vlmlearn.semi import (
    Ramp,
    confident_mask,
    ema_teacher,
    fixmatch_step,
    mean_teacher_decay,
    mean_teacher_step,
    pi_model_step,
    semi_batches,
    supervised_step,
)


def test_confident_mask_uses_greater_or_equal():
    probs = torch.tensor([[0.95, 0.05], [0.949, 0.051], [1.0, 0.0], [0.5, 0.5]])
    assert confident_mask(probs, 0.95).tolist() == [True, False, True, False]  # exactly 0.95 counts (>=)
    assert confident_mask(probs, 1.0).tolist() == [False, False, True, False]
    with pytest.raises(ValueError, match="threshold"):
        confident_mask(probs, 1.5)


def test_ema_update_is_exact():
    torch.manual_seed(0)
    student = torch.nn.Linear(3, 2)
    teacher = ema_teacher(student, decay=0.9)
    with torch.no_grad():
        student.weight.add_(1.0)
    teacher.update_parameters(student)  # AveragedModel's first update copies the student
    assert torch.equal(teacher.module.weight, student.weight)
    before = teacher.module.weight.detach().clone()
    with torch.no_grad():
        student.weight.add_(1.0)
    teacher.update_parameters(student)  # then: teacher = 0.9 teacher + 0.1 student
    assert torch.allclose(teacher.module.weight, 0.9 * before + 0.1 * student.weight)


def test_mean_teacher_decay_schedule_and_ema_follow_it():
    decay = mean_teacher_decay(100, during=0.99, after=0.999)
    assert [decay(n) for n in (1, 3, 99, 150, 2000)] == pytest.approx([0.5, 0.75, 0.99, 1 - 1 / 151, 0.999])
    torch.manual_seed(0)
    student = torch.nn.Linear(3, 2)
    teacher = ema_teacher(student, decay=lambda n: [None, 0.5, 0.8][n])
    expected = None
    for n in range(3):
        with torch.no_grad():
            student.weight.add_(torch.randn(2, 3))
        teacher.update_parameters(student)
        w = student.weight.detach()
        expected = w.clone() if n == 0 else [None, 0.5, 0.8][n] * expected + (1 - [None, 0.5, 0.8][n]) * w
    assert torch.allclose(teacher.module.weight, expected)
    with pytest.raises(ValueError, match="decays"):
        mean_teacher_decay(10, after=1.5)


def test_sigmoid_ramp_as_in_the_papers():
    ramp = Ramp.sigmoid(10.0, end=100)
    values = []
    for t in (0, 50, 100, 400):
        ramp.callback(type("State", (), {"step": t})())
        values.append(float(ramp))
    assert values == pytest.approx([10 * math.exp(-5), 10 * math.exp(-1.25), 10, 10])
    with pytest.raises(ValueError, match="positive"):
        Ramp.sigmoid(1.0, end=0)


def test_fixmatch_labels_with_the_weak_view_and_learns_on_the_strong():
    import torch.nn.functional as F

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3, bias=False))
    x, y, u = torch.randn(4, 1, 4, 4), torch.tensor([0, 1, 2, 0]), torch.randn(32, 1, 4, 4) * 3
    loss, metrics = fixmatch_step(model, (x, y, u), threshold=0.7, weight=2.0,
                                  weak=lambda x: x, strong=lambda x: -x)  # views a bug cannot confuse
    probs = model(u).softmax(-1)
    mask = (probs.max(-1).values >= 0.7).float()
    unsup = (F.cross_entropy(model(-u), probs.argmax(-1), reduction="none") * mask).mean()
    assert 0 < mask.mean() < 1 and metrics["mask_rate"] == mask.mean().item()
    assert loss.item() == pytest.approx((F.cross_entropy(model(x), y) + 2.0 * unsup).item(), rel=1e-5)
    wrong = (F.cross_entropy(model(u), model(-u).argmax(-1), reduction="none") * mask).mean()  # views swapped
    assert abs(wrong - unsup) > 1e-3


def test_pi_model_and_mean_teacher_losses_and_ramped_weights(monkeypatch):
    import torch.nn.functional as F

    monkeypatch.setattr(semi, "weak_augment", lambda x: x * 1.5)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3))
    teacher = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3))
    x, y, u = torch.randn(4, 1, 4, 4), torch.tensor([0, 1, 2, 0]), torch.randn(8, 1, 4, 4)
    sup = F.cross_entropy(model(x * 1.5), y)
    loss, metrics = mean_teacher_step(model, (x, y, u), teacher=teacher, weight=Ramp(lambda t: 4.0))
    target = F.mse_loss(model(u * 1.5).softmax(-1), teacher(u * 1.5).softmax(-1))  # the student learns, not the teacher
    assert loss.item() == pytest.approx((sup + 4.0 * target).item(), rel=1e-5) and metrics["weight"] == 4.0
    assert metrics["consistency"] == pytest.approx(target.item(), rel=1e-5) and target > 0
    loss, metrics = pi_model_step(model, (x, y, u), weight=3.0)
    assert loss.item() == pytest.approx(sup.item(), rel=1e-5) and metrics["consistency"] == 0.0  # same view twice
    monkeypatch.setattr(semi, "weak_augment", lambda x: x + 0.5 * torch.randn_like(x))
    _, metrics = pi_model_step(model, (x, y, u), weight=3.0)
    assert metrics["consistency"] > 0  # two different views


def _model():
    torch.manual_seed(0)
    from vlmlearn.models import SmallCNN

    return SmallCNN(image_size=16, in_channels=1, widths=(8, 8, 8), embed_dim=10)


def test_step_functions_forward_backward_and_never_need_unlabeled_labels():
    x, y, u = torch.rand(4, 1, 16, 16), torch.tensor([0, 1, 2, 3]), torch.rand(12, 1, 16, 16)
    model = _model()
    teacher = ema_teacher(model)
    for step in (supervised_step, pi_model_step, functools.partial(mean_teacher_step, teacher=teacher),
                 functools.partial(fixmatch_step, threshold=0.0)):
        model.zero_grad()
        loss, metrics = step(model, (x, y, u))  # the batch has no labels for u: nothing to leak
        loss.backward()
        assert torch.isfinite(loss) and all(p.grad is not None for p in model.parameters())
    _, metrics = fixmatch_step(model, (x, y, u), threshold=0.0)
    assert metrics["mask_rate"] == 1.0
    _, metrics = fixmatch_step(model, (x, y, u), threshold=1.0)
    assert metrics["mask_rate"] == 0.0


def test_semi_batches_shapes_determinism_and_errors():
    from vlmlearn.data import load_digits_split

    s = load_digits_split(2, seed=0)
    get = semi_batches(s.labeled.images, s.labeled.labels, s.unlabeled, batch_size=8, mu=3, seed=1)
    x, y, u = get(5)
    assert x.shape == (8, 1, 16, 16) and y.shape == (8,) and u.shape == (24, 1, 16, 16)
    assert torch.equal(get(5)[2], u) and not torch.equal(get(6)[2], u)
    with pytest.raises(ValueError, match="labels"):
        semi_batches(s.labeled.images, s.labeled.labels[:3], s.unlabeled)


def test_fixmatch_learns_and_accepts_only_confident_correct_pseudo_labels():
    from vlmlearn.data import load_digits_split
    from vlmlearn.eval import accuracy
    from vlmlearn.runtime import set_seed
    from vlmlearn.semi import predict_probs
    from vlmlearn.train import train

    s = load_digits_split(5, seed=0, image_size=16)
    set_seed(0)
    model = _model()
    history = train(model, torch.optim.AdamW(model.parameters(), lr=3e-3), fixmatch_step,
                    semi_batches(s.labeled.images, s.labeled.labels, s.unlabeled, batch_size=32, mu=3), steps=120,
                    progress=False)
    with torch.no_grad():
        assert accuracy(model(s.test.images), s.test.labels) > 0.7  # chance is 0.1
    rate = history.train["mask_rate"]
    assert sum(rate[:10]) == 0 and sum(rate[-20:]) > 0  # an untrained model is never 0.95 sure; a trained one is
    probs = predict_probs(model, s.unlabeled)
    keep = confident_mask(probs, 0.95)
    correct = probs.argmax(-1)[keep] == s.reveal_unlabeled_labels()[keep]  # measurement only
    assert keep.float().mean() > 0.05 and correct.float().mean() > 0.9


def test_semi_exercise_checks_pass_references_and_catch_mistakes(capsys):
    import torch.nn.functional as F

    from vlmlearn import exercises

    assert exercises.check_pi_consistency(lambda a, b: F.mse_loss(a.softmax(-1), b.softmax(-1)))
    assert not exercises.check_pi_consistency(lambda a, b: F.mse_loss(a, b))

    @torch.no_grad()
    def ema(teacher, student, decay):
        for t, s in zip(teacher.parameters(), student.parameters()):
            t.mul_(decay).add_(s, alpha=1 - decay)

    @torch.no_grad()
    def ema_swapped(teacher, student, decay):
        for t, s in zip(teacher.parameters(), student.parameters()):
            t.mul_(1 - decay).add_(s, alpha=decay)

    assert exercises.check_ema_update(ema)
    assert not exercises.check_ema_update(ema_swapped)

    def fixmatch(weak, strong, threshold, strict=False):
        probs = weak.softmax(-1)
        top = probs.max(-1).values
        mask = (top > threshold if strict else top >= threshold).float()
        return (F.cross_entropy(strong, probs.argmax(-1), reduction="none") * mask).mean()

    assert exercises.check_fixmatch_loss(fixmatch)
    assert not exercises.check_fixmatch_loss(functools.partial(fixmatch, strict=True))
    out = capsys.readouterr().out
    assert "raw logits" in out and "(>=)" in out


def test_threshold_trade_off_and_explorer():
    from vlmlearn.widgets import threshold_explorer, threshold_trade_off

    probs = torch.tensor([[0.99, 0.01], [0.6, 0.4], [0.2, 0.8], [0.97, 0.03]])
    labels = torch.tensor([0, 1, 1, 1])
    t = threshold_trade_off(probs, labels, 0.95)
    assert t["coverage"] == 0.5 and t["precision"] == 0.5 and t["per_class"] == [2, 0]
    assert threshold_trade_off(probs, labels, 0.5)["coverage"] == 1.0
    assert threshold_explorer(probs, labels).children


def test_function_word_dropout_keeps_attributes_recoverable(world):
    from vlmlearn.data import drop_function_words, parse_caption

    caps = world.pairs(200).captions
    dropped = drop_function_words(caps, p=1.0)
    assert all(parse_caption(a) == parse_caption(b) for a, b in zip(caps, dropped))
    assert all(len(b.split()) < len(a.split()) for a, b in zip(caps, dropped))
    assert drop_function_words(caps, p=0.0) == caps
    with pytest.raises(ValueError, match="p must be"):
        drop_function_words(caps, p=2.0)


def test_consistency_clip_step_forward_backward():
    from vlmlearn.contrastive import DualEncoder, consistency_clip_step
    from vlmlearn.models import SmallCNN, TextTransformer

    model = DualEncoder(SmallCNN(image_size=16, widths=(8, 8, 8), embed_dim=16),
                        TextTransformer(vocab_size=12, context_length=6, width=16, layers=1, heads=2, embed_dim=16))
    ids = torch.tensor([[2, 5, 6, 3], [2, 7, 8, 3]])
    loss, metrics = consistency_clip_step(model, (torch.rand(2, 3, 16, 16), ids, ids.flip(1).clamp(min=2)))
    loss.backward()
    assert torch.isfinite(loss) and {"text_gap", "image_gap"} <= set(metrics)


def test_select_pseudo_labels_honours_the_threshold():
    from vlmlearn.semi import select_pseudo_labels

    probs = torch.tensor([[0.96, 0.04], [0.5, 0.5], [0.05, 0.95], [0.94, 0.06], [0.0, 1.0]])
    idx, labels = select_pseudo_labels(probs, 0.95)
    assert idx.tolist() == [0, 2, 4] and labels.tolist() == [0, 1, 1]  # 0.95 itself counts, 0.94 does not
    assert len(select_pseudo_labels(probs, 1.0)[0]) == 1
    with pytest.raises(ValueError, match="threshold"):
        select_pseudo_labels(probs, 1.5)


def test_self_training_never_reads_the_pools_true_labels(monkeypatch):
    from vlmlearn.data import load_digits_split
    from vlmlearn.data.digits import DigitsSplit
    from vlmlearn.models import SmallCNN
    from vlmlearn.semi import pseudo_label_step, self_training_round
    from vlmlearn.train import train

    split = load_digits_split(2, seed=0, image_size=16)

    def forbidden(self):
        raise AssertionError("the training code asked for the unlabeled pool's true labels")

    monkeypatch.setattr(DigitsSplit, "reveal_unlabeled_labels", forbidden)
    torch.manual_seed(0)
    model = SmallCNN(image_size=16, in_channels=1, widths=(8, 16), embed_dim=10)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    data = semi_batches(split.labeled.images, split.labeled.labels, split.unlabeled, batch_size=8, mu=2)
    train(model, opt, functools.partial(pseudo_label_step, threshold=0.0), data, steps=3, progress=False)
    x, y, info = self_training_round(model, split.labeled.images, split.labeled.labels, split.unlabeled, threshold=0.0)
    assert len(x) == len(y) == len(split.labeled) + len(split.unlabeled)  # threshold 0 keeps the whole pool
    assert torch.equal(x[len(split.labeled):], split.unlabeled[info["selected"]])
    with pytest.raises(AssertionError, match="true labels"):
        split.reveal_unlabeled_labels()
    with pytest.raises(ValueError, match="image tensor"):
        self_training_round(model, split.labeled.images, split.labeled.labels, split, 0.9)


def test_ramp_follows_the_training_step():
    from vlmlearn.semi import Ramp

    ramp = Ramp.linear(3.0, start=2, end=6)
    values = []
    for t in range(8):
        values.append(float(ramp))
        ramp.callback(type("State", (), {"step": t + 1})())
    assert values == pytest.approx([0, 0, 0, 0.75, 1.5, 2.25, 3, 3])
    with pytest.raises(ValueError, match="start < end"):
        Ramp.linear(1.0, start=5, end=5)


def test_lee_pseudo_labels_every_unlabeled_image_with_its_argmax_and_a_ramped_weight():
    import torch.nn.functional as F

    from vlmlearn.semi import Ramp, pseudo_label_step
    from vlmlearn.train import train

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 4))
    x, y, u = torch.rand(6, 1, 8, 8), torch.randint(4, (6,)), torch.rand(10, 1, 8, 8)
    losses = {}
    for w in (0.0, 2.0):
        torch.manual_seed(1)
        losses[w], metrics = pseudo_label_step(model, (x, y, u), weight=w)
    torch.manual_seed(1)
    logits = model(torch.cat([weak_augment(x), weak_augment(u)]))
    supervised = F.cross_entropy(logits[:6], y)
    pseudo = F.cross_entropy(logits[6:], logits[6:].argmax(-1))  # every unlabeled image, its own argmax
    assert losses[0.0].item() == pytest.approx(supervised.item(), rel=1e-6)
    assert losses[2.0].item() == pytest.approx((supervised + 2 * pseudo).item(), rel=1e-6)
    assert metrics["mask_rate"] == 1.0 and metrics["weight"] == 2.0
    _, thresholded = pseudo_label_step(model, (x, y, u), threshold=0.99)  # an untrained model is never that sure
    assert thresholded["mask_rate"] == 0.0
    ramp = Ramp.linear(3.0, start=1, end=3)
    history = train(model, torch.optim.SGD(model.parameters(), lr=0.01),
                    functools.partial(pseudo_label_step, weight=ramp), lambda step: (x, y, u), steps=5,
                    callbacks=[ramp.callback], progress=False)
    assert history.train["weight"] == pytest.approx([0, 0, 1.5, 3, 3])


def _fixmatch_step_variant(bug=None):
    """A learner's FixMatch step: right, or with one classic bug."""
    import torch.nn.functional as F

    def step(model, batch, threshold, weak=None, strong=None):  # the check passes its own views
        x, y, u = batch
        if bug == "three passes":
            logits_x, logits_weak, logits_strong = model(weak(x)), model(weak(u)), model(strong(u))
        else:
            logits = model(torch.cat([weak(x), weak(u), strong(u)]))
            logits_x, logits_weak, logits_strong = logits[: len(x)], *logits[len(x):].chunk(2)
        if bug == "swapped views":
            logits_weak, logits_strong = logits_strong, logits_weak
        unlabeled = semi.fixmatch_unlabeled_loss(logits_weak, logits_strong, threshold)
        loss = unlabeled if bug == "no labeled term" else F.cross_entropy(logits_x, y) + unlabeled
        rate = 1.0 if bug == "mask rate" else semi.confident_mask(logits_weak.softmax(-1), threshold).float().mean()
        return loss, {"mask_rate": float(rate)}

    return step


@pytest.mark.parametrize("bug, says", [("swapped views", "from the strong view"), ("three passes", "BatchNorm"),
                                       ("no labeled term", "labeled images' cross-entropy"),
                                       ("mask rate", "expected mask_rate")])
def test_the_fixmatch_step_check_passes_the_step_and_names_each_classic_bug(bug, says, capsys):
    from vlmlearn.exercises.fixmatch import check_fixmatch_step

    assert check_fixmatch_step(_fixmatch_step_variant())
    assert not check_fixmatch_step(_fixmatch_step_variant(bug))
    assert says in capsys.readouterr().out


def test_the_fixmatch_step_check_says_not_yet_to_a_stub(capsys):
    from vlmlearn.exercises import hints
    from vlmlearn.exercises.fixmatch import check_fixmatch_step

    def stub(model, batch, threshold, weak=None, strong=None):
        raise NotImplementedError

    assert not check_fixmatch_step(stub)
    hints("fixmatch_step")(2)
    out = capsys.readouterr().out
    assert "not implemented yet" in out and "fixmatch_step, hint 2 of 2" in out
