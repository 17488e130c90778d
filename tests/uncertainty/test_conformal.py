"""`conformal_sets`, `set_coverage`, `set_size`: coverage as a statistical test.

For split conformal prediction with `n` calibration rows and continuous
scores, the coverage conditional on the calibration set is
`Beta(k, n + 1 - k)` with `k = ceil((n + 1)(1 - alpha))`, so its mean is
`k / (n + 1)`, in `[1 - alpha, 1 - alpha + 1 / (n + 1))`. The empirical
coverage on `m` fresh test rows adds binomial noise; over `K` independent
splits (fresh data each) the mean coverage has variance
`(var_beta + E[C(1 - C)] / m) / K`. The tests assert the mean is above
`1 - alpha - z * sd` and below `1 - alpha + 1 / (n + 1) + z * sd` with
`z = 3.719`, the one-sided normal quantile at false-alarm rate 1e-4 each.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from kerasx.uncertainty import conformal_sets, set_coverage, set_size

N_CAL, N_TEST, N_SPLITS, N_CLASSES = 100, 100, 200, 5
Z_1E4 = 3.719


def _split(rng):
    logits = 1.5 * rng.normal(size=(N_CAL + N_TEST, N_CLASSES))
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    # Labels from sharper probabilities: a miscalibrated model, on purpose.
    sharp = probs**2 / (probs**2).sum(1, keepdims=True)
    labels = (rng.uniform(size=(len(probs), 1)) > np.cumsum(sharp, 1)).sum(1)
    return probs[:N_CAL], labels[:N_CAL], probs[N_CAL:], labels[N_CAL:]


def _bounds(alpha):
    k = math.ceil((N_CAL + 1) * (1 - alpha))
    a, b = k, N_CAL + 1 - k
    mean = a / (a + b)
    var_beta = a * b / ((a + b) ** 2 * (a + b + 1))
    second_moment = var_beta + mean**2
    var_split = var_beta + (mean - second_moment) / N_TEST
    sd = math.sqrt(var_split / N_SPLITS)
    return 1 - alpha - Z_1E4 * sd, 1 - alpha + 1 / (N_CAL + 1) + Z_1E4 * sd


@pytest.mark.parametrize(
    ("method", "randomized"), [("lac", True), ("aps", True), ("aps", False)]
)
@pytest.mark.parametrize("alpha", [0.1, 0.3])
def test_marginal_coverage_is_one_minus_alpha(method, randomized, alpha):
    rng = np.random.default_rng(12345)
    coverages = []
    for split in range(N_SPLITS):
        cal, cal_labels, test, test_labels = _split(rng)
        sets = conformal_sets(
            cal,
            cal_labels,
            test,
            alpha=alpha,
            method=method,
            randomized=randomized,
            seed=split,
        )
        coverages.append(set_coverage(sets, test_labels))
    low, high = _bounds(alpha)
    assert np.mean(coverages) >= low
    # Continuous scores: not much more than 1 - alpha + 1 / (n + 1) either.
    assert np.mean(coverages) <= high


def test_aps_is_adaptive_and_lac_smaller_on_average():
    rng = np.random.default_rng(0)
    cal, cal_labels, test, _ = _split(rng)
    lac = conformal_sets(cal, cal_labels, test, method="lac")
    aps = conformal_sets(cal, cal_labels, test, method="aps", randomized=False)
    assert lac.shape == aps.shape == (N_TEST, N_CLASSES) and lac.dtype == bool
    assert set_size(lac) <= set_size(aps)


def test_seed_makes_randomized_aps_reproducible():
    cal, cal_labels, test, _ = _split(np.random.default_rng(1))
    first = conformal_sets(cal, cal_labels, test, method="aps", seed=3)
    np.testing.assert_array_equal(
        first, conformal_sets(cal, cal_labels, test, method="aps", seed=3)
    )


def test_lac_threshold_by_hand():
    cal = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    # Scores 0.1, 0.2, 0.6, 0.3; alpha 0.4: k = ceil(5 * 0.6) = 3 -> 0.3.
    sets = conformal_sets(cal, [0, 1, 1, 1], [[0.75, 0.25], [0.5, 0.5]], alpha=0.4)
    np.testing.assert_array_equal(sets, [[True, False], [False, False]])


def test_binary_probabilities():
    sets = conformal_sets([0.1, 0.8, 0.4, 0.7], [0, 1, 1, 1], [0.45], alpha=0.2)
    np.testing.assert_array_equal(sets, [[True, True]])


def test_set_size_and_coverage_values():
    sets = np.array([[True, False, True], [False, False, False], [True, True, True]])
    assert set_size(sets) == pytest.approx(5 / 3)
    assert set_coverage(sets, [2, 0, 1]) == pytest.approx(2 / 3)
    assert set_coverage(sets, np.eye(3)[[2, 0, 1]]) == pytest.approx(2 / 3)


def test_refuses_alpha_below_one_over_n_plus_one():
    cal = np.full((9, 2), 0.5)
    with pytest.raises(ValueError, match=r"`alpha`.*>= 1 / \(n \+ 1\) = 0.1 for n=9"):
        conformal_sets(cal, np.zeros(9, int), cal, alpha=0.05)


@pytest.mark.parametrize("alpha", [0.0, 1.0, -0.1, np.nan, "0.1"])
def test_refuses_alpha_outside_the_unit_interval(alpha):
    with pytest.raises(ValueError, match=r"`alpha`.*a float in \(0.0, 1.0\)"):
        conformal_sets([[0.5, 0.5]] * 3, [0, 1, 0], [[0.5, 0.5]], alpha=alpha)


def test_refuses_an_unknown_method():
    with pytest.raises(ValueError, match=r"`method`.*one of \['lac', 'aps'\]"):
        conformal_sets([[0.5, 0.5]] * 3, [0, 1, 0], [[0.5, 0.5]], method="raps")


def test_refuses_a_non_bool_randomized():
    with pytest.raises(ValueError, match=r"`randomized`.*a bool"):
        conformal_sets([[0.5, 0.5]] * 3, [0, 1, 0], [[0.5, 0.5]], randomized=1)


def test_refuses_a_bad_seed():
    with pytest.raises(ValueError, match=r"`seed`.*an integer in \[0, 4294967295\]"):
        conformal_sets([[0.5, 0.5]] * 3, [0, 1, 0], [[0.5, 0.5]], seed=-1)


def test_refuses_a_class_count_mismatch():
    with pytest.raises(ValueError, match=r"`test_probs`.*2 classes.*3 classes"):
        conformal_sets([[0.5, 0.5]] * 3, [0, 1, 0], [[0.2, 0.3, 0.5]])


def test_refuses_non_probability_test_rows():
    with pytest.raises(ValueError, match=r"`test_probs`.*finite probabilities"):
        conformal_sets([[0.5, 0.5]] * 3, [0, 1, 0], [[2.0, -1.0]])


def test_refuses_calibration_labels_out_of_range():
    with pytest.raises(ValueError, match=r"`y_true`.*labels in \[0, 2\)"):
        conformal_sets([[0.5, 0.5]] * 3, [0, 1, 2], [[0.5, 0.5]])


def test_refuses_non_boolean_sets():
    with pytest.raises(ValueError, match=r"`sets`.*boolean array.*int64"):
        set_size(np.ones((2, 3), dtype=np.int64))


def test_refuses_one_dimensional_sets():
    with pytest.raises(ValueError, match=r"`sets`.*shape \(3,\)"):
        set_coverage(np.array([True, False, True]), [0, 1, 0])
