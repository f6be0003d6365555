"""transformers' ViTMAE beside vlmlearn's MAE: `copy_vitmae_weights` (a `ViTMAEForPreTraining`'s weights into a
`vlmlearn.mae.MaskedAutoencoder`; transformers 4.x and 5.x names both read) and `repair_vitmae_init` (MAE's
initialisation for a ViTMAE built from a config). Notebook 03 and the tests use them to check the from-scratch MAE
against the library. Both take a model the caller built, so this module never imports transformers itself.
"""
from __future__ import annotations

import torch
from torch import nn

from .mae import MaskedAutoencoder
from .models import sincos_position_embedding_2d

_V4_TO_V5 = [("vit.encoder.layer.", "vit.layers."), ("attention.attention.query", "attention.q_proj"),
             ("attention.attention.key", "attention.k_proj"), ("attention.attention.value", "attention.v_proj"),
             ("attention.output.dense", "attention.o_proj"), ("intermediate.dense", "mlp.fc1"),
             ("output.dense", "mlp.fc2")]


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
                "norm1.weight": src[f"{prefix}.layernorm_before.weight"],
                "norm1.bias": src[f"{prefix}.layernorm_before.bias"],
                "norm2.weight": src[f"{prefix}.layernorm_after.weight"],
                "norm2.bias": src[f"{prefix}.layernorm_after.bias"],
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
