import pytest
import torch
import torch.nn.functional as F

from vlmlearn.losses import clip_loss, siglip_loss


def _features(seed=0, b=8, d=16):
    g = torch.Generator().manual_seed(seed)
    img = F.normalize(torch.randn(b, d, generator=g), dim=-1).requires_grad_()
    txt = F.normalize(torch.randn(b, d, generator=g), dim=-1).requires_grad_()
    return img, txt


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_clip_loss_equals_open_clip_forward_and_backward(seed):
    from open_clip.loss import ClipLoss

    img, txt = _features(seed)
    scale = torch.tensor(14.3, requires_grad=True)
    ours = clip_loss(img, txt, scale)
    ours_grads = torch.autograd.grad(ours, (img, txt, scale))
    ref = ClipLoss()(img, txt, scale)
    ref_grads = torch.autograd.grad(ref, (img, txt, scale))
    assert torch.allclose(ours, ref, atol=1e-5)
    for a, b in zip(ours_grads, ref_grads):
        assert torch.allclose(a, b, atol=1e-5)


@pytest.mark.parametrize("seed", [0, 1])
def test_siglip_loss_equals_open_clip(seed):
    from open_clip.loss import SigLipLoss

    img, txt = _features(seed)
    scale, bias = torch.tensor(10.0, requires_grad=True), torch.tensor(-10.0, requires_grad=True)
    ours = siglip_loss(img, txt, scale, bias)
    ref = SigLipLoss()(img, txt, scale, bias)
    assert torch.allclose(ours, ref, atol=1e-5)
    for a, b in zip(torch.autograd.grad(ours, (img, txt, scale, bias)),
                    torch.autograd.grad(ref, (img, txt, scale, bias))):
        assert torch.allclose(a, b, atol=1e-5)


def test_aligned_batch_at_high_scale_has_near_zero_loss():
    x = torch.eye(6)
    assert clip_loss(x, x, 100.0).item() < 1e-6
    assert clip_loss(x, x.roll(1, 0), 100.0).item() > 50  # every pair wrong


def test_hard_negatives_only_add_image_to_text_candidates():
    img = torch.eye(16)[:8]  # orthonormal images, each caption equal to its image
    txt = img.clone()
    far = -F.normalize(img.sum(0, keepdim=True), dim=-1).repeat(8, 1)  # points away from every image
    base = clip_loss(img, txt, 10.0)
    assert base.item() < 1e-3
    assert clip_loss(img, txt, 10.0, hard_negatives=far).item() < 1e-3
    # a negative identical to the image ties with the true caption: i2t loss log(2), halved
    assert clip_loss(img, txt, 10.0, hard_negatives=img).item() == pytest.approx(0.5 * 0.6931, abs=1e-3)


def test_bad_inputs_raise():
    img, txt = _features(0)
    with pytest.raises(ValueError, match="must match"):
        clip_loss(img, txt[:4], 10.0)
    with pytest.raises(ValueError, match="normalised"):
        clip_loss(img * 3, txt, 10.0)
    with pytest.raises(ValueError, match=r"\(B, D\)"):
        clip_loss(img[0], txt[0], 10.0)
    with pytest.raises(ValueError, match="NaN"):
        siglip_loss(img * float("nan"), txt, 10.0, -10.0)
