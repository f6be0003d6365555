import pytest
import torch

from vlmlearn.models import (
    SmallCNN,
    TextTransformer,
    count_parameters,
    digits_cnn,
    sincos_position_embedding_2d,
    transformer_blocks,
)


def test_image_encoder_forward_backward():
    torch.manual_seed(0)
    model = SmallCNN(image_size=32, widths=(8, 16, 32), embed_dim=24)
    x = torch.rand(3, 3, model.image_size, model.image_size)
    z = model(x)
    assert z.shape == (3, 24) and torch.isfinite(z).all()
    z.square().sum().backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_image_encoder_rejects_wrong_shapes():
    with pytest.raises(ValueError, match=r"expected images of shape \(B, 3, 32, 32\), got \(2, 1, 28, 28\)"):
        SmallCNN()(torch.rand(2, 1, 28, 28))
    with pytest.raises(ValueError, match="float"):
        SmallCNN()(torch.zeros(2, 3, 32, 32, dtype=torch.uint8))
    assert SmallCNN(in_channels=1, image_size=16)(torch.rand(2, 1, 16, 16)).shape == (2, 128)


def test_default_sizes_fit_a_cpu():
    assert 0.2e6 < count_parameters(SmallCNN()) < 1e6
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


def test_transformer_blocks_are_pre_norm_gelu_without_dropout_and_keep_their_keys():
    torch.manual_seed(0)
    blocks = transformer_blocks(16, 3, heads=2, mlp_ratio=2.0, eps=1e-6)
    layer = blocks.layers[0]
    assert len(blocks.layers) == 3 and layer.norm_first and layer.linear1.out_features == 32
    assert layer.norm1.eps == layer.norm2.eps == 1e-6 and layer.dropout.p == 0.0
    assert transformer_blocks(16, 1, heads=2).layers[0].norm1.eps == 1e-5  # PyTorch's default
    assert "layers.2.self_attn.in_proj_weight" in blocks.state_dict()  # the shipped checkpoints' names
    x = torch.rand(2, 5, 16)
    causal = torch.triu(torch.full((5, 5), float("-inf")), 1)
    out = blocks(x, mask=causal)
    assert out.shape == x.shape
    changed = x.clone()
    changed[:, -1] += 1.0
    assert torch.allclose(blocks(changed, mask=causal)[:, :-1], out[:, :-1], atol=1e-6)  # causal: no peeking ahead
