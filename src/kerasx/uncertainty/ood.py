"""Out-of-distribution detection metrics in NumPy (float64).

Conventions: a higher score means "more out-of-distribution" (use
`result.predictive_entropy`, `result.mutual_information` or
`1 - result.mean.max(-1)` of an `MCResult`; negate a confidence such as the
maximum softmax probability). Out-of-distribution (OOD) samples are the
positive class of AUROC, AUPR-out and FPR@95TPR; AUPR-in makes the
in-distribution samples the positive class and ranks them by the negated
score, as in Hendrycks & Gimpel's baseline. Tied scores are one threshold, as
in scikit-learn's `roc_curve` and `average_precision_score`.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from kerasx import _checks
from kerasx.uncertainty import _stats

#: The true-positive rate of `fpr_at_95_tpr`.
TPR_LEVEL = 0.95


def _scores(name, value):
    expected = "a non-empty 1-D array of finite scores"
    scores = _stats.numeric_array(name, value, expected).astype(np.float64)
    if scores.ndim != 1 or scores.shape[0] == 0:
        raise _checks.invalid_described(
            name, expected, f"array of shape {scores.shape}"
        )
    if not np.all(np.isfinite(scores)):
        raise _checks.invalid_described(name, expected, "NaN or inf values")
    return scores


def _curve(positive, negative):
    """True and false positive counts at each distinct threshold, descending.

    The first point is the threshold above every score (no positives), so the
    ROC curve starts at (0, 0), as scikit-learn's `roc_curve`.
    """
    scores = np.concatenate([positive, negative])
    labels = np.concatenate([np.ones(positive.shape[0]), np.zeros(negative.shape[0])])
    order = np.argsort(-scores, kind="stable")
    scores, labels = scores[order], labels[order]
    # The last row of each run of tied scores closes that threshold.
    last = np.r_[np.flatnonzero(np.diff(scores)), scores.shape[0] - 1]
    true_positives = np.r_[0.0, np.cumsum(labels)[last]]
    false_positives = np.r_[0.0, last + 1.0 - true_positives[1:]]
    return true_positives, false_positives


def _average_precision(true_positives, false_positives):
    """`sum_k (R_k - R_{k-1}) P_k`, scikit-learn's step-wise (not trapezoid) AP."""
    recall = true_positives / true_positives[-1]
    predicted = true_positives[1:] + false_positives[1:]
    precision = true_positives[1:] / predicted
    return float(np.sum(np.diff(recall) * precision))


def ood_metrics(scores_in: ArrayLike, scores_out: ArrayLike) -> dict[str, float]:
    """AUROC, AUPR-in, AUPR-out and FPR at 95 % TPR of an OOD score.

    A higher score means "more out-of-distribution". With OOD samples as the
    positive class and thresholds at every distinct score:

    - `auroc`: area under the ROC curve (trapezoids; equals the probability
      that an OOD sample scores above an in-distribution one, ties counting
      one half), scikit-learn's `roc_auc_score`.
    - `aupr_out`: average precision `sum_k (R_k - R_{k-1}) P_k` with OOD
      positive, scikit-learn's `average_precision_score(is_ood, score)`.
    - `aupr_in`: the same with in-distribution positive and the negated
      score, `average_precision_score(1 - is_ood, -score)`.
    - `fpr_at_95_tpr`: the smallest false-positive rate (fraction of
      in-distribution samples flagged as OOD) among the ROC points whose
      true-positive rate (fraction of OOD samples flagged) is at least 0.95,
      `min(fpr[tpr >= 0.95])` of `roc_curve(is_ood, score)`. ODIN and some
      papers make in-distribution the positive class instead; that number is
      `ood_metrics(-scores_out, -scores_in)["fpr_at_95_tpr"]`.

    An `MCResult`'s uncertainty fields are scores as they are:
    `ood_metrics(result_in.mutual_information, result_out.mutual_information)`,
    likewise `predictive_entropy`, or `1 - result.mean.max(-1)`.

    Args:
        scores_in: Scores of in-distribution samples, any 1-D array-like.
        scores_out: Scores of out-of-distribution samples, any 1-D
            array-like.

    Returns:
        A dict with float values for `"auroc"`, `"aupr_in"`, `"aupr_out"` and
        `"fpr_at_95_tpr"`, each in `[0, 1]`.

    Raises:
        ValueError: If `scores_in` or `scores_out` is not a non-empty 1-D
            numeric array of finite scores.

    Example:

    ```python
    >>> from kerasx.uncertainty import ood_metrics
    >>> scores_in, scores_out = [0.1, 0.2, 0.6], [0.5, 0.9]  # e.g. entropies
    >>> metrics = ood_metrics(scores_in, scores_out)  # 5 of 6 pairs ranked right
    >>> {name: round(value, 4) for name, value in metrics.items()}
    {'auroc': 0.8333, 'aupr_in': 0.9167, 'aupr_out': 0.8333, 'fpr_at_95_tpr': 0.3333}

    ```

    Reference:
        Hendrycks & Gimpel, "A Baseline for Detecting Misclassified and
        Out-of-Distribution Examples in Neural Networks", ICLR 2017;
        scikit-learn's `roc_auc_score`, `average_precision_score`,
        `roc_curve`.
    """
    scores_in = _scores("scores_in", scores_in)
    scores_out = _scores("scores_out", scores_out)
    true_positives, false_positives = _curve(scores_out, scores_in)
    tpr = true_positives / true_positives[-1]
    fpr = false_positives / false_positives[-1]
    in_true, in_false = _curve(-scores_in, -scores_out)
    return {
        "auroc": float(np.trapezoid(tpr, fpr)),
        "aupr_in": _average_precision(in_true, in_false),
        "aupr_out": _average_precision(true_positives, false_positives),
        "fpr_at_95_tpr": float(np.min(fpr[tpr >= TPR_LEVEL])),
    }
