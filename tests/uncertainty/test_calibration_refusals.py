"""What the calibration metrics (and `summarize`) refuse instead of guessing."""

from __future__ import annotations

import re

import numpy as np
import pytest

from kerasx.uncertainty import (
    brier_score,
    expected_calibration_error,
    negative_log_likelihood,
    summarize,
)

METRICS = [expected_calibration_error, negative_log_likelihood, brier_score]
ONE_HOT = (
    "Invalid value received for argument `y_true`. Expected one-hot labels of "
    "shape (n, {c}) (each row a single 1, zeros elsewhere), or integer labels "
    "of shape (n,). Received: y_true=<row {row} is {values}>"
)


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize(
    ("y_true", "row", "values"),
    [
        ([[0, 1], [0, 0]], 1, "[0, 0]"),  # Was argmaxed to class 0.
        ([[0.3, 0.7], [1.0, 0.0]], 0, "[0.3, 0.7]"),  # Soft labels.
        ([[1, 0], [1, 1]], 1, "[1, 1]"),  # Multi-hot.
        ([[1.0, 0.0], [np.nan, 1.0]], 1, "[nan,  1.]"),
    ],
    ids=["all_zero", "soft", "multi_hot", "nan"],
)
def test_two_dimensional_labels_must_be_one_hot(metric, y_true, row, values):
    probs = [[0.5, 0.5], [0.5, 0.5]]
    message = ONE_HOT.format(c=2, row=row, values=values)
    with pytest.raises(ValueError, match=re.escape(message)):
        metric(y_true, probs)


def test_long_bad_rows_are_summarised():
    y_true = np.zeros((2, 20))
    y_true[0, 3] = 1
    message = ONE_HOT.format(c=20, row=1, values="[0., 0., 0., ..., 0., 0., 0.]")
    with pytest.raises(ValueError, match=re.escape(message)):
        brier_score(y_true, np.full((2, 20), 0.05))


def test_exact_one_hot_rows_are_accepted():
    # Integer, float and boolean one-hot rows give the integer-label result.
    probs = np.array([[0.8, 0.2], [0.4, 0.6]])
    for y_true in ([[1, 0], [0, 1]], [[1.0, 0.0], [0.0, 1.0]], np.eye(2, dtype=bool)):
        assert brier_score(y_true, probs) == pytest.approx(0.1)
        assert negative_log_likelihood(y_true, probs) == pytest.approx(
            -(np.log(0.8) + np.log(0.6)) / 2
        )


@pytest.mark.parametrize("metric", METRICS)
def test_ragged_probs(metric):
    message = (
        "Invalid value received for argument `probs`. Expected a numeric array "
        "of shape (n,) or (n, n_classes). Received: probs=<ragged rows of "
        "lengths [1, 2]>"
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        metric([0, 1], [[0.5, 0.5], [1.0]])


@pytest.mark.parametrize(
    ("probs", "description"),
    [
        ([[0.5, "a"], [0.5, 0.5]], "dtype <U32"),
        (np.array([[0.5 + 1j, 0.5], [0.5, 0.5]]), "dtype complex128"),
        ([[0.5, None], [0.5, 0.5]], "dtype object"),
    ],
    ids=["string", "complex", "none"],
)
def test_non_numeric_probs(probs, description):
    message = (
        "Expected a numeric array of shape (n,) or (n, n_classes). "
        f"Received: probs=<{description}>"
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        expected_calibration_error([0, 1], probs)


def test_ragged_labels():
    message = (
        "Invalid value received for argument `y_true`. Expected integer labels "
        "(n,) or one-hot labels (n, n_classes). Received: y_true=<ragged rows "
        "of lengths [1, 2]>"
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        brier_score([[0, 1], [1]], [[0.5, 0.5], [0.5, 0.5]])


@pytest.mark.parametrize(
    ("y_true", "shown"),
    [([0, 1e30], "[0, 1000000000000000019884624838656]"), ([0, -3], "[-3, 0]")],
    ids=["huge_float", "negative"],
)
def test_out_of_range_labels_are_shown_exactly(y_true, shown):
    # 1e30 used to be shown as -9223372036854775808: the int64 cast wrapped.
    message = f"Expected labels in [0, 2). Received: y_true=<labels in {shown}>"
    with pytest.raises(ValueError, match=re.escape(message)):
        brier_score(y_true, [[0.5, 0.5], [0.5, 0.5]])


def test_summarize_refuses_ragged_and_complex_samples():
    with pytest.raises(
        ValueError,
        match=re.escape(
            "Invalid value received for argument `samples`. Expected a numeric "
            "array of shape (T, N) or (T, N, C). Received: samples=<ragged rows "
            "of lengths [1, 2]>"
        ),
    ):
        summarize([[0.5, 0.5], [0.5]], task="regression")
    with pytest.raises(ValueError, match=re.escape("samples=<dtype complex128>")):
        summarize(np.ones((2, 3), complex), task="regression")
