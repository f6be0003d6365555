"""Where code runs: seeds, the device, mixed precision, torchrun's process group and ranks, eval mode.

Everything here is about the machine and the process, never about a model or an objective: `train`,
the losses and the command-line tools all read the device, the ranks and the autocast dtype from this
one module. Nothing here imports from the rest of the package.
"""
from __future__ import annotations

import os
import random
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch import nn


def set_seed(seed: int) -> None:
    """Seed Python, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2 ** 32)
    torch.manual_seed(seed)


def get_device(prefer: str | None = None) -> torch.device:
    """cuda if available, then mps, then cpu; or the device named by `prefer` / $VLMLEARN_DEVICE."""
    prefer = prefer or os.environ.get("VLMLEARN_DEVICE")
    if prefer:
        return torch.device(prefer)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """The mixed precision `train` uses on `device`: bfloat16 on CUDA GPUs that support it (Ampere
    and newer), float16 on older CUDA GPUs (with a GradScaler, since fp16 gradients underflow), and
    none on CPU and MPS, where autocast buys little for these models (and `torch.autocast("mps")`
    raises on torch < 2.5)."""
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def to_device(batch: Any, device: torch.device) -> Any:
    """Move every tensor inside tuples, lists and dicts to `device`; leave the rest."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(b, device) for b in batch)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    return batch


# ------------------------------------------------------------------------------ train and eval mode
def set_train_mode(model: nn.Module) -> nn.Module:
    """`model.train()`, except that every submodule whose parameters are all frozen stays in eval
    mode: a frozen encoder's BatchNorm statistics do not move and its dropout stays off."""
    model.train()
    for module in model.modules():
        params = list(module.parameters())
        if params and not any(p.requires_grad for p in params):
            module.eval()
    return model


@contextmanager
def eval_mode(*models: nn.Module) -> Iterator[None]:
    """Put `models` in eval mode for the block and give every submodule its own train/eval flag back
    afterwards, also when the block raises::

        with eval_mode(model), torch.no_grad():
            logits = model(images)
    """
    saved = [(m, m.training) for model in models for m in model.modules()]
    for model in models:
        model.eval()
    try:
        yield
    finally:
        for module, training in saved:
            module.training = training


# ------------------------------------------------------------------------------ torchrun: ranks and shards
def world() -> tuple[int, int]:
    """(rank, world size) of the initialised default process group, else (0, 1)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def setup_distributed() -> tuple[int, int, torch.device]:
    """Join the process group torchrun describes in the environment (RANK, WORLD_SIZE, LOCAL_RANK,
    MASTER_ADDR, MASTER_PORT): nccl with one GPU per process where CUDA is available, gloo on CPUs.
    Without torchrun (no WORLD_SIZE, or 1) nothing is started. Returns (rank, world size, device).

        torchrun --nproc_per_node 4 my_training.py    # my_training.py calls setup_distributed() first
    """
    import torch.distributed as dist

    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size == 1:
        return 0, 1, get_device()
    if "RANK" not in os.environ or "LOCAL_RANK" not in os.environ:
        raise ValueError(f"WORLD_SIZE={size} but RANK or LOCAL_RANK is missing: start the script with torchrun")
    cuda = torch.cuda.is_available()
    device = torch.device("cuda", int(os.environ["LOCAL_RANK"])) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
    return dist.get_rank(), dist.get_world_size(), device


def wrap_ddp(model: nn.Module, device: torch.device) -> nn.Module:
    """The model wrapped in DistributedDataParallel (one device per process, as torchrun starts them)."""
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)


def shard(get_batch: Callable[[int], Any], rank: int, size: int) -> Callable[[int], Any]:
    """Each rank takes its contiguous share of every global batch, so the gathered batch is the global one."""
    def take(x):
        if isinstance(x, torch.Tensor):
            if len(x) % size:
                raise ValueError(f"a global batch of {len(x)} does not split evenly over {size} processes")
            return x.chunk(size)[rank]
        return type(x)(take(v) for v in x) if isinstance(x, (tuple, list)) else x

    return lambda step: take(get_batch(step))


def mean_over_ranks(metrics: dict[str, float], device: torch.device) -> dict[str, float]:
    """The mean of each metric over every rank (an all-reduce), the same on every rank."""
    import torch.distributed as dist

    values = torch.tensor(list(metrics.values()), dtype=torch.float64, device=device)
    dist.all_reduce(values)
    return dict(zip(metrics, (values / dist.get_world_size()).tolist()))
