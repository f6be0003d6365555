"""One training loop for every notebook.

An objective is a step function `step_fn(model, batch) -> (loss, metrics)`; the loop does the rest:
zero_grad / backward / clip / step, a progress bar, evaluation every N steps, callbacks, a step or
time budget, checkpoints you can resume from, and a `History` that plots directly::

    def clip_step(model, batch):
        images, ids = batch
        loss = clip_loss(*model(images, ids))
        return loss, {}

    history = train(model, optimizer, clip_step, minibatches(images, ids, batch_size=256), steps=500)
    history.plot()
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import torch
from torch import nn

from .optim import clamp_logit_scales_
from .runtime import autocast_dtype, eval_mode, mean_over_ranks, set_train_mode, shard, to_device, world, wrap_ddp

StepFn = Callable[[nn.Module, Any], tuple[torch.Tensor, dict[str, float]]]


def minibatches(*tensors: torch.Tensor, batch_size: int, seed: int = 0) -> Callable[[int], tuple]:
    """A resumable data source: step -> a tuple of tensors for that step.

    Each epoch is a fresh permutation seeded by (seed, epoch), so step k always gets the same batch,
    which is what lets a resumed run match an uninterrupted one. The last partial batch of an epoch
    is dropped.
    """
    n = len(tensors[0])
    if any(len(t) != n for t in tensors):
        raise ValueError(f"all tensors need the same length, got {[len(t) for t in tensors]}")
    if not 1 <= batch_size <= n:
        raise ValueError(f"batch_size must be between 1 and the data size {n}, got {batch_size}")
    per_epoch = n // batch_size
    cache: dict[int, torch.Tensor] = {}

    def batch(step: int) -> tuple:
        epoch, k = divmod(step, per_epoch)
        if epoch not in cache:
            cache.clear()
            cache[epoch] = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))
        idx = cache[epoch][k * batch_size:(k + 1) * batch_size]
        return tuple(t[idx] for t in tensors)

    return batch


@dataclass
class History:
    """What a run recorded. `train` and `eval` map names to lists; both hold a "step" list."""

    train: dict[str, list[float]] = field(default_factory=lambda: {"step": [], "loss": []})
    eval: dict[str, list[float]] = field(default_factory=lambda: {"step": []})
    seconds: float = 0.0
    stopped_by: str = ""

    def log(self, where: dict, step: int, metrics: dict[str, float]) -> None:
        where["step"].append(step)
        for k, v in metrics.items():
            where.setdefault(k, [float("nan")] * (len(where["step"]) - 1)).append(float(v))

    def summary(self, last: int = 10) -> str:
        """One line for the record: steps, seconds, the train metrics averaged over the `last` steps (one
        batch is noisy) and the final evaluation, e.g.
        "300 steps in 21.4 s; last 10 steps: loss 0.41; eval: acc 0.93"."""
        steps = self.train["step"][-1] if self.train["step"] else 0
        line = f"{steps} steps in {self.seconds:.1f} s"
        n = min(last, len(self.train["step"]))
        if n:
            means = {k: sum(v[-n:]) / n for k, v in self.train.items() if k != "step"}
            line += f"; last {n} steps: " + ", ".join(f"{k} {v:.4g}" for k, v in means.items())
        if self.eval["step"]:
            final = {k: v[-1] for k, v in self.eval.items() if k != "step"}
            line += f"; eval at step {self.eval['step'][-1]}: " + ", ".join(f"{k} {v:.4g}" for k, v in final.items())
        return line

    def plot(self, keys: list[str] | None = None, **kwargs):
        from .viz import plot_history

        return plot_history(self, keys=keys, **kwargs)

    def state_dict(self) -> dict:
        return {"train": self.train, "eval": self.eval, "seconds": self.seconds}


@dataclass
class TrainState:
    """What callbacks see after each step. Set `stop = True` to end training."""

    step: int
    model: nn.Module
    optimizer: torch.optim.Optimizer
    metrics: dict[str, float]
    history: History
    stop: bool = False


def train(model: nn.Module, optimizer: torch.optim.Optimizer, step_fn: StepFn,
          data: Callable[[int], Any] | Iterable, *, steps: int, max_seconds: float | None = None,
          eval_fn: Callable[[nn.Module], dict[str, float]] | None = None, eval_every: int | None = None,
          callbacks: Iterable[Callable[[TrainState], None]] = (), scheduler=None, grad_clip: float | None = None,
          amp: bool | torch.dtype = True, checkpoint: str | Path | None = None, checkpoint_every: int | None = None,
          progress: bool = True, desc: str = "train") -> History:
    """Train `model` for `steps` optimizer steps (or until `max_seconds`) and return its History.

    Args:
        step_fn: (model, batch) -> (scalar loss, dict of float metrics). It runs in train mode.
        data: a function step -> batch (resumable, see `minibatches`) or an iterable of batches,
            cycled when exhausted. Tensors in a batch are moved to the model's device.
        eval_fn: model -> dict of metrics, run in eval mode under no_grad every `eval_every` steps
            and after the last step.
        callbacks: functions of a TrainState, called after every step; one may set state.stop.
        amp: mixed precision as `autocast_dtype` picks it for the model's device (bf16, or fp16
            with a GradScaler, on CUDA; nothing on CPU and MPS), or the autocast dtype to use.
        checkpoint: a file path. If it exists, training resumes from it; it is written every
            `checkpoint_every` steps and at the end. Loading uses weights_only=True.
        progress: a tqdm bar named `desc` while training, then one printed line with the final state
            (`History.summary`), which stays readable where the bar's widget does not render.

    After every optimizer step, `logit_scale` parameters are clamped (`clamp_logit_scales_`).
    Submodules whose parameters are all frozen stay in eval mode (`set_train_mode`).

    Under torchrun (a process group of more than one rank): the model is wrapped in
    DistributedDataParallel and step functions get the wrapped model; each rank takes its contiguous
    share of every global batch from `data` (unless `data.per_rank` says its batches are already this
    rank's share, as `vlmlearn.data.StepLoader`'s are); logged metrics are the mean over ranks; only rank 0
    shows progress and writes the checkpoint.
    """
    if steps < 0:
        raise ValueError(f"steps must be non-negative, got {steps}")
    params = [p for g in optimizer.param_groups for p in g["params"]]
    device = params[0].device if params else torch.device("cpu")
    rank, size = world()
    net = model if size == 1 else wrap_ddp(model, device)  # step functions call net(...): DDP syncs the gradients
    history, start = History(), 0
    if checkpoint is not None and Path(checkpoint).is_file():
        start, history = load_checkpoint(checkpoint, model, optimizer, scheduler)
    get_batch = data if callable(data) else _cycle(data, start)
    if size > 1 and not getattr(data, "per_rank", False):
        get_batch = shard(get_batch, rank, size)
    dtype = amp if isinstance(amp, torch.dtype) else autocast_dtype(device) if amp else None
    scaler = torch.amp.GradScaler(device.type) if dtype == torch.float16 else None
    bar = _progress(range(start, steps), progress and rank == 0, desc)
    t0, state = time.perf_counter() - history.seconds, None
    history.stopped_by = "steps"
    set_train_mode(model)
    for step in bar:
        batch = to_device(get_batch(step), device)
        if dtype is None:
            loss, metrics = step_fn(net, batch)
        else:
            with torch.autocast(device.type, dtype=dtype):
                loss, metrics = step_fn(net, batch)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss became {loss.item()} at step {step}; lower the learning rate "
                                     f"or check the inputs for NaN")
        optimizer.zero_grad(set_to_none=True)
        if scaler is None:
            loss.backward()
        else:  # fp16: scale the loss so small gradients survive, unscale before clipping
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
        if grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(params, grad_clip)
        if scaler is None:
            optimizer.step()
        else:
            scaler.step(optimizer)  # skips the step when the gradients overflowed
            scaler.update()
        clamp_logit_scales_(model)
        if scheduler is not None:
            scheduler.step()
        metrics = {"loss": loss.item(), **{k: float(v) for k, v in metrics.items()}}
        if size > 1:  # the mean over ranks, the same on every rank
            metrics = mean_over_ranks(metrics, device)
        history.log(history.train, step + 1, metrics)
        history.seconds = time.perf_counter() - t0
        done = step + 1 == steps or (max_seconds is not None and history.seconds >= max_seconds)
        if eval_fn is not None and ((eval_every and (step + 1) % eval_every == 0) or done):
            history.log(history.eval, step + 1, evaluate(model, eval_fn))
        if hasattr(bar, "set_postfix") and (step % 10 == 0 or done):
            bar.set_postfix({k: f"{v:.3g}" for k, v in list(metrics.items())[:4]}, refresh=False)
        state = TrainState(step + 1, model, optimizer, metrics, history)
        for cb in callbacks:
            cb(state)
        if checkpoint is not None and checkpoint_every and (step + 1) % checkpoint_every == 0 and rank == 0:
            save_checkpoint(checkpoint, model, optimizer, step + 1, history, scheduler)
        if state.stop or done:
            history.stopped_by = "callback" if state.stop else ("steps" if step + 1 == steps else "time")
            break
    if hasattr(bar, "close"):
        bar.close()
        # a bar's widget shows nothing where no kernel runs (GitHub, the course site): this line stays
        print(f"{desc}: {history.summary()}"
              + ("" if history.stopped_by == "steps" else f" (stopped by {history.stopped_by})"))
    if checkpoint is not None and rank == 0:
        save_checkpoint(checkpoint, model, optimizer, len(history.train["step"]) and history.train["step"][-1],
                        history, scheduler)
    model.eval()
    return history


@torch.no_grad()
def evaluate(model: nn.Module, eval_fn: Callable[[nn.Module], dict[str, float]]) -> dict[str, float]:
    """Run eval_fn in eval mode without gradients, then give every submodule its train/eval mode back
    (`vlmlearn.runtime.eval_mode`)."""
    with eval_mode(model):
        return {k: float(v) for k, v in eval_fn(model).items()}


def _cycle(data: Iterable, skip: int):
    it, seen = iter(data), 0

    def get(step: int):
        nonlocal it, seen
        while True:
            try:
                batch = next(it)
            except StopIteration:
                it = iter(data)
                batch = next(it)
            seen += 1
            if seen > skip:
                return batch

    return get


def _progress(steps: range, enabled: bool, desc: str):
    if not enabled:
        return steps
    from tqdm.auto import tqdm

    return tqdm(steps, desc=desc, initial=steps.start, total=steps.stop, mininterval=0.5, leave=True)


# ------------------------------------------------------------------------------ checkpoints
def save_checkpoint(path: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer | None = None,
                    step: int = 0, history: History | None = None, scheduler=None) -> Path:
    """Save model, optimizer, scheduler, step, history and RNG states with torch.save.

    Only tensors and plain containers are stored, so the file loads with weights_only=True.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {"model": model.state_dict(), "step": int(step), "torch_rng": torch.get_rng_state(),
             "history": (history or History()).state_dict()}
    if optimizer is not None:
        state["optimizer"] = optimizer.state_dict()
    if scheduler is not None:
        state["scheduler"] = scheduler.state_dict()
    if torch.cuda.is_available():
        state["cuda_rng"] = torch.cuda.get_rng_state_all()
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)  # never leave a half-written checkpoint behind
    return path


def load_checkpoint(path: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer | None = None,
                    scheduler=None) -> tuple[int, History]:
    """Restore what save_checkpoint wrote; returns (step, history)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    state = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(state["model"])
    if optimizer is not None and "optimizer" in state:
        optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None and "scheduler" in state:
        scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["torch_rng"])
    if "cuda_rng" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])
    h = state["history"]
    return state["step"], History(train=h["train"], eval=h["eval"], seconds=h["seconds"])
