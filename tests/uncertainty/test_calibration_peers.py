"""kerasx calibration metrics against netcal, torchmetrics and scikit-learn.

The peers' values were recorded by `scripts/generate_calibration_fixture.py`
(versions in the fixture) on the seeded inputs stored beside them. Tolerances:
NLL and Brier are the same float64 formulas (1e-12); torchmetrics computes
its ECE in float32 (1e-6).
"""

from __future__ import annotations

import json
import pathlib

import numpy as np
import pytest

from kerasx.uncertainty import (
    brier_score,
    expected_calibration_error,
    negative_log_likelihood,
)

FIXTURE = json.loads(
    (
        pathlib.Path(__file__).parents[1] / "fixtures" / "calibration_peers.json"
    ).read_text()
)


def test_multiclass_ece_nll_brier_match_peers():
    case = FIXTURE["multiclass"]
    probs, labels = np.array(case["probs"]), np.array(case["labels"])
    ece = expected_calibration_error(labels, probs, n_bins=FIXTURE["n_bins"])
    assert ece == pytest.approx(case["netcal_ece"], abs=1e-12)
    assert ece == pytest.approx(case["torchmetrics_ece"], abs=1e-6)
    assert negative_log_likelihood(labels, probs) == pytest.approx(
        case["sklearn_log_loss"], abs=1e-12
    )
    assert brier_score(labels, probs) == pytest.approx(
        case["numpy_brier_sum_over_classes"], abs=1e-12
    )


def test_binary_brier_is_sklearns_for_both_layouts():
    case = FIXTURE["binary"]
    p, labels = np.array(case["p"]), np.array(case["labels"])
    expected = case["sklearn_brier_score_loss"]
    assert brier_score(labels, p) == pytest.approx(expected, abs=1e-12)
    assert brier_score(labels, np.stack([1 - p, p], 1)) == pytest.approx(
        expected, abs=1e-12
    )
    assert negative_log_likelihood(labels, p) == pytest.approx(
        case["sklearn_log_loss"], abs=1e-12
    )


def test_binary_ece_is_top_label():
    # torchmetrics' two-column (top-label) ECE; the positive-class ECE of
    # netcal / torchmetrics' BinaryCalibrationError is a different quantity.
    case = FIXTURE["binary"]
    p, labels = np.array(case["p"]), np.array(case["labels"])
    ece = expected_calibration_error(labels, p, n_bins=FIXTURE["n_bins"])
    assert ece == pytest.approx(
        case["torchmetrics_multiclass_ece_of_two_columns"], abs=1e-6
    )
    assert abs(ece - case["netcal_ece_positive_class"]) > 0.01


def test_nll_floor_is_sklearns():
    case = FIXTURE["zero_probability"]
    value = negative_log_likelihood(case["labels"], case["probs"])
    assert value == pytest.approx(case["sklearn_log_loss"], abs=1e-12)
    # (-log(eps) - log(0.5)) / 2 by hand.
    assert value == pytest.approx((36.04365338911715 + 0.6931471805599453) / 2)


def test_right_closed_bins_agree_with_netcal_not_torchmetrics():
    case = FIXTURE["bin_edge"]
    ece = expected_calibration_error(case["labels"], case["probs"], case["n_bins"])
    assert ece == pytest.approx(0.5625)  # (|1 - 0.5| + |0 - 0.625|) / 2
    assert ece == pytest.approx(case["netcal_ece"], abs=1e-12)
    assert case["torchmetrics_ece"] == pytest.approx(0.0625, abs=1e-6)
