"""Pretrain notebook 11's text LM, align projectors to it and to a random LM, tune them on questions written from the
web captions, and ship the three models.

    python benchmarks/pretrain_gvlm.py                 # make pretrain: about 15 minutes on 2 cores
    python benchmarks/pretrain_gvlm.py --text-steps 20 --align-steps 20 --question-steps 20 --out build/gvlm_test

World seed 0, 32 px. 1. A small Llama (`vlmlearn.gvlm.causal_lm`) learns next-word prediction on `text_corpus`
(captions, questions, restatements and questions answered from a written scene; no image), `--text-steps` steps.
2. Three models on notebook 01's shipped CLIP image tower (frozen), each with a fresh MLP projector (`ARMS`): the text
LM reading the 16 patch tokens (the course's model), the same architecture as drawn reading them (the random-LM
control), and the text LM reading CLIP's pooled vector as one token (the pooled control). In each the projector alone
learns to caption 20,000 noisy web pairs (`align`, `--align-steps`; `--align-lm-lr` > 0 lets the LM learn too).
3. Each model, projector and LM, learns to answer one question written from each web caption (`written_questions`,
`--exists-share` of them "is there a ...?"), batch 32 plus 32 caption rows, `--question-steps` steps: no labels.
Writes <out>.safetensors (each arm's LM and projector, `text.`, `random.` and `pooled.`, and the LM after text
pretraining alone, `text_lm.`) and <out>.json (config,
settings, losses, each arm's descriptions of 200 validation images scored for hallucination and its exact match on
200 validation questions, runtime, versions,
fingerprint), which `vlmlearn.gvlm_train.load_pretrained_gvlm` reads.
"""
import argparse
import time
from pathlib import Path

import torch

from vlmlearn.assets import save_weights
from vlmlearn.clip_models import load_pretrained_clip
from vlmlearn.data import ShapesWorld
from vlmlearn.gvlm import answer, describe
from vlmlearn.gvlm_eval import hallucinations, vqa_scores
from vlmlearn.gvlm_train import ARMS, SHAPES_GVLM_CHECKPOINT, checkpoint_parts, pretrain_arms
from vlmlearn.provenance import stamp
from vlmlearn.results import versions


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--text-lines", type=int, default=20_000, help="of each of text_corpus's four kinds")
    parser.add_argument("--text-steps", type=int, default=3000)
    parser.add_argument("--text-lr", type=float, default=1e-3,
                        help="3e-3 (the earlier default) left the LM unable to read a scene's size")
    parser.add_argument("--web-pairs", type=int, default=20_000)
    parser.add_argument("--align-steps", type=int, default=3000)
    parser.add_argument("--align-lr", type=float, default=1e-2, help="the projector's")
    parser.add_argument("--align-lm-lr", type=float, default=0.0, help="the LM's in alignment; 0: frozen (LLaVA)")
    parser.add_argument("--question-steps", type=int, default=3000, help="0 skips the written questions")
    parser.add_argument("--exists-share", type=float, default=0.5,
                        help="of the written questions: 'is there a ...?' stays at chance with a sixth of them")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=SHAPES_GVLM_CHECKPOINT.with_suffix(""))
    return parser


def main() -> None:
    args = build_parser().parse_args()
    torch.set_num_threads(2)
    t0 = time.perf_counter()
    world = ShapesWorld(seed=args.seed, image_size=32)
    clip, _, _ = load_pretrained_clip()
    settings = {k: getattr(args, k) for k in ("width", "layers", "heads", "text_lines", "text_steps", "text_lr",
                                              "web_pairs", "align_steps", "align_lr", "align_lm_lr", "question_steps",
                                              "exists_share", "seed")}
    models, lms, losses = pretrain_arms(clip.image_encoder, world, progress=False, **settings)
    val = world.vqa(200, split="val")
    described = {}
    for arm, model in models.items():
        texts = describe(model, val.images)
        described[arm] = {"hallucination": round(float(hallucinations(texts, val.attributes).mean()), 4),
                          "examples": texts[:4],
                          "val_exact": round(vqa_scores(answer(model, val.images, val.questions), val)["exact"], 4)}
        print(f"{arm}: losses {losses.get(f'align_{arm}')} {losses.get(f'questions_{arm}')}, descriptions "
              f"{described[arm]}", flush=True)
    tok = models["text"].tokenizer
    config = {"vocab_size": tok.vocab_size, "context_length": tok.context_length, "width": args.width,
              "layers": args.layers, "heads": args.heads, "projector": "mlp"}
    record = {"model": "shapes-gvlm", "config": config, "arms": ARMS, "settings": settings, "batch_size": 64,
              "losses": losses, "val_descriptions": described, "runtime_s": round(time.perf_counter() - t0),
              "versions": versions(), **stamp(__file__)}
    save_weights(checkpoint_parts(models, lms["text"]), args.out.with_suffix(".safetensors"), record)
    print(f"wrote {args.out}.safetensors and .json: text LM loss {losses['text_lm']} ({record['runtime_s']} s)")


if __name__ == "__main__":
    main()
