"""Judging free-text answers and descriptions of ShapesWorld images: exact match after normalisation, valid answers,
and hallucination (naming a colour or shape the image does not hold).

    texts = answer(model, test.images, test.questions)         # vlmlearn.gvlm
    vqa_scores(texts, test)                                      # {"exact": ..., "valid": ..., "hallucination": ...}
    hallucinations(describe(model, batch.images), batch.attributes)   # (N,) bool, for descriptions too

The test questions and candidate answers are notebook 06's (`world.vqa(1000, split="test")`,
`vlmlearn.vqa.answer_candidates`), so a generative model's exact match stands beside 06's accuracy: a classifier picks
among the candidates, a generative model may also write something that is not one (counted wrong, and measured by
"valid").
"""
from __future__ import annotations

import re
from typing import Sequence

import numpy as np

from .data.captions import COLORS, QUESTION_TYPES, SHAPES, vqa_statement

ARTICLES = ("a", "an", "the")


def normalize_answer(text: str) -> str:
    """Lower case, punctuation and articles dropped, spaces collapsed (the VQA benchmark's normalisation, in short):
    " The Red." -> "red"."""
    words = re.sub(r"[^\w\s]", " ", text.lower()).split()
    return " ".join(w for w in words if w not in ARTICLES)


def exact_matches(predictions: Sequence[str], answers: Sequence[str]) -> np.ndarray:
    """(N,) bool: each prediction equals its answer after `normalize_answer`."""
    if len(predictions) != len(answers):
        raise ValueError(f"got {len(predictions)} predictions but {len(answers)} answers")
    return np.array([normalize_answer(p) == normalize_answer(a) for p, a in zip(predictions, answers)], dtype=bool)


def _named(text: str, vocabulary: Sequence[str]) -> set[str]:
    return {w for w in re.findall(r"[a-z]+", text.lower()) if w in vocabulary}


def hallucinations(texts: Sequence[str], attributes: dict) -> np.ndarray:
    """(N,) bool: text i names a colour or a shape that no object of image i has ("red" when nothing is red; "a blue
    square" when the square is green: blue is absent). attributes: a ShapesWorld Batch's `attributes`. Only the model's
    words count: pass the answers, not the questions, which may name absent objects on purpose ("is there a ...?")."""
    if len(texts) != len(attributes["n_objects"]):
        raise ValueError(f"got {len(texts)} texts for {len(attributes['n_objects'])} images")
    out = np.zeros(len(texts), dtype=bool)
    for i, text in enumerate(texts):
        objects = range(int(attributes["n_objects"][i]))
        colors = {COLORS[attributes["color"][i, k]] for k in objects}
        shapes = {SHAPES[attributes["shape"][i, k]] for k in objects}
        out[i] = bool(_named(text, COLORS) - colors or _named(text, SHAPES) - shapes)
    return out


def valid_answers(predictions: Sequence[str], questions: Sequence[str], *, heldout: np.ndarray | None = None
                  ) -> np.ndarray:
    """(N,) bool: the prediction is one of the question's candidate answers (those `vlmlearn.vqa.answer_candidates`
    marks: the answers of its type whose statement does not name a held-out combination)."""
    if len(predictions) != len(questions):
        raise ValueError(f"got {len(predictions)} predictions but {len(questions)} questions")
    fits = [vqa_statement(q, normalize_answer(p), heldout) is not None for p, q in zip(predictions, questions)]
    return np.array(fits, dtype=bool)


def vqa_scores(predictions: Sequence[str], batch) -> dict[str, float]:
    """Scores of free-text answers to a ShapesWorld VQA batch (`world.vqa(n, split="test")`): "exact" (exact match
    after normalisation, the figure to set beside notebook 06's accuracy), one "exact_<type>" per question type
    (QUESTION_TYPES: "exact_count" for "how many shapes are there?"), "valid" (the answer is a candidate) and
    "hallucination" (the answer names a colour or shape absent from the image)."""
    if batch.questions is None:
        raise ValueError("expected a VQA batch (world.vqa(...)), got one without questions")
    hits = exact_matches(predictions, batch.answers)
    scores = {"exact": float(hits.mean())}
    for t, name in enumerate(QUESTION_TYPES):
        sel = batch.question_type == t
        if sel.any():
            scores[f"exact_{name}"] = float(hits[sel].mean())
    scores["valid"] = float(valid_answers(predictions, batch.questions, heldout=batch.heldout).mean())
    scores["hallucination"] = float(hallucinations(predictions, batch.attributes).mean())
    return scores
