"""Calibration metrics in NumPy (float64): ECE, negative log-likelihood, Brier."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

_SUM_TOLERANCE = 1e-3
_LOG_FLOOR = 1e-15


def _invalid(name, expected, value):
    return ValueError(
        f"Invalid value received for argument `{name}`. Expected {expected}. "
        f"Received: {name}={value}"
    )


def check_inputs(y_true, probs):
    """Validates and returns `(labels, probs, binary)` as int64 / float64 arrays.

    `probs` is `(n, n_classes)` rows of probabilities, or `(n,)` / `(n, 1)`
    probabilities of the positive class (`binary=True`, expanded to two
    columns). `y_true` is `(n,)` integer labels or `(n, n_classes)` one-hot.
    """
    probs = np.asarray(probs, dtype=np.float64)
    y_true = np.asarray(y_true)
    binary = probs.ndim == 1 or (probs.ndim == 2 and probs.shape[1] == 1)
    if probs.ndim not in (1, 2) or probs.shape[0] == 0:
        raise _invalid(
            "probs",
            "a non-empty array of shape (n,) or (n, n_classes)",
            f"<array of shape {probs.shape}>",
        )
    if not np.all(np.isfinite(probs)):
        raise _invalid("probs", "finite values (no NaN or inf)", "<array with NaN/inf>")
    if binary:
        probs = probs.reshape(-1, 1)
        probs = np.concatenate([1.0 - probs, probs], axis=1)
    if probs.min() < -_SUM_TOLERANCE or probs.max() > 1 + _SUM_TOLERANCE:
        raise _invalid(
            "probs",
            "probabilities in [0, 1]",
            f"<values in [{probs.min():.4g}, {probs.max():.4g}]>",
        )
    sums = probs.sum(axis=1)
    worst = np.max(np.abs(sums - 1.0))
    if worst > _SUM_TOLERANCE:
        raise _invalid(
            "probs",
            f"rows summing to 1 (within {_SUM_TOLERANCE}); apply a softmax to logits",
            f"<rows summing to values up to {worst:.4g} away from 1>",
        )
    if y_true.ndim == 2 and y_true.shape[1] > 1 and not binary:
        if y_true.shape != probs.shape:
            raise _invalid(
                "y_true",
                f"one-hot labels of shape {probs.shape}",
                f"<array of shape {y_true.shape}>",
            )
        y_true = np.argmax(y_true, axis=1)
    y_true = y_true.reshape(-1) if y_true.ndim == 2 and y_true.shape[1] == 1 else y_true
    if y_true.ndim != 1 or y_true.shape[0] != probs.shape[0]:
        raise _invalid(
            "y_true",
            f"{probs.shape[0]} labels, one per row of `probs`",
            f"<array of shape {y_true.shape}>",
        )
    if np.issubdtype(y_true.dtype, np.floating):
        if not np.all(np.isfinite(y_true)) or np.any(y_true != np.round(y_true)):
            raise _invalid("y_true", "integer class labels", "<non-integer values>")
    elif not np.issubdtype(y_true.dtype, np.integer) and y_true.dtype != bool:
        raise _invalid("y_true", "integer class labels", f"<dtype {y_true.dtype}>")
    labels = y_true.astype(np.int64)
    if labels.min() < 0 or labels.max() >= probs.shape[1]:
        raise _invalid(
            "y_true",
            f"labels in [0, {probs.shape[1]})",
            f"<labels in [{labels.min()}, {labels.max()}]>",
        )
    return labels, probs, binary


def reliability_bins(y_true, probs, n_bins=15):
    """Per-bin `(edges, accuracy, confidence, counts)` of the top-1 prediction.

    Bin `b` holds the rows whose confidence `max_c p_c` lies in
    `(edges[b], edges[b + 1]]`; empty bins have NaN accuracy and confidence.
    """
    if isinstance(n_bins, bool) or not isinstance(n_bins, int) or n_bins < 1:
        raise _invalid("n_bins", "an integer >= 1", n_bins)
    labels, probs, _ = check_inputs(y_true, probs)
    confidence = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == labels).astype(np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # `right=True` puts c in bin b when edges[b] < c <= edges[b + 1].
    index = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, n_bins - 1)
    counts = np.bincount(index, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        accuracy = np.bincount(index, correct, n_bins) / counts
        mean_confidence = np.bincount(index, confidence, n_bins) / counts
    return edges, accuracy, mean_confidence, counts


def expected_calibration_error(
    y_true: ArrayLike, probs: ArrayLike, n_bins: int = 15
) -> float:
    """Expected calibration error of the top-1 prediction.

    With the rows split into `n_bins` equal-width confidence bins `B_b`:
    `ECE = sum_b |B_b| / n * |accuracy(B_b) - confidence(B_b)|`, where
    confidence is `max_c p_c` and accuracy the fraction of correct argmaxes.

    Args:
        y_true: Integer labels `(n,)` or one-hot labels `(n, n_classes)`.
        probs: Probabilities `(n, n_classes)` (rows sum to 1), or `(n,)`
            positive-class probabilities for a binary problem.
        n_bins: Number of equal-width bins on `[0, 1]`.

    Returns:
        The ECE, a float in `[0, 1]`.

    Example:

    ```python
    >>> ece = expected_calibration_error([0, 1], [[0.9, 0.1], [0.6, 0.4]], n_bins=10)
    >>> round(ece, 6)  # (|1 - 0.9| + |0 - 0.6|) / 2
    0.35

    ```

    Reference:
        Guo et al., "On Calibration of Modern Neural Networks", ICML 2017.
    """
    _, accuracy, confidence, counts = reliability_bins(y_true, probs, n_bins)
    filled = counts > 0
    gaps = np.abs(accuracy[filled] - confidence[filled])
    return float(np.sum(counts[filled] * gaps) / counts.sum())


def negative_log_likelihood(y_true: ArrayLike, probs: ArrayLike) -> float:
    """Mean negative log-likelihood of the true class, in nats.

    `NLL = -1/n sum_i log p_i[y_i]`, with probabilities floored at `1e-15`
    so that a confident mistake costs `34.5` nats instead of infinity.

    Args:
        y_true: Integer labels `(n,)` or one-hot labels `(n, n_classes)`.
        probs: Probabilities `(n, n_classes)`, or `(n,)` for a binary problem.

    Returns:
        The mean NLL (float, >= 0).

    Example:

    ```python
    >>> round(negative_log_likelihood([0, 1], [[0.5, 0.5], [0.2, 0.8]]), 6)
    0.458145

    ```

    Reference:
        Quiñonero-Candela et al., "Evaluating Predictive Uncertainty
        Challenge", 2006; same as `sklearn.metrics.log_loss`.
    """
    labels, probs, _ = check_inputs(y_true, probs)
    picked = probs[np.arange(labels.shape[0]), labels]
    return float(-np.mean(np.log(np.maximum(picked, _LOG_FLOOR))))


def brier_score(y_true: ArrayLike, probs: ArrayLike) -> float:
    """Brier score: mean squared error between probabilities and one-hot labels.

    Multi-class (`probs` of shape `(n, n_classes)`):
    `BS = 1/n sum_i sum_c (p_ic - [y_i = c])^2`, in `[0, 2]`.
    Binary (`probs` of shape `(n,)`): `BS = 1/n sum_i (p_i - y_i)^2`, in
    `[0, 1]`, as `sklearn.metrics.brier_score_loss`.

    Args:
        y_true: Integer labels `(n,)` or one-hot labels `(n, n_classes)`.
        probs: Probabilities `(n, n_classes)`, or `(n,)` for a binary problem.

    Returns:
        The Brier score (float, >= 0).

    Example:

    ```python
    >>> round(brier_score([0, 1], [[0.8, 0.2], [0.4, 0.6]]), 6)
    0.2

    ```

    Reference:
        Brier, "Verification of Forecasts Expressed in Terms of Probability",
        Monthly Weather Review, 1950.
    """
    labels, probs, binary = check_inputs(y_true, probs)
    if binary:
        return float(np.mean((probs[:, 1] - labels) ** 2))
    one_hot = np.eye(probs.shape[1])[labels]
    return float(np.mean(np.sum((probs - one_hot) ** 2, axis=1)))
