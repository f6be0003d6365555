"""Cheap stand-ins for what each notebook's explorer cell reads (small untrained models, random scores), so the
explorers can be built in seconds: by tests/test_widgets.py here, and inside JupyterLab by tests/test_browser.py,
which runs them in the notebook's kernel before the notebook's own explorer cell. The explorers' behaviour (controls
redraw the output) does not depend on how well the models are trained; notebook 09's grid is the committed one."""
from pathlib import Path

import torch

from vlmlearn.data import ShapesWorld, WordTokenizer, caption_vocabulary
from vlmlearn.results import load_benchmark

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"

# notebook -> the names its explorer cell reads
NEEDS = {"00": (), "01": ("world", "fixed", "tok"), "02": ("scores", "is_noisy"), "03": ("mae", "probe_test"),
         "04": ("text_model", "image_model", "tok", "test"), "05": ("painter", "reader", "tok", "painting_explorer"),
         "06": ("matcher", "finals", "mix_weights", "tensors", "test", "best_alpha"),
         "07": ("teacher_probs", "pool_truth"), "08": ("pool_probs", "pool_labels"), "09": ("bench",),
         "10": ("img", "txt", "keys", "scale", "SEED"), "11": ("models", "SIZES", "test", "decode")}


def is_explorer_cell(source: str) -> bool:
    """A notebook cell that builds an explorer: it imports one from vlmlearn.widgets, calls notebook 05's
    `painting_explorer` (which lives in vlmlearn.painter until widgets next changes), or builds one from
    `vlmlearn.explorer` itself (notebook 06's WiSE-FT explorer and notebook 10's batch explorer, until widgets next
    changes)."""
    return ("from vlmlearn.widgets import" in source or source.lstrip().startswith("painting_explorer(")
            or "from vlmlearn.explorer import Explorer" in source)


def standins(notebook: str) -> dict:
    """The names notebook `notebook` ("00" ... "11")'s explorer cell reads, built small."""
    from vlmlearn.contrastive import DualEncoder
    from vlmlearn.mae import MaskedAutoencoder
    from vlmlearn.mlm import MaskedCaptionModel
    from vlmlearn.models import SmallCNN, TextTransformer
    from vlmlearn.painter import AttributeReader, load_pretrained_painter, painting_explorer

    torch.manual_seed(0)
    world, tok = ShapesWorld(seed=0), WordTokenizer(caption_vocabulary(), context_length=20)
    probs = torch.softmax(4 * torch.randn(300, 10), -1)
    make = {
        "00": lambda: {},
        "01": lambda: {"world": world, "tok": tok, "fixed": DualEncoder(
            SmallCNN(widths=(8, 8, 8), embed_dim=16),
            TextTransformer(vocab_size=tok.vocab_size, context_length=20, width=16, layers=1, heads=2, embed_dim=16))},
        "02": lambda: {"scores": torch.rand(300), "is_noisy": torch.rand(300) < 0.4},
        "03": lambda: {"mae": MaskedAutoencoder(image_size=32, patch_size=8, width=32, depth=1, heads=2,
                                                decoder_width=16, decoder_depth=1, decoder_heads=2),
                       "probe_test": world.labeled(8)},
        "04": lambda: {"tok": tok, "test": world.pairs(8, split="test"),
                       "text_model": MaskedCaptionModel(vocab_size=tok.vocab_size, context_length=20, width=32,
                                                        layers=1, heads=2),
                       "image_model": MaskedCaptionModel(vocab_size=tok.vocab_size, context_length=20, width=32,
                                                         layers=1, heads=2, image_channels=16, image_tokens=64,
                                                         image_encoder=SmallCNN(widths=(8, 16), embed_dim=8).features)},
        "05": lambda: {"tok": tok, "painter": load_pretrained_painter()[0], "reader": AttributeReader(width=8).eval(),
                       "painting_explorer": painting_explorer},
        "06": lambda: vqa_standins(world),
        "07": lambda: {"teacher_probs": probs, "pool_truth": torch.randint(0, 10, (300,))},
        "08": lambda: {"pool_probs": probs, "pool_labels": torch.randint(0, 10, (300,))},
        # named by path: JupyterLab runs the browser copies outside the checkout, where no benchmarks/results is found
        "09": lambda: {"bench": load_benchmark("09_label_efficiency", folder=BENCHMARKS)},
        "10": lambda: {"img": torch.nn.functional.normalize(torch.randn(300, 16), dim=-1),
                       "txt": torch.nn.functional.normalize(torch.randn(300, 16), dim=-1),
                       "keys": [str(k) for k in torch.randint(0, 40, (300,)).tolist()], "scale": 20.0, "SEED": 0},
        "11": lambda: gvlm_standins(world),
    }
    if notebook not in make:
        raise ValueError(f"no explorer stand-ins for notebook {notebook!r}; notebooks with explorers: {sorted(make)}")
    names = make[notebook]()
    assert set(names) == set(NEEDS[notebook]), (notebook, sorted(names))
    return names


def gvlm_standins(world):
    """Notebook 11's question box: a small untrained generative VLM and 12 test questions."""
    from vlmlearn.gvlm import GenerativeVLM, causal_lm, chat_tokenizer, greedy_decode_with_cache
    from vlmlearn.models import SmallCNN

    tok = chat_tokenizer()
    model = GenerativeVLM(SmallCNN(widths=(8, 8, 8), embed_dim=16), causal_lm(tok, width=32, heads=2, layers=1), tok)
    return {"models": {12: model.eval()}, "SIZES": (12,), "test": world.vqa(12, split="test"),
            "decode": greedy_decode_with_cache}


def vqa_standins(world):
    """Notebook 06's WiSE-FT explorer: two small matchers of one architecture and 12 test questions."""
    from vlmlearn.contrastive import DualEncoder
    from vlmlearn.data import ANSWERS
    from vlmlearn.models import SmallCNN, TextTransformer
    from vlmlearn.soups import interpolate_weights
    from vlmlearn.vqa import VQAByMatching, answer_statements

    test = world.vqa(12, split="test")
    tok = WordTokenizer.from_texts(caption_vocabulary() + test.questions + list(ANSWERS), context_length=20)

    def matcher():
        return VQAByMatching.from_dual_encoder(DualEncoder(
            SmallCNN(widths=(8, 8, 8), embed_dim=16),
            TextTransformer(vocab_size=tok.vocab_size, context_length=20, width=16, layers=1, heads=2, embed_dim=16)))

    zero_shot, tuned = matcher().eval(), matcher()
    statements = answer_statements(test.questions, tok, heldout=world.heldout_mask)
    return {"matcher": zero_shot, "finals": {("matching, low LR", 50): tuned.state_dict()},
            "mix_weights": interpolate_weights,
            "tensors": {True: {"test": (test.images, statements, test.labels)}}, "test": test, "best_alpha": 0.5}
