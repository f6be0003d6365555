"""The capstone: its protocol (label_efficiency: splits, selection, runs) and its readers (label_efficiency_report)."""
import math

import pytest
import torch

from vlmlearn.label_efficiency import DIGIT_METHODS, choose, digits_data, run_digits, run_shapes
from vlmlearn.label_efficiency_report import grid, grid_table, parse_key, plot_run, verdicts


def fake_bench():
    def m(values):
        mean = sum(values) / len(values)
        return {"per_seed": values, "mean": mean, "std": math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))}

    curve = [[10, 0.5], [20, 0.7]]
    runs = {str(s): {"curve": curve, "confusion": torch.eye(10, dtype=torch.long).tolist()} for s in (0, 1, 2)}
    metrics = {"digits_supervised_1": m([0.50, 0.55, 0.52]), "digits_fixmatch_1": m([0.90, 0.86, 0.88]),
               "digits_pi_1": m([0.56, 0.50, 0.60]), "digits_supervised_all": m([0.98, 0.99, 0.98]),
               "digits_fixmatch_all": m([0.99, 0.98, 0.98]), "shapes_zeroshot_0": m([0.9, 0.9, 0.9]),
               "shapes_probe_clip_5": m([0.8, 0.85, 0.9])}
    return {"seeds": [0, 1, 2], "metrics": metrics, "runs": {k: runs for k in metrics}}


def test_keys_parse_into_task_method_and_labels():
    assert parse_key("shapes_probe_clip_5") == ("shapes", "probe_clip", "5")
    assert parse_key("digits_fixmatch_all") == ("digits", "fixmatch", "all")
    assert list(grid(fake_bench(), "digits")["fixmatch"]) == ["1", "all"]
    with pytest.raises(ValueError, match="no metrics for task 'cifar'"):
        grid(fake_bench(), "cifar")


def test_table_and_verdicts_claim_only_what_the_paired_interval_supports():
    bench = fake_bench()
    table = grid_table(bench, "digits")
    assert "FixMatch" in table and "0.880 ± 0.016" in table
    lines = verdicts(bench, "digits", baseline="supervised")
    assert lines[0].startswith("1 per class: best FixMatch 0.880")
    assert "digits_fixmatch_1 beats digits_pi_1: digits_fixmatch_1 - digits_pi_1 = +0.327, 95 % CI [+0.223, +0.430]" \
        in lines[0]
    assert "digits_fixmatch_1 beats digits_supervised_1" in lines[0]
    assert "within noise" in lines[1]  # with every label the two are within noise


def test_plot_run_shows_curves_and_a_confusion_matrix():
    import matplotlib
    matplotlib.use("Agg")
    fig, text = plot_run(fake_bench(), "digits", "fixmatch", "1")
    assert text.startswith("digits_fixmatch_1: 0.880") and len(fig.axes) == 3  # curves, matrix, colour bar
    with pytest.raises(ValueError, match="digits_fixmatch_7"):
        plot_run(fake_bench(), "digits", "fixmatch", "7")


def test_validation_split_is_the_size_of_the_labeled_set_and_leaves_the_unlabeled_pool():
    x, y, pool, val_x, val_y = digits_data(2, seed=0, validation=True)
    _, _, full_pool, test_x, _ = digits_data(2, seed=0)
    assert len(x) == len(val_x) == 20 and torch.equal(val_y.bincount(minlength=10), torch.full((10,), 2))
    assert len(pool) + len(val_x) == len(full_pool) and len(test_x) == 500
    assert not any(torch.equal(v, p) for v in val_x[:5] for p in pool)  # val images are out of the pool
    with pytest.raises(ValueError, match="no validation split"):
        digits_data("all", seed=0, validation=True)
    with pytest.raises(ValueError, match="positive int or 'all'"):
        digits_data(0, seed=0)


def test_choose_takes_the_best_validation_score_and_the_default_on_ties():
    grid_ = {"a": ("threshold", (0.95, 0.8)), "b": ("weight", (10.0, 30.0))}
    scores = {("a", 0.95): 0.5, ("a", 0.8): 0.5, ("b", 10.0): 0.4, ("b", 30.0): 0.6}
    chosen, record = choose(grid_, lambda m, s: scores[m, next(iter(s.values()))])
    assert chosen == {"a": {"threshold": 0.95}, "b": {"weight": 30.0}}
    assert record["b"]["val_acc"] == [0.4, 0.6]
    chosen, _ = choose({"c": ("threshold", (0.9,))}, lambda m, s: 1.0, fixed={"lr": 1e-3})
    assert chosen == {"c": {"lr": 1e-3, "threshold": 0.9}}


@pytest.mark.parametrize("method", DIGIT_METHODS)
def test_every_digits_method_runs_and_reports(method):
    result = run_digits(method, 1, steps_scale=0.012)  # 12 steps
    assert 0.0 <= result["acc"] <= 1.0
    assert sum(map(sum, result["confusion"])) == 500  # the test set
    steps = [s for s, _ in result["curve"]]
    assert steps == sorted(steps) and steps[-1] == 12


def test_fixmatch_on_digits_learns_with_two_labels_per_class():
    result = run_digits("fixmatch", 2, steps_scale=0.15)  # 150 steps
    assert result["acc"] > 0.5  # chance is 0.1


def test_unknown_methods_are_named():
    with pytest.raises(ValueError, match="unknown digits method 'mixmatch'"):
        run_digits("mixmatch", 1)
    with pytest.raises(ValueError, match="unknown shapes method 'mixmatch'"):
        run_shapes("mixmatch", 1, pretrained={})


def test_shapes_methods_from_the_shipped_checkpoints():
    from vlmlearn.label_efficiency import load_pretrained

    pretrained = load_pretrained()
    zero = run_shapes("zeroshot", 0, pretrained=pretrained)
    assert zero["acc"] > 0.8 and zero["confusion"] is None  # notebook 01's CLIP reads shapes from prompts alone
    probe = run_shapes("probe_clip", 5, pretrained=pretrained)
    assert probe["acc"] > 0.5 and sum(map(sum, probe["confusion"])) == 1000
    tuned = run_shapes("fixmatch_clip", 1, pretrained=pretrained, steps_scale=0.03)
    assert 0.0 <= tuned["acc"] <= 1.0 and tuned["curve"][-1][0] == 6


def test_the_probe_folded_into_a_linear_head_predicts_as_the_probe_does():
    from vlmlearn.eval import linear_probe
    from vlmlearn.label_efficiency import head_from_probe

    g = torch.Generator().manual_seed(0)
    x = torch.randn(60, 8, generator=g) * 5 + 3  # unstandardised features
    y = torch.arange(60) % 3
    x[torch.arange(60), y] += 4.0
    head = head_from_probe(x, y, 3)
    test = torch.randn(40, 8, generator=g) * 5 + 3
    probe = linear_probe(x, y, test, torch.zeros(40, dtype=torch.long))
    with torch.no_grad():
        assert torch.equal(head(test).argmax(1), probe["pred"])
    with pytest.raises(ValueError, match="saw 2 classes"):
        head_from_probe(x[y < 2], y[y < 2], 3)


@pytest.mark.xfail(strict=True, reason="head_from_probe copies scikit-learn's single binary row into both rows of the "
                   "head, so every prediction is class 0; benchmarks/label_efficiency_controls.py zeroes row 0 until "
                   "the fix lands with the next re-run of the grid (it changes the grid's fingerprint)")
def test_a_two_class_probe_folded_into_a_head_predicts_as_the_probe_does():
    from vlmlearn.eval import linear_probe
    from vlmlearn.label_efficiency import head_from_probe

    g = torch.Generator().manual_seed(0)
    x = torch.randn(40, 6, generator=g)
    y = torch.arange(40) % 2
    x[:, 0] += 3.0 * y
    head = head_from_probe(x, y, 2)
    test = torch.randn(30, 6, generator=g)
    test[:15, 0] += 3.0
    probe = linear_probe(x, y, test, torch.zeros(30, dtype=torch.long))
    with torch.no_grad():
        assert torch.equal(head(test).argmax(1), probe["pred"])
