"""WiSE-FT's weight interpolation (vlmlearn.soups) and its exercise check."""
import pytest
import torch
from torch import nn

from vlmlearn.exercises.weights import check_interpolate_weights
from vlmlearn.soups import interpolate_weights


def two_models():
    torch.manual_seed(0)
    a = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    b = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    b.train()(torch.randn(8, 3))  # b's running statistics and counter move
    return a, b


def test_ends_give_the_two_models_and_the_middle_is_their_mean():
    a, b = two_models()
    sa, sb = a.state_dict(), b.state_dict()
    for alpha, want in ((0.0, sa), (1.0, sb)):
        mixed = interpolate_weights(sa, sb, alpha)
        assert all(torch.equal(mixed[k], want[k]) for k in sa if sa[k].is_floating_point())
    half = interpolate_weights(sa, sb, 0.5)
    assert torch.allclose(half["0.weight"], (sa["0.weight"] + sb["0.weight"]) / 2)
    assert torch.allclose(half["1.running_var"], (sa["1.running_var"] + sb["1.running_var"]) / 2)
    assert half["1.num_batches_tracked"] == sb["1.num_batches_tracked"] == 1  # counters come from the end
    mixed = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    mixed.load_state_dict(half)  # loads into the architecture


def test_results_follow_the_end_models_device():
    a, b = two_models()
    mixed = interpolate_weights(a.state_dict(), b.to("meta").state_dict(), 0.3)
    assert all(v.device.type == "meta" for v in mixed.values())


def test_bad_inputs_say_what_is_wrong():
    a, b = two_models()
    with pytest.raises(ValueError, match="different entries"):
        interpolate_weights(a.state_dict(), nn.Linear(3, 4).state_dict(), 0.5)
    with pytest.raises(ValueError, match=r"0.weight: shape \(4, 3\) in start but \(5, 3\)"):
        interpolate_weights(a.state_dict(), nn.Sequential(nn.Linear(3, 5), nn.BatchNorm1d(4)).state_dict(), 0.5)
    with pytest.raises(ValueError, match="finite"):
        interpolate_weights(a.state_dict(), b.state_dict(), float("nan"))


def test_the_check_passes_the_package_and_catches_realistic_mistakes(capsys):
    assert check_interpolate_weights(interpolate_weights)
    swapped = lambda s, e, alpha: interpolate_weights(e, s, alpha)  # noqa: E731  alpha measured from the wrong end
    assert not check_interpolate_weights(swapped)
    every = lambda s, e, alpha: {k: (1 - alpha) * s[k] + alpha * v for k, v in e.items()}  # noqa: E731  mixes counters
    assert not check_interpolate_weights(every)
    assert "num_batches_tracked" in capsys.readouterr().out

    def unwritten(s, e, alpha):
        raise NotImplementedError

    assert not check_interpolate_weights(unwritten)
    assert "not implemented yet" in capsys.readouterr().out
