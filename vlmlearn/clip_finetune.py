"""Fine-tuning a pretrained CLIP as open_clip_train does it, for `vlmlearn.train_clip`: pretrained weights from a local
file or the local cache, locked towers, the SigLIP bias, gradient accumulation, and files open_clip reads and writes.

    path = pretrained_path("ViT-B-32", "laion2b_s34b_b79k")     # a cached file, never a download
    load_weights_checked(bundle.model, read_state_dict(path), source=path, model_name="ViT-B-32")
    lock_towers(bundle.model, image=True)                          # LiT: the image tower frozen
    step_fn = contrastive_step(loss_fn, accum_freq=4)               # 4 micro-batches, one contrastive batch
    write_open_clip_config(bundle, run)                            # open_clip.create_model("local-dir:" + run)

Nothing here reaches the network: a tag or `hf-hub:` name is looked up in the local Hugging Face / open_clip cache,
and a missing file is a FileNotFoundError that says what to download.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Callable

import torch
from torch import nn

SIGLIP_INIT = {"init_logit_scale": math.log(10), "init_logit_bias": -10.0}  # open_clip_train's --siglip start


# ------------------------------------------------------------------------------ pretrained weights
def is_vlmlearn_checkpoint(path: str | Path) -> bool:
    """A vlmlearn run's weights: a .safetensors file with its record (same name, .json, with a "model" entry)."""
    record = Path(path).with_suffix(".json")
    return Path(path).suffix == ".safetensors" and record.is_file() and "model" in json.loads(record.read_text())


def pretrained_path(model: str, pretrained: str) -> Path:
    """The local file `--pretrained` names: a path, an open_clip tag of `model` ("laion2b_s34b_b79k") or
    "hf-hub:org/repo[/file]", the last two only from the local cache (FileNotFoundError naming what to download)."""
    if Path(pretrained).is_file():
        return Path(pretrained)
    if pretrained.startswith("hf-hub:"):
        return _cached_hf_file(*_repo_and_file(pretrained[len("hf-hub:"):]), pretrained)
    import open_clip

    cfg = open_clip.get_pretrained_cfg(model, pretrained)
    if not cfg:
        looks_like_a_path = any(c in pretrained for c in "/\\.")
        raise FileNotFoundError(
            f"--pretrained {pretrained!r}: " + ("no such file" if looks_like_a_path else
                                                f"not a file and not an open_clip tag of {model!r}")
            + f"; expected a local weights file, 'hf-hub:org/repo' or one of the tags of {model!r}: "
            f"{open_clip.list_pretrained_tags_by_model(model) or 'none (no pretrained weights for this name)'}")
    if cfg.get("hf_hub"):
        return _cached_hf_file(*_repo_and_file(cfg["hf_hub"]), f"{model} {pretrained}")
    cached = Path.home() / ".cache" / "clip" / Path(cfg["url"]).name  # open_clip's cache for URL weights
    if cached.is_file():
        return cached
    raise FileNotFoundError(f"--pretrained {pretrained} of {model}: {cached} is not in the local cache and nothing "
                            f"is downloaded here; fetch it once with `python -c \"import open_clip; "
                            f"open_clip.create_model('{model}', pretrained='{pretrained}')\"`")


def _repo_and_file(identifier: str) -> tuple[str, str | None]:
    """"org/repo" or "org/repo/file.safetensors" -> (repo, file or None)."""
    parts = identifier.strip("/").split("/")
    return "/".join(parts[:2]), "/".join(parts[2:]) or None


def _cached_hf_file(repo: str, filename: str | None, what: str) -> Path:
    from huggingface_hub import try_to_load_from_cache

    names = [filename] if filename else ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
    if filename and filename.endswith((".bin", ".pth")):
        names.insert(0, filename[:-4] + ".safetensors")  # open_clip prefers the safetensors twin
    for name in names:
        found = try_to_load_from_cache(repo, name)
        if isinstance(found, str):
            return Path(found)
    raise FileNotFoundError(f"--pretrained {what}: {repo} ({' or '.join(names)}) is not in the local Hugging Face "
                            f"cache and nothing is downloaded here; fetch it once with "
                            f"`huggingface-cli download {repo} {names[-1]}`")


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The weights of an open_clip checkpoint (.pt / .bin / .safetensors, a bare state dict or open_clip_train's
    {"state_dict": ...} with DistributedDataParallel's "module." prefix), read without running code
    (`weights_only=True`, or safetensors)."""
    path = Path(path)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a TorchScript archive (OpenAI's original .pt) or not a checkpoint at all
        raise ValueError(f"{path}: cannot read a state dict ({type(e).__name__}: {str(e)[:200]}); expected an "
                         f"open_clip checkpoint or safetensors file (for OpenAI's weights use the tag 'openai', "
                         f"cached from the Hugging Face hub)") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path}: expected a state dict (parameter name -> tensor), found "
                         f"{type(state).__name__} with keys {list(state)[:5] if isinstance(state, dict) else '-'}")
    return {k.removeprefix("module."): v for k, v in state.items()}


def load_weights_checked(model: nn.Module, weights: dict[str, torch.Tensor], *, source: str, model_name: str) -> None:
    """Load `weights` into `model`, or a ValueError that starts with `source` (e.g. "--pretrained w.pt") and lists
    the missing, unexpected and misshapen entries (expected shape vs found). A missing SigLIP `logit_bias` keeps the
    model's own start (fine-tuning a CLIP with --siglip)."""
    own = model.state_dict()
    weights = dict(weights)
    for name in ("logit_scale", "logit_bias"):  # a scalar saved as shape (1,) or the other way round
        if name in weights and name in own and weights[name].numel() == own[name].numel():
            weights[name] = weights[name].reshape(own[name].shape)
    if "logit_bias" in own and "logit_bias" not in weights:
        weights["logit_bias"] = own["logit_bias"]
    missing = [k for k in own if k not in weights]
    unexpected = [k for k in weights if k not in own]
    misshapen = [f"{k}: expected {tuple(own[k].shape)}, found {tuple(weights[k].shape)}"
                 for k in own if k in weights and weights[k].shape != own[k].shape]
    if missing or unexpected or misshapen:
        parts = [f"{len(misshapen)} of another shape ({'; '.join(misshapen[:3])})" if misshapen else "",
                 f"{len(missing)} missing (e.g. {missing[:3]})" if missing else "",
                 f"{len(unexpected)} unexpected (e.g. {unexpected[:3]})" if unexpected else ""]
        raise ValueError(f"{source} does not fit --model {model_name}: of its {len(weights)} tensors, "
                         + ", ".join(p for p in parts if p) + "; is it the weights of another architecture?")
    model.load_state_dict(weights)


def siglip_config(model_config: dict) -> dict:
    """An open_clip model config with SigLIP's learned bias (and open_clip_train's starting scale, unless the config
    has its own): a model built from it has `logit_bias`, and its saved record rebuilds it."""
    return {**SIGLIP_INIT, **model_config} if "init_logit_bias" not in model_config else dict(model_config)


# ------------------------------------------------------------------------------ locked towers (LiT)
def lock_towers(model: nn.Module, *, image: bool = False, image_unlocked_groups: int = 0, text: bool = False,
                text_unlocked_layers: int = 0, freeze_layer_norm: bool = False, freeze_bn_stats: bool = False) -> None:
    """Freeze the image and/or text tower (Zhai et al. 2022, LiT), leaving the last N layer groups trainable.

    open_clip models lock with their own `lock_image_tower` / `lock_text_tower` (groups: the embeddings, each block,
    the last block with the final norm, the projection). The course's DualEncoder gets the same rule from its
    towers' order: the tower's own parameters, then each submodule, blocks of a Sequential one group each.
    `freeze_layer_norm` keeps the text tower's LayerNorms frozen in unlocked groups too. A locked BatchNorm never
    updates its statistics here, with or without `freeze_bn_stats`: `train` keeps fully frozen submodules in eval
    mode (which also turns their dropout off, unlike open_clip_train).
    """
    if hasattr(model, "lock_image_tower"):
        if image:
            model.lock_image_tower(unlocked_groups=image_unlocked_groups, freeze_bn_stats=freeze_bn_stats)
        if text:
            model.lock_text_tower(unlocked_layers=text_unlocked_layers, freeze_layer_norm=True)
        text_modules = [model.text] if hasattr(model, "text") else [model.transformer, model.ln_final]
    else:
        if image:
            _lock(_groups(model.image_encoder), image_unlocked_groups)
        if text:
            _lock(_groups(model.text_encoder), text_unlocked_layers)
        text_modules = [model.text_encoder]
    if text and freeze_layer_norm:
        for module in text_modules:
            for norm in (m for m in module.modules() if isinstance(m, nn.LayerNorm)):
                norm.requires_grad_(False)


def _groups(tower: nn.Module) -> list[list]:
    groups = [list(tower._parameters.values())] if tower._parameters else []
    for child in tower.children():
        blocks = getattr(child, "layers", child)  # a blocks container that keeps its list in .layers
        groups += [[b] for b in blocks] if isinstance(blocks, (nn.Sequential, nn.ModuleList)) else [[child]]
    return groups


def _lock(groups: list[list], unlocked: int) -> None:
    for group in groups:
        for item in group:
            item.requires_grad_(False)
    for group in groups[len(groups) - unlocked:] if unlocked > 0 else []:
        for item in group:
            item.requires_grad_(True)


def tower_parameters(model: nn.Module, tower: str) -> dict[str, torch.Tensor]:
    """name -> a copy of every parameter of the "image" or "text" tower of an open_clip CLIP or a DualEncoder."""
    image_prefixes = ("visual.", "image_encoder.")
    return {n: p.detach().clone() for n, p in model.named_parameters()
            if n.startswith(image_prefixes) == (tower == "image") and "logit_" not in n}


# ------------------------------------------------------------------------------ the step, with accumulation
def _forward(net: nn.Module, images: torch.Tensor, ids: torch.Tensor) -> tuple:
    """(image features (B, D), text features (B, D), scale, bias or None) from a DualEncoder or an open_clip CLIP,
    whether or not DistributedDataParallel wraps it."""
    out = net(images, ids)
    if isinstance(out, dict):  # an open_clip model built with output_dict=True
        out = (out["image_features"], out["text_features"], out["logit_scale"], out.get("logit_bias"))
    bias = out[3] if len(out) > 3 else getattr(getattr(net, "module", net), "logit_bias", None)
    return out[0], out[1], out[2], bias


def contrastive_step(loss_fn: Callable, *, siglip: bool = False, accum_freq: int = 1) -> Callable:
    """A `train` step function for (images (B, 3, S, S), ids (B, L), problems) batches.

    `loss_fn(image features, text features, scale[, bias])`: `clip_loss`, or `siglip_loss` with `siglip=True`.
    With `accum_freq` k > 1 the batch is cut into k micro-batches, as open_clip_train's --accum-freq does: the
    features of all k are computed without gradients, then each micro-batch again with gradients, its rows put among
    the cached ones, and the loss of the whole batch backpropagated (memory of one micro-batch, gradients of the
    whole batch). The temperature (and bias) get their gradient from the last micro-batch only: open_clip_train
    backpropagates it from every micro-batch, k times the whole batch's. `train` zeroes gradients after the step
    function and backpropagates what it returns, so the summed gradients g are handed back through a stand-in loss
    `loss + sum(p * g) - sum(p * g).detach()`, whose gradient is g and whose value is the loss. Under torchrun the
    micro-batches bypass DistributedDataParallel and g is averaged over processes here, as DDP would.
    """
    def objective(img, txt, scale, bias):
        return loss_fn(img, txt, scale, bias) if siglip else loss_fn(img, txt, scale)

    def step(net: nn.Module, batch: tuple) -> tuple[torch.Tensor, dict[str, float]]:
        images, ids = batch[:2]
        if siglip and _forward_bias(net) is None:
            raise ValueError("--siglip needs a model with a logit_bias (open_clip_train's init_logit_bias)")
        if accum_freq == 1:
            img, txt, scale, bias = _forward(net, images, ids)
            return objective(img, txt, scale, bias), {"temperature": 1 / scale.item()}
        return _accumulated(getattr(net, "module", net), images, ids, objective, accum_freq)

    return step


def _forward_bias(net: nn.Module):
    return getattr(getattr(net, "module", net), "logit_bias", None)


def _accumulated(model: nn.Module, images: torch.Tensor, ids: torch.Tensor, objective: Callable,
                 accum_freq: int) -> tuple[torch.Tensor, dict[str, float]]:
    if len(images) % accum_freq:
        raise ValueError(f"a batch of {len(images)} does not split into --accum-freq {accum_freq} micro-batches")
    chunks = list(zip(images.chunk(accum_freq), ids.chunk(accum_freq)))
    with torch.no_grad():
        cached = [_forward(model, im, t)[:2] for im, t in chunks]  # [(img (b, D), txt (b, D))] * k
    params = [p for p in model.parameters() if p.requires_grad]
    for p in params:
        p.grad = None
    for j, (im, t) in enumerate(chunks):
        img_j, txt_j, scale, bias = _forward(model, im, t)
        img = torch.cat([c[0] for c in cached[:j]] + [img_j] + [c[0] for c in cached[j + 1:]])  # (k b, D)
        txt = torch.cat([c[1] for c in cached[:j]] + [txt_j] + [c[1] for c in cached[j + 1:]])
        if j < accum_freq - 1:  # the temperature and bias count once, not once per micro-batch
            scale, bias = scale.detach(), None if bias is None else bias.detach()
        loss = objective(img, txt, scale, bias)
        loss.backward()  # adds this micro-batch's share of the whole batch's gradient to p.grad
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    for p in params:
        p.grad = None
    from .runtime import world

    if world()[1] > 1:
        import torch.distributed as dist

        for g in grads:
            dist.all_reduce(g)
            g /= world()[1]
    surrogate = sum((p * g).sum() for p, g in zip(params, grads))
    return loss.detach() + surrogate - surrogate.detach(), {"temperature": 1 / scale.item()}


# ------------------------------------------------------------------------------ open_clip's files
def open_clip_config(model: nn.Module, model_config: dict) -> dict:
    """What open_clip reads as `open_clip_config.json` ("local-dir:" models): the model config and the
    preprocessing the model was built with."""
    preprocess = dict(getattr(model.visual, "preprocess_cfg", {}) or {})
    return {"model_cfg": model_config, "preprocess_cfg": preprocess}


def write_open_clip_config(model: nn.Module, model_name: str, run: Path) -> Path | None:
    """`run/open_clip_config.json` for an open_clip model (None for the course's own): with it, open_clip loads the
    run as `create_model_and_transforms("local-dir:" + run)` (it picks `model.safetensors` there)."""
    import open_clip

    config = open_clip.get_model_config(model_name) if hasattr(model, "visual") else None
    if config is None:
        return None
    path = Path(run) / "open_clip_config.json"
    path.write_text(json.dumps(open_clip_config(model, config), indent=1))
    return path


def is_open_clip_checkpoint(state: dict) -> bool:
    """open_clip_train's checkpoint: {"epoch", "name", "state_dict", "optimizer"[, "scaler"]}."""
    return isinstance(state, dict) and "state_dict" in state and "epoch" in state


def open_clip_optimizer_state(model: nn.Module, optimizer: torch.optim.Optimizer, saved: dict) -> dict:
    """open_clip_train's AdamW state re-keyed for `optimizer` (built by `vlmlearn.optim.param_groups`).

    open_clip_train numbers the trainable parameters in two groups, first those without weight decay (1-d, or a
    name with "bn", "ln", "bias" or "logit_scale"), then the rest, each in `named_parameters` order; the moments
    of each parameter are matched by name."""
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]

    def no_decay(name, p):
        return p.ndim < 2 or any(s in name for s in ("bn", "ln", "bias", "logit_scale"))

    open_clip_order = [p for n, p in named if no_decay(n, p)] + [p for n, p in named if not no_decay(n, p)]
    ours = [p for g in optimizer.param_groups for p in g["params"]]
    theirs = [i for g in saved["param_groups"] for i in g["params"]]
    if len(theirs) != len(open_clip_order) or len(ours) != len(open_clip_order):
        raise ValueError(f"the open_clip checkpoint's optimizer holds {len(theirs)} parameters, this model trains "
                         f"{len(ours)}: resume with the same --model and the same --lock-* flags")
    index_of = {id(p): i for i, p in enumerate(ours)}
    state = {index_of[id(p)]: saved["state"][i] for p, i in zip(open_clip_order, theirs) if i in saved["state"]}
    return {"state": state, "param_groups": optimizer.state_dict()["param_groups"]}



def resume_from_open_clip(state: dict, checkpoint: Path, *, model: nn.Module, optimizer: torch.optim.Optimizer,
                          scheduler, steps_per_epoch: int, source: str, model_name: str) -> int:
    """Turn open_clip_train's checkpoint `state` into this trainer's (`vlmlearn.train.save_checkpoint`) at
    `checkpoint`, which `train` then resumes from: the weights ("module." prefix dropped), the AdamW moments matched
    by parameter, the schedule moved on to the step it had reached (its "epoch" completed epochs of
    `steps_per_epoch` steps). Returns that step. Its GradScaler state is not carried over (see `train_clip`)."""
    import warnings

    from .train import save_checkpoint

    weights = {k.removeprefix("module."): v for k, v in state["state_dict"].items()}
    load_weights_checked(model, weights, source=source, model_name=model_name)
    optimizer.load_state_dict(open_clip_optimizer_state(model, optimizer, state["optimizer"]))
    step = int(state["epoch"]) * steps_per_epoch
    with warnings.catch_warnings():  # "scheduler.step() before optimizer.step()": on purpose, nothing is trained
        warnings.simplefilter("ignore")
        for _ in range(step):
            scheduler.step()
    save_checkpoint(checkpoint, model, optimizer, step, None, scheduler)
    return step
