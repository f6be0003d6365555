import pytest
import torch

from vlmlearn.models import (SmallCNN, TextTransformer, TinyViT, count_parameters, digits_cnn,
                             sincos_position_embedding_2d)


@pytest.mark.parametrize("make", [lambda: SmallCNN(image_size=32, widths=(8, 16, 32), embed_dim=24),
                                  lambda: TinyViT(image_size=32, patch_size=8, width=32, depth=1, heads=2, embed_dim=24),
                                  lambda: TinyViT(image_size=16, patch_size=4, width=32, depth=1, heads=2, embed_dim=24,
                                                  pool="mean")])
def test_image_encoders_forward_backward(make):
    torch.manual_seed(0)
    model = make()
    x = torch.rand(3, 3, model.image_size, model.image_size)
    z = model(x)
    assert z.shape == (3, 24) and torch.isfinite(z).all()
    z.square().sum().backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_image_encoders_reject_wrong_shapes():
    with pytest.raises(ValueError, match=r"expected images of shape \(B, 3, 32, 32\), got \(2, 1, 28, 28\)"):
        SmallCNN()(torch.rand(2, 1, 28, 28))
    with pytest.raises(ValueError, match="float"):
        TinyViT()(torch.zeros(2, 3, 32, 32, dtype=torch.uint8))
    with pytest.raises(ValueError, match="divisible"):
        TinyViT(image_size=30, patch_size=4)
    assert SmallCNN(in_channels=1, image_size=16)(torch.rand(2, 1, 16, 16)).shape == (2, 128)


def test_default_sizes_fit_a_cpu():
    assert 0.2e6 < count_parameters(SmallCNN()) < 1e6
    assert count_parameters(TinyViT()) < 1e6
    assert count_parameters(TextTransformer(vocab_size=40)) < 0.5e6


def test_text_transformer_pools_at_the_end_token_and_ignores_padding():
    torch.manual_seed(0)
    model = TextTransformer(vocab_size=20, context_length=8, width=32, layers=1, heads=2, embed_dim=16).eval()
    ids = torch.tensor([[2, 5, 6, 3, 0, 0, 0, 0]])
    short = model(ids[:, :4])
    assert torch.allclose(model(ids), short, atol=1e-5)  # padding changes nothing
    swapped = torch.tensor([[2, 6, 5, 3]])
    assert not torch.allclose(model(swapped), short, atol=1e-4)  # word order matters
    assert model.token_embed.weight.std().item() == pytest.approx(0.02, rel=0.2)
    model(ids).sum().backward()


def test_text_transformer_rejects_bad_ids():
    model = TextTransformer(vocab_size=10, context_length=6, width=16, layers=1, heads=2)
    with pytest.raises(ValueError, match="int64"):
        model(torch.zeros(2, 4))
    with pytest.raises(ValueError, match=r"\[0, 10\)"):
        model(torch.tensor([[2, 11, 3]]))
    with pytest.raises(ValueError, match="at most 6 tokens"):
        model(torch.ones(1, 7, dtype=torch.long))
    with pytest.raises(ValueError, match="empty text"):
        model(torch.tensor([[2, 3], [0, 0]]))


def test_sincos_embedding_is_distinct_per_patch():
    pe = sincos_position_embedding_2d(8, 64)
    assert pe.shape == (64, 64)
    d = torch.cdist(pe, pe) + torch.eye(64) * 1e3
    assert d.min() > 0.1  # no two patches share a position code
    assert torch.allclose(pe[:, :16], pe[:, :16].view(8, 8, 16)[0].repeat(8, 1))  # first quarter: x only


def test_digits_cnn_maps_16px_digits_to_ten_logits():
    model = digits_cnn()
    assert (model.in_channels, model.image_size, model.embed_dim) == (1, 16, 10)
    assert model(torch.rand(2, 1, 16, 16)).shape == (2, 10)
