"""MAE (He et al. 2022, "Masked Autoencoders Are Scalable Vision Learners"): learn from unlabeled images.

Cut the image into patches, hide most of them, encode only the visible ones, and let a light decoder
predict the hidden pixels. Here: `patchify` / `unpatchify`, `random_masking`, the encoder (`MAEEncoder`,
the package's Vision Transformer) and the model (`MaskedAutoencoder`, `MAEOutput`), its step (`mae_step`),
notebook 03's recipe and shipped checkpoint (`SHAPES_MAE_CONFIG`, `pretrain_mae`, `load_pretrained_mae`),
and MAE's fine-tuning (`MAEClassifier`, `MAE_FINETUNE_RECIPE`, `finetune_mae`). Interop with transformers'
ViTMAE lives in `vlmlearn.vitmae`, augmentations in `vlmlearn.augment`.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from . import assets
from .augment import shapes_weak_augment
from .models import check_images, sincos_position_embedding_2d, transformer_blocks
from .optim import layer_decay_groups, param_groups, warmup_cosine
from .runtime import set_seed
from .train import minibatches, train


def patchify(images: torch.Tensor, patch_size: int) -> torch.Tensor:
    """(B, C, S, S) -> (B, (S/p)**2, p*p*C): patches in raster order, pixels channel-last (as in MAE)."""
    if images.ndim != 4 or images.shape[2] != images.shape[3] or images.shape[2] % patch_size:
        raise ValueError(f"expected square images (B, C, S, S) with S divisible by {patch_size}, "
                         f"got {tuple(images.shape)}")
    b, c, s, _ = images.shape
    g = s // patch_size
    x = images.reshape(b, c, g, patch_size, g, patch_size)
    return x.permute(0, 2, 4, 3, 5, 1).reshape(b, g * g, patch_size * patch_size * c)


def unpatchify(patches: torch.Tensor, patch_size: int, channels: int = 3) -> torch.Tensor:
    """(B, N, p*p*C) -> (B, C, S, S); the inverse of `patchify`."""
    b, n, d = patches.shape
    g = round(n ** 0.5)
    if g * g != n or d != patch_size * patch_size * channels:
        raise ValueError(f"expected (B, N, {patch_size}*{patch_size}*{channels}) with N a square, "
                         f"got {tuple(patches.shape)}")
    x = patches.reshape(b, g, g, patch_size, patch_size, channels)
    return x.permute(0, 5, 1, 3, 2, 4).reshape(b, channels, g * patch_size, g * patch_size)


def random_masking(tokens: torch.Tensor, mask_ratio: float, noise: torch.Tensor | None = None):
    """Keep a random subset of tokens per sample, by sorting random noise.

    tokens (B, N, D) -> (kept (B, K, D), mask (B, N) with 1 = hidden, ids_restore (B, N)), where
    K = int(N * (1 - mask_ratio)). The tokens with the K smallest noise values are kept;
    `ids_restore` puts a shuffled sequence back in the original order. Same contract as
    transformers' ViTMAE, so equal `noise` gives equal masks.
    """
    if not 0.0 <= mask_ratio < 1.0:
        raise ValueError(f"mask_ratio must be in [0, 1), got {mask_ratio}")
    b, n, d = tokens.shape
    keep = int(n * (1 - mask_ratio))
    if noise is None:
        noise = torch.rand(b, n, device=tokens.device)
    elif noise.shape != (b, n):
        raise ValueError(f"noise must have shape {(b, n)}, got {tuple(noise.shape)}")
    ids_shuffle = noise.argsort(dim=1)
    ids_restore = ids_shuffle.argsort(dim=1)
    kept = tokens.gather(1, ids_shuffle[:, :keep, None].expand(-1, -1, d))
    mask = torch.ones(b, n, device=tokens.device)
    mask[:, :keep] = 0
    return kept, mask.gather(1, ids_restore), ids_restore


class MAEEncoder(nn.Module):
    """The MAE encoder: a ViT that can drop masked patches before the transformer.

    `forward(images)` (B, C, S, S) -> (B, width) features for probes and fine-tuning: the patch
    tokens averaged, no masking (`forward_tokens` gives every token). `forward_masked` is the
    pretraining path.
    """

    def __init__(self, *, image_size: int = 32, patch_size: int = 4, in_channels: int = 3, width: int = 128,
                 depth: int = 4, heads: int = 4, mlp_ratio: float = 2.0):
        super().__init__()
        if image_size % patch_size:
            raise ValueError(f"image_size {image_size} must be divisible by patch_size {patch_size}")
        self.image_size, self.patch_size, self.in_channels, self.width = image_size, patch_size, in_channels, width
        self.num_patches = (image_size // patch_size) ** 2
        self.patch_embed = nn.Conv2d(in_channels, width, patch_size, stride=patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, width))
        # Fixed sin-cos positions, never zero: without them the encoder cannot tell patches apart.
        self.register_buffer("pos_embed", sincos_position_embedding_2d(image_size // patch_size, width)[None],
                             persistent=False)
        self.blocks = transformer_blocks(width, depth, heads=heads, mlp_ratio=mlp_ratio, eps=1e-6)
        self.norm = nn.LayerNorm(width, eps=1e-6)
        nn.init.normal_(self.cls_token, std=0.02)
        w = self.patch_embed.weight
        nn.init.xavier_uniform_(w.view(len(w), -1))  # as MAE: like a linear layer on flattened patches

    # (tokens, mask_ratio, noise) -> (kept, mask, ids_restore); a notebook may swap in the learner's
    masking = staticmethod(random_masking)

    def forward_masked(self, images: torch.Tensor, mask_ratio: float, noise: torch.Tensor | None = None):
        """(B, C, S, S) -> (latent (B, 1 + K, width) with the CLS token first, mask (B, N), ids_restore (B, N))."""
        check_images(images, self.in_channels, self.image_size)
        patches = self.patch_embed(images).flatten(2).transpose(1, 2) + self.pos_embed  # (B, N, W)
        if noise is None:
            noise = torch.rand(len(images), self.num_patches, device=patches.device)
        kept, mask, ids_restore = self.masking(patches, mask_ratio, noise)
        tokens = torch.cat([self.cls_token.expand(len(images), -1, -1), kept], dim=1)
        return self.norm(self.blocks(tokens)), mask, ids_restore

    def forward_tokens(self, images: torch.Tensor) -> torch.Tensor:
        """(B, C, S, S) -> (B, 1 + N, width): the CLS token and every patch token, in raster order.
        No masking and no random numbers drawn, so evaluating a model mid-training leaves its run unchanged."""
        check_images(images, self.in_channels, self.image_size)
        patches = self.patch_embed(images).flatten(2).transpose(1, 2) + self.pos_embed  # (B, N, W)
        return self.norm(self.blocks(torch.cat([self.cls_token.expand(len(images), -1, -1), patches], dim=1)))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.forward_tokens(images)[:, 1:].mean(1)


@dataclass
class MAEOutput:
    loss: torch.Tensor         # () mean squared error over the masked patches
    pred: torch.Tensor         # (B, N, p*p*C) predicted patches (normalised per patch if norm_pix_loss)
    mask: torch.Tensor         # (B, N) 1 = masked
    ids_restore: torch.Tensor  # (B, N)


class MaskedAutoencoder(nn.Module):
    """MAE: `MAEEncoder` on the visible patches, then a light transformer decoder that sees the
    encoded patches plus a shared mask token at every hidden position and predicts all pixels.

    The loss counts masked patches only. With `norm_pix_loss` each target patch is normalised by its
    own mean and standard deviation, which the MAE paper found gives better features: the model
    must predict structure, not just the average colour. `norm_pix_eps` is added to each patch's
    variance first: MAE's 1e-6 suits clean photographs; on noisy backgrounds a floor near the
    noise variance (0.01 for ShapesWorld) stops flat patches from becoming unit-variance noise.
    """

    def __init__(self, *, image_size: int = 32, patch_size: int = 4, in_channels: int = 3, width: int = 128,
                 depth: int = 4, heads: int = 4, decoder_width: int = 64, decoder_depth: int = 2,
                 decoder_heads: int = 4, mlp_ratio: float = 2.0, mask_ratio: float = 0.75, norm_pix_loss: bool = True,
                 norm_pix_eps: float = 1e-6):
        super().__init__()
        self.mask_ratio, self.norm_pix_loss, self.norm_pix_eps = mask_ratio, norm_pix_loss, norm_pix_eps
        self.encoder = MAEEncoder(image_size=image_size, patch_size=patch_size, in_channels=in_channels,
                                  width=width, depth=depth, heads=heads, mlp_ratio=mlp_ratio)
        self.decoder_embed = nn.Linear(width, decoder_width)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_width))
        decoder_pos = sincos_position_embedding_2d(image_size // patch_size, decoder_width)[None]
        self.register_buffer("decoder_pos_embed", decoder_pos, persistent=False)
        self.decoder_blocks = transformer_blocks(decoder_width, decoder_depth, heads=decoder_heads, mlp_ratio=mlp_ratio,
                                                 eps=1e-6)
        self.decoder_norm = nn.LayerNorm(decoder_width, eps=1e-6)
        self.decoder_pred = nn.Linear(decoder_width, patch_size * patch_size * in_channels)
        nn.init.normal_(self.mask_token, std=0.02)

    def decode(self, latent: torch.Tensor, ids_restore: torch.Tensor) -> torch.Tensor:
        """latent (B, 1 + K, width), ids_restore (B, N) -> predicted patches (B, N, p*p*C)."""
        x = self.decoder_embed(latent)                                                    # (B, 1 + K, Wd)
        b, n = ids_restore.shape
        tokens = torch.cat([x[:, 1:], self.mask_token.expand(b, n - (x.shape[1] - 1), -1)], dim=1)  # (B, N, Wd)
        tokens = tokens.gather(1, ids_restore[..., None].expand(-1, -1, x.shape[2]))  # back to raster order
        tokens = torch.cat([x[:, :1], tokens + self.decoder_pos_embed], dim=1)          # (B, 1 + N, Wd)
        return self.decoder_pred(self.decoder_norm(self.decoder_blocks(tokens)))[:, 1:]

    def targets(self, images: torch.Tensor) -> torch.Tensor:
        """(B, C, S, S) -> (B, N, p*p*C): the patches the decoder must predict."""
        target = patchify(images, self.encoder.patch_size)
        if self.norm_pix_loss:
            var = target.var(-1, keepdim=True)
            target = (target - target.mean(-1, keepdim=True)) / (var + self.norm_pix_eps) ** 0.5
        return target

    def forward(self, images: torch.Tensor, mask_ratio: float | None = None,
                noise: torch.Tensor | None = None) -> MAEOutput:
        """images (B, C, S, S) -> MAEOutput: loss (), pred (B, N, p*p*C), mask (B, N) with 1 = hidden, ids_restore
        (B, N). `noise` (B, N) fixes the mask (the smallest values are kept); `mask_ratio` overrides the model's."""
        ratio = self.mask_ratio if mask_ratio is None else mask_ratio
        latent, mask, ids_restore = self.encoder.forward_masked(images, ratio, noise)
        pred = self.decode(latent, ids_restore)
        per_patch = ((pred - self.targets(images)) ** 2).mean(-1)  # (B, N)
        loss = (per_patch * mask).sum() / mask.sum().clamp(min=1)
        return MAEOutput(loss, pred, mask, ids_restore)

    @torch.no_grad()
    def reconstruct(self, images: torch.Tensor, mask_ratio: float | None = None,
                    noise: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, C, S, S) -> (masked input, target, prediction), each (B, C, S, S) in [0, 1], for display.

        Only what the model predicts, nothing borrowed from the hidden patches. With norm_pix_loss
        the model predicts each patch normalised by its own mean and standard deviation, so target
        and prediction are both shown in that space (0.5 + x / 4, clipped: grey is the patch's mean);
        without it, in pixels. The visible patches are pasted into the prediction, as in the MAE
        paper's figures; hidden patches of the masked input are grey.
        """
        out = self.forward(images, mask_ratio, noise)
        p, c = self.encoder.patch_size, self.encoder.in_channels
        target, pred = self.targets(images), out.pred
        if self.norm_pix_loss:
            target, pred = 0.5 + target / 4, 0.5 + pred / 4
        m = out.mask[..., None]
        masked = unpatchify(patchify(images, p) * (1 - m) + 0.5 * m, p, c)
        return masked, unpatchify(target, p, c).clamp(0, 1), unpatchify(target * (1 - m) + pred * m, p, c).clamp(0, 1)


class MAEClassifier(nn.Module):
    """An `MAEEncoder` with MAE's fine-tuning head: the patch tokens averaged (no masking), a
    LayerNorm and a linear layer initialised near zero (He et al. 2022, appendix A.2).

    forward(images (B, C, S, S)) -> logits (B, num_classes). The encoder is used as given (pass a
    copy to keep the original).
    """

    def __init__(self, encoder: MAEEncoder, num_classes: int):
        super().__init__()
        self.encoder = encoder
        self.norm = nn.LayerNorm(encoder.width, eps=1e-6)
        self.head = nn.Linear(encoder.width, num_classes)
        nn.init.trunc_normal_(self.head.weight, std=2e-5)
        nn.init.zeros_(self.head.bias)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.norm(self.encoder(images)))


# The fine-tuning recipe `benchmarks/mae_finetune_recipe.py` chose on validation data (its 03_finetune_recipe.json
# records every candidate); finetune_mae's defaults are this recipe.
MAE_FINETUNE_RECIPE = dict(lr=1e-3, layer_decay=0.75)


def finetune_mae(encoder: MAEEncoder, images: torch.Tensor, labels: torch.Tensor, num_classes: int, *,
                 steps: int = 200, lr: float = 1e-3, layer_decay: float = 0.75, batch_size: int = 32, seed: int = 0,
                 eval_fn=None, desc: str = "fine-tune"):
    """Fine-tune a copy of `encoder` end to end with MAE's recipe: `MAEClassifier` head, AdamW with
    layer-wise learning-rate decay, linear warm-up then cosine decay, label smoothing 0.1 and
    `shapes_weak_augment`. images (N, C, S, S), labels (N,). Returns (model in eval mode, History)."""
    set_seed(seed)
    device = next(encoder.parameters()).device
    model = MAEClassifier(copy.deepcopy(encoder), num_classes).to(device)
    opt = torch.optim.AdamW(layer_decay_groups(model, lr, layer_decay=layer_decay))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup_cosine(steps, warmup=max(1, steps // 10)))

    def step(m, b):
        return F.cross_entropy(m(shapes_weak_augment(b[0])), b[1], label_smoothing=0.1), {}

    history = train(model, opt, step, minibatches(images, labels, batch_size=min(batch_size, len(images)), seed=seed),
                    steps=steps, scheduler=sched, eval_fn=eval_fn, eval_every=max(1, steps // 4) if eval_fn else None,
                    desc=desc, progress=desc is not None)
    return model.eval(), history


# The MAE of notebook 03 (0.54 M encoder parameters), and the checkpoint `benchmarks/pretrain_mae.py` ships.
SHAPES_MAE_CONFIG = dict(image_size=32, patch_size=4, in_channels=3, width=128, depth=4, heads=4, decoder_width=64,
                         decoder_depth=1, decoder_heads=4, mlp_ratio=2.0, mask_ratio=0.75, norm_pix_loss=True,
                         norm_pix_eps=0.01)
SHAPES_MAE_CHECKPOINT = assets.checkpoint("mae_shapes")


def pretrain_mae(images: torch.Tensor, *, steps: int, lr: float = 1.5e-3, batch_size: int = 64, seed: int = 0,
                 device: torch.device | str = "cpu", config: dict | None = None, callbacks=(),
                 desc: str | None = "MAE pretraining", masking: Callable | None = None):
    """MAE pretraining with the paper's optimiser on unlabeled `images` (N, 3, 32, 32): a fresh
    `MaskedAutoencoder(**SHAPES_MAE_CONFIG)` (seeded by `seed`; `config` overrides some of its entries,
    e.g. `{"mask_ratio": 0.6}`), AdamW (betas 0.9, 0.95, weight decay 0.05 on weight matrices), linear
    warm-up then cosine decay. The recipe of the shipped checkpoint (`benchmarks/pretrain_mae.py`). `masking`
    replaces `random_masking` (same contract), as notebook 03 does with the learner's.
    Returns (model in eval mode, History)."""
    unknown = set(config or {}) - set(SHAPES_MAE_CONFIG)
    if unknown:
        raise ValueError(f"config can override {sorted(SHAPES_MAE_CONFIG)}, got unknown {sorted(unknown)}")
    set_seed(seed)
    model = MaskedAutoencoder(**{**SHAPES_MAE_CONFIG, **(config or {})}).to(device)
    if masking is not None:
        model.encoder.masking = masking
    opt = torch.optim.AdamW(param_groups(model, 0.05), lr=lr, betas=(0.9, 0.95))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup_cosine(steps, warmup=max(1, min(500, steps // 10))))
    history = train(model, opt, mae_step, minibatches(images, batch_size=batch_size, seed=seed), steps=steps,
                    scheduler=sched, callbacks=callbacks, desc=desc or "", progress=desc is not None)
    return model.eval(), history


def load_pretrained_mae(path: str | Path = SHAPES_MAE_CHECKPOINT) -> tuple[MaskedAutoencoder, dict]:
    """A MaskedAutoencoder with the weights of a checkpoint written by `benchmarks/pretrain_mae.py`.

    Reads `path` (safetensors: no code runs on loading) and the JSON beside it (same name, .json:
    the model config, steps, seed, data size, runtime and final loss). Returns (model in eval mode, that record).
    """
    weights, record = assets.read_checkpoint(path, writer="python benchmarks/pretrain_mae.py (make pretrain)")
    if record["model"] != "shapes-mae":
        raise ValueError(f"{path} holds a {record['model']!r} model, expected notebook 03's 'shapes-mae'")
    model = MaskedAutoencoder(**record["config"])
    model.load_state_dict(weights)
    return model.eval(), record


def mae_step(model: MaskedAutoencoder, batch: tuple) -> tuple[torch.Tensor, dict[str, float]]:
    """(images,) -> the MAE loss on the masked patches, for `vlmlearn.train.train`."""
    return model(batch[0]).loss, {}

