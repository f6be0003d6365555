"""Small encoders with CPU-sized defaults: a CNN for images, a transformer for text, and the pieces every
transformer in the package is built from (`transformer_blocks`, `sincos_position_embedding_2d`).

Each encoder returns features of size `embed_dim`; objectives (contrastive, masked modeling, classification)
live outside the models so a notebook can swap them. Every forward checks its input and says what
it expected. The package's Vision Transformer is MAE's encoder (`vlmlearn.mae.MAEEncoder`).

    img = SmallCNN(image_size=32)          # (B, 3, 32, 32) -> (B, 128)
    cnn = digits_cnn()                     # (B, 1, 16, 16) -> (B, 10): the semi-supervised notebooks' classifier
    txt = TextTransformer(vocab_size=35)   # (B, L) token ids -> (B, 128)
    blocks = transformer_blocks(128, 4, heads=4, mlp_ratio=2.0)  # (B, T, 128) -> (B, T, 128)
"""
from __future__ import annotations

import torch
from torch import nn


def check_images(x: torch.Tensor, channels: int, image_size: int) -> None:
    """Raise a ValueError unless x has shape (B, channels, image_size, image_size) and is float."""
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or tuple(x.shape[1:]) != (channels, image_size, image_size):
        got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"expected images of shape (B, {channels}, {image_size}, {image_size}), got {got}")
    if not x.is_floating_point():
        raise ValueError(f"expected float images in [0, 1], got dtype {x.dtype}")


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


class SmallCNN(nn.Module):
    """A plain CNN: one stride-2 3x3 conv block per width, one more 3x3 block at the last width,
    then flatten and a linear projection.

    With the defaults a 32 px image becomes 128 x 4 x 4 before the projection (0.5 M parameters).
    Halving from the first layer, rather than running a full-resolution stem, makes training about
    3x faster on a CPU for the same accuracy on ShapesWorld.
    Input (B, in_channels, S, S) with S divisible by 2**len(widths); output (B, embed_dim).
    """

    def __init__(self, *, image_size: int = 32, in_channels: int = 3, widths: tuple[int, ...] = (32, 64, 128),
                 embed_dim: int = 128):
        super().__init__()
        if image_size % 2 ** len(widths):
            raise ValueError(f"image_size {image_size} must be divisible by {2 ** len(widths)} "
                             f"(one halving per width in {widths})")
        self.image_size, self.in_channels, self.embed_dim = image_size, in_channels, embed_dim
        layers, prev = [], in_channels
        for w, stride in [(w, 2) for w in widths] + [(widths[-1], 1)]:
            layers += [nn.Conv2d(prev, w, 3, stride=stride, padding=1), nn.BatchNorm2d(w), nn.ReLU()]
            prev = w
        self.features = nn.Sequential(*layers)
        side = image_size // 2 ** len(widths)
        self.proj = nn.Linear(prev * side * side, embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_images(x, self.in_channels, self.image_size)
        return self.proj(self.features(x).flatten(1))  # (B, C, s, s) -> (B, C*s*s) -> (B, D)


def digits_cnn() -> SmallCNN:
    """The digits classifier of notebooks 07 to 09 and `benchmarks/semi_supervised.py`:
    (B, 1, 16, 16) -> (B, 10) logits."""
    return SmallCNN(image_size=16, in_channels=1, widths=(16, 32, 32), embed_dim=10)


def transformer_blocks(width: int, depth: int, *, heads: int, mlp_ratio: float = 2.0,
                       eps: float = 1e-5) -> nn.TransformerEncoder:
    """`depth` pre-norm transformer blocks: self-attention with `heads` heads, then a GELU MLP of
    int(width * mlp_ratio) hidden units; LayerNorm eps `eps` (PyTorch's 1e-5; MAE uses 1e-6), no dropout.

    The one transformer stack of the package (text encoders, MAE's encoder and decoder, the MLM model).
    Call it as `blocks(x (B, T, width), mask=..., src_key_padding_mask=...) -> (B, T, width)`; causal
    attention is a mask at call time, not a different stack. State-dict keys: `layers.{i}.self_attn...`,
    `layers.{i}.linear1/2`, `layers.{i}.norm1/2`. The blocks start as copies of one randomly initialised
    block, as `nn.TransformerEncoder` does.
    """
    block = nn.TransformerEncoderLayer(width, heads, int(width * mlp_ratio), dropout=0.0, activation="gelu",
                                       batch_first=True, norm_first=True, layer_norm_eps=eps)
    return nn.TransformerEncoder(block, depth, enable_nested_tensor=False)


def sincos_position_embedding_2d(grid_size: int, dim: int) -> torch.Tensor:
    """Fixed 2-D sine-cosine position embeddings, (grid_size**2, dim), as in MAE.

    Half of the channels encode the row, half the column, each with sin and cos at geometric
    frequencies. Rows of the result follow the patches in raster order.
    """
    if dim % 4:
        raise ValueError(f"dim must be divisible by 4, got {dim}")
    omega = 1.0 / 10000 ** (torch.arange(dim // 4, dtype=torch.float64) / (dim / 4))
    ys, xs = torch.meshgrid(torch.arange(grid_size, dtype=torch.float64),
                            torch.arange(grid_size, dtype=torch.float64), indexing="ij")

    def encode(pos):  # (N,) -> (N, dim/2)
        angles = pos.flatten()[:, None] * omega[None, :]
        return torch.cat([angles.sin(), angles.cos()], dim=1)

    # MAE's order: the first half of the channels encodes x (columns), the second half y (rows).
    return torch.cat([encode(xs), encode(ys)], dim=1).float()


class TextTransformer(nn.Module):
    """A small transformer over token ids, pooled at the end token (the last non-pad position).

    As in CLIP (Radford et al. 2021), word embeddings start small (std 0.02) and attention is
    causal. Both matter for word order: with PyTorch's default nn.Embedding init (std 1) the word
    vectors swamp the position embeddings, and a bidirectional encoder pooled at the end token then
    reads a caption as a bag of words, unable to tell "red circle and blue square" from "blue
    circle and red square" (notebook 01 and benchmarks/binding_ablation.py measure it).
    `causal=False` gives the bidirectional encoder that BERT-style masked language modeling needs.
    Input (B, L) int64 with L <= context_length; `forward_tokens` gives (B, L, width), `forward`
    (B, embed_dim).
    """

    def __init__(self, *, vocab_size: int, context_length: int = 32, width: int = 128, layers: int = 2,
                 heads: int = 4, mlp_ratio: float = 2.0, embed_dim: int = 128, pad_id: int = 0,
                 token_init_std: float = 0.02, causal: bool = True):
        super().__init__()
        self.vocab_size, self.context_length = vocab_size, context_length
        self.pad_id, self.embed_dim = pad_id, embed_dim
        self.causal = causal
        self.token_embed = nn.Embedding(vocab_size, width)
        self.pos_embed = nn.Parameter(torch.empty(context_length, width))
        self.blocks = transformer_blocks(width, layers, heads=heads, mlp_ratio=mlp_ratio)
        self.norm = nn.LayerNorm(width)
        self.proj = nn.Linear(width, embed_dim)
        nn.init.normal_(self.token_embed.weight, std=token_init_std)
        nn.init.normal_(self.pos_embed, std=0.01)

    def _check(self, ids: torch.Tensor) -> None:
        if not isinstance(ids, torch.Tensor) or ids.ndim != 2 or ids.dtype != torch.long:
            got = f"{tuple(ids.shape)} {ids.dtype}" if isinstance(ids, torch.Tensor) else type(ids).__name__
            raise ValueError(f"expected token ids of shape (B, L) and dtype int64, got {got}")
        if ids.shape[1] > self.context_length:
            raise ValueError(f"expected at most {self.context_length} tokens, got {ids.shape[1]}")
        if len(ids) and (ids.min() < 0 or ids.max() >= self.vocab_size):
            raise ValueError(f"token ids must be in [0, {self.vocab_size}), got [{int(ids.min())}, {int(ids.max())}]")
        if len(ids) and (ids != self.pad_id).sum(1).min() == 0:
            raise ValueError("got an empty text (a row of padding only); check for empty captions")

    def forward_tokens(self, ids: torch.Tensor) -> torch.Tensor:
        self._check(ids)
        x = self.token_embed(ids) + self.pos_embed[: ids.shape[1]]  # (B, L, W)
        # Additive float masks (-inf = cannot attend): padding is never a key, and with causal
        # attention each word sees only the words before it, as in CLIP's text transformer.
        pad = torch.zeros(ids.shape, device=ids.device).masked_fill(ids == self.pad_id, float("-inf"))  # (B, L)
        causal = (torch.triu(torch.full((ids.shape[1],) * 2, float("-inf"), device=ids.device), 1) if self.causal
                  else None)
        return self.norm(self.blocks(x, mask=causal, src_key_padding_mask=pad))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        tokens = self.forward_tokens(ids)
        last = (ids != self.pad_id).sum(1) - 1  # position of the end token, (B,)
        return self.proj(tokens[torch.arange(len(ids)), last])
