"""How parameters are optimised: parameter groups (weight decay, layer-wise decay), learning-rate schedules,
and the temperature clamp that follows every optimizer step.

Every notebook, benchmark and command-line tool builds its optimizer groups and its schedule from here;
no model module defines its own. Nothing here knows about a particular objective or data set.
"""
from __future__ import annotations

import math
import re
from typing import Callable, Iterable

import torch
from torch import nn

_NO_DECAY_MODULES = (nn.Embedding, nn.EmbeddingBag, nn.LayerNorm, nn.GroupNorm, nn.LocalResponseNorm,
                     nn.modules.batchnorm._NormBase)
_NO_DECAY_NAMES = re.compile(r"embed|token|pos|logit_scale|logit_bias")


def param_groups(model: nn.Module, weight_decay: float, *, params: Iterable[nn.Parameter] | None = None,
                 **options) -> list[dict]:
    """Optimizer parameter groups with weight decay on weight matrices only, none on the rest.

    As timm does (and as open_clip does for 1-d parameters), decay never applies to 1-d parameters
    (biases, norm scales, CLIP's `logit_scale`, SigLIP's `logit_bias`) or to norm layers; unlike open_clip,
    which decays its 2-d `token_embedding`, it also skips embeddings (`nn.Embedding`) and positional
    embeddings and learned tokens stored as bare parameters (names with "embed", "token" or "pos"):
    decaying a temperature pulls it towards T = 1, and decaying an embedding shrinks the rare words.
    Frozen parameters are left out; `params` keeps only the given parameters of `model` (for a second
    learning rate); `options` (lr, betas, ...) go into every group::

        opt = torch.optim.AdamW(param_groups(model, 0.1), lr=1e-3)
        opt = torch.optim.AdamW(param_groups(model, 0.01, params=head, lr=2e-3)
                                + param_groups(model, 0.01, params=encoder, lr=2e-4))
    """
    wanted = None if params is None else {id(p) for p in params}
    decay, no_decay, seen = [], [], set()
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            if not p.requires_grad or id(p) in seen or (wanted is not None and id(p) not in wanted):
                continue
            seen.add(id(p))
            skip = p.ndim < 2 or isinstance(module, _NO_DECAY_MODULES) or _NO_DECAY_NAMES.search(name)
            (no_decay if skip else decay).append(p)
    if wanted is not None and len(wanted - {id(p) for p in model.parameters()}):
        raise ValueError(f"{len(wanted - {id(p) for p in model.parameters()})} of the given params are not "
                         f"parameters of the {type(model).__name__}")
    if not seen:
        raise ValueError(f"no trainable parameters to optimize in the {type(model).__name__}")
    groups = [{"params": decay, "weight_decay": weight_decay, **options},
              {"params": no_decay, "weight_decay": 0.0, **options}]
    return [g for g in groups if g["params"]]


def layer_decay_groups(model: nn.Module, lr: float, *, layer_decay: float = 0.75,
                       weight_decay: float = 0.05) -> list[dict]:
    """Optimizer groups with layer-wise learning-rate decay, as MAE fine-tunes (from BEiT), for a classifier
    over a ViT encoder (`vlmlearn.mae.MAEClassifier`: `model.encoder.blocks`, `.patch_embed`, `.cls_token`,
    `.norm`, then `model.norm` and `model.head`): the head and final norms get `lr`, block i of d gets
    lr * layer_decay ** (d - i), the patch projection and CLS token lr * layer_decay ** (d + 1). Weight decay
    as `param_groups` applies it."""
    encoder = model.encoder
    blocks = encoder.blocks.layers
    depth = len(blocks)
    groups = param_groups(model, weight_decay, params=[encoder.patch_embed.weight, encoder.patch_embed.bias,
                                                       encoder.cls_token], lr=lr * layer_decay ** (depth + 1))
    for i, block in enumerate(blocks):
        groups += param_groups(model, weight_decay, params=block.parameters(), lr=lr * layer_decay ** (depth - i))
    top = [*encoder.norm.parameters(), *model.norm.parameters(), *model.head.parameters()]
    return groups + param_groups(model, weight_decay, params=top, lr=lr)


# ------------------------------------------------------------------------------ schedules
def warmup_cosine(steps: int, *, warmup: int) -> Callable[[int], float]:
    """The learning-rate factor at step s of open_clip's `cosine_lr`: linear from 1/warmup to 1 over the
    first `warmup` steps, then a cosine from 1 to 0 over the remaining `steps - warmup` (a warm-up longer than
    the run never reaches the cosine, as in open_clip). For
    `torch.optim.lr_scheduler.LambdaLR`::

        sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup_cosine(1000, warmup=100))
    """
    if steps < 1 or warmup < 0:
        raise ValueError(f"expected steps >= 1 and warmup >= 0, got steps={steps}, warmup={warmup}")

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * min(step - warmup, steps - warmup) / max(1, steps - warmup)))

    return factor


def one_cycle(optimizer: torch.optim.Optimizer, *, max_lr: float, steps: int, warmup_fraction: float = 0.1):
    """torch's `OneCycleLR` (a cosine rise from max_lr / 25 over `warmup_fraction` of `steps`, then a cosine
    fall to max_lr / 25e4): notebook 01's CLIP recipe (`fit_clip`), the schedule its shipped checkpoint was
    trained with. New recipes use `warmup_cosine`."""
    return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=max_lr, total_steps=steps, pct_start=warmup_fraction)


# ------------------------------------------------------------------------------ after each step
@torch.no_grad()
def clamp_logit_scales_(model: nn.Module, max_scale: float = 100.0) -> None:
    """Clamp every `logit_scale` parameter (a log inverse temperature) in place to [0, log max_scale],
    after the optimizer step, as open_clip's training loop does. A module's own `max_logit_scale`
    overrides `max_scale`. Clamping here, not in `forward`, keeps the gradient of the scale alive:
    `exp(s).clamp(max=100)` has zero gradient once it is reached, and AdamW's momentum would carry
    `s` on past the cap with nothing to pull it back."""
    for module in model.modules():
        s = module._parameters.get("logit_scale")
        if s is not None:
            s.clamp_(0.0, math.log(getattr(module, "max_logit_scale", max_scale)))
