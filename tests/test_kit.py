"""viz, results, exercises, widgets and the course runner."""
import io
import json
import re

import matplotlib
import numpy as np
import pytest
import torch

matplotlib.use("Agg")

from vlmlearn import exercises, viz  # noqa: E402
from vlmlearn.results import (  # noqa: E402
    load_benchmark,
    load_results,
    ordering,
    record_results,
    results_table,
    seed_table,
    write_benchmark,
)
from vlmlearn.train import History  # noqa: E402


def test_plots_draw_what_they_are_given(world):
    b = world.noisy_pairs(6, noise_rate=0.5)
    colors = ["red" if n else "black" for n in b.is_noisy]
    fig, axes = viz.show_images(b.images, b.captions, ncols=4, colors=colors, wrap=1000)
    assert axes.shape == (2, 4)
    shown = [a for a in axes.flat if a.images]
    assert [a.get_title() for a in shown] == list(b.captions)  # each caption under its own image
    assert [a.title.get_color() for a in shown] == colors
    assert np.allclose(shown[2].images[0].get_array(), b.images[2].permute(1, 2, 0).numpy())
    h = History()
    for s in range(5):
        h.log(h.train, s + 1, {"loss": 1.0 / (s + 1), "acc": s / 5})
    h.log(h.eval, 5, {"acc": 0.7})
    fig, axes = h.plot()
    assert [a.get_title() for a in axes.flat] == ["loss", "acc"]
    assert list(axes[0, 0].lines[0].get_ydata()) == pytest.approx([1.0, 0.5, 1 / 3, 0.25, 0.2])
    assert list(axes[0, 1].lines[1].get_ydata()) == [0.7]  # the eval point
    sim = torch.rand(3, 4)
    fig, ax = viz.plot_similarity(sim, ["a", "b", "c"], list("wxyz"))
    assert np.allclose(ax.images[0].get_array(), sim.numpy()) and len(fig.axes) == 2  # heatmap + colour bar
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "b", "c"]
    fig, ax = viz.plot_confusion(torch.tensor([[3.0, 1.0], [0.0, 2.0]]), ["x", "y"])
    assert np.allclose(ax.images[0].get_array(), [[0.75, 0.25], [0.0, 1.0]])  # rows normalised
    assert ax.get_xlabel() == "predicted" and ax.get_ylabel() == "true"
    fig, ax = viz.plot_embeddings(torch.randn(20, 5), np.arange(20) % 3, ["p", "q", "r"])
    assert [c.get_offsets().shape[0] for c in ax.collections] == [7, 7, 6]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["p", "q", "r"]
    fig, ax = viz.plot_bars({"a": 0.5, "b": 0.9}, baseline=0.2)
    assert [r.get_height() for r in ax.patches] == pytest.approx([0.5, 0.9])
    assert list(ax.lines[0].get_ydata()) == [0.2, 0.2]
    with pytest.raises(ValueError, match="captions"):
        viz.show_images(b.images, ["only one"])
    with pytest.raises(ValueError, match="no images"):
        viz.show_images(b.images[:0])


def test_record_results_contract(tmp_path, monkeypatch):
    monkeypatch.setenv("VLMLEARN_RESULTS_DIR", str(tmp_path))
    path = record_results("00_x", {"acc": 0.9}, {"acc_chance": 0.1}, runtime_s=12.345, seed=0)
    rec = json.loads(path.read_text())
    assert path.parent == tmp_path
    assert {"notebook", "metrics", "baselines", "runtime_s", "device", "seed"} <= set(rec)
    assert rec["metrics"] == {"acc": 0.9} and rec["runtime_s"] == 12.35 and rec["seed"] == 0
    table = results_table(load_results())
    assert "00_x" in table and "acc_chance=0.1" in table and "12 s" in table
    with pytest.raises(ValueError, match="finite"):
        record_results("00_x", {"acc": float("nan")}, {})
    path = record_results("00_x", {"acc": 0.9, "r1": 0.5}, {}, splits={"acc": "test", "r1": "val"})
    assert json.loads(path.read_text())["splits"] == {"acc": "test", "r1": "val"}
    with pytest.raises(ValueError, match=r"split of every metric; missing \['r1'\]"):
        record_results("00_x", {"acc": 0.9, "r1": 0.5}, {}, splits={"acc": "test"})


def test_benchmark_contract_and_orderings(tmp_path):
    runs = [{"a": 0.9, "b": 0.5, "c": 0.52}, {"a": 0.8, "b": 0.6, "c": 0.58}, {"a": 0.85, "b": 0.55, "c": 0.5}]
    notebook = tmp_path / "01_x.ipynb"
    notebook.write_text(json.dumps({"cells": [{"cell_type": "code", "source": ["import vlmlearn.results\n"]}]}))
    path = write_benchmark("01_x", [0, 1, 2], runs, runtime_s=12.34, folder=tmp_path, source=notebook)
    bench = load_benchmark("01_x", folder=tmp_path)
    assert json.loads(path.read_text()) == bench and bench["seeds"] == [0, 1, 2] and bench["runtime_s"] == 12.3
    assert bench["metrics"]["a"]["per_seed"] == [0.9, 0.8, 0.85]
    assert bench["metrics"]["a"]["mean"] == pytest.approx(0.85)
    assert bench["metrics"]["a"]["std"] == pytest.approx(np.std([0.9, 0.8, 0.85]), abs=1e-6)  # stored to 6 digits
    assert "torch" in bench["versions"] and load_benchmark("missing", folder=tmp_path) is None
    assert len(bench["fingerprint"]) == 16 and bench["commit"] and "cores" in bench["machine"]
    # a - b per seed: +0.4, +0.2, +0.3: mean +0.3, sd 0.1, t(0.975, 2) = 4.303, half-width 0.248
    assert ordering(bench, "a", "b") == ("a beats b: a - b = +0.300, 95 % CI [+0.052, +0.548] "
                                         "(paired t over 3 seeds; a ahead at 3/3)")
    assert ordering(bench, "b", "a").startswith("a beats b: b - a = -0.300, 95 % CI [-0.548, -0.052]")
    assert ordering(bench, "b", "c").startswith("b and c are within noise")  # b wins twice, c once: no claim
    lower = ordering(bench, "b", "a", lower_is_better=True)
    assert lower.startswith("b beats a: b - a = -0.300, 95 % CI [-0.548, -0.052]") and "lower is better" in lower
    # ahead at 3 of 3 seeds is not enough: a sign test gives p = 1/8, and a paired t interval that includes 0 says so
    runs3 = [{"x": 0.51, "y": 0.50}, {"x": 0.53, "y": 0.50}, {"x": 0.60, "y": 0.50}]
    write_benchmark("02_x", [0, 1, 2], runs3, runtime_s=1.0, folder=tmp_path, source=notebook)
    close = load_benchmark("02_x", folder=tmp_path)
    assert ordering(close, "x", "y").startswith("x and y are within noise: x - y = +0.047, 95 % CI [-0.071, +0.164]")
    table = seed_table({"a": 0.88, "b": 0.1, "c": 0.2}, bench, ["a"], seed=1)
    assert "0.880" in table and "0.850 ± 0.041" in table and "0.900, 0.800, 0.850" in table
    assert "0.800*" in table and "(the same machine)" in table and "code or data changed" in table  # 0.88 vs seed 1
    assert "[  0.726,   0.974]" in table  # mean 0.85, sd 0.05, t(0.975, 2) * 0.05 / sqrt(3) = 0.124
    exact = seed_table({"a": 0.8004}, bench, ["a"], seed=1)
    assert "0.800 " in exact and "*" not in exact  # within REPRODUCE_TOL: the same run
    other = seed_table({"a": 0.88}, {**bench, "machine": "another CPU"}, ["a"], seed=1)
    assert "committed: another CPU" in other and "float rounding" in other
    newer = seed_table({"a": 0.88, "d": 0.3}, bench, ["a", "d"])  # d was added after the benchmark ran
    assert "0.300" in newer.splitlines()[-1] and "not benched yet" in newer.splitlines()[-1]
    with pytest.raises(ValueError, match="one metrics dict per seed"):
        write_benchmark("01_x", [0, 1], runs, runtime_s=1.0, folder=tmp_path, source=notebook)


def test_exercise_checks_catch_wrong_answers(capsys, world):
    def good(captions, rate, seed):
        if not 0 <= rate <= 1:
            raise ValueError("rate")
        rng = np.random.default_rng(seed)
        chosen = rng.permutation(len(captions))[: round(rate * len(captions))]
        out = list(captions)
        for i, j in zip(chosen, np.roll(chosen, 1)):
            out[i] = captions[j]
        swapped = np.zeros(len(captions), bool)
        swapped[chosen] = len(chosen) > 1
        return out, swapped

    def lazy(captions, rate, seed):
        raise NotImplementedError

    def unflagged(captions, rate, seed):
        out, swapped = good(captions, rate, seed)
        return out, np.zeros(len(captions), bool)

    assert exercises.check_swap_captions(good)
    assert not exercises.check_swap_captions(lazy)
    assert not exercises.check_swap_captions(unflagged)
    out = capsys.readouterr().out
    assert "not implemented yet" in out and "✗" in out

    from vlmlearn.data import caption_matches
    assert exercises.check_noise_rate(
        lambda b: float(np.mean([not caption_matches(c, b.attributes, i) for i, c in enumerate(b.captions)])), world)
    assert not exercises.check_noise_rate(lambda b: float(b.is_noisy.mean()) + 0.01, world)


def test_world_views_for_the_browser():
    from vlmlearn.widgets import WORLD_VIEWS, world_browser, world_view

    for view in WORLD_VIEWS:
        images, texts, colors = world_view(view, n=4, image_size=16)
        assert len(texts) == 4 and (images is None or images.shape == (4, 3, 16, 16))
    assert world_browser(n=4).children  # builds the widget without a front end
    with pytest.raises(ValueError, match="view"):
        world_view("everything")


def test_course_table_only(tmp_path, monkeypatch, capsys):
    from vlmlearn import course

    monkeypatch.setenv("VLMLEARN_RESULTS_DIR", str(tmp_path))
    record_results("01_y", {"r1": 0.5}, {"r1_chance": 0.01}, runtime_s=3)
    assert course.main(["--table"]) == 0
    assert "01_y" in capsys.readouterr().out


def test_clip_loss_exercise_check_explains_mistakes(capsys):
    import torch.nn.functional as F

    def one_way(img, txt, scale):
        return F.cross_entropy(scale * img @ txt.T, torch.arange(len(img)))

    def no_scale(img, txt, scale):
        logits = img @ txt.T
        return (F.cross_entropy(logits, torch.arange(len(img))) + F.cross_entropy(logits.T, torch.arange(len(img)))) / 2

    from vlmlearn.losses import clip_loss
    assert exercises.check_clip_loss(clip_loss)
    assert not exercises.check_clip_loss(one_way)
    assert not exercises.check_clip_loss(no_scale)
    out = capsys.readouterr().out
    assert "only image-to-text" in out and "logit scale is not used" in out


def test_keep_most_similar_check_and_filter_trade_off():
    from vlmlearn.widgets import filter_explorer, filter_trade_off

    def good(scores, frac):
        if not 0 <= frac <= 1:
            raise ValueError
        keep = torch.zeros(len(scores), dtype=torch.bool)
        keep[torch.argsort(scores, descending=True)[: round(frac * len(scores))]] = True
        return keep

    assert exercises.check_keep_most_similar(good)
    assert not exercises.check_keep_most_similar(lambda s, f: s > 0.5)
    scores = torch.tensor([0.9, 0.8, 0.1, 0.2])
    noisy = torch.tensor([False, False, True, True])
    t = filter_trade_off(scores, noisy, 0.5)
    assert t == {"kept": 2, "noise_kept": 0.0, "noise_removed": 1.0, "clean_lost": 0.0}
    assert filter_trade_off(scores, noisy, 1.0)["noise_kept"] == 0.5
    assert filter_explorer(scores, noisy).children


def test_retrieval_explorer_builds(world):
    from vlmlearn.contrastive import DualEncoder
    from vlmlearn.data import WordTokenizer, caption_vocabulary
    from vlmlearn.models import SmallCNN, TextTransformer
    from vlmlearn.widgets import retrieval_explorer

    tok = WordTokenizer(caption_vocabulary(), context_length=20)
    model = DualEncoder(SmallCNN(widths=(8, 8, 8), embed_dim=16),
                        TextTransformer(vocab_size=tok.vocab_size, context_length=20, width=16, layers=1, heads=2,
                                        embed_dim=16))
    b = world.pairs(12)
    assert retrieval_explorer(model, tok, b.images, b.captions, k=3).children


def test_figure_audit_names_unlabeled_axes_and_heatmaps_without_colour_bars(world, monkeypatch):
    import matplotlib.pyplot as plt
    from matplotlib.backend_bases import FigureCanvasBase

    from vlmlearn.label_efficiency_report import plot_label_efficiency, plot_run

    fig, ax = plt.subplots()
    ax.plot([0, 1])
    ax.set_title("loss")
    assert viz.figure_problems(fig) == ["'loss': the x axis has no label", "'loss': the y axis has no label"]
    ax.set_xlabel("step"), ax.set_ylabel("loss")
    assert viz.figure_problems(fig) == []
    fig, ax = plt.subplots()
    image = ax.imshow(np.eye(3))
    ax.set_xlabel("caption"), ax.set_ylabel("image")
    assert viz.figure_problems(fig) == ["subplot 0: a heatmap without a colour bar"]
    bar = fig.colorbar(image, ax=ax)
    assert viz.figure_problems(fig) == ["the colour bar of subplot 0 has no label"]
    bar.set_label("cosine similarity")
    assert viz.figure_problems(fig) == []
    # every figure the package draws passes
    h = History()
    h.log(h.train, 1, {"loss": 1.0})
    bench = load_benchmark("09_label_efficiency")
    figures = [viz.show_images(world.images(3).images)[0], h.plot()[0], viz.plot_similarity(torch.rand(2, 3))[0],
               viz.plot_confusion(torch.eye(2), ["a", "b"])[0], viz.plot_embeddings(torch.randn(6, 3), [0, 1] * 3)[0],
               viz.plot_bars({"a": 1.0}, xlabel="method", ylabel="accuracy")[0], plot_label_efficiency(bench)[0],
               plot_run(bench, "digits", "fixmatch", "2")[0], plot_run(bench, "shapes", "zeroshot", "0")[0]]
    assert [viz.figure_problems(f) for f in figures] == [[]] * len(figures)
    # the audit, once on, stops any drawing of a figure with problems
    monkeypatch.setattr(FigureCanvasBase, "print_figure", FigureCanvasBase.print_figure)
    viz.audit_figures()
    figures[1].savefig(io.BytesIO(), format="png")
    with pytest.raises(ValueError, match="figure audit: .*no label"):
        viz.plot_bars({"a": 1.0})[0].savefig(io.BytesIO(), format="png")
    plt.close("all")


def test_run_info_names_the_time_the_device_and_the_versions():
    import vlmlearn

    line = vlmlearn.run_info()
    assert line.startswith("ran in ") and " s on cpu (" in line
    assert re.match(r"ran in \d+ s of its 240 s budget on cpu \(", vlmlearn.run_info("01_contrastive_alignment"))
    with pytest.raises(ValueError, match="no budget for '01_x'"):
        vlmlearn.run_info("01_x")
    for name in ("Python 3.", "torch 2.", "transformers ", "open_clip_torch ", "numpy ", "vlmlearn 0."):
        assert name in line, name


def test_write_record_adds_runtime_and_versions(tmp_path):
    import time

    from vlmlearn.results import write_record

    path = write_record("03_demo", {"chosen": {"lr": 1e-3}}, started=time.perf_counter() - 2.4, folder=tmp_path)
    record = json.loads(path.read_text())
    assert path == tmp_path / "03_demo.json" and record["chosen"] == {"lr": 1e-3}
    assert record["runtime_s"] == 2 and "torch" in record["versions"] and "cores" in record["machine"]
    script = tmp_path / "bench.py"
    script.write_text("import vlmlearn.train\n")
    written = write_record("x", {}, started=time.perf_counter(), folder=tmp_path, script=script)
    with_script = json.loads(written.read_text())
    assert len(with_script["fingerprint"]) == 16


def test_statistics_match_scipy():
    stats = pytest.importorskip("scipy.stats")
    from vlmlearn.results import mean_interval, t_quantile

    for df in range(1, 31):
        for p in (0.9, 0.95, 0.975, 0.995):
            assert t_quantile(p, df) == pytest.approx(stats.t.ppf(p, df), abs=1e-9), (p, df)
    values = [0.812, 0.797, 0.835, 0.801, 0.826]
    mean, low, high = mean_interval(values)
    expected = stats.t.interval(0.95, len(values) - 1, loc=np.mean(values), scale=stats.sem(values))
    assert (low, high) == pytest.approx(expected, abs=1e-12) and mean == pytest.approx(np.mean(values))
    gaps = [0.011, 0.004, 0.019, 0.008, 0.012]  # a paired interval is the interval of the per-seed differences
    assert stats.ttest_1samp(gaps, 0).pvalue < 0.05 and mean_interval(gaps)[1] > 0
    assert mean_interval([0.5]) == (0.5, 0.5, 0.5)
    with pytest.raises(ValueError, match="df must be a positive integer"):
        t_quantile(0.975, 0)
