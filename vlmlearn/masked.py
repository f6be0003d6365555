"""Masked modeling: learn from unlabeled images (MAE) and unlabeled text (MLM), and from both at once.

MAE (He et al. 2022, "Masked Autoencoders Are Scalable Vision Learners"): cut the image into
patches, hide most of them, encode only the visible ones, and let a light decoder predict the
hidden pixels. MLM (Devlin et al. 2019, BERT): hide 15 % of the words and predict them. The
multimodal version lets the word predictor see the image, as in VisualBERT, ViLT and FLAVA.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from . import assets
from .models import check_images, sincos_position_embedding_2d
from .optim import layer_decay_groups, param_groups, warmup_cosine
from .runtime import eval_mode


def _blocks(width: int, depth: int, heads: int, mlp_ratio: float, eps: float = 1e-6) -> nn.TransformerEncoder:
    block = nn.TransformerEncoderLayer(width, heads, int(width * mlp_ratio), dropout=0.0, activation="gelu",
                                       batch_first=True, norm_first=True, layer_norm_eps=eps)
    return nn.TransformerEncoder(block, depth, enable_nested_tensor=False)


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
        raise ValueError(f"expected (B, N, {patch_size}*{patch_size}*{channels}) with N a square, got {tuple(patches.shape)}")
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
        self.blocks = _blocks(width, depth, heads, mlp_ratio)
        self.norm = nn.LayerNorm(width, eps=1e-6)
        nn.init.normal_(self.cls_token, std=0.02)
        w = self.patch_embed.weight
        nn.init.xavier_uniform_(w.view(len(w), -1))  # as MAE: like a linear layer on flattened patches

    masking = staticmethod(random_masking)  # (tokens, mask_ratio, noise) -> (kept, mask, ids_restore); a notebook may swap in the learner's

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
        self.register_buffer("decoder_pos_embed", sincos_position_embedding_2d(image_size // patch_size, decoder_width)[None],
                             persistent=False)
        self.decoder_blocks = _blocks(decoder_width, decoder_depth, decoder_heads, mlp_ratio)
        self.decoder_norm = nn.LayerNorm(decoder_width, eps=1e-6)
        self.decoder_pred = nn.Linear(decoder_width, patch_size * patch_size * in_channels)
        nn.init.normal_(self.mask_token, std=0.02)

    def decode(self, latent: torch.Tensor, ids_restore: torch.Tensor) -> torch.Tensor:
        """latent (B, 1 + K, width), ids_restore (B, N) -> predicted patches (B, N, p*p*C)."""
        x = self.decoder_embed(latent)
        b, n = ids_restore.shape
        tokens = torch.cat([x[:, 1:], self.mask_token.expand(b, n - (x.shape[1] - 1), -1)], dim=1)
        tokens = tokens.gather(1, ids_restore[..., None].expand(-1, -1, x.shape[2]))  # back to raster order
        tokens = torch.cat([x[:, :1], tokens + self.decoder_pos_embed], dim=1)
        return self.decoder_pred(self.decoder_norm(self.decoder_blocks(tokens)))[:, 1:]

    def targets(self, images: torch.Tensor) -> torch.Tensor:
        """(B, C, S, S) -> (B, N, p*p*C): the patches the decoder must predict."""
        target = patchify(images, self.encoder.patch_size)
        if self.norm_pix_loss:
            target = (target - target.mean(-1, keepdim=True)) / (target.var(-1, keepdim=True) + self.norm_pix_eps) ** 0.5
        return target

    def forward(self, images: torch.Tensor, mask_ratio: float | None = None,
                noise: torch.Tensor | None = None) -> MAEOutput:
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


def finetune_augment(images: torch.Tensor) -> torch.Tensor:
    """The fine-tuning augmentation for ShapesWorld shapes: a shift of up to 2 pixels and a random
    horizontal flip (every shape is its own mirror image; no rotations, which would turn a square
    into a diamond). (B, C, S, S) -> (B, C, S, S)."""
    from .semi import random_shift

    shifted = random_shift(images, 2)
    flip = torch.rand(len(images), device=images.device) < 0.5
    return torch.where(flip[:, None, None, None], shifted.flip(-1), shifted)


# The fine-tuning recipe `benchmarks/mae_finetune_recipe.py` chose on validation data (its 03_finetune_recipe.json
# records every candidate); finetune_mae's defaults are this recipe.
MAE_FINETUNE_RECIPE = dict(lr=1e-3, layer_decay=0.75)


def finetune_mae(encoder: MAEEncoder, images: torch.Tensor, labels: torch.Tensor, num_classes: int, *,
                 steps: int = 200, lr: float = 1e-3, layer_decay: float = 0.75, batch_size: int = 32, seed: int = 0,
                 eval_fn=None, desc: str = "fine-tune"):
    """Fine-tune a copy of `encoder` end to end with MAE's recipe: `MAEClassifier` head, AdamW with
    layer-wise learning-rate decay, linear warm-up then cosine decay, label smoothing 0.1 and
    `finetune_augment`. images (N, C, S, S), labels (N,). Returns (model in eval mode, History)."""
    import copy

    from .runtime import set_seed
    from .train import minibatches, train

    set_seed(seed)
    device = next(encoder.parameters()).device
    model = MAEClassifier(copy.deepcopy(encoder), num_classes).to(device)
    opt = torch.optim.AdamW(layer_decay_groups(model, lr, layer_decay=layer_decay))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup_cosine(steps, warmup=max(1, steps // 10)))
    step = lambda m, b: (F.cross_entropy(m(finetune_augment(b[0])), b[1], label_smoothing=0.1), {})
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
    from .runtime import set_seed
    from .train import minibatches, train

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


_V4_TO_V5 = [("vit.encoder.layer.", "vit.layers."), ("attention.attention.query", "attention.q_proj"),
             ("attention.attention.key", "attention.k_proj"), ("attention.attention.value", "attention.v_proj"),
             ("attention.output.dense", "attention.o_proj"), ("intermediate.dense", "mlp.fc1"), ("output.dense", "mlp.fc2")]


def _v5_name(key: str) -> str:
    """A transformers 4.x ViTMAE parameter name in its 5.x spelling (5.x names pass unchanged)."""
    for old, new in _V4_TO_V5:
        key = key.replace(old, new)
    return key


def copy_vitmae_weights(model: MaskedAutoencoder, hf_model) -> MaskedAutoencoder:
    """Copy the weights of a transformers `ViTMAEForPreTraining` into `model` (same sizes needed).

    Maps the q/k/v projections into PyTorch's packed `in_proj`, and the MLP and norms one to one;
    transformers 4.x and 5.x name these differently, and both are read.
    Use it to check this implementation against the library, or to start from a pretrained
    checkpoint (`ViTMAEForPreTraining.from_pretrained(path)`). Position embeddings are not copied:
    both sides use the same fixed sin-cos table (a model built from a config needs
    `repair_vitmae_init` first, see notebook 03).
    """
    src = {_v5_name(k): v for k, v in hf_model.state_dict().items()}
    cfg = hf_model.config
    if (cfg.hidden_size, cfg.image_size, cfg.patch_size) != (model.encoder.width, model.encoder.image_size,
                                                             model.encoder.patch_size):
        raise ValueError(f"sizes differ: transformers (hidden, image, patch) = "
                         f"{(cfg.hidden_size, cfg.image_size, cfg.patch_size)}, this model "
                         f"{(model.encoder.width, model.encoder.image_size, model.encoder.patch_size)}")

    def layer(prefix: str) -> dict[str, torch.Tensor]:
        qkv = [f"{prefix}.attention.{n}_proj" for n in "qkv"]
        return {"self_attn.in_proj_weight": torch.cat([src[f"{k}.weight"] for k in qkv]),
                "self_attn.in_proj_bias": torch.cat([src[f"{k}.bias"] for k in qkv]),
                "self_attn.out_proj.weight": src[f"{prefix}.attention.o_proj.weight"],
                "self_attn.out_proj.bias": src[f"{prefix}.attention.o_proj.bias"],
                "norm1.weight": src[f"{prefix}.layernorm_before.weight"], "norm1.bias": src[f"{prefix}.layernorm_before.bias"],
                "norm2.weight": src[f"{prefix}.layernorm_after.weight"], "norm2.bias": src[f"{prefix}.layernorm_after.bias"],
                "linear1.weight": src[f"{prefix}.mlp.fc1.weight"], "linear1.bias": src[f"{prefix}.mlp.fc1.bias"],
                "linear2.weight": src[f"{prefix}.mlp.fc2.weight"], "linear2.bias": src[f"{prefix}.mlp.fc2.bias"]}

    out = {"encoder.cls_token": src["vit.embeddings.cls_token"],
           "encoder.patch_embed.weight": src["vit.embeddings.patch_embeddings.projection.weight"],
           "encoder.patch_embed.bias": src["vit.embeddings.patch_embeddings.projection.bias"],
           "encoder.norm.weight": src["vit.layernorm.weight"], "encoder.norm.bias": src["vit.layernorm.bias"],
           "mask_token": src["decoder.mask_token"]}
    for name in ("decoder_embed", "decoder_norm", "decoder_pred"):
        out[f"{name}.weight"], out[f"{name}.bias"] = src[f"decoder.{name}.weight"], src[f"decoder.{name}.bias"]
    for i in range(len(model.encoder.blocks.layers)):
        out.update({f"encoder.blocks.layers.{i}.{k}": v for k, v in layer(f"vit.layers.{i}").items()})
    for i in range(len(model.decoder_blocks.layers)):
        out.update({f"decoder_blocks.layers.{i}.{k}": v for k, v in layer(f"decoder.decoder_layers.{i}").items()})
    model.load_state_dict(out)
    return model


# ---------------------------------------------------------------- masked language modeling

def mask_tokens(ids: torch.Tensor, mask_id: int, vocab_size: int, special_ids: tuple[int, ...] = (0, 1, 2, 3, 4),
                mask_prob: float = 0.15, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT's corruption: choose `mask_prob` of the non-special tokens; of those, 80 % become the mask
    token, 10 % a random word, 10 % stay as they are.

    ids (B, L) int64 -> (inputs (B, L), labels (B, L)) with labels = -100 (ignored by
    cross-entropy) wherever nothing is to be predicted. Random words are drawn from the
    non-special ids.
    """
    if ids.dtype != torch.long or ids.ndim != 2:
        raise ValueError(f"expected token ids (B, L) int64, got {tuple(ids.shape)} {ids.dtype}")
    special = torch.isin(ids, torch.tensor(special_ids, device=ids.device))
    u = torch.rand(ids.shape, generator=generator).to(ids.device)
    chosen = (u < mask_prob) & ~special
    how = torch.rand(ids.shape, generator=generator).to(ids.device)
    words = len(special_ids) + torch.randint(vocab_size - len(special_ids), ids.shape, generator=generator).to(ids.device)
    inputs = torch.where(chosen & (how < 0.8), mask_id, ids)
    inputs = torch.where(chosen & (how >= 0.8) & (how < 0.9), words, inputs)
    return inputs, torch.where(chosen, ids, -100)


class MaskedCaptionModel(nn.Module):
    """A bidirectional transformer that predicts masked caption words, optionally looking at the image.

    With an `image_encoder` (any module mapping (B, C, S, S) to a (B, C', s, s) feature map, e.g.
    `SmallCNN(...).features`) the s*s image feature vectors are projected to `width` and prepended
    to the word tokens, so every word can attend to every image region (single-stream fusion, as in
    VisualBERT and ViLT). Without one it is a text-only BERT.

    forward(ids (B, L), images (B, C, S, S) or None) -> logits over the vocabulary (B, L, vocab_size).
    """

    def __init__(self, *, vocab_size: int, context_length: int = 24, width: int = 96, layers: int = 2,
                 heads: int = 4, image_encoder: nn.Module | None = None, image_channels: int | None = None,
                 image_tokens: int | None = None, pad_id: int = 0):
        super().__init__()
        self.vocab_size, self.pad_id = vocab_size, pad_id
        self.token_embed = nn.Embedding(vocab_size, width)
        self.pos_embed = nn.Parameter(torch.randn(context_length, width) * 0.01)
        self.image_encoder = image_encoder
        if image_encoder is not None:
            if image_channels is None or image_tokens is None:
                raise ValueError("with an image_encoder, give image_channels and image_tokens (its C' and s*s)")
            self.image_proj = nn.Linear(image_channels, width)
            self.image_pos = nn.Parameter(torch.randn(image_tokens, width) * 0.01)
        self.blocks = _blocks(width, layers, heads, 2.0, eps=1e-5)
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, vocab_size)
        nn.init.normal_(self.token_embed.weight, std=0.02)

    def forward(self, ids: torch.Tensor, images: torch.Tensor | None = None) -> torch.Tensor:
        if ids.ndim != 2 or ids.dtype != torch.long:
            raise ValueError(f"expected token ids (B, L) int64, got {tuple(ids.shape)} {ids.dtype}")
        if (images is None) != (self.image_encoder is None):
            raise ValueError("pass images exactly when the model was built with an image_encoder")
        x = self.token_embed(ids) + self.pos_embed[: ids.shape[1]]
        pad = ids == self.pad_id
        if images is not None:
            feats = self.image_encoder(images).flatten(2).transpose(1, 2)  # (B, s*s, C')
            img = self.image_proj(feats) + self.image_pos
            x = torch.cat([img, x], dim=1)
            pad = torch.cat([torch.zeros(img.shape[:2], dtype=torch.bool, device=ids.device), pad], dim=1)
        mask = torch.zeros(pad.shape, device=ids.device).masked_fill(pad, float("-inf"))
        out = self.norm(self.blocks(x, src_key_padding_mask=mask))
        return self.head(out[:, -ids.shape[1]:])


def mlm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy over the masked positions only: logits (B, L, V), labels (B, L) with -100 = ignore."""
    return F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-100)


def repair_vitmae_init(hf_model):
    """Redo MAE's initialisation in a `ViTMAEForPreTraining` built from a config (not a checkpoint).

    Built from a config, transformers 5.x marks the patch projection as initialised before
    `ViTMAEEmbeddings.initialize_weights` runs, which then returns early, and it zeroes the
    decoder's tables: all-zero, frozen position embeddings (the model cannot tell patches apart and
    learns to paint the average background) and zero CLS and mask tokens. Transformers 4.x fills
    the tables but then redraws the patch projection like any layer (std 0.02). Either way the
    patch projection is not MAE's xavier-uniform. This writes the 2-D sin-cos tables (CLS row zero,
    as in MAE), the xavier patch projection and normal(0.02) CLS and mask tokens, as in the MAE
    paper's code, on every version. Returns the model.
    """
    if hf_model.config.name_or_path:
        raise ValueError(f"this ViTMAE was loaded from {hf_model.config.name_or_path!r}: repair_vitmae_init is for a "
                         f"model built from a config, and would overwrite the checkpoint's weights")
    emb, dec = hf_model.vit.embeddings, hf_model.decoder
    grid = round((emb.position_embeddings.shape[1] - 1) ** 0.5)
    std = hf_model.config.initializer_range
    with torch.no_grad():
        emb.position_embeddings[0, 1:] = sincos_position_embedding_2d(grid, emb.position_embeddings.shape[-1])
        dec.decoder_pos_embed[0, 1:] = sincos_position_embedding_2d(grid, dec.decoder_pos_embed.shape[-1])
        w = emb.patch_embeddings.projection.weight
        nn.init.xavier_uniform_(w.view(len(w), -1))
        nn.init.normal_(emb.cls_token, std=std)
        nn.init.normal_(dec.mask_token, std=std)
    return hf_model


@torch.no_grad()
def predict_each_word(model: MaskedCaptionModel, ids: torch.Tensor, images: torch.Tensor | None = None, *,
                      mask_id: int = 4, pad_id: int = 0, batch_size: int = 2048) -> torch.Tensor:
    """Hide one word at a time and predict it from the rest (and the image, if given).

    ids (B, L) -> predictions (B, L): entry (i, j) is the model's guess for word j of caption i when
    only that word is replaced by the mask token. Padding positions get pad_id.
    """
    device = next(model.parameters()).device
    rows, cols = (ids != pad_id).nonzero(as_tuple=True)
    preds = torch.full_like(ids, pad_id)  # on the device of the ids, like the input
    with eval_mode(model):
        for start in range(0, len(rows), batch_size):
            r, c = rows[start:start + batch_size], cols[start:start + batch_size]
            x = ids[r].clone()
            x[torch.arange(len(r)), c] = mask_id
            logits = model(x.to(device), None if images is None else images[r].to(device))
            preds[r, c] = logits[torch.arange(len(r), device=device), c.to(device)].argmax(-1).to(preds.device)
    return preds


def word_type_accuracy(ids: torch.Tensor, preds: torch.Tensor, word_types: dict[int, str]) -> dict[str, float]:
    """Accuracy of `preds` against `ids` (both (B, L)) per word type; ids missing from
    `word_types` (padding, start and end tokens) are not counted."""
    out = {}
    for kind in dict.fromkeys(word_types.values()):
        members = torch.tensor([i for i, k in word_types.items() if k == kind])
        sel = torch.isin(ids, members)
        out[kind] = (preds[sel] == ids[sel]).float().mean().item() if sel.any() else float("nan")
    return out
