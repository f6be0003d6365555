"""Exercises: automatic checks, hints, and the switch that lets the learner's code drive the notebook.

Each `check_*` runs the learner's function on small cases, smallest first, prints what passed or the first thing
that is wrong (with the input that shows it, what was expected and what came back), and returns True only when
everything passed. A function that still raises NotImplementedError gets a note instead of a traceback, so
notebooks run top to bottom before the exercise is done. Then

    loss_fn = use(my_clip_loss, clip_loss, check_clip_loss(my_clip_loss))

is the learner's function once it passed its check, and the package's (said aloud) until then: the training
below runs either way, and gives the same results when the learner's code is right. `hints("clip_loss")`
returns `hint(level)`, which prints progressively more specific hints; `predicted(guess, measured)` compares a
learner's written prediction with what the experiment measured.

This file is the public API the notebooks import, nothing else. Each exercise's check lives in its topic's module:
`data` (notebook 00), `contrastive` (01, 02, 10), `masking` (03, 04), `generative` (05), `vqa` (06), `semi` (07, 08),
`capstone` (09); a few live in modules that only their notebook imports (`weights` 06, `capfilt` 07, `fixmatch` 08,
`failures` 12, `gvlm` 11). The hints of every exercise are course text in `vlmlearn/shipped/hints.json` (hint 1 points
the way,
hint 2 names the functions to use); the shared machinery (`hints`, `use`, `predicted`, the check runner) is in
`_core`.
"""
from ._core import hints, predicted, use
from .capstone import check_pick_best
from .contrastive import check_clip_loss, check_keep_most_similar, check_logits_bytes, check_simulated_loss
from .data import check_noise_rate, check_swap_captions
from .generative import check_greedy_decode
from .masking import check_mae_loss, check_mask_tokens, check_random_masking
from .semi import check_ema_update, check_fixmatch_loss, check_pi_consistency, check_select_pseudo_labels
from .vqa import check_matching_logits

__all__ = [
    "hints", "use", "predicted",
    "check_swap_captions", "check_noise_rate",
    "check_clip_loss", "check_keep_most_similar",
    "check_random_masking", "check_mae_loss", "check_mask_tokens",
    "check_greedy_decode",
    "check_matching_logits",
    "check_select_pseudo_labels", "check_pi_consistency", "check_ema_update", "check_fixmatch_loss",
    "check_pick_best",
    "check_logits_bytes", "check_simulated_loss",
]
