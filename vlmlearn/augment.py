"""Image augmentations, the package's one home for them: per-image random shifts, affine warps and cutout, and
the weak and strong views built from them for each world the course trains on.

    weak_augment, strong_augment                    the real digits (1 channel, 16 px): no flips
    shapes_weak_augment, shapes_strong_augment      ShapesWorld (3 channels, 32 px): no rotation or shear

Each function maps (B, C, H, W) float images to the same shape and draws its random parameters per image,
at batch speed: torchvision's v2 transforms draw one set of parameters per call, so applied to a batch they
would shift every image the same way. `random_shift` is checked against
`torchvision.transforms.v2.functional.affine` in the tests. Objectives (semi-supervised steps, MAE
fine-tuning, label efficiency) import their views from here; no training code lives here.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def _check(x: torch.Tensor) -> None:
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or not x.is_floating_point():
        got = f"{tuple(x.shape)} {x.dtype}" if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"expected a float image batch of shape (B, C, H, W), got {got}")


def _uniform(n: int, low: float, high: float, like: torch.Tensor, generator=None) -> torch.Tensor:
    return (torch.rand(n, generator=generator) * (high - low) + low).to(like.device)


def random_shift(x: torch.Tensor, max_shift: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """Shift each image by its own integer (dx, dy) in [-max_shift, max_shift], filling with zeros.

    (B, C, H, W) -> (B, C, H, W); the same as torchvision's affine with translate=(dx, dy), per image.
    """
    _check(x)
    b, _, h, w = x.shape
    p = max_shift
    shifts = torch.randint(-p, p + 1, (b, 2), generator=generator).to(x.device)
    padded = F.pad(x, (p, p, p, p))
    rows = (torch.arange(h, device=x.device)[None, :] + p - shifts[:, 1:2])  # (B, H)
    cols = (torch.arange(w, device=x.device)[None, :] + p - shifts[:, 0:1])  # (B, W)
    idx_r = rows[:, None, :, None].expand(b, x.shape[1], h, w + 2 * p)
    out = padded.gather(2, idx_r)
    return out.gather(3, cols[:, None, None, :].expand(b, x.shape[1], h, w))


def random_affine(x: torch.Tensor, *, degrees: float = 0.0, scale: float = 0.0, shear: float = 0.0,
                  translate: float = 0.0, generator: torch.Generator | None = None) -> torch.Tensor:
    """A random rotation (±degrees), zoom (1 ± scale), shear (±shear degrees) and translation
    (± translate, a fraction of the side) per image, bilinear, zero fill. (B, C, H, W) -> same."""
    _check(x)
    b = len(x)
    angle = _uniform(b, -degrees, degrees, x, generator) * math.pi / 180
    zoom = _uniform(b, 1 - scale, 1 + scale, x, generator)
    sh = _uniform(b, -shear, shear, x, generator) * math.pi / 180
    t = _uniform(2 * b, -translate, translate, x, generator).view(b, 2) * 2  # grid coordinates span [-1, 1]
    cos, sin = torch.cos(angle), torch.sin(angle)
    # The sampling grid maps output to input coordinates, so it uses the inverse zoom.
    theta = torch.stack([torch.stack([cos / zoom, (-sin + torch.tan(sh) * cos) / zoom, t[:, 0]], 1),
                         torch.stack([sin / zoom, (cos + torch.tan(sh) * sin) / zoom, t[:, 1]], 1)], 1)  # (B, 2, 3)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def cutout(x: torch.Tensor, size: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """Zero a size x size square at a random place in each image (DeVries & Taylor 2017)."""
    _check(x)
    b, _, h, w = x.shape
    cy = torch.randint(0, h, (b,), generator=generator).to(x.device)
    cx = torch.randint(0, w, (b,), generator=generator).to(x.device)
    ys = torch.arange(h, device=x.device)[None, :, None]
    xs = torch.arange(w, device=x.device)[None, None, :]
    hole = ((ys - cy[:, None, None]).abs() <= size // 2) & ((xs - cx[:, None, None]).abs() <= size // 2)
    return x * ~hole[:, None]


def _contrast_noise_cutout(x: torch.Tensor, *, cutout_fraction: float,
                           generator: torch.Generator | None = None) -> torch.Tensor:
    """The photometric end of both strong views: contrast ±40 % around each image's mean, Gaussian
    noise (std 0.05), a cutout of `cutout_fraction` of the side, then clamped to [0, 1]. (B, C, S, S) -> same.
    Draws, in this order: contrast (B,), noise (B, C, S, S), the cutout's centres."""
    b = len(x)
    contrast = _uniform(b, 0.6, 1.4, x, generator).view(b, 1, 1, 1)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * contrast + mean
    x = x + 0.05 * torch.randn(x.shape, generator=generator).to(x.device)
    return cutout(x, round(x.shape[-1] * cutout_fraction), generator=generator).clamp(0, 1)


# ------------------------------------------------------------------------------ the real digits
def weak_augment(x: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """FixMatch's weak view for digits: a shift of up to 1/8 of the side. No flips: a flipped 2 is
    no digit at all, and a flipped 6 can look like a 9's cousin."""
    return random_shift(x, max(1, x.shape[-1] // 8), generator=generator)


def strong_augment(x: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """A RandAugment-like strong view for digits: rotation ±25°, zoom ±20 %, shear ±15°, shift ±12 %, contrast
    ±40 %, Gaussian noise and a cutout of 7/16 of the side. Values stay in [0, 1]."""
    x = random_affine(x, degrees=25, scale=0.2, shear=15, translate=0.12, generator=generator)
    return _contrast_noise_cutout(x, cutout_fraction=7 / 16, generator=generator)


# ------------------------------------------------------------------------------ ShapesWorld
def shapes_weak_augment(images: torch.Tensor) -> torch.Tensor:
    """The weak view for ShapesWorld shapes (MAE fine-tuning, FixMatch's weak view in notebook 09): a
    shift of up to 2 pixels and a random horizontal flip (every shape is its own mirror image; no
    rotations, which would turn a square into a diamond). (B, C, S, S) -> (B, C, S, S)."""
    shifted = random_shift(images, 2)
    flip = torch.rand(len(images), device=images.device) < 0.5
    return torch.where(flip[:, None, None, None], shifted.flip(-1), shifted)


def shapes_strong_augment(x: torch.Tensor) -> torch.Tensor:
    """FixMatch's strong view for shapes, (B, 3, S, S) -> same: the weak view (shift, flip), then
    contrast, noise and a cutout of 5/16 of the side. No rotation or shear: a square turned 45 degrees is a
    diamond."""
    return _contrast_noise_cutout(shapes_weak_augment(x), cutout_fraction=5 / 16)
