"""Calibration metrics in NumPy (float64): ECE, negative log-likelihood, Brier.

Conventions, and where the common peers differ:

- ECE is top-label (confidence `max_c p_c`, also for binary input), with
  equal-width bins closed on the right, `(edges[b], edges[b + 1]]`, as Guo et
  al. and netcal; torchmetrics closes them on the left, so a confidence lying
  exactly on an edge (0.5 with 4 bins) lands one bin higher there. For binary
  `(n,)` input netcal and torchmetrics' `BinaryCalibrationError` score the
  positive-class probability instead of the top label. Equal-mass
  (`binning="quantile"`) bins use the same right-closed rule on edges at the
  quantiles of the confidences.
- NLL floors probabilities at the float64 epsilon, as scikit-learn's
  `log_loss` clips.
- Binary Brier is `mean((p - y)^2)` for `(n,)` and for `(n, 2)` input, as
  scikit-learn's `brier_score_loss`; the multi-class formula (a sum over the
  classes) would give twice that for two columns.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from kerasx import _checks
from kerasx.uncertainty import _stats

_PROBS_SHAPE = "a non-empty array of shape (n,) or (n, n_classes)"
_PROBS_NUMERIC = "a numeric array of shape (n,) or (n, n_classes)"
_LABELS_NUMERIC = "integer labels (n,) or one-hot labels (n, n_classes)"
_BINNINGS = ("uniform", "quantile")


class CalibrationEstimate(NamedTuple):
    """A calibration metric with a bootstrap percentile interval.

    Returned by `expected_calibration_error(..., bootstrap=n_resamples)`.

    Attributes:
        value: The metric on the full data (the same float as without
            `bootstrap`).
        low: Lower end of the percentile interval of the resampled metrics.
        high: Upper end of the percentile interval.
    """

    value: float
    low: float
    high: float


def _one_hot_labels(y_true, n_classes):
    """Class indices of `(n, n_classes)` rows that are each exactly one-hot."""
    ones = y_true == 1
    valid = np.all(ones | (y_true == 0), axis=1) & (ones.sum(axis=1) == 1)
    if not valid.all():
        row = int(np.argmin(valid))
        values = np.array2string(y_true[row], threshold=8, separator=", ")
        raise _checks.invalid_described(
            "y_true",
            f"one-hot labels of shape (n, {n_classes}) (each row a single 1, "
            "zeros elsewhere), or integer labels of shape (n,)",
            f"row {row} is {values}",
        )
    return np.argmax(ones, axis=1)


def check_probs(probs, name="probs"):
    """Validates `probs` and returns `(probs, binary)`, probs as float64 `(n, C)`.

    `(n,)` / `(n, 1)` positive-class probabilities are expanded to the two
    columns `[1 - p, p]` and reported as `binary`. The probability check is the
    one `mc_predict` and `summarize` apply to their samples.
    """
    probs = _stats.numeric_array(name, probs, _PROBS_NUMERIC).astype(np.float64)
    binary = probs.ndim == 1 or (probs.ndim == 2 and probs.shape[1] == 1)
    if probs.ndim not in (1, 2) or probs.shape[0] == 0:
        raise _checks.invalid_described(
            name, _PROBS_SHAPE, f"array of shape {probs.shape}"
        )
    if binary:
        probs = probs.reshape(-1, 1)
        probs = np.concatenate([1.0 - probs, probs], axis=1)
    problem = _stats.probability_problem(*_stats.row_checks(probs))
    if problem is not None:
        row, description = problem
        raise _checks.invalid_described(
            name,
            "finite probabilities in [0, 1], each row summing to 1 (within "
            f"{_stats.PROBABILITY_TOLERANCE}); apply a softmax to logits",
            f"row {row} has {description}",
        )
    return probs, binary


def check_inputs(y_true, probs):
    """Validates and returns `(labels, probs)` as int64 / float64 arrays.

    `probs` is `(n, n_classes)` rows of probabilities, or `(n,)` / `(n, 1)`
    probabilities of the positive class (expanded to two columns), checked by
    `check_probs`. `y_true` is `(n,)` integer labels or `(n, n_classes)`
    one-hot rows (each exactly one 1; soft, multi-hot and all-zero rows are
    refused rather than argmaxed).
    """
    probs, binary = check_probs(probs)
    y_true = _stats.numeric_array("y_true", y_true, _LABELS_NUMERIC)
    if y_true.ndim == 2 and y_true.shape[1] > 1 and not binary:
        if y_true.shape != probs.shape:
            raise _checks.invalid_described(
                "y_true",
                f"one-hot labels of shape {probs.shape}",
                f"array of shape {y_true.shape}",
            )
        y_true = _one_hot_labels(y_true, probs.shape[1])
    y_true = y_true.reshape(-1) if y_true.ndim == 2 and y_true.shape[1] == 1 else y_true
    if y_true.ndim != 1 or y_true.shape[0] != probs.shape[0]:
        raise _checks.invalid_described(
            "y_true",
            f"{probs.shape[0]} labels, one per row of `probs`",
            f"array of shape {y_true.shape}",
        )
    if y_true.dtype.kind == "f" and (
        not np.all(np.isfinite(y_true)) or np.any(y_true != np.round(y_true))
    ):
        raise _checks.invalid_described(
            "y_true", "integer class labels", "non-integer values"
        )
    # The range is checked before the cast: 1e30 or 2**63 would wrap in int64.
    if y_true.min() < 0 or y_true.max() >= probs.shape[1]:
        raise _checks.invalid_described(
            "y_true",
            f"labels in [0, {probs.shape[1]})",
            f"labels in [{int(y_true.min())}, {int(y_true.max())}]",
        )
    return y_true.astype(np.int64), probs


def _bin_edges(confidence, n_bins, binning):
    """Equal-width edges on `[0, 1]`, or edges at the confidence quantiles."""
    if binning == "uniform":
        return np.linspace(0.0, 1.0, n_bins + 1)
    # NumPy's default (linear) quantiles: with n distinct confidences and
    # n_bins dividing n, every inner edge falls strictly between two sorted
    # confidences, so each right-closed bin holds exactly n / n_bins rows.
    return np.quantile(confidence, np.linspace(0.0, 1.0, n_bins + 1))


def _bin_statistics(confidence, correct, n_bins, binning):
    """`(edges, accuracy, mean_confidence, counts)` of 1-D float64 arrays."""
    edges = _bin_edges(confidence, n_bins, binning)
    # `right=True` puts c in bin b when edges[b] < c <= edges[b + 1]; the
    # clip puts c <= edges[1] in bin 0 and c > edges[-2] in the last bin.
    index = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, n_bins - 1)
    counts = np.bincount(index, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        accuracy = np.bincount(index, correct, n_bins) / counts
        mean_confidence = np.bincount(index, confidence, n_bins) / counts
    return edges, accuracy, mean_confidence, counts


def _top_label(y_true, probs):
    """Validated `(confidence, correct)` of the top-1 prediction, float64."""
    labels, probs = check_inputs(y_true, probs)
    confidence = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == labels).astype(np.float64)
    return confidence, correct


def _ece(confidence, correct, n_bins, binning):
    _, accuracy, mean_confidence, counts = _bin_statistics(
        confidence, correct, n_bins, binning
    )
    filled = counts > 0
    gaps = np.abs(accuracy[filled] - mean_confidence[filled])
    return float(np.sum(counts[filled] * gaps) / counts.sum())


def reliability_bins(y_true, probs, n_bins=15, *, binning="uniform"):
    """Per-bin `(edges, accuracy, confidence, counts)` of the top-1 prediction.

    Bin `b` holds the rows whose confidence `max_c p_c` lies in
    `(edges[b], edges[b + 1]]` (the lowest confidence is in bin 0 also when it
    equals `edges[0]`); empty bins have NaN accuracy and confidence. `binning`
    is `"uniform"` (equal-width edges on `[0, 1]`) or `"quantile"` (edges at
    the confidence quantiles, see `expected_calibration_error`).
    """
    n_bins = _checks.integer("n_bins", n_bins, minimum=1)
    binning = _checks.choice("binning", binning, _BINNINGS)
    confidence, correct = _top_label(y_true, probs)
    return _bin_statistics(confidence, correct, n_bins, binning)


def expected_calibration_error(
    y_true: ArrayLike,
    probs: ArrayLike,
    n_bins: int = 15,
    *,
    binning: str = "uniform",
    bootstrap: int | None = None,
    confidence: float = 0.95,
    seed: int | None = None,
) -> float | CalibrationEstimate:
    """Expected calibration error of the top-1 prediction.

    With the rows split into `n_bins` confidence bins `B_b`:
    `ECE = sum_b |B_b| / n * |accuracy(B_b) - confidence(B_b)|`, where
    confidence is `max_c p_c` and accuracy the fraction of correct argmaxes.
    Bin `b` holds the confidences in `(edges[b], edges[b + 1]]`, the lowest
    confidence included in bin 0.

    `binning="uniform"` uses equal-width edges `b / n_bins` on `[0, 1]`.
    `binning="quantile"` uses equal-mass (adaptive) edges
    `np.quantile(confidences, np.linspace(0, 1, n_bins + 1))` (NumPy's linear
    interpolation): with distinct confidences each bin holds `n / n_bins` rows
    when `n_bins` divides `n` (4 per bin for `n = 12`, `n_bins = 3`), and
    sizes differ by at most one otherwise. Ties are never split: equal
    confidences always share a bin, so a tie spanning a quantile can make
    bins larger than `n / n_bins` and repeat an edge; a bin between repeated
    edges is empty and carries no weight, so fewer than `n_bins` bins may be
    filled.

    `bootstrap=n_resamples` adds a percentile interval. The row indices are
    drawn in one call, `np.random.default_rng(seed).integers(0, n,
    size=(n_resamples, n))`; resample `r` is the rows `indices[r]` (with
    replacement), its ECE computed as above (quantile edges recomputed on the
    resample). `low` and `high` are `np.percentile` (linear) of the
    `n_resamples` values at `50 (1 - confidence)` and `50 (1 + confidence)`.

    Args:
        y_true: Integer labels `(n,)` or one-hot labels `(n, n_classes)`
            (exactly one 1 per row; soft or multi-hot rows are refused).
        probs: Probabilities `(n, n_classes)` (rows sum to 1), or `(n,)`
            positive-class probabilities for a binary problem.
        n_bins: Number of bins.
        binning: `"uniform"` (equal-width bins) or `"quantile"` (equal-mass
            bins).
        bootstrap: Number of bootstrap resamples (an integer >= 1), or None
            for the ECE alone.
        confidence: Coverage of the bootstrap interval, in `(0, 1)`.
        seed: Seed of `np.random.default_rng` (an integer >= 0), or None for
            fresh entropy. Only used with `bootstrap`.

    Returns:
        The ECE, a float in `[0, 1]`, when `bootstrap` is None; otherwise a
        `CalibrationEstimate(value, low, high)` with `value` that same float.

    Raises:
        ValueError: If `n_bins` is not an integer >= 1, `binning` not
            `"uniform"` or `"quantile"`, `bootstrap` not None or an integer >=
            1, `confidence` not a float in (0, 1), or `seed` not None or an
            integer >= 0; if `y_true` is not integer labels in `[0, n_classes)`
            (one per row of `probs`) or exactly one-hot rows; if `probs` is
            not a non-empty numeric array of shape `(n,)` or
            `(n, n_classes)` of finite probabilities in [0, 1] whose rows sum
            to 1 (within 1e-3; the message names the first bad row).

    Example:

    ```python
    >>> from kerasx.uncertainty import expected_calibration_error
    >>> ece = expected_calibration_error([0, 1], [[0.9, 0.1], [0.6, 0.4]], n_bins=10)
    >>> round(ece, 6)  # (|1 - 0.9| + |0 - 0.6|) / 2
    0.35
    >>> labels = [0, 0, 0, 1]  # Confidences 0.9, 0.8, 0.7 right; 0.6 wrong.
    >>> probs = [[0.9, 0.1], [0.8, 0.2], [0.7, 0.3], [0.6, 0.4]]
    >>> round(expected_calibration_error(labels, probs, 2), 6)  # All in (0.5, 1].
    0.0
    >>> # Two rows per bin: |0.5 - 0.65| / 2 + |1 - 0.85| / 2.
    >>> round(expected_calibration_error(labels, probs, 2, binning="quantile"), 6)
    0.15
    >>> estimate = expected_calibration_error(
    ...     labels, probs, 2, binning="quantile", bootstrap=200, seed=0)
    >>> [round(number, 4) for number in estimate]  # value, 95 % interval
    [0.15, 0.025, 0.475]

    ```

    Reference:
        Guo et al., "On Calibration of Modern Neural Networks", ICML 2017;
        equal-mass bins: Nixon et al., "Measuring Calibration in Deep
        Learning", CVPR Workshops 2019; percentile bootstrap: Efron and
        Tibshirani, "An Introduction to the Bootstrap", 1993, ch. 13.
    """
    n_bins = _checks.integer("n_bins", n_bins, minimum=1)
    binning = _checks.choice("binning", binning, _BINNINGS)
    bootstrap = _checks.integer("bootstrap", bootstrap, minimum=1, allow_none=True)
    confidence = _checks.number(
        "confidence", confidence, low=0.0, high=1.0, low_open=True, high_open=True
    )
    seed = _checks.integer("seed", seed, minimum=0, allow_none=True)
    top_confidence, correct = _top_label(y_true, probs)
    value = _ece(top_confidence, correct, n_bins, binning)
    if bootstrap is None:
        return value
    n = top_confidence.shape[0]
    indices = np.random.default_rng(seed).integers(0, n, size=(bootstrap, n))
    resampled = np.array(
        [_ece(top_confidence[rows], correct[rows], n_bins, binning) for rows in indices]
    )
    low, high = np.percentile(
        resampled, [50.0 * (1.0 - confidence), 50.0 * (1.0 + confidence)]
    )
    return CalibrationEstimate(value, float(low), float(high))


def negative_log_likelihood(y_true: ArrayLike, probs: ArrayLike) -> float:
    """Mean negative log-likelihood of the true class, in nats.

    `NLL = -1/n sum_i log p_i[y_i]`, with probabilities floored at the
    float64 machine epsilon `2.22e-16` (as `sklearn.metrics.log_loss` clips),
    so that a confident mistake costs `36.04` nats instead of infinity.
    netcal and torchmetrics do not report an NLL; a plain `-log(p)` is
    infinite for such a row.

    Args:
        y_true: Integer labels `(n,)` or one-hot labels `(n, n_classes)`
            (exactly one 1 per row; soft or multi-hot rows are refused).
        probs: Probabilities `(n, n_classes)`, or `(n,)` for a binary problem.

    Returns:
        The mean NLL (float, >= 0).

    Raises:
        ValueError: If `y_true` is not integer labels in `[0, n_classes)`
            (one per row of `probs`) or exactly one-hot rows; if `probs` is
            not a non-empty numeric array of shape `(n,)` or
            `(n, n_classes)` of finite probabilities in [0, 1] whose rows sum
            to 1 (within 1e-3; the message names the first bad row).

    Example:

    ```python
    >>> from kerasx.uncertainty import negative_log_likelihood
    >>> round(negative_log_likelihood([0, 1], [[0.5, 0.5], [0.2, 0.8]]), 6)
    0.458145
    >>> # -(log 0.5 + log 0.8) / 2; binary (n,) input gives the same score
    >>> round(negative_log_likelihood([0, 1], [0.5, 0.8]), 6)
    0.458145
    >>> round(negative_log_likelihood([1], [[1.0, 0.0]]), 2)  # floored: -log(eps)
    36.04

    ```

    Reference:
        Quiñonero-Candela et al., "Evaluating Predictive Uncertainty
        Challenge", 2006; equal to `sklearn.metrics.log_loss` (same floor).
    """
    labels, probs = check_inputs(y_true, probs)
    picked = probs[np.arange(labels.shape[0]), labels]
    return float(-np.mean(np.log(np.maximum(picked, _stats.LOG_FLOOR))))


def brier_score(y_true: ArrayLike, probs: ArrayLike) -> float:
    """Brier score: mean squared error between probabilities and one-hot labels.

    Multi-class (`probs` of shape `(n, n_classes)`, 3 classes or more):
    `BS = 1/n sum_i sum_c (p_ic - [y_i = c])^2`, in `[0, 2]`.
    Binary (two classes, given as `(n,)` positive-class probabilities or as
    `(n, 2)` rows `[1 - p, p]`, the same score for both):
    `BS = 1/n sum_i (p_i - y_i)^2`, in `[0, 1]`, as
    `sklearn.metrics.brier_score_loss`; this is half the two-class sum above.

    Args:
        y_true: Integer labels `(n,)` or one-hot labels `(n, n_classes)`
            (exactly one 1 per row; soft or multi-hot rows are refused).
        probs: Probabilities `(n, n_classes)`, or `(n,)` for a binary problem.

    Returns:
        The Brier score (float, >= 0).

    Raises:
        ValueError: If `y_true` is not integer labels in `[0, n_classes)`
            (one per row of `probs`) or exactly one-hot rows; if `probs` is
            not a non-empty numeric array of shape `(n,)` or
            `(n, n_classes)` of finite probabilities in [0, 1] whose rows sum
            to 1 (within 1e-3; the message names the first bad row).

    Example:

    ```python
    >>> from kerasx.uncertainty import brier_score
    >>> round(brier_score([0, 1], [[0.8, 0.2], [0.4, 0.6]]), 6)  # (0.04 + 0.16) / 2
    0.1
    >>> round(brier_score([0, 1], [0.2, 0.6]), 6)  # the same, as (n,) input
    0.1
    >>> round(brier_score([2], [[0.2, 0.3, 0.5]]), 6)  # 0.04 + 0.09 + 0.25
    0.38

    ```

    Reference:
        Brier, "Verification of Forecasts Expressed in Terms of Probability",
        Monthly Weather Review, 1950.
    """
    labels, probs = check_inputs(y_true, probs)
    if probs.shape[1] == 2:
        return float(np.mean((probs[:, 1] - labels) ** 2))
    one_hot = np.eye(probs.shape[1])[labels]
    return float(np.mean(np.sum((probs - one_hot) ** 2, axis=1)))
