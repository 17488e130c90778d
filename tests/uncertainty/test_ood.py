"""`ood_metrics`: literal values, MCResult scores, and one test per refusal."""

from __future__ import annotations

import numpy as np
import pytest

from kerasx.uncertainty import ood_metrics, summarize


def test_hand_computed_values():
    # OOD scores 0.5, 0.9 against in-distribution 0.1, 0.2, 0.6: 5 of the 6
    # (out, in) pairs are ordered correctly.
    metrics = ood_metrics([0.1, 0.2, 0.6], [0.5, 0.9])
    assert metrics["auroc"] == pytest.approx(5 / 6, abs=1e-15)
    # OOD positive, thresholds 0.9, 0.6, 0.5: precision 1, 1/2, 2/3.
    assert metrics["aupr_out"] == pytest.approx(0.5 * 1 + 0.5 * 2 / 3, abs=1e-15)
    # In positive on -score: -0.1, -0.2 (both in), -0.5 (out), -0.6 (in).
    assert metrics["aupr_in"] == pytest.approx(2 / 3 + 1 / 3 * 3 / 4, abs=1e-15)
    # Catching both OOD samples (TPR 1 >= 0.95) flags 0.6: FPR 1/3.
    assert metrics["fpr_at_95_tpr"] == pytest.approx(1 / 3, abs=1e-15)
    assert all(isinstance(value, float) for value in metrics.values())


def test_ties_count_one_half_in_auroc():
    metrics = ood_metrics([0.5, 0.5], [0.5, 0.5, 0.5])
    assert metrics["auroc"] == 0.5
    assert metrics["aupr_out"] == pytest.approx(3 / 5)
    assert metrics["aupr_in"] == pytest.approx(2 / 5)
    assert metrics["fpr_at_95_tpr"] == 1.0


def test_auroc_is_the_mann_whitney_probability():
    rng = np.random.default_rng(0)
    scores_in = np.round(rng.normal(size=60), 1)
    scores_out = np.round(rng.normal(0.5, 1.0, size=40), 1)
    diff = scores_out[:, None] - scores_in[None, :]
    expected = np.mean((diff > 0) + 0.5 * (diff == 0))
    assert ood_metrics(scores_in, scores_out)["auroc"] == pytest.approx(
        expected, abs=1e-12
    )


def test_mc_result_scores_are_accepted_directly():
    rng = np.random.default_rng(1)
    confident = np.tile([[[0.96, 0.02, 0.02]]], (5, 20, 1))
    logits = rng.normal(size=(5, 20, 3))
    uniform = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    result_in, result_out = summarize(confident), summarize(uniform)
    for field in ("predictive_entropy", "mutual_information"):
        metrics = ood_metrics(getattr(result_in, field), getattr(result_out, field))
        assert metrics["auroc"] == 1.0
    metrics = ood_metrics(1 - result_in.mean.max(-1), 1 - result_out.mean.max(-1))
    assert metrics["auroc"] == 1.0 and metrics["fpr_at_95_tpr"] == 0.0


def test_list_and_integer_scores():
    assert ood_metrics([0, 1], (2, 3))["auroc"] == 1.0


@pytest.mark.parametrize("name", ["scores_in", "scores_out"])
def test_refuses_two_dimensional_scores(name):
    args = {"scores_in": [0.1, 0.2], "scores_out": [0.3, 0.4]}
    args[name] = [[0.1, 0.2]]
    with pytest.raises(ValueError, match=rf"`{name}`.*1-D.*shape \(1, 2\)"):
        ood_metrics(**args)


def test_refuses_empty_scores():
    with pytest.raises(ValueError, match=r"`scores_out`.*non-empty.*shape \(0,\)"):
        ood_metrics([0.1], [])


def test_refuses_non_finite_scores():
    with pytest.raises(ValueError, match=r"`scores_in`.*finite.*NaN or inf"):
        ood_metrics([0.1, np.nan], [0.2])


def test_refuses_non_numeric_scores():
    with pytest.raises(ValueError, match=r"`scores_out`.*dtype <U1"):
        ood_metrics([0.1], ["a"])
