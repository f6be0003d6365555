"""A generative vision-language model from the course's parts, the LLaVA / nanoVLM recipe: a pretrained image tower,
a projector, and a small causal language model that answers in words.

    lm = causal_lm(tok, width=96)                               # transformers' Llama from a local config, no download
    model = GenerativeVLM(clip.image_encoder, lm, tok)          # notebook 01's CNN; its 4 x 4 feature map -> 16 tokens
    set_trainable(model, projector=True, lm=False)              # stage 1, alignment: the projector only
    loss, _ = alignment_step(model, (images, ids, mask))   # ids, mask = caption_ids(tok, captions)
    set_trainable(model, projector=True, lm=True)               # stage 2, instruction tuning on labeled questions
    loss, _ = instruction_step(model, chat_tensors(tok, images, questions, answers))
    answer(model, images, ["what color is the square?"])       # -> ["red"], greedy through the library's generate
    describe(model, images)                                     # a caption for each image

An alignment row reads `[image tokens] <bos> a red square on the left <eos>`, a chat row
`[image tokens] <bos> question : what color is the square ? answer : red <eos>`: the image enters the LM as
embeddings (`inputs_embeds`), the words through the LM's own embedding table; the loss counts the caption (alignment)
or the answer words (instruction tuning), each with the end token. Text rows are left-padded (padding is masked and
skipped by the position ids), so one layout serves training, the library's `generate` and the KV-cache decoder written
here from scratch (`greedy_decode_with_cache`). The image tower stays frozen throughout, as in LLaVA (Liu et al. 2023,
arXiv:2304.08485). `vlmlearn.gvlm_train` runs the stages; `vlmlearn.gvlm_eval` judges the answers.
"""
from __future__ import annotations

import copy
import inspect
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .data.captions import ANSWERS, caption_vocabulary
from .data.tokenize import WordTokenizer
from .models import check_images
from .runtime import eval_mode

PROMPT = "question: {question} answer:"  # the chat template; the answer follows it, then the end token
DESCRIBE = "describe the image."  # the instruction that alignment pairs with a caption (LLaVA's brief-description)
# words the prompts and ShapesWorld's questions use, besides the caption words and the answers
CHAT_WORDS = "question answer : describe image . what color shape size where how many shapes are ?".split()


# ------------------------------------------------------------------------------ the words
def chat_tokenizer(texts: Sequence[str] = (), *, context_length: int = 40) -> WordTokenizer:
    """The course's WordTokenizer over captions, questions, answers and the prompt words (plus the words of `texts`);
    ids are stable (words sorted). Junk alt-text words ("img_1234") become <unk>."""
    return WordTokenizer.from_texts([*caption_vocabulary(), *ANSWERS, *CHAT_WORDS, *texts],
                                    context_length=context_length)


def _words(tok: WordTokenizer, text: str) -> list[int]:
    return tok.encode(text)[1:-1]  # the word ids, without the start and end tokens


def chat_ids(tok: WordTokenizer, questions: Sequence[str], answers: Sequence[str] | None = None
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows `<bos> question : {q} answer :` followed, when `answers` are given, by `{a} <eos>`; left-padded.

    Returns ids (N, L) int64 and answer_mask (N, L) bool, True on the answer words and the end token (the tokens the
    instruction loss counts). Without answers the rows are prompts for generation and the mask is all False.
    """
    if answers is not None and len(answers) != len(questions):
        raise ValueError(f"got {len(questions)} questions but {len(answers)} answers")
    if not len(questions):
        raise ValueError("expected at least one question")
    rows, masks = [], []
    for i, q in enumerate(questions):
        if not isinstance(q, str) or not q.strip():
            raise ValueError(f"expected a non-empty question string at position {i}, got {q!r}")
        prompt = [tok.bos_id, *_words(tok, PROMPT.format(question=q))]
        reply = [] if answers is None else [*_words(tok, answers[i]), tok.eos_id]
        rows.append(prompt + reply)
        masks.append([False] * len(prompt) + [True] * len(reply))
    return _left_padded(rows, masks, tok.pad_id)


def _left_padded(rows: list[list[int]], masks: list[list[bool]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows of ids and their loss masks as (N, L) tensors, padded on the left: every row ends where generation
    starts."""
    length = max(map(len, rows))
    ids = torch.full((len(rows), length), pad_id, dtype=torch.long)
    mask = torch.zeros(len(rows), length, dtype=torch.bool)
    for i, (row, row_mask) in enumerate(zip(rows, masks)):
        ids[i, length - len(row):] = torch.tensor(row)
        mask[i, length - len(row):] = torch.tensor(row_mask)
    return ids, mask


def caption_ids(tok: WordTokenizer, captions: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Alignment rows `<bos> {caption} <eos>`, left-padded, the LM's own text-pretraining form: ids (N, L) int64 and
    mask (N, L) bool, True on the caption words and the end token (the loss predicts the whole caption from the image
    tokens before it). Junk alt-text words become <unk>, which the loss predicts too: the web pairs are noisy."""
    if not len(captions):
        raise ValueError("expected at least one caption")
    rows = [[tok.bos_id, *_words(tok, c), tok.eos_id] for c in captions]
    return _left_padded(rows, [[False] + [True] * (len(row) - 1) for row in rows], tok.pad_id)


def chat_tensors(tok: WordTokenizer, images: torch.Tensor, questions: Sequence[str], answers: Sequence[str]
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A dataset for `instruction_step` (and `vlmlearn.train.minibatches`): (images (N, 3, S, S), ids (N, L),
    answer_mask (N, L)). Alignment rows are `caption_ids`' (no prompt); `DESCRIBE` as the question is another way."""
    if len(images) != len(questions):
        raise ValueError(f"got {len(images)} images but {len(questions)} questions")
    return (images, *chat_ids(tok, questions, answers))


# ------------------------------------------------------------------------------ the parts
def causal_lm(tok: WordTokenizer, *, width: int = 96, layers: int = 2, heads: int = 4, mlp_ratio: float = 2.0,
              max_positions: int = 64, seed: int = 0):
    """A small Llama (transformers' `LlamaForCausalLM`, RoPE, RMSNorm, SwiGLU) from a local config over `tok`'s
    words: ids (B, L) -> logits (B, L, vocab). Input and output embeddings are tied. Nothing is downloaded; the
    weights are drawn with `seed`. width 96 and 2 layers: about 0.2 M parameters."""
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    if width % heads:
        raise ValueError(f"width {width} must be divisible by heads {heads}")
    config = LlamaConfig(vocab_size=tok.vocab_size, hidden_size=width, intermediate_size=int(width * mlp_ratio),
                         num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=heads,
                         max_position_embeddings=max_positions, tie_word_embeddings=True, bos_token_id=tok.bos_id,
                         eos_token_id=tok.eos_id, pad_token_id=tok.pad_id)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        lm = LlamaForCausalLM(config)
    lm.generation_config = GenerationConfig(bos_token_id=tok.bos_id, eos_token_id=tok.eos_id, pad_token_id=tok.pad_id)
    return lm


class Projector(nn.Module):
    """Image features (B, K, C) -> LM embeddings (B, K / shuffle**2, width): a linear map, or LLaVA-1.5's two-layer
    MLP (linear, GELU, linear). With `shuffle` r > 1 the s x s grid first folds each r x r block of neighbours into
    one token of C * r * r channels (nanoVLM's pixel shuffle; `F.pixel_unshuffle`), r**2 times fewer image tokens."""

    def __init__(self, in_dim: int, width: int, *, kind: str = "mlp", shuffle: int = 1):
        super().__init__()
        if kind not in ("linear", "mlp"):
            raise ValueError(f"kind must be 'linear' or 'mlp', got {kind!r}")
        if shuffle < 1:
            raise ValueError(f"shuffle must be a positive integer, got {shuffle}")
        self.shuffle, self.in_dim = shuffle, in_dim
        d = in_dim * shuffle * shuffle
        self.net = nn.Linear(d, width) if kind == "linear" else nn.Sequential(nn.Linear(d, width), nn.GELU(),
                                                                            nn.Linear(width, width))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        if self.shuffle > 1:
            b, k, c = tokens.shape
            side = int(round(k ** 0.5))
            if side * side != k or side % self.shuffle:
                raise ValueError(f"pixel shuffle by {self.shuffle} needs a square grid divisible by it, got {k} tokens")
            grid = tokens.transpose(1, 2).reshape(b, c, side, side)                     # (B, C, s, s)
            tokens = F.pixel_unshuffle(grid, self.shuffle).flatten(2).transpose(1, 2)   # (B, (s/r)^2, C r^2)
        return self.net(tokens)


class GenerativeVLM(nn.Module):
    """Frozen image tower -> image tokens -> projector -> causal LM, which reads them before the words.

    Args:
        vision: a SmallCNN (notebook 01's CLIP image tower, `clip.image_encoder`); copied, never changed.
        lm: a transformers causal LM (`causal_lm`); copied, so one pretrained LM can start several models.
        tokenizer: the LM's WordTokenizer (`chat_tokenizer`).
        image_tokens: "patches": the last feature map, s*s tokens of C channels (16 x 128 for notebook 01's CNN);
            "pooled": the CLIP image embedding as one token (the ablation).
        projector, shuffle: the Projector's kind ("linear" or "mlp") and pixel-shuffle factor.
    forward(images (B, 3, S, S), ids (B, L) left-padded) -> logits (B, K + L, vocab), K image tokens first.
    """

    def __init__(self, vision: nn.Module, lm: nn.Module, tokenizer: WordTokenizer, *, image_tokens: str = "patches",
                 projector: str = "mlp", shuffle: int = 1):
        super().__init__()
        if image_tokens not in ("patches", "pooled"):
            raise ValueError(f"image_tokens must be 'patches' or 'pooled', got {image_tokens!r}")
        if lm.config.vocab_size != tokenizer.vocab_size:
            raise ValueError(f"the LM has {lm.config.vocab_size} words but the tokenizer {tokenizer.vocab_size}")
        self.vision, self.lm, self.tokenizer = copy.deepcopy(vision), copy.deepcopy(lm), tokenizer
        self.vision.requires_grad_(False).eval()  # frozen in both stages, unless set_trainable(vision=True)
        self.image_tokens, self.image_size = image_tokens, vision.image_size
        with torch.no_grad(), eval_mode(self.vision):
            channels = self._features(torch.zeros(1, 3, self.image_size, self.image_size)).shape[-1]
        self.projector = Projector(channels, lm.config.hidden_size, kind=projector, shuffle=shuffle)

    def train(self, mode: bool = True) -> "GenerativeVLM":
        """As nn.Module.train, except that a frozen image tower stays in eval mode: its BatchNorm keeps the running
        statistics it was pretrained with, in training and in `answer` alike."""
        super().train(mode)
        if not any(p.requires_grad for p in self.vision.parameters()):
            self.vision.eval()
        return self

    def _features(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) -> (B, s*s, C) patch tokens in raster order, or (B, 1, D) the pooled embedding."""
        if self.image_tokens == "pooled":
            return self.vision(images)[:, None]
        return self.vision.features(images).flatten(2).transpose(1, 2)  # (B, C, s, s) -> (B, s*s, C)

    @torch.no_grad()
    def image_features(self, images: torch.Tensor, *, batch_size: int = 1000) -> torch.Tensor:
        """The frozen tower's tokens, computed once: images (N, 3, S, S) on any device -> (N, K0, C) on the CPU.
        Pass them wherever images go: the tower is frozen, so each step need not run it again (about a quarter of
        a step's time on a CPU). Not while the tower trains (`set_trainable(vision=True)`)."""
        check_images(images, 3, self.image_size)
        device = next(self.parameters()).device
        with eval_mode(self.vision):
            return torch.cat([self._features(images[i:i + batch_size].to(device)).cpu()
                              for i in range(0, len(images), batch_size)])

    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        """Images (B, 3, S, S), or their `image_features` (B, K0, C) -> image embeddings (B, K, width) in the LM's
        input space."""
        if isinstance(images, torch.Tensor) and images.ndim == 3:
            if images.shape[-1] != self.projector.in_dim:
                raise ValueError(f"expected image features (B, K, {self.projector.in_dim}) from image_features, "
                                 f"got {tuple(images.shape)}")
            if any(p.requires_grad for p in self.vision.parameters()):
                raise ValueError("precomputed image features bypass the image tower, which is set to train")
            return self.projector(images)
        check_images(images, 3, self.image_size)
        return self.projector(self._features(images))

    def embed(self, images: torch.Tensor, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The LM's inputs for images and left-padded text: inputs_embeds (B, K + L, width), attention_mask
        (B, K + L) (0 on padding) and position_ids (B, K + L), counting only real tokens, as `generate` counts them
        from the mask, so a padded row gets the positions it would have alone."""
        if not isinstance(ids, torch.Tensor) or ids.ndim != 2 or ids.dtype != torch.long:
            raise ValueError(f"expected token ids (B, L) int64, got {getattr(ids, 'shape', type(ids).__name__)}")
        if len(images) != len(ids):
            raise ValueError(f"got {len(images)} images but {len(ids)} texts")
        image = self.encode_images(images)                                          # (B, K, W)
        text = self.lm.get_input_embeddings()(ids)                                  # (B, L, W)
        mask = torch.cat([torch.ones(image.shape[:2], dtype=torch.long, device=ids.device),
                          (ids != self.tokenizer.pad_id).long()], dim=1)            # (B, K + L)
        return torch.cat([image.to(text.dtype), text], dim=1), mask, positions_from_mask(mask)

    def forward(self, images: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        embeds, mask, positions = self.embed(images, ids)
        return self.lm(inputs_embeds=embeds, attention_mask=mask, position_ids=positions).logits


def positions_from_mask(mask: torch.Tensor) -> torch.Tensor:
    """(B, T) attention mask -> (B, T) position ids: the count of real tokens before each one (0 on padding)."""
    return (mask.long().cumsum(-1) - 1).clamp_min(0).masked_fill(mask == 0, 0)


def set_trainable(model: GenerativeVLM, *, projector: bool = True, lm: bool = False, vision: bool = False
                  ) -> list[nn.Parameter]:
    """Freeze or unfreeze the three parts; returns the trainable parameters (give them to the optimizer).
    Stage 1 (alignment): projector only. Stage 2 (instruction tuning): projector and LM, or the projector alone
    with a frozen LM (BLIP-2's choice). Frozen parts stay in eval mode under `train` (`set_train_mode`)."""
    for part, on in ((model.projector, projector), (model.lm, lm), (model.vision, vision)):
        part.requires_grad_(on)
    return [p for p in model.parameters() if p.requires_grad]


# ------------------------------------------------------------------------------ the objectives
def next_word_loss(logits: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of each token of `ids` (B, L) where `mask` (B, L) is True, predicted by `logits` (B, L, V) at
    the position before it: logits[:, t] predicts ids[:, t + 1]. The mean over the counted tokens."""
    target = ids[:, 1:].masked_fill(~mask[:, 1:], -100)
    if not (target != -100).any():
        raise ValueError("no token to predict: the mask is False everywhere after the first position")
    return F.cross_entropy(logits[:, :-1].flatten(0, 1), target.flatten(), ignore_index=-100)


def text_step(lm: nn.Module, batch: tuple) -> tuple[torch.Tensor, dict[str, float]]:
    """Text-only pretraining of the LM: (ids (B, L) from the tokenizer, right-padded `<bos> words <eos>`,) ->
    next-word loss on every real token. The unpaired captions and questions teach the LM the course's language."""
    ids = batch[0]
    mask = ids != lm.config.pad_token_id
    return next_word_loss(lm(input_ids=ids, attention_mask=mask.long()).logits, ids, mask), {}


def instruction_step(model: GenerativeVLM, batch: tuple) -> tuple[torch.Tensor, dict[str, float]]:
    """(images, ids, answer_mask) from `chat_tensors` -> the next-word loss on the answer words and the end token
    only; the image tokens, the prompt and the question are read, never predicted."""
    images, ids, answer_mask = batch[:3]
    logits = model(images, ids)[:, -ids.shape[1]:]                      # (B, L, V): the text's, after K image tokens
    return next_word_loss(logits, ids, answer_mask), {}


def mixed_instruction_step(model: GenerativeVLM, batch: tuple) -> tuple[torch.Tensor, dict[str, float]]:
    """Instruction tuning that keeps captioning: (images, ids, answer_mask) of chat rows followed by (images, ids, mask)
    of caption rows (`caption_ids`) -> the answer loss plus the caption loss, each a mean over its own tokens."""
    answers = instruction_step(model, batch[:3])[0]
    captions = instruction_step(model, batch[3:6])[0]
    return answers + captions, {"answer_loss": answers.item(), "caption_loss": captions.item()}


def alignment_step(model: GenerativeVLM, batch: tuple) -> tuple[torch.Tensor, dict[str, float]]:
    """Stage 1: `instruction_step` on (images, ids, mask) caption rows (`caption_ids`), with a check that only the
    projector learns (the LM and the image tower frozen: `set_trainable(model, projector=True, lm=False)`)."""
    net = getattr(model, "module", model)  # the model itself, or the one DDP wraps
    if any(p.requires_grad for p in [*net.lm.parameters(), *net.vision.parameters()]):
        raise ValueError("alignment trains the projector only: call set_trainable(model, projector=True, lm=False)")
    return instruction_step(model, batch)


# ------------------------------------------------------------------------------ answering
DecodeFn = Callable[..., torch.Tensor]


def _cache_keyword(lm: nn.Module) -> str:
    """transformers 5 calls the KV cache argument `cache`, transformers 4 `past_key_values`."""
    return "cache" if "cache" in inspect.signature(lm.forward).parameters else "past_key_values"


@torch.no_grad()
def library_generate(model: GenerativeVLM, images: torch.Tensor, ids: torch.Tensor, *, max_new_tokens: int = 8
                     ) -> torch.Tensor:
    """Greedy decoding by the library: `lm.generate(inputs_embeds=..., do_sample=False)` with its own KV cache.
    images (B, 3, S, S) and left-padded prompts (B, L) on the model's device -> new ids (B, T), T <= max_new_tokens;
    after a row's end token, padding."""
    embeds, mask, _ = model.embed(images, ids)
    tok = model.tokenizer
    return model.lm.generate(inputs_embeds=embeds, attention_mask=mask, max_new_tokens=max_new_tokens,
                             do_sample=False, eos_token_id=tok.eos_id, pad_token_id=tok.pad_id)


@torch.no_grad()
def greedy_decode_with_cache(model: GenerativeVLM, images: torch.Tensor, ids: torch.Tensor, *,
                             max_new_tokens: int = 8) -> torch.Tensor:
    """Greedy decoding with a KV cache, written out: what `library_generate` does, step by step.

    Prefill: the whole prompt (image tokens and words) goes through the LM once; every layer's keys and values land
    in the cache. Then one token at a time: only the new token's embedding goes in, at the next position, attending
    to everything cached (the mask grows by one). Each row stops at its end token and is padded after it; the loop
    stops when every row has ended or after max_new_tokens. Same inputs and output as `library_generate`.
    """
    from transformers import DynamicCache

    embeds, mask, positions = model.embed(images, ids)
    cache, keyword = DynamicCache(), _cache_keyword(model.lm)
    logits = model.lm(inputs_embeds=embeds, attention_mask=mask, position_ids=positions, use_cache=True,
                      **{keyword: cache}).logits[:, -1]                                     # (B, V), prefill
    eos, pad = model.tokenizer.eos_id, model.tokenizer.pad_id
    done = torch.zeros(len(ids), dtype=torch.bool, device=ids.device)
    out = []
    for _ in range(max_new_tokens):
        token = logits.argmax(-1).masked_fill(done, pad)                                    # (B,)
        out.append(token)
        done |= token == eos
        if done.all():
            break
        mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)                       # (B, T + 1)
        positions = positions[:, -1:] + 1                                                   # (B, 1)
        logits = model.lm(inputs_embeds=model.lm.get_input_embeddings()(token[:, None]), attention_mask=mask,
                          position_ids=positions, use_cache=True, **{keyword: cache}).logits[:, -1]
    return torch.stack(out, dim=1)


def _write(model: GenerativeVLM, images: torch.Tensor, prompts: Callable[[slice], torch.Tensor], n: int, *,
           max_new_tokens: int, decode: DecodeFn, batch_size: int) -> list[str]:
    """Decode n prompts (prompts(rows) -> left-padded ids) after their images, batch by batch, on the model's device."""
    device = next(model.parameters()).device
    texts = []
    with eval_mode(model):
        for i in range(0, n, batch_size):
            rows = slice(i, i + batch_size)
            new = decode(model, images[rows].to(device), prompts(rows).to(device), max_new_tokens=max_new_tokens)
            texts += model.tokenizer.decode(new.cpu())
    return texts


@torch.no_grad()
def answer(model: GenerativeVLM, images: torch.Tensor, questions: Sequence[str], *, max_new_tokens: int = 8,
           decode: DecodeFn = library_generate, batch_size: int = 500) -> list[str]:
    """Answer questions about images in words: images (N, 3, S, S) (or their `image_features`) on any device, N
    questions -> N strings.
    `decode(model, images, prompt_ids, max_new_tokens=...)` is `library_generate` unless a notebook passes the
    learner's decoder."""
    if len(images) != len(questions):
        raise ValueError(f"got {len(images)} images but {len(questions)} questions")
    return _write(model, images, lambda rows: chat_ids(model.tokenizer, questions[rows])[0], len(questions),
                  max_new_tokens=max_new_tokens, decode=decode, batch_size=batch_size)


@torch.no_grad()
def describe(model: GenerativeVLM, images: torch.Tensor, *, max_new_tokens: int = 24,
             decode: DecodeFn = library_generate, batch_size: int = 500) -> list[str]:
    """A caption for each image, written after the start token alone (the alignment rows' form, `caption_ids`):
    images (N, 3, S, S) (or their `image_features`) -> N strings."""
    bos = torch.full((len(images), 1), model.tokenizer.bos_id, dtype=torch.long)
    return _write(model, images, lambda rows: bos[rows], len(images), max_new_tokens=max_new_tokens, decode=decode,
                  batch_size=batch_size)


def scene_question(scene: str, question: str) -> str:
    """A question put to the LM about a written scene, `{scene} . question : {q} answer :`: the prompt of
    `text_corpus`' answered-scene lines (which go on with the answer) and of `read_scenes`."""
    return f"{scene} . {PROMPT.format(question=question)}"


@torch.no_grad()
def read_scenes(lm: nn.Module, tok: WordTokenizer, scenes: Sequence[str], questions: Sequence[str], *,
                max_new_tokens: int = 4, batch_size: int = 500) -> list[str]:
    """The text LM alone answering each question from a written scene (`scene_question` rows, left-padded, greedy
    through the library's `generate`, on the LM's device): N scenes, N questions -> N answer strings. What the LM can
    read from text before it has seen an image."""
    if len(scenes) != len(questions):
        raise ValueError(f"got {len(scenes)} scenes but {len(questions)} questions")
    device = next(lm.parameters()).device
    texts = []
    with eval_mode(lm):
        for i in range(0, len(scenes), batch_size):
            rows = [[tok.bos_id, *_words(tok, scene_question(s, q))]
                    for s, q in zip(scenes[i:i + batch_size], questions[i:i + batch_size])]
            ids, _ = _left_padded(rows, [[False] * len(r) for r in rows], tok.pad_id)
            ids = ids.to(device)
            new = lm.generate(ids, attention_mask=(ids != tok.pad_id).long(), max_new_tokens=max_new_tokens,
                              do_sample=False, eos_token_id=tok.eos_id, pad_token_id=tok.pad_id)
            texts += tok.decode(new[:, ids.shape[1]:].cpu())
    return texts


def written_questions(world, captions: Sequence[str], *, exists_share: float = 0.5, seed: int = 0
                      ) -> tuple[np.ndarray, list[str], list[str]]:
    """Instruction data written from captions, no labels: LLaVA had a text-only GPT-4 write questions and answers from
    COCO captions; here a rule reads each caption back (`parse_caption`) and writes one question about its scene, in
    `world.vqa`'s forms (a test holds them equal), answered from the caption alone. A noisy web caption that names
    the wrong object gives a wrong answer: weak labels, as the captions are.

    Each question is "is there a ...?" with probability `exists_share` (half of them naming one of the caption's
    objects, half a colour-shape pair the world shows drawn at random), otherwise one of the six types, uniformly.
    Captions that do not state every attribute of every object (junk alt-text) are skipped.
    Returns (indices of the captions used (M,), M questions, M answers)."""
    from .data.captions import COLORS, COUNT_WORDS, POSITION_PHRASE, QUESTION_TYPES, SHAPES, parse_caption

    if not 0.0 <= exists_share <= 1.0:
        raise ValueError(f"expected exists_share in [0, 1], got {exists_share}")
    rng = np.random.default_rng(seed)
    seen = np.argwhere(~world.heldout_mask)  # (colour, shape) pairs the world shows, as "is there" names them
    used, questions, answers = [], [], []
    for i, caption in enumerate(captions):
        objects = parse_caption(caption)
        if not objects or any(v is None for o in objects for v in o.values()):
            continue
        o = objects[rng.integers(len(objects))]
        kind = "exists" if rng.random() < exists_share else QUESTION_TYPES[rng.integers(len(QUESTION_TYPES))]
        if kind == "color":
            q, a = f"what color is the {o['shape']}?", o["color"]
        elif kind == "shape":
            q, a = f"what shape is {POSITION_PHRASE[o['position']]}?", o["shape"]
        elif kind == "count":
            q, a = "how many shapes are there?", COUNT_WORDS[len(objects)]
        elif kind == "exists":
            color, shape = o["color"], o["shape"]
            if rng.random() < 0.5:
                c, s = seen[rng.integers(len(seen))]
                color, shape = COLORS[c], SHAPES[s]
            there = any(x["color"] == color and x["shape"] == shape for x in objects)
            q, a = f"is there a {color} {shape}?", "yes" if there else "no"
        elif kind == "position":
            q, a = f"where is the {o['color']} {o['shape']}?", o["position"]
        else:
            q, a = f"what size is the {o['shape']}?", o["size"]
        used.append(i)
        questions.append(q)
        answers.append(a)
    return np.array(used, dtype=np.int64), questions, answers


def text_corpus(world, n: int = 20_000) -> list[str]:
    """The LM's unpaired text, 4n lines from a ShapesWorld, no image in sight:

    - n captions and n questions (without answers);
    - n restatements, `{description} . {the same scene in other words}` (two of its four templates): a small LM learns
      to say again what its context says, the skill captioning from image tokens needs;
    - n questions answered from a written scene, `scene_question(description, q)` then the answer: text-only
      instruction data made from descriptions, as LLaVA made its instruction data by having a text-only GPT-4 read
      COCO captions and boxes.

    Drawn from indices the course's labeled, web and test sets do not use (captions and questions from 100,000,
    restatements from 300,000, written scenes from 400,000)."""
    from .data.captions import ONE_OBJECT_TEMPLATES, caption_from_attributes, paraphrases

    if n < 1:
        raise ValueError(f"expected n >= 1 lines of each kind, got {n}")
    templates = len(ONE_OBJECT_TEMPLATES)
    rng = np.random.default_rng(world.seed)
    restated = [f"{p[a]} . {p[b]}" for p, (a, b) in zip(paraphrases(world.pairs(n, start=300_000).attributes),
                                                        (rng.choice(templates, 2, replace=False) for _ in range(n)))]
    qa = world.vqa(n, start=400_000)
    scenes = caption_from_attributes(qa.attributes, np.random.default_rng(world.seed + 7).integers(0, templates, n))
    answered = [f"{scene_question(s, q)} {a}" for s, q, a in zip(scenes, qa.questions, qa.answers)]
    return world.pairs(n, start=100_000).captions + world.vqa(n, start=100_000).questions + restated + answered
