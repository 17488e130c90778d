"""Equal-mass bins and bootstrap intervals of `expected_calibration_error`.

References are NumPy float64 re-implementations written here (bins by boolean
masks, the resampling loop drawn from its own generator); the metric is NumPy
float64 too, so agreement is to 1e-12 (summation order only).
"""

from __future__ import annotations

import numpy as np
import pytest

from kerasx.uncertainty import expected_calibration_error
from kerasx.uncertainty.calibration import CalibrationEstimate, reliability_bins


def _reference_ece(labels, probs, n_bins, binning):
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    if binning == "uniform":
        edges = np.linspace(0.0, 1.0, n_bins + 1)
    else:
        edges = np.quantile(confidence, np.linspace(0.0, 1.0, n_bins + 1))
    total = 0.0
    for b in range(n_bins):
        in_bin = (confidence > edges[b]) & (confidence <= edges[b + 1])
        if b == 0:
            in_bin |= confidence <= edges[0]
        if in_bin.any():
            gap = abs(correct[in_bin].mean() - confidence[in_bin].mean())
            total += in_bin.sum() / labels.shape[0] * gap
    return total


def _softmax_rows(n, n_classes, seed):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, n_classes)) * 2.0
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    # Labels drawn from the probabilities themselves: a calibrated model.
    labels = np.array([rng.choice(n_classes, p=row) for row in probs])
    return labels, probs


def test_quantile_bins_hold_equal_mass():
    # 12 distinct confidences, 3 bins: 4 rows each, by sorted confidence.
    confidence = np.array(
        [0.95, 0.52, 0.81, 0.66, 0.74, 0.58, 0.99, 0.88, 0.61, 0.7, 0.55, 0.9]
    )
    probs = np.stack([confidence, 1.0 - confidence], axis=1)
    labels = np.array([0, 1, 0, 0, 1, 1, 0, 0, 0, 1, 0, 0])
    correct = (labels == 0).astype(np.float64)
    order = np.argsort(confidence)
    expected = sum(
        4 / 12 * abs(correct[rows].mean() - confidence[rows].mean())
        for rows in order.reshape(3, 4)
    )
    ece = expected_calibration_error(labels, probs, 3, binning="quantile")
    assert ece == pytest.approx(expected, rel=1e-12, abs=1e-15)
    _, accuracy, mean_confidence, counts = reliability_bins(
        labels, probs, 3, binning="quantile"
    )
    np.testing.assert_array_equal(counts, [4, 4, 4])
    np.testing.assert_allclose(mean_confidence, confidence[order].reshape(3, 4).mean(1))
    np.testing.assert_allclose(accuracy, correct[order].reshape(3, 4).mean(1))
    # The same rows as positive-class probabilities `(n,)`: the same top label.
    assert expected_calibration_error(
        labels, 1.0 - confidence, 3, binning="quantile"
    ) == pytest.approx(expected, rel=1e-12, abs=1e-15)


def test_quantile_ties_share_a_bin_and_repeated_edges_leave_it_empty():
    # Sorted [0.6, 0.7, 0.7, 0.7, 0.7, 0.9]: both inner quantiles are 0.7, so
    # bin 0 is [0.6, 0.7] (5 rows), bin 1 is (0.7, 0.7] (empty), bin 2 (0.7, 0.9].
    confidence = np.array([0.7, 0.6, 0.7, 0.9, 0.7, 0.7])
    probs = np.stack([confidence, 1.0 - confidence], axis=1)
    labels = np.array([0, 0, 1, 0, 0, 1])
    edges, _, _, counts = reliability_bins(labels, probs, 3, binning="quantile")
    np.testing.assert_allclose(edges, [0.6, 0.7, 0.7, 0.9])
    np.testing.assert_array_equal(counts, [5, 0, 1])
    # Bin 0: accuracy 3/5, confidence 3.4/5; bin 2: accuracy 1, confidence 0.9.
    expected = 5 / 6 * abs(3 / 5 - 3.4 / 5) + 1 / 6 * 0.1
    assert expected_calibration_error(
        labels, probs, 3, binning="quantile"
    ) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("binning", ["uniform", "quantile"])
def test_ece_matches_mask_reference(binning):
    labels, probs = _softmax_rows(200, 4, seed=1)
    assert expected_calibration_error(
        labels, probs, 10, binning=binning
    ) == pytest.approx(_reference_ece(labels, probs, 10, binning), rel=1e-12)


def test_uniform_binning_is_the_default():
    labels, probs = _softmax_rows(50, 3, seed=2)
    assert expected_calibration_error(labels, probs, 7) == expected_calibration_error(
        labels, probs, 7, binning="uniform"
    )


@pytest.mark.parametrize("binning", ["uniform", "quantile"])
def test_bootstrap_interval_matches_numpy_resampling(binning):
    labels, probs = _softmax_rows(60, 3, seed=3)
    estimate = expected_calibration_error(
        labels, probs, 5, binning=binning, bootstrap=50, confidence=0.9, seed=7
    )
    indices = np.random.default_rng(7).integers(0, 60, size=(50, 60))
    values = [_reference_ece(labels[rows], probs[rows], 5, binning) for rows in indices]
    low, high = np.percentile(values, [5.0, 95.0])
    assert isinstance(estimate, CalibrationEstimate)
    assert estimate.value == expected_calibration_error(
        labels, probs, 5, binning=binning
    )
    assert estimate.low == pytest.approx(low, rel=1e-12, abs=1e-15)
    assert estimate.high == pytest.approx(high, rel=1e-12, abs=1e-15)


def test_bootstrap_same_seed_same_interval():
    labels, probs = _softmax_rows(80, 3, seed=4)
    first = expected_calibration_error(labels, probs, bootstrap=30, seed=11)
    again = expected_calibration_error(labels, probs, bootstrap=30, seed=np.int64(11))
    assert first == again
    assert all(type(field) is float for field in first)


def test_bootstrap_interval_contains_the_value():
    labels, probs = _softmax_rows(500, 3, seed=5)
    estimate = expected_calibration_error(labels, probs, 10, bootstrap=200, seed=0)
    value, low, high = estimate
    assert low < value < high
    assert low >= 0.0 and high <= 1.0


def test_single_resample_interval_is_its_value():
    labels, probs = _softmax_rows(20, 2, seed=6)
    estimate = expected_calibration_error(labels, probs, 4, bootstrap=1, seed=3)
    rows = np.random.default_rng(3).integers(0, 20, size=(1, 20))[0]
    resampled = _reference_ece(labels[rows], probs[rows], 4, "uniform")
    assert estimate.low == pytest.approx(resampled, rel=1e-12, abs=1e-15)
    assert estimate.high == pytest.approx(resampled, rel=1e-12, abs=1e-15)


ARGS = ([0, 1], [[0.8, 0.2], [0.4, 0.6]])


@pytest.mark.parametrize("binning", ["equal_mass", "Quantile", None, 1])
def test_invalid_binning(binning):
    with pytest.raises(
        ValueError,
        match=r"argument `binning`. Expected one of \['uniform', 'quantile'\]",
    ):
        expected_calibration_error(*ARGS, binning=binning)


def test_invalid_binning_in_reliability_bins():
    with pytest.raises(ValueError, match=r"argument `binning`. Expected one of"):
        reliability_bins(*ARGS, binning="equal")


@pytest.mark.parametrize("bootstrap", [0, -1, 1.5, True, "10"])
def test_invalid_bootstrap(bootstrap):
    with pytest.raises(
        ValueError,
        match=r"argument `bootstrap`. Expected an integer >= 1 or None",
    ):
        expected_calibration_error(*ARGS, bootstrap=bootstrap)


@pytest.mark.parametrize("confidence", [0, 1, 1.5, -0.5, float("nan"), True, "0.9"])
def test_invalid_confidence(confidence):
    with pytest.raises(
        ValueError,
        match=r"argument `confidence`. Expected a float in \(0.0, 1.0\)",
    ):
        expected_calibration_error(*ARGS, bootstrap=10, confidence=confidence)


@pytest.mark.parametrize("seed", [-1, 1.5, True, "0"])
def test_invalid_seed(seed):
    with pytest.raises(
        ValueError, match=r"argument `seed`. Expected an integer >= 0 or None"
    ):
        expected_calibration_error(*ARGS, bootstrap=10, seed=seed)
