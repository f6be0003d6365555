"""vlmlearn.checks: each check fires on the bug it names and passes on correct input (tiny, seeded, CPU)."""
import functools
import math

import pytest
import torch
import torch.nn.functional as F

from vlmlearn.checks import (
    check_batchnorm_for_ddp,
    check_contrastive_loss_moves,
    check_logit_scale,
    check_mae_loss_on_masked,
    check_pseudo_label_mask_rate,
    check_pseudo_label_threshold,
    check_views_not_swapped,
    loss_at_chance,
)
from vlmlearn.contrastive import DualEncoder
from vlmlearn.models import SmallCNN, TextTransformer, digits_cnn
from vlmlearn.semi import fixmatch_step
from vlmlearn.train import History


def test_contrastive_loss_at_ln_b_fires_and_a_falling_loss_passes():
    stuck = [5.3, 5.0] + [math.log(128) + 0.01 * (-1) ** i for i in range(20)]
    with pytest.raises(ValueError, match=r"stuck at chance.*ln\(128\) = 4.852.*empty captions"):
        check_contrastive_loss_moves(stuck, 128)
    falling = [math.log(128) * 0.9 ** i for i in range(30)]
    assert "moves" in check_contrastive_loss_moves(falling, 128)
    history = History()
    for step, loss in enumerate(stuck, 1):
        history.log(history.train, step, {"loss": loss})
    assert loss_at_chance(history, 128) and not loss_at_chance(falling, 128)
    with pytest.raises(ValueError, match="integer >= 2"):
        check_contrastive_loss_moves(falling, 1)
    with pytest.raises(ValueError, match="NaN"):
        check_contrastive_loss_moves([1.0, float("nan")], 8)


def test_a_real_clip_with_identical_captions_sits_at_ln_b():
    torch.manual_seed(0)
    model = DualEncoder(SmallCNN(image_size=8, widths=(8,), embed_dim=16),
                        TextTransformer(vocab_size=10, context_length=4, width=16, layers=1, heads=2, embed_dim=16))
    images, same = torch.rand(16, 3, 8, 8), torch.tensor([[2, 3, 0, 0]] * 16)  # every caption "<bos> <eos>"
    img, txt, scale = model(images, same)
    logits = scale * img @ txt.T
    labels = torch.arange(16)
    # every image scores the 16 identical captions alike: exactly ln 16; no caption can prefer its image: >= ln 16
    assert F.cross_entropy(logits, labels).item() == pytest.approx(math.log(16), abs=1e-5)
    assert F.cross_entropy(logits.T, labels).item() >= math.log(16) - 1e-5


def test_logit_scale_initialised_to_one_or_unclamped_fires():
    good = DualEncoder(SmallCNN(image_size=8, widths=(8,), embed_dim=8),
                       TextTransformer(vocab_size=10, context_length=4, width=8, layers=1, heads=2, embed_dim=8))
    assert "CLIP's start" in check_logit_scale(good)
    bad = DualEncoder(good.image_encoder, good.text_encoder, init_temperature=math.exp(-1))
    with pytest.raises(ValueError, match=r"starts at 1.000 \(scale 2.7, temperature 0.368\).*13430"):
        check_logit_scale(bad)
    with pytest.raises(ValueError, match="scaled by 403, above CLIP's cap of 100.*clamp"):
        check_logit_scale(math.log(403), at_init=False)
    assert "within CLIP's cap" in check_logit_scale(math.log(100), at_init=False)
    assert "within CLIP's cap" in check_logit_scale(torch.tensor(3.5), at_init=False)
    with pytest.raises(ValueError, match="no `logit_scale`"):
        check_logit_scale(torch.nn.Linear(2, 2))


def test_mae_loss_on_visible_or_every_patch_fires():
    def masked(pred, target, mask):
        per_patch = ((pred - target) ** 2).mean(-1)
        return (per_patch * mask).sum() / mask.sum()

    def visible(pred, target, mask):
        return masked(pred, target, 1 - mask)

    def every(pred, target, mask):
        return ((pred - target) ** 2).mean()

    assert "hidden patches only" in check_mae_loss_on_masked(masked)
    with pytest.raises(ValueError, match="counts the visible patches"):
        check_mae_loss_on_masked(visible)
    with pytest.raises(ValueError, match="counts every patch"):
        check_mae_loss_on_masked(every)
    with pytest.raises(ValueError, match="ignores the hidden"):
        check_mae_loss_on_masked(lambda pred, target, mask: torch.tensor(0.0))


def test_pseudo_label_mask_rate_zero_fires():
    assert "pass" in check_pseudo_label_mask_rate([0.0] * 10 + [0.4] * 10)
    with pytest.raises(ValueError, match=r"mask rate 0.000 over steps 11-20.*dim 0"):
        check_pseudo_label_mask_rate([0.0] * 20)
    history = History()
    for step in range(1, 11):
        history.log(history.train, step, {"loss": 1.0})
    with pytest.raises(ValueError, match="logged no 'mask_rate'"):
        check_pseudo_label_mask_rate(history)


def test_pseudo_labels_without_threshold_fire_unless_the_weight_ramps():
    with pytest.raises(ValueError, match="confirmation bias"):
        check_pseudo_label_threshold([1.0] * 50)
    assert "selected" in check_pseudo_label_threshold([0.0] * 10 + [0.9] * 40)
    lee = History()  # Lee (2013): every image counts, but the weight starts at 0
    for step in range(1, 51):
        lee.log(lee.train, step, {"loss": 1.0, "mask_rate": 1.0, "weight": min(step / 25, 1.0) * 3})
    assert "selected" in check_pseudo_label_threshold(lee)


def test_swapped_or_undetached_views_fire():
    assert "views in order" in check_views_not_swapped(fixmatch_step)

    def swapped(model, batch, *, weak, strong, **kwargs):
        return fixmatch_step(model, batch, weak=strong, strong=weak, **kwargs)

    with pytest.raises(ValueError, match="views are swapped"):
        check_views_not_swapped(swapped)

    def not_detached(model, batch, *, weak, strong, threshold=0.95):
        x, y, u = batch
        logits = model(torch.cat([weak(x), weak(u), strong(u)]))
        logits_x, lw, ls = logits[:len(x)], *logits[len(x):].chunk(2)
        probs = lw.softmax(-1)  # no detach: gradient reaches the weak view
        unsup = (-(probs.max(-1).values.log()) + F.cross_entropy(ls, probs.argmax(-1), reduction="none")).mean()
        return F.cross_entropy(logits_x, y) + unsup, {}

    with pytest.raises(ValueError, match="not detached"):
        check_views_not_swapped(not_detached)
    with pytest.raises(ValueError, match="no gradient reaches"):
        check_views_not_swapped(functools.partial(fixmatch_step, weight=0.0))
    with pytest.raises(ValueError, match="weak=..., strong="):
        check_views_not_swapped(lambda model, batch: (torch.tensor(0.0), {}))


def test_batchnorm_layers_are_listed_until_converted():
    model = digits_cnn()
    with pytest.raises(ValueError, match=r"4 BatchNorm layer\(s\).*features.1 \(BatchNorm2d\).*convert_sync"):
        check_batchnorm_for_ddp(model)
    synced = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    assert check_batchnorm_for_ddp(synced) == "no per-process BatchNorm (4 SyncBatchNorm layer(s))"
    assert "0 SyncBatchNorm" in check_batchnorm_for_ddp(torch.nn.Sequential(torch.nn.Linear(2, 2),
                                                                            torch.nn.LayerNorm(2)))


def test_the_exercise_check_accepts_the_package_function_and_names_a_wrong_one(capsys):
    from vlmlearn.exercises.failures import check_loss_at_chance

    assert check_loss_at_chance(loss_at_chance)
    assert not check_loss_at_chance(lambda losses, b, **kw: abs(sum(losses) / len(losses) - math.log(b)) < 0.1)
    assert "leave the warm-up steps out" in capsys.readouterr().out
