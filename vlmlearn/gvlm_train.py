"""The four trainings of notebook 11's generative VLM, and its shipped checkpoint.

    lm = causal_lm(tok)
    pretrain_text_lm(lm, text_corpus(world), tok)                         # 1. the LM reads text only
    model = GenerativeVLM(clip.image_encoder, lm, tok)
    align(model, web.images, web.captions)                                # 2. the projector learns to caption
    instruction_tune(model, web.images[used], questions, answers)         # 3. questions written from the captions
    instruction_tune(model, labeled.images, labeled.questions, labeled.answers, val=val)   # 4. labeled answers
    model, record = load_pretrained_gvlm()                                # 1 to 3 as `make pretrain` ran them
    lms = load_text_lms()                                                 # the LM after 1 alone, and as drawn

Every stage is AdamW (weight decay 0.01 on weight matrices, none on embeddings, norms and biases: `param_groups`)
under a warm-up-then-cosine schedule, one seed for the weights' draw and the batches. Stages 2 to 4 take images or
their `image_features` (the tower is frozen: computing its tokens once saves about a quarter of each step).
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Sequence

import torch

from . import assets
from .gvlm import (
    GenerativeVLM,
    alignment_step,
    answer,
    caption_ids,
    causal_lm,
    chat_tensors,
    chat_tokenizer,
    instruction_step,
    mixed_instruction_step,
    set_trainable,
    text_corpus,
    text_step,
    written_questions,
)
from .gvlm_eval import vqa_scores
from .optim import param_groups, warmup_cosine
from .train import History, minibatches, train

# notebook 11's text LM and aligned projectors, written by `benchmarks/pretrain_gvlm.py` (make pretrain)
SHAPES_GVLM_CHECKPOINT = assets.checkpoint("gvlm_shapes")
WRITER = "python benchmarks/pretrain_gvlm.py (make pretrain)"


def _adamw(model: torch.nn.Module, parts: list[tuple[torch.nn.Module, float]], steps: int):
    """AdamW over the trainable parameters of each (part of `model`, learning rate), with its schedule."""
    groups = [g for part, lr in parts for g in param_groups(model, 0.01, params=part.parameters(), lr=lr)]
    optimizer = torch.optim.AdamW(groups)
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(steps, warmup=max(1, steps // 10)))


def pretrain_text_lm(lm: torch.nn.Module, texts: Sequence[str], tokenizer, *, steps: int = 3000, lr: float = 1e-3,
                     batch_size: int = 64, seed: int = 0, progress: bool = True) -> History:
    """Next-word prediction on unpaired text (`text_corpus`), every word of every line; trains `lm` in place."""
    optimizer, scheduler = _adamw(lm, [(lm, lr)], steps)
    data = minibatches(tokenizer(list(texts)), batch_size=batch_size, seed=seed)
    return train(lm, optimizer, text_step, data, steps=steps, scheduler=scheduler, progress=progress,
                 desc="text LM")


def align(model: GenerativeVLM, images: torch.Tensor, captions: Sequence[str], *, steps: int = 3000,
          lr: float = 1e-2, lm_lr: float = 0.0, batch_size: int = 64, seed: int = 0, progress: bool = True) -> History:
    """Stage 1, alignment: the model learns to caption each image (`caption_ids` rows). With lm_lr = 0 the projector
    alone learns and the LM stays frozen (LLaVA's feature alignment, `alignment_step`); with lm_lr > 0 the LM learns
    too, at that rate. images: (N, 3, S, S) or their `image_features` (N, K0, C)."""
    set_trainable(model, projector=True, lm=lm_lr > 0)
    optimizer, scheduler = _adamw(model, [(model.projector, lr)] + ([(model.lm, lm_lr)] if lm_lr > 0 else []), steps)
    data = minibatches(images, *caption_ids(model.tokenizer, captions), batch_size=batch_size, seed=seed)
    return train(model, optimizer, alignment_step if lm_lr == 0 else instruction_step, data, steps=steps,
                 scheduler=scheduler, progress=progress, desc="alignment")


def instruction_tune(model: GenerativeVLM, images: torch.Tensor, questions: Sequence[str], answers: Sequence[str],
                     *, val=None, val_images: torch.Tensor | None = None, captions: tuple | None = None,
                     steps: int = 600, projector_lr: float = 1e-2, lm_lr: float = 1e-3, freeze_lm: bool = False,
                     batch_size: int = 32, eval_every: int = 100, seed: int = 0, progress: bool = True,
                     desc: str = "instruction tuning") -> History:
    """Stage 2: answers as text on labeled questions (`chat_tensors` rows, `instruction_step`); the projector and,
    unless `freeze_lm`, the LM learn (the LM at its own, lower rate, as nanoVLM does). With `captions` = (images or
    their features, captions) of web pairs, each step also trains on `batch_size` caption rows
    (`mixed_instruction_step`): the model keeps describing while it learns to answer. Every `eval_every` steps the
    exact match on the validation batch `val` (a `world.vqa(..., split="val")`; `val_images` its images or their
    features, default val.images) is measured, and the model ends with the weights that scored best there, the
    weights it started from included (early stopping on validation; the test set is never seen). The History's
    eval["val_exact"] holds the curve, from step 0. Without `val` (questions written from captions: no labels to
    choose by) it ends with its last weights."""
    if len(images) < batch_size:
        batch_size = len(images)  # fewer labeled questions than a batch: all of them in every step
    set_trainable(model, projector=True, lm=not freeze_lm)
    optimizer, scheduler = _adamw(model, [(model.projector, projector_lr)] + ([] if freeze_lm else [(model.lm, lm_lr)]),
                                  steps)
    best = {"val": -1.0, "state": None}
    val_images = val.images if val is not None and val_images is None else val_images

    def keep_best(m: GenerativeVLM) -> dict[str, float]:
        exact = vqa_scores(answer(m, val_images, val.questions), val)["exact"]
        if exact > best["val"]:
            best.update(val=exact, state=copy.deepcopy(m.state_dict()))
        return {"val_exact": exact}

    start = keep_best(model)["val_exact"] if val is not None else None

    data = minibatches(*chat_tensors(model.tokenizer, images, questions, answers), batch_size=batch_size, seed=seed)
    step_fn = instruction_step
    if captions is not None:
        rows = minibatches(captions[0], *caption_ids(model.tokenizer, captions[1]), batch_size=batch_size,
                           seed=seed + 1)
        data = _zipped(data, rows)
        step_fn = mixed_instruction_step
    history = train(model, optimizer, step_fn, data, steps=steps, scheduler=scheduler, progress=progress,
                    eval_fn=keep_best if val is not None else None, eval_every=eval_every, desc=desc)
    if val is not None:
        history.eval["step"].insert(0, 0)  # the curve starts where the model started
        history.eval["val_exact"].insert(0, start)
        model.load_state_dict(best["state"])
    return history


# the shipped arms: which LM (pretrained on text, or as drawn) reads which image tokens
ARMS = {"text": {"lm": "text", "image_tokens": "patches"},      # the course's model
        "random": {"lm": "random", "image_tokens": "patches"},  # control: no text pretraining
        "pooled": {"lm": "text", "image_tokens": "pooled"}}     # control: CLIP's pooled vector, one image token


def pretrain_arms(vision: torch.nn.Module, world, *, width: int = 128, layers: int = 2, heads: int = 4,
                  text_lines: int = 20_000, text_steps: int = 3000, text_lr: float = 1e-3, web_pairs: int = 20_000,
                  align_steps: int = 3000, align_lr: float = 1e-2, align_lm_lr: float = 0.0,
                  question_steps: int = 3000, exists_share: float = 0.5, seed: int = 0,
                  progress: bool = True
                  ) -> tuple[dict[str, GenerativeVLM], dict[str, torch.nn.Module], dict[str, list[float]]]:
    """The shipped recipe: one LM drawn with `seed`, a copy of it pretrained on `text_corpus(world, text_lines)`
    (`pretrain_text_lm`), then for each of ARMS a model on the image tower `vision` (each with its own copy of its
    LM (`GenerativeVLM` copies it), each projector drawn with `seed`, so the same arguments give the same models),
    first aligned on `web_pairs` noisy web pairs of `world` (`align`; indices from 200,000), then instruction-tuned
    for `question_steps` steps (projector and LM, `instruction_tune` without validation: no labels) on questions
    written from the same web captions (`written_questions`, `exists_share`), still captioning a batch of them at
    each step; `question_steps=0` skips this second stage.
    Returns ({arm: model}, {"text": the LM after text pretraining alone, "random": the LM as drawn},
    {stage: [first, last] training loss})."""
    tok = chat_tokenizer()
    lms = {name: causal_lm(tok, width=width, layers=layers, heads=heads, seed=seed) for name in ("text", "random")}
    history = pretrain_text_lm(lms["text"], text_corpus(world, text_lines), tok, steps=text_steps, lr=text_lr,
                               seed=seed, progress=progress)
    losses = {"text_lm": [round(history.train["loss"][0], 4), round(history.train["loss"][-1], 4)]}
    web = world.noisy_pairs(web_pairs, start=200_000)
    used, questions, answers = written_questions(world, web.captions, exists_share=exists_share, seed=seed)
    models = {}
    for arm, parts in ARMS.items():
        with torch.random.fork_rng():  # each projector drawn with `seed`: torch's global generator is not seeded here
            torch.manual_seed(seed)
            model = GenerativeVLM(vision, lms[parts["lm"]], tok, image_tokens=parts["image_tokens"])
        features = model.image_features(web.images)
        history = align(model, features, web.captions, steps=align_steps, lr=align_lr, lm_lr=align_lm_lr, seed=seed,
                        progress=progress)
        losses[f"align_{arm}"] = [round(history.train["loss"][0], 4), round(history.train["loss"][-1], 4)]
        if question_steps:
            history = instruction_tune(model, features[used], questions, answers, captions=(features, web.captions),
                                       steps=question_steps, seed=seed, progress=progress,
                                       desc="written questions")
            losses[f"questions_{arm}"] = [round(history.train["loss"][0], 4), round(history.train["loss"][-1], 4)]
        models[arm] = model.eval()
    return models, {name: lm.eval() for name, lm in lms.items()}, losses


def _zipped(first, second):
    """step -> the two data sources' batches at that step, as one flat tuple."""
    return lambda step: (*first(step), *second(step))


def load_pretrained_gvlm(arm: str = "text", path: str | Path = SHAPES_GVLM_CHECKPOINT
                         ) -> tuple[GenerativeVLM, dict]:
    """Notebook 11's model after text pretraining, alignment and the written questions as `benchmarks/pretrain_gvlm.py`
    ran them (`pretrain_arms`): notebook 01's shipped CLIP image tower, a projector and an LM, as `ARMS[arm]` says:
    "text" (the LM pretrained on `text_corpus`, patch tokens), "random" (the LM as drawn) or "pooled" (CLIP's pooled
    vector as the one image token). Returns (model in eval mode, the checkpoint's record)."""
    from .clip_models import load_pretrained_clip

    state, record = assets.read_checkpoint(path, writer=WRITER)
    if arm not in record["arms"]:
        raise ValueError(f"arm must be one of {sorted(record['arms'])}, got {arm!r}")
    config = record["config"]
    tok = chat_tokenizer(context_length=config["context_length"])
    if tok.vocab_size != config["vocab_size"]:
        raise ValueError(f"the checkpoint's LM has {config['vocab_size']} words but chat_tokenizer() {tok.vocab_size}"
                         f": re-make it ({WRITER})")
    clip, _, _ = load_pretrained_clip()
    model = GenerativeVLM(clip.image_encoder, causal_lm(tok, width=config["width"], layers=config["layers"],
                                                        heads=config["heads"]), tok,
                          image_tokens=record["arms"][arm]["image_tokens"], projector=config["projector"])
    prefix = f"{arm}."
    ours = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    missing, unexpected = model.load_state_dict(ours, strict=False)  # the tower: CLIP's; lm_head: tied to the input
    if unexpected or any(not k.startswith("vision.") and k != "lm.lm_head.weight" for k in missing):
        raise ValueError(f"the checkpoint {path} does not fit the model: missing {missing}, unexpected {unexpected}")
    return model.eval(), record


def checkpoint_parts(models: dict[str, GenerativeVLM], text_lm: torch.nn.Module) -> torch.nn.ModuleDict:
    """What `load_pretrained_gvlm` and `load_text_lms` read, for `assets.save_weights`: each model's LM and projector
    under `{arm}.`, and the LM after text pretraining alone under `text_lm.` (the image tower is notebook 01's shipped
    CLIP, not stored twice; an LM's output layer is its input embedding, tied, so only `lm.model` is stored)."""
    parts = {arm: torch.nn.ModuleDict({"lm": torch.nn.ModuleDict({"model": m.lm.model}), "projector": m.projector})
             for arm, m in models.items()}
    return torch.nn.ModuleDict({**parts, "text_lm": torch.nn.ModuleDict({"model": text_lm.model})})


def load_text_lms(path: str | Path = SHAPES_GVLM_CHECKPOINT) -> dict[str, torch.nn.Module]:
    """The LMs before they met an image, as `pretrain_arms` made them: {"text": pretrained on `text_corpus` alone (read
    from the checkpoint), "random": as drawn (drawn again with the recipe's seed)}, in eval mode."""
    state, record = assets.read_checkpoint(path, writer=WRITER)
    config = record["config"]
    tok = chat_tokenizer(context_length=config["context_length"])
    lms = {name: causal_lm(tok, width=config["width"], layers=config["layers"], heads=config["heads"],
                           seed=record["settings"]["seed"]) for name in ("text", "random")}
    ours = {k.removeprefix("text_lm."): v for k, v in state.items() if k.startswith("text_lm.")}
    missing, unexpected = lms["text"].load_state_dict(ours, strict=False)  # lm_head: tied to the input embedding
    if not ours or unexpected or any(k != "lm_head.weight" for k in missing):
        raise ValueError(f"the checkpoint {path} holds no text LM that fits: missing {missing}, unexpected "
                         f"{unexpected}; re-make it ({WRITER})")
    return {name: lm.eval() for name, lm in lms.items()}
