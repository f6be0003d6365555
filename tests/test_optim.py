import math

import pytest
import torch
from torch import nn

from vlmlearn.optim import clamp_logit_scales_, layer_decay_groups, one_cycle, param_groups, warmup_cosine


def test_warmup_cosine_is_open_clips_cosine_lr():
    scheduler = pytest.importorskip("open_clip_train.scheduler")
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    theirs = scheduler.cosine_lr(opt, 1.0, warmup_length=4, steps=12)
    f = warmup_cosine(12, warmup=4)
    for step in range(13):
        assert f(step) == pytest.approx(theirs(step), abs=1e-12), step
    assert [f(s) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert f(8) == pytest.approx(0.5) and f(12) == pytest.approx(0.0) and f(50) == pytest.approx(0.0)


def test_warmup_cosine_edges():
    assert warmup_cosine(10, warmup=0)(0) == 1.0  # no warm-up: the cosine starts at once
    longer = warmup_cosine(5, warmup=20)  # a warm-up longer than the run only ramps, as open_clip's does
    assert [longer(s) for s in range(3)] == [0.05, 0.1, 0.15]
    with pytest.raises(ValueError, match="warmup >= 0"):
        warmup_cosine(10, warmup=-1)
    with pytest.raises(ValueError, match="steps >= 1"):
        warmup_cosine(0, warmup=0)


def test_one_cycle_is_torchs():
    p = nn.Parameter(torch.zeros(1))
    ours = one_cycle(torch.optim.SGD([p], lr=1.0), max_lr=2e-3, steps=50)
    theirs = torch.optim.lr_scheduler.OneCycleLR(torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0), max_lr=2e-3,
                                                 total_steps=50, pct_start=0.1)
    for _ in range(49):
        assert ours.get_last_lr() == pytest.approx(theirs.get_last_lr())
        ours.optimizer.step(), ours.step(), theirs.optimizer.step(), theirs.step()


def test_param_groups_decay_only_weight_matrices():
    model = nn.Sequential(nn.Embedding(10, 4), nn.Linear(4, 4), nn.LayerNorm(4))
    model.logit_scale = nn.Parameter(torch.zeros(()))
    decay, no_decay = param_groups(model, 0.1, lr=1e-3)
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0 and decay["lr"] == 1e-3
    assert [p is model[1].weight for p in decay["params"]] == [True]
    assert len(no_decay["params"]) == 5  # embedding, linear bias, norm weight and bias, logit_scale


def test_layer_decay_groups_scale_the_rate_by_depth():
    from vlmlearn.mae import MAEClassifier, MAEEncoder

    encoder = MAEEncoder(image_size=8, patch_size=4, width=8, depth=2, heads=2, mlp_ratio=1.0)
    model = MAEClassifier(encoder, 3)
    groups = layer_decay_groups(model, 1.0, layer_decay=0.5)
    lr_of = {id(p): g["lr"] for g in groups for p in g["params"]}
    assert set(lr_of) == {id(p) for p in model.parameters()}
    assert lr_of[id(encoder.patch_embed.weight)] == 0.5 ** 3
    assert lr_of[id(next(encoder.blocks.layers[0].parameters()))] == 0.5 ** 2
    assert lr_of[id(next(encoder.blocks.layers[1].parameters()))] == 0.5
    assert lr_of[id(model.head.weight)] == 1.0


def test_clamp_logit_scales_in_place():
    model = nn.Module()
    model.logit_scale = nn.Parameter(torch.tensor(9.0))
    clamp_logit_scales_(model)
    assert model.logit_scale.item() == pytest.approx(math.log(100))
