"""Tests for the calibration metrics exported by `kerasx.uncertainty`."""

from __future__ import annotations

import math

import numpy as np
import pytest

from kerasx.uncertainty import (
    brier_score,
    expected_calibration_error,
    negative_log_likelihood,
)
from kerasx.uncertainty.calibration import reliability_bins

PROBS = np.array([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7], [0.2, 0.8]])
LABELS = np.array([0, 1, 1, 0])


def test_ece_hand_computed():
    # Confidences 0.9 (right), 0.6 (wrong), 0.7 (right), 0.8 (wrong).
    # 2 bins (0, .5], (.5, 1]: all in bin 1, accuracy 0.5, confidence 0.75.
    assert expected_calibration_error(LABELS, PROBS, n_bins=2) == pytest.approx(0.25)
    # 10 bins: one row per bin: (0.1 + 0.6 + 0.3 + 0.8) / 4.
    assert expected_calibration_error(LABELS, PROBS, n_bins=10) == pytest.approx(0.45)
    # 1 bin: |mean accuracy - mean confidence| = |0.5 - 0.75|.
    assert expected_calibration_error(LABELS, PROBS, n_bins=1) == pytest.approx(0.25)


def test_ece_perfectly_calibrated_and_one_hot_labels():
    probs = np.array([[0.75, 0.25]] * 4)
    labels = np.array([0, 0, 0, 1])  # 75 % accuracy at 75 % confidence.
    assert expected_calibration_error(labels, probs) == pytest.approx(0.0)
    one_hot = np.eye(2)[LABELS]
    assert expected_calibration_error(one_hot, PROBS, n_bins=10) == pytest.approx(0.45)


def test_reliability_bins_edges_are_right_closed():
    probs = np.array([[0.5, 0.5], [0.6, 0.4], [1.0, 0.0]])
    edges, accuracy, confidence, counts = reliability_bins([0, 1, 0], probs, n_bins=2)
    np.testing.assert_allclose(edges, [0.0, 0.5, 1.0])
    np.testing.assert_array_equal(counts, [1, 2])  # 0.5 falls in (0, 0.5].
    np.testing.assert_allclose(accuracy, [1.0, 0.5])
    np.testing.assert_allclose(confidence, [0.5, 0.8])
    _, accuracy, _, counts = reliability_bins([0], [[0.9, 0.1]], n_bins=4)
    np.testing.assert_array_equal(counts, [0, 0, 0, 1])
    assert np.isnan(accuracy[:3]).all()


def test_nll_hand_computed():
    expected = -(math.log(0.9) + math.log(0.4) + math.log(0.7) + math.log(0.2)) / 4
    assert negative_log_likelihood(LABELS, PROBS) == pytest.approx(expected, rel=1e-12)
    # A zero probability on the true class costs -log(float64 eps) nats, not inf.
    assert negative_log_likelihood([1], [[1.0, 0.0]]) == pytest.approx(52 * math.log(2))


def test_brier_hand_computed():
    # Two classes: (p_1 - y)^2 per row -> (0.01, 0.36, 0.09, 0.64) / 4.
    assert brier_score(LABELS, PROBS) == pytest.approx(0.275)
    assert brier_score(LABELS, PROBS[:, 1]) == pytest.approx(0.275)
    # Three classes: the sum over the classes.
    assert brier_score([2], [[0.0, 0.0, 1.0]]) == 0.0
    assert brier_score([0], [[0.0, 0.0, 1.0]]) == pytest.approx(2.0)
    assert brier_score([0], [[0.5, 0.25, 0.25]]) == pytest.approx(0.375)


def test_binary_probabilities():
    p = np.array([0.9, 0.4, 0.7])
    y = np.array([1, 1, 0])
    assert brier_score(y, p) == pytest.approx((0.01 + 0.36 + 0.49) / 3)
    expected = -(math.log(0.9) + math.log(0.4) + math.log(0.3)) / 3
    assert negative_log_likelihood(y, p[:, None]) == pytest.approx(expected)
    # Confidences 0.9 (right), 0.6 (wrong: predicts 0), 0.7 (wrong).
    assert expected_calibration_error(y, p, n_bins=1) == pytest.approx(
        abs(1 / 3 - (0.9 + 0.6 + 0.7) / 3)
    )


@pytest.mark.parametrize(
    "metric", [expected_calibration_error, negative_log_likelihood, brier_score]
)
@pytest.mark.parametrize(
    ("y_true", "probs", "match"),
    [
        (
            [0, 1],
            [[0.5, 0.5], [0.5, 0.6]],
            r"`probs`. Expected finite probabilities in \[0, 1\], each row summing"
            r" to 1 \(within 0.001\).*Received: probs=<row 1 has values in "
            r"\[0.5, 0.6\] and a sum 0.1 away from 1>",
        ),
        (
            [0, 1],
            [[np.nan, 1.0], [0.5, 0.5]],
            r"`probs`. Expected finite.*probs=<row 0 has NaN or inf values>",
        ),
        (
            [0, 1],
            [[0.5, 0.5], [1.5, -0.5]],
            r"`probs`. Expected finite.*probs=<row 1 has values in \[-0.5, 1.5\]",
        ),
        ([0, 1, 1], [[0.5, 0.5], [0.5, 0.5]], r"`y_true`. Expected 2 labels"),
        ([0, 2], [[0.5, 0.5], [0.5, 0.5]], r"`y_true`. Expected labels in \[0, 2\)"),
        ([0, 0.5], [[0.5, 0.5], [0.5, 0.5]], r"`y_true`. Expected integer class"),
        (np.eye(3)[:2], [[0.5, 0.5], [0.5, 0.5]], r"`y_true`. Expected one-hot"),
        ([], np.zeros((0, 2)), r"`probs`. Expected a non-empty array"),
    ],
    ids=["sum", "nan", "range", "length", "label", "float", "onehot", "empty"],
)
def test_invalid_inputs(metric, y_true, probs, match):
    with pytest.raises(
        ValueError, match=rf"Invalid value received for argument {match}"
    ):
        metric(y_true, probs)


@pytest.mark.parametrize("n_bins", [0, True, 2.0, "15"])
def test_invalid_n_bins(n_bins):
    with pytest.raises(
        ValueError, match=r"argument `n_bins`. Expected an integer >= 1"
    ):
        expected_calibration_error([0], [[1.0, 0.0]], n_bins=n_bins)


def test_numpy_integer_n_bins():
    assert expected_calibration_error(
        LABELS, PROBS, n_bins=np.int64(10)
    ) == pytest.approx(0.45)
