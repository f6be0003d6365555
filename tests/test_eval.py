import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vlmlearn.eval import (
    accuracy,
    confusion_matrix,
    embed,
    linear_probe,
    relevance_from_keys,
    retrieval_recall,
    zero_shot_classifier,
    zero_shot_predict,
)


def test_perfect_and_reversed_retrieval():
    sim = torch.eye(5)
    r = retrieval_recall(sim, torch.arange(5), ks=(1, 5))
    assert r == {"i2t_r1": 1.0, "t2i_r1": 1.0, "i2t_r5": 1.0, "t2i_r5": 1.0}
    r = retrieval_recall(-torch.eye(5), torch.arange(5), ks=(1, 4, 5))  # the match ranks last
    assert r["i2t_r1"] == 0.0 and r["i2t_r4"] == 0.0 and r["i2t_r5"] == 1.0


def test_several_captions_per_image_count_as_hits():
    # image 0 has texts 0 and 1; image 1 has text 2. Image 0 ranks text 1 first: a hit.
    sim = torch.tensor([[0.1, 0.9, 0.0], [0.0, 0.2, 0.8]])
    r = retrieval_recall(sim, torch.tensor([0, 0, 1]), ks=(1,))
    assert r["i2t_r1"] == 1.0 and r["t2i_r1"] == 1.0
    sim[0] = torch.tensor([0.1, 0.0, 0.9])  # now image 0 prefers image 1's caption
    assert retrieval_recall(sim, torch.tensor([0, 0, 1]), ks=(1,))["i2t_r1"] == 0.5


def test_identical_captions_count_with_content_keys():
    # two images show the same thing; the texts are their identical captions
    keys = ["red circle", "red circle", "blue square"]
    rel = relevance_from_keys(keys, keys)
    sim = torch.tensor([[0.5, 0.9, 0.0], [0.9, 0.5, 0.0], [0.0, 0.0, 1.0]])  # swaps the twins
    assert retrieval_recall(sim, torch.arange(3), ks=(1,))["i2t_r1"] == pytest.approx(1 / 3)
    assert retrieval_recall(sim, rel, ks=(1,)) == {"i2t_r1": 1.0, "t2i_r1": 1.0}


def test_retrieval_rejects_bad_input():
    with pytest.raises(ValueError, match="one image index per text"):
        retrieval_recall(torch.eye(3), torch.arange(2))
    with pytest.raises(ValueError, match="NaN"):
        retrieval_recall(torch.full((2, 2), float("nan")), torch.arange(2))
    with pytest.raises(ValueError, match="must match"):
        retrieval_recall(torch.eye(3), torch.ones(2, 3, dtype=torch.bool))


def test_zero_shot_with_prompt_ensembling():
    basis = torch.eye(4)
    table = {"a red": basis[0] + 0.1 * basis[3], "a blue": basis[1],
             "the red": basis[0] - 0.1 * basis[3], "the blue": basis[1]}

    def encode(prompts):
        return torch.stack([table[p] for p in prompts])

    clf = zero_shot_classifier(encode, ["red", "blue"], ["a {}", "the {}"])
    assert clf.shape == (2, 4) and torch.allclose(clf[0], basis[0])  # the template noise averages out
    images = torch.stack([basis[1] * 3, basis[0] + 0.2 * basis[1]])
    assert zero_shot_predict(images, clf).tolist() == [1, 0]
    with pytest.raises(ValueError, match="slot"):
        zero_shot_classifier(encode, ["red"], ["a red thing"])


def test_accuracy_confusion_and_probe():
    assert accuracy(torch.tensor([0, 1, 2]), torch.tensor([0, 1, 1])) == pytest.approx(2 / 3)
    assert accuracy(torch.tensor([[0.1, 0.9], [0.8, 0.2]]), torch.tensor([1, 0])) == 1.0
    cm = confusion_matrix(torch.tensor([0, 1, 1, 2]), torch.tensor([0, 1, 2, 2]), 3)
    assert cm.tolist() == [[1, 0, 0], [0, 1, 0], [0, 1, 1]]
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        confusion_matrix(torch.tensor([3]), torch.tensor([0]), 3)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(400, 10, generator=g)
    y = (x[:, 2] > 0).long()
    out = linear_probe(x[:300], y[:300], x[300:], y[300:])
    assert out["accuracy"] > 0.9 and out["pred"].shape == (100,)
    noise = linear_probe(torch.randn(300, 10, generator=g), y[:300], torch.randn(100, 10, generator=g), y[300:])
    assert noise["accuracy"] < 0.7
    with pytest.raises(ValueError, match="NaN"):
        linear_probe(x[:10] * float("nan"), y[:10], x[:5], y[:5])


def test_embed_batches_and_normalizes():
    lin = torch.nn.Linear(4, 3)
    x = torch.randn(10, 4)
    z = embed(lin, x, batch_size=3)
    assert z.shape == (10, 3) and torch.allclose(z, F.normalize(lin(x), dim=-1).detach(), atol=1e-6)


def test_linear_probe_finds_the_same_classifier_as_sklearns_default_solver():
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    g = torch.Generator().manual_seed(1)
    x = torch.randn(600, 40, generator=g)
    y = (x[:, :5] @ torch.randn(5, 4, generator=g)).argmax(1)  # 4 classes, not separable by one feature
    probe = linear_probe(x[:400], y[:400], x[400:], y[400:])["model"][-1]
    reference = LogisticRegression(max_iter=5000).fit(StandardScaler().fit_transform(x[:400]), y[:400])
    assert probe.solver == "newton-cg"
    assert np.abs(probe.coef_ - reference.coef_).max() < 0.01 * np.abs(reference.coef_).max()  # both stop at tol 1e-4
