"""`python -m vlmlearn.eval_retrieval`: Recall@K for the Ks asked, autocast only where the device has it,
CLIP_benchmark's result layout in --output, and a warning when OpenAI's weights meet a model without QuickGELU. A tiny
open_clip model with random weights on the bundled COCO samples (24 images, 4 captions each), so the two directions
differ."""
import csv
import io
import json
import re
import warnings
from pathlib import Path

import pytest
import torch

from vlmlearn.data import SAMPLES_DIR, read_pairs
from vlmlearn.eval import retrieval_recall
from vlmlearn.eval_retrieval import encode_pairs, main, quickgelu_warning

ROOT = Path(__file__).resolve().parents[1]
CAPTIONS = SAMPLES_DIR / "coco" / "captions.json"
TINY = {"embed_dim": 32,
        "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 8},
        "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}}


def _tiny(tmp_path: Path, *, weights: str = "tiny.pt", quick_gelu: bool = False) -> tuple[Path, Path]:
    """A tiny open_clip config file and random weights for it (seeded): (config, weights file)."""
    from vlmlearn import clip_models

    name = "tiny-quickgelu" if quick_gelu else "tiny-gelu"
    config = tmp_path / f"{name}.json"
    config.write_text(json.dumps({**TINY, **({"quick_gelu": True} if quick_gelu else {})}))
    torch.manual_seed(0)
    bundle = clip_models.create(str(config))
    torch.save(bundle.model.state_dict(), tmp_path / weights)
    return config, tmp_path / weights


def _run(config: Path, weights: Path, *extra: str) -> dict:
    return main(["--data", str(CAPTIONS), "--dataset-type", "coco", "--model", str(config), "--pretrained",
                 str(weights), "--workers", "0", "--device", "cpu", *extra])


def test_recall_k_and_clip_benchmark_names_in_the_output(tmp_path):
    """Each K asked for, in both directions, under CLIP_benchmark's names: image retrieval is text -> image."""
    from vlmlearn import clip_models

    config, weights = _tiny(tmp_path)
    out = _run(config, weights, "--recall-k", "3", "1", "--output", str(tmp_path / "scores.json"))
    record = json.loads((tmp_path / "scores.json").read_text())

    bundle = clip_models.create(str(config), pretrained=weights)
    images, texts, image_of = encode_pairs(bundle.model, bundle.tokenizer, read_pairs("coco", CAPTIONS),
                                           bundle.eval_transform)
    expected = retrieval_recall(images @ texts.T, image_of, ks=(1, 3))
    assert expected["i2t_r1"] != expected["t2i_r1"], "a random model should rank the two directions differently"
    assert record["metrics"] == pytest.approx({
        "image_retrieval_recall@1": expected["t2i_r1"], "text_retrieval_recall@1": expected["i2t_r1"],
        "image_retrieval_recall@3": expected["t2i_r3"], "text_retrieval_recall@3": expected["i2t_r3"]}, abs=1e-6)
    assert {k: out[k] for k in expected} == pytest.approx(expected, abs=1e-6)
    assert "i2t_r10" not in out


def test_the_output_file_is_clip_benchmark_s_result_layout(tmp_path):
    """What `clip_benchmark build` reads from each result file: the metrics dict merged with the scalar fields
    beside it, and "model" + " " + "pretrained" as the model's full name; every value must fit a CSV cell."""
    config, weights = _tiny(tmp_path)
    _run(config, weights, "--output", str(tmp_path / "scores.json"))
    record = json.loads((tmp_path / "scores.json").read_text())
    assert {"dataset", "model", "pretrained", "task", "metrics"} <= set(record)
    assert record["task"] == "zeroshot_retrieval" and record["model"] == "tiny-gelu"
    assert record["pretrained"] == str(weights) and record["dataset"] == str(CAPTIONS)
    assert sorted(record["metrics"]) == sorted(f"{d}_retrieval_recall@{k}" for d in ("image", "text")
                                               for k in (1, 5, 10))
    row = {**record["metrics"], **{k: v for k, v in record.items() if k != "metrics"}}
    row["model_fullname"] = f"{row['model']} {row['pretrained']}"
    assert all(v is None or isinstance(v, (str, int, float)) for v in row.values()), row
    table = io.StringIO()
    writer = csv.DictWriter(table, fieldnames=sorted(row))
    writer.writeheader()
    writer.writerow(row)
    assert "image_retrieval_recall@5" in table.getvalue().splitlines()[0]
    assert (record["images"], record["captions"], record["skipped"], record["amp"]) == (24, 96, 0, None)


def test_amp_on_cpu_changes_nothing_and_says_so(tmp_path, capsys):
    config, weights = _tiny(tmp_path)
    plain = _run(config, weights)
    capsys.readouterr()
    amp = _run(config, weights, "--amp", "--output", str(tmp_path / "scores.json"))
    assert "--amp: no autocast on cpu, full precision" in capsys.readouterr().err
    assert amp == plain
    assert json.loads((tmp_path / "scores.json").read_text())["amp"] is None


def test_autocast_runs_the_encoders_in_the_given_dtype_and_returns_float32(tmp_path):
    """The mechanism --amp uses on a GPU, checked with CPU autocast in bfloat16: the linear layers compute in
    bfloat16 and the features come back float32, close to the full-precision ones."""
    from vlmlearn import clip_models

    config, weights = _tiny(tmp_path)
    bundle = clip_models.create(str(config), pretrained=weights)
    seen = []
    for module in bundle.model.modules():  # the MLPs' layers (attention calls its projections' weights directly)
        if isinstance(module, torch.nn.Linear):
            module.register_forward_hook(lambda module, inputs, output: seen.append(output.dtype))
    data = read_pairs("coco", CAPTIONS)
    full = encode_pairs(bundle.model, bundle.tokenizer, data, bundle.eval_transform)
    assert set(seen) == {torch.float32}
    seen.clear()
    low = encode_pairs(bundle.model, bundle.tokenizer, data, bundle.eval_transform, autocast=torch.bfloat16)
    assert set(seen) == {torch.bfloat16}
    for a, b in zip(full[:2], low[:2]):
        assert b.dtype == torch.float32 and torch.allclose(a, b, atol=0.05)
    assert torch.equal(full[2], low[2])


@pytest.mark.parametrize("bad", [["0"], ["5", "-1"], ["x"]])
def test_recall_k_must_be_positive_integers(tmp_path, capsys, bad):
    config, weights = _tiny(tmp_path)
    with pytest.raises(SystemExit):
        _run(config, weights, "--recall-k", *bad)
    err = capsys.readouterr().err
    assert "--recall-k" in err and ("expected positive integers" in err or "invalid int value" in err)


def test_openai_weights_without_quickgelu_are_warned_about(tmp_path):
    """open_clip warns about QuickGELU only for its download tags; a local OpenAI file gets the warning here."""
    config, weights = _tiny(tmp_path, weights="tiny-openai.pt")
    with pytest.warns(UserWarning, match=r"QuickGELU.*--model tiny-gelu-quickgelu"):
        _run(config, weights)

    quick, quick_weights = _tiny(tmp_path, weights="tiny-openai-quick.pt", quick_gelu=True)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*QuickGELU.*")
        _run(quick, quick_weights)  # the right architecture: no warning
        _run(config, weights.rename(tmp_path / "tiny-laion.pt"))  # not OpenAI's: no warning
    assert quickgelu_warning(torch.nn.Linear(2, 2), model_name="m", pretrained="openai") is not None
    assert quickgelu_warning(torch.nn.Linear(2, 2), model_name="m", pretrained="laion2b.pt") is None
    assert quickgelu_warning(torch.nn.Linear(2, 2), model_name="m", pretrained="openai/laion2b.pt") is None


def test_documented_commands_load_openai_weights_into_quickgelu_models():
    """Every `--model M --pretrained <something openai>` in the docs names a -quickgelu model (notebook 10's
    command loaded OpenAI's ViT-B-32 into the GELU architecture, and recall came out lower without a word)."""
    import vlmlearn.eval_retrieval

    docs = {"README.md": (ROOT / "README.md").read_text(), "eval_retrieval": vlmlearn.eval_retrieval.__doc__}
    for path in sorted((ROOT / "notebooks").rglob("*.ipynb")):
        cells = json.loads(path.read_text())["cells"]
        docs[str(path.relative_to(ROOT))] = "\n".join("".join(c["source"]) for c in cells)
    found = [(name, m) for name, text in docs.items()
             for m in re.findall(r"--model\s+(\S+)\s+(?:\\\s+)?--pretrained\s+(\S*openai\S*)", text, re.I)]
    assert found, "notebook 10 and the module docstring show an OpenAI evaluation command"
    assert all(model.endswith("-quickgelu") for _, (model, _) in found), found
