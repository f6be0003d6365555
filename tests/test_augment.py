import pytest
import torch

from vlmlearn.augment import (
    cutout,
    random_affine,
    random_shift,
    shapes_strong_augment,
    shapes_weak_augment,
    strong_augment,
    weak_augment,
)


def test_random_shift_matches_torchvision_affine_per_image():
    from torchvision.transforms.v2 import functional as TF

    g = torch.Generator().manual_seed(0)
    x = torch.rand(6, 1, 16, 16, generator=g)
    out = random_shift(x, 2, generator=torch.Generator().manual_seed(1))
    shifts = torch.randint(-2, 3, (6, 2), generator=torch.Generator().manual_seed(1))
    for img, res, (dx, dy) in zip(x, out, shifts.tolist()):
        ref = TF.affine(img, angle=0.0, translate=[dx, dy], scale=1.0, shear=[0.0, 0.0],
                        interpolation=TF.InterpolationMode.NEAREST, fill=0.0)
        assert torch.equal(res, ref)
    assert len({tuple(s) for s in shifts.tolist()}) > 1  # each image has its own shift


@pytest.mark.parametrize("augment", [weak_augment, strong_augment, shapes_weak_augment, shapes_strong_augment,
                                     lambda x: random_affine(x, degrees=30, scale=0.2, shear=10, translate=0.1),
                                     lambda x: cutout(x, 5)])
def test_augmentations_keep_shape_dtype_and_range(augment):
    x = torch.rand(8, 1, 16, 16)
    y = augment(x)
    assert y.shape == x.shape and y.dtype == x.dtype
    assert y.min() >= 0 and y.max() <= 1 and torch.isfinite(y).all()
    assert not torch.equal(y, x)
    rgb = torch.rand(4, 3, 32, 32)
    assert augment(rgb).shape == rgb.shape


def test_identity_affine_and_bad_input():
    x = torch.rand(3, 1, 16, 16)
    assert torch.allclose(random_affine(x), x, atol=1e-5)
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        weak_augment(torch.rand(16, 16))


def test_the_strong_view_for_shapes_keeps_images_valid_and_never_rotates():
    x = torch.zeros(4, 3, 32, 32)
    x[:, :, 8:24, 14:18] = 1.0  # a vertical bar
    out = shapes_strong_augment(x)
    assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1 and not torch.equal(out, x)
    columns_lit = (out.mean(1) > 0.5).any(-2).sum(-1)  # shifted or flipped, the bar stays 4 columns wide
    assert (columns_lit <= 4).all() and (columns_lit > 0).any()  # turned by 25 degrees it would span about 10
