import pytest
import torch
from torch import nn

from vlmlearn.runtime import eval_mode, set_train_mode, shard, world


def _model():
    model = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5), nn.Sequential(nn.BatchNorm1d(2)))
    model[2].requires_grad_(False)
    return set_train_mode(model)  # the frozen BatchNorm stays in eval mode


def test_eval_mode_restores_every_submodules_own_mode():
    model = _model()
    before = [m.training for m in model.modules()]
    assert before == [True, True, True, False, False]
    with eval_mode(model):
        assert not any(m.training for m in model.modules())
    assert [m.training for m in model.modules()] == before


def test_eval_mode_restores_on_error_and_takes_several_models():
    a, b = _model(), nn.Linear(1, 1).eval()
    with pytest.raises(RuntimeError):
        with eval_mode(a, b):
            raise RuntimeError("inside")
    assert a.training and a[1].training and not a[2].training and not b.training


def test_world_without_a_process_group():
    assert world() == (0, 1)


def test_shard_splits_each_global_batch_by_rank():
    def get(step):
        return torch.arange(8) + step, [torch.arange(4)]

    first, second = shard(get, 0, 2)(1), shard(get, 1, 2)(1)
    assert first[0].tolist() == [1, 2, 3, 4] and second[0].tolist() == [5, 6, 7, 8]
    assert second[1][0].tolist() == [2, 3]
    with pytest.raises(ValueError, match="does not split evenly over 3"):
        shard(get, 0, 3)(0)
