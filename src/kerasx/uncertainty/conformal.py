"""Split conformal prediction sets in NumPy (float64): LAC and APS.

Conventions, and where MAPIE 1.x (`SplitConformalClassifier`, prefit)
differs:

- The threshold is the `k`-th smallest calibration score with
  `k = ceil((n + 1)(1 - alpha))`, the quantile level `k / n` that MAPIE uses.
  When `k > n` (alpha below `1 / (n + 1)`) the level exceeds 1 and kerasx
  refuses, as MAPIE refuses too few calibration rows (MAPIE's own condition,
  `n >= max(1 / alpha, 1 / (1 - alpha))`, is slightly stricter).
- A class is in the set when its score is within 1e-8 of the threshold
  (MAPIE's `EPSILON`), so float rounding of `1 - p` never drops it.
- LAC (`1 - p_y`) sets equal MAPIE's exactly, and may be empty.
- Randomised APS: calibration scores `cumsum_{c ranked before y} p_c + (1 - u) p_y`
  with `u ~ U(0, 1)`, and at test time the classes up to the first whose
  cumulative probability reaches the threshold, the last one dropped with
  probability `V = (cumsum - threshold) / p_last` (Romano et al.); given the
  same uniforms these are MAPIE's `conformity_score="aps"` with
  `include_last_label="randomized"`. kerasx draws them from
  `np.random.default_rng(seed)` (calibration rows first, then test rows);
  MAPIE restarts `RandomState(random_state)` for each, so its draws differ.
- Non-randomised APS (`randomized=False`): scores `cumsum_{c ranked up to y} p_c`
  and the sets `{y : score(x, y) <= threshold}` (possibly empty). MAPIE has
  no fully non-randomised APS: its calibration scores are always randomised,
  and `include_last_label=True` / `False` only changes the test-time rule.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike

from kerasx import _checks
from kerasx.uncertainty.calibration import check_inputs, check_probs

_METHODS = ("lac", "aps")
#: Tolerance on score comparisons (MAPIE's `EPSILON`).
EPSILON = 1e-8


def _order_statistic_index(n, alpha):
    """`ceil((n + 1)(1 - alpha))`, refusing levels above 1."""
    rank = math.ceil((n + 1) * (1 - alpha))
    if rank > n:
        raise _checks.invalid(
            "alpha",
            f"a float >= 1 / (n + 1) = {1 / (n + 1):.4g} for n={n} calibration "
            f"rows (the quantile level ceil((n + 1)(1 - alpha)) / n must be <= 1)",
            alpha,
        )
    return rank


def threshold(scores, alpha):
    """The `ceil((n + 1)(1 - alpha))`-th smallest of the calibration scores."""
    rank = _order_statistic_index(scores.shape[0], alpha)
    return float(np.sort(scores)[rank - 1])


def _ranked_cumsum(probs):
    """Cumulative probability of each class, classes ranked by falling probability.

    Returned in the original class order: entry `c` is the sum of the
    probabilities ranked at or above class `c`.
    """
    order = np.flip(np.argsort(probs, axis=1, kind="stable"), axis=1)
    cumsum = np.cumsum(np.take_along_axis(probs, order, axis=1), axis=1)
    result = np.empty_like(cumsum)
    np.put_along_axis(result, order, cumsum, axis=1)
    return result


def aps_scores(probs, labels, uniforms=None):
    """APS calibration scores: cumulative probability up to the true class.

    With `uniforms`, the randomised score subtracts `u_i * p_i[y_i]`.
    """
    rows = np.arange(labels.shape[0])
    scores = _ranked_cumsum(probs)[rows, labels]
    if uniforms is not None:
        scores = scores - uniforms * probs[rows, labels]
    return scores


def aps_sets(probs, cutoff, uniforms=None, include_last=False):
    """APS sets at threshold `cutoff`.

    `uniforms=None, include_last=False`: `{y : cumsum(y) <= cutoff}`.
    `include_last=True`: the classes up to the first whose cumulative
    probability reaches `cutoff`, with ties in probability (MAPIE's
    `include_last_label=True`). With `uniforms` as well, that last class is
    kept only when `u >= V` (`include_last_label="randomized"`).
    """
    cumsum = _ranked_cumsum(probs)
    if not include_last:
        return cumsum - cutoff <= EPSILON
    reached = np.where(cumsum - cutoff >= -EPSILON, cumsum, np.inf)
    last = np.argmin(reached, axis=1)
    rows = np.arange(probs.shape[0])
    last_prob = probs[rows, last]
    sets = probs - last_prob[:, None] >= -EPSILON
    if uniforms is not None:
        v = (cumsum[rows, last] - cutoff) / last_prob
        sets[rows, last] = v - uniforms <= EPSILON
    return sets


def conformal_sets(
    cal_probs: ArrayLike,
    cal_labels: ArrayLike,
    test_probs: ArrayLike,
    *,
    alpha: float = 0.1,
    method: str = "lac",
    randomized: bool = True,
    seed: int | None = None,
) -> np.ndarray:
    """Split conformal prediction sets with marginal coverage `>= 1 - alpha`.

    Each calibration row gets a score (how badly the model fits its true
    class); the threshold `q` is the `k`-th smallest score,
    `k = ceil((n + 1)(1 - alpha))`, and a test row's set holds the classes
    whose score would be at most `q`. For exchangeable calibration and test
    rows, `P(y_test in set) >= 1 - alpha`, and `<= 1 - alpha + 1 / (n + 1)`
    for continuous scores (LAC, randomised APS), whatever the model.

    - `"lac"` (least ambiguous set-valued classifier): score `1 - p_y`; the
      smallest sets on average, but the same threshold for easy and hard rows.
    - `"aps"` (adaptive prediction sets): score = total probability of the
      classes ranked at or above `y`, so uncertain rows get larger sets;
      `randomized=True` (the default) adds the uniform tie-breaking of
      Romano et al. that makes coverage exact, `randomized=False` the plain
      cumulative score (coverage `>= 1 - alpha`, larger sets).

    Args:
        cal_probs: Calibration probabilities `(n, n_classes)`, or `(n,)` for
            a binary problem; rows not used to train the model.
        cal_labels: Calibration labels `(n,)` or one-hot `(n, n_classes)`.
        test_probs: Test probabilities with the same number of classes.
        alpha: Miscoverage level in `(0, 1)`; must be `>= 1 / (n + 1)`.
        method: `"lac"` or `"aps"`.
        randomized: For `"aps"`: randomised tie-breaking (ignored by LAC).
        seed: Seed of the uniforms of randomised APS (None: fresh entropy).

    Returns:
        A boolean `(n_test, n_classes)` array: `sets[i, c]` is whether class
        `c` is in the set of test row `i`. Sets may be empty.

    Raises:
        ValueError: If `cal_probs` or `test_probs` is not a non-empty array
            of shape `(n,)` or `(n, n_classes)` of finite probabilities whose
            rows sum to 1, or they differ in their number of classes; if
            `cal_labels` is not one integer label in `[0, n_classes)` (or one
            one-hot row) per calibration row; if `alpha` is not a float in
            (0, 1), or is below `1 / (n + 1)` for `n` calibration rows; if
            `method` is not `"lac"` or `"aps"`, `randomized` not a bool, or
            `seed` not None or an integer in `[0, 2**32 - 1]`.

    Example:

    ```python
    >>> import numpy as np
    >>> from kerasx.uncertainty import conformal_sets
    >>> cal = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    >>> test = np.array([[0.55, 0.45], [0.95, 0.05]])
    >>> sets = conformal_sets(cal, [0, 1, 1, 1], test, alpha=0.2)
    >>> sets  # threshold: the 4th smallest of 1 - p_y, 0.6; keep 1 - p <= 0.6
    array([[ True,  True],
           [ True, False]])
    >>> sets.sum(axis=1).tolist()  # set sizes: the confident row gets one class
    [2, 1]

    ```

    Reference:
        Sadinle et al., "Least Ambiguous Set-Valued Classifiers with Bounded
        Error Levels", JASA 2019 (LAC); Romano et al., "Classification with
        Valid and Adaptive Coverage", NeurIPS 2020 (APS); Angelopoulos &
        Bates, "A Gentle Introduction to Conformal Prediction", 2021.
    """
    labels, cal = check_inputs(cal_labels, cal_probs)
    test, _ = check_probs(test_probs, "test_probs")
    if test.shape[1] != cal.shape[1]:
        raise _checks.invalid_described(
            "test_probs",
            f"{cal.shape[1]} classes, as `cal_probs`",
            f"{test.shape[1]} classes",
        )
    alpha = _checks.number(
        "alpha", alpha, low=0.0, high=1.0, low_open=True, high_open=True
    )
    method = _checks.choice("method", method, _METHODS)
    randomized = _checks.boolean("randomized", randomized)
    seed = _checks.seed("seed", seed)
    if method == "lac":
        rows = np.arange(labels.shape[0])
        cutoff = threshold(1.0 - cal[rows, labels], alpha)
        return (1.0 - test) - cutoff <= EPSILON
    if not randomized:
        return aps_sets(test, threshold(aps_scores(cal, labels), alpha))
    rng = np.random.default_rng(seed)
    cal_uniforms = rng.uniform(size=cal.shape[0])
    cutoff = threshold(aps_scores(cal, labels, cal_uniforms), alpha)
    return aps_sets(test, cutoff, rng.uniform(size=test.shape[0]), include_last=True)


def _check_sets(sets):
    array = np.asarray(sets)
    if array.dtype != bool or array.ndim != 2 or array.shape[0] == 0:
        raise _checks.invalid_described(
            "sets",
            "a boolean array of shape (n, n_classes), as conformal_sets returns",
            f"array of dtype {array.dtype} and shape {array.shape}",
        )
    return array


def set_coverage(sets: ArrayLike, labels: ArrayLike) -> float:
    """Fraction of rows whose set contains the true label (empirical coverage).

    Args:
        sets: Boolean `(n, n_classes)` sets from `conformal_sets`.
        labels: True labels `(n,)` or one-hot `(n, n_classes)`.

    Returns:
        The coverage, a float in `[0, 1]`.

    Raises:
        ValueError: If `sets` is not a non-empty boolean array of shape
            `(n, n_classes)`, or `labels` not one integer label in
            `[0, n_classes)` (or one one-hot row) per row of `sets`.

    Example:

    ```python
    >>> import numpy as np
    >>> from kerasx.uncertainty import set_coverage
    >>> sets = np.array([[True, False], [True, True], [False, True]])
    >>> round(set_coverage(sets, [1, 0, 1]), 4)  # the last two sets hold the label
    0.6667

    ```

    Reference:
        Angelopoulos & Bates, "A Gentle Introduction to Conformal
        Prediction", 2021.
    """
    sets = _check_sets(sets)
    uniform = np.full(sets.shape, 1.0 / sets.shape[1])
    labels, _ = check_inputs(labels, uniform)
    return float(np.mean(sets[np.arange(sets.shape[0]), labels]))


def set_size(sets: ArrayLike) -> float:
    """Mean number of classes per set (per-row sizes: `sets.sum(axis=1)`).

    Args:
        sets: Boolean `(n, n_classes)` sets from `conformal_sets`.

    Returns:
        The mean set size, a float in `[0, n_classes]`.

    Raises:
        ValueError: If `sets` is not a non-empty boolean array of shape
            `(n, n_classes)`.

    Example:

    ```python
    >>> import numpy as np
    >>> from kerasx.uncertainty import set_size
    >>> set_size(np.array([[True, False], [True, True], [False, False]]))  # 1, 2, 0
    1.0

    ```

    Reference:
        Angelopoulos & Bates, "A Gentle Introduction to Conformal
        Prediction", 2021.
    """
    return float(np.mean(_check_sets(sets).sum(axis=1)))
