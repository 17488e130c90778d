"""The learning-rate range test: sweep, smooth, suggest, plot; state restored."""

from __future__ import annotations

import math
import random
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np

from kerasx import _checks, _keras_internals
from kerasx._state import VariableSnapshot
from kerasx.callbacks._step_hook import (
    accumulation_steps,
    check_learning_rate_is_variable,
    remove_step_hook,
)
from kerasx.callbacks.exponential_lr import ExponentialLearningRate, PerUpdate
from kerasx.plotting import plot_lr_vs_loss

__all__ = [
    "LRFinderResult",
    "find_learning_rate",
    "minimum",
    "plot_lr_vs_loss",
    "slide",
    "smooth",
    "steep",
    "suggest",
    "suggestion_range",
    "valley",
]

# Stop reasons of a sweep (`LRFinderResult.stop_reason`).
COMPLETED = "completed"
DIVERGED = "diverged"
NON_FINITE = "non-finite loss"
DATA_EXHAUSTED = "data exhausted"
STOPPED = "stopped by a callback"
# Why a result has no suggestion (`LRFinderResult.stop_reason` too).
FLAT = "flat loss curve"
NO_TRAINABLE_WEIGHTS = "no trainable weights"
_STOP_REASONS = (
    COMPLETED,
    DIVERGED,
    NON_FINITE,
    DATA_EXHAUSTED,
    STOPPED,
    FLAT,
    NO_TRAINABLE_WEIGHTS,
)

# A curve whose smoothed losses span less than this, relative to their largest
# magnitude, is flat: a constant loss read back from Keras' float32 running mean
# wobbles by ~1e-4 relative over an epoch of 1000 batches.
FLAT_TOLERANCE = 1e-3

# More passes than this over the data is almost always a `num_steps` mistake.
_MAX_QUIET_PASSES = 10


def _curve(name: str, values: Any) -> np.ndarray:
    """`values` as a 1-D float64 array; refuses anything else."""
    expected = "a 1-D sequence of floats"
    try:
        array = np.asarray(values, dtype="float64")
    except (TypeError, ValueError):
        raise _checks.invalid(name, expected, values) from None
    if array.ndim != 1:
        raise _checks.invalid_described(name, expected, f"array of shape {array.shape}")
    return array


def _check_rates(rates: np.ndarray, name: str = "rates") -> None:
    """Every rate is finite and > 0 (the rules work in log rate)."""
    bad = np.flatnonzero(~(np.isfinite(rates) & (rates > 0)))
    if bad.size:
        index = int(bad[0])
        first = float(rates[index])
        raise _checks.invalid_described(
            name,
            "finite learning rates > 0",
            f"{bad.size} value(s) not finite and > 0, the first {first!r} at "
            f"index {index}",
        )


def _check_same_length(rates: np.ndarray, losses: np.ndarray, name: str) -> None:
    if len(losses) != len(rates):
        raise _checks.invalid_described(
            name, f"as many values as `rates` ({len(rates)})", f"{len(losses)} values"
        )


def _rule_curve(rates: Any, losses: Any) -> tuple[np.ndarray, np.ndarray]:
    """The checked inputs of a suggestion rule: >= 2 points, finite, rates > 0."""
    rates, losses = _curve("rates", rates), _curve("losses", losses)
    _check_same_length(rates, losses, "losses")
    if len(rates) < 2:
        raise _checks.invalid_described(
            "rates",
            "a curve of at least 2 points",
            f"{len(rates)} point(s)",
        )
    _check_rates(rates)
    if not np.isfinite(losses).all():
        index = int(np.argmin(np.isfinite(losses)))
        raise _checks.invalid_described(
            "losses",
            "finite losses (`suggest` cuts the curve at the first non-finite one)",
            f"{float(losses[index])!r} at index {index}",
        )
    return rates, losses


class _BiasCorrectedEMA:
    """`a_k = beta * a_{k-1} + (1 - beta) * x_k` (`a_{-1} = 0`), read as
    `a_k / (1 - beta**(k + 1))`: fastai's `AvgSmoothLoss`, one value at a time."""

    def __init__(self, beta: float) -> None:
        self.beta, self.average, self.count = beta, 0.0, 0

    def update(self, value: float) -> float:
        self.count += 1
        self.average = self.beta * self.average + (1.0 - self.beta) * value
        return self.average / (1.0 - self.beta**self.count)


def _smoothing_coefficient(smoothing: Any, beta: Any) -> float:
    """The EMA coefficient from `smoothing` or its fastai name `beta` (0.98)."""
    smoothing, beta = (
        _checks.number(name, value, low=0, high=1, high_open=True, allow_none=True)
        for name, value in (("smoothing", smoothing), ("beta", beta))
    )
    if smoothing is not None and beta is not None and smoothing != beta:
        raise _checks.invalid(
            "beta",
            f"the same value as smoothing={smoothing!r} or None (`beta` is "
            "fastai's name for `smoothing`; pass one of them)",
            beta,
        )
    for value in (smoothing, beta):
        if value is not None:
            return value
    return 0.98


def smooth(
    losses: Sequence[float],
    smoothing: float | None = None,
    *,
    beta: float | None = None,
) -> np.ndarray:
    """Bias-corrected exponential moving average of `losses`, in float64.

    `smoothed_k = a_k / (1 - smoothing**(k + 1))` with
    `a_k = smoothing * a_{k-1} + (1 - smoothing) * loss_k` and `a_{-1} = 0`, as
    fastai's `AvgSmoothLoss` (which `lr_find` records).

    Args:
        losses: Losses in sweep order.
        smoothing: EMA coefficient in [0, 1); 0 returns the losses. Default
            0.98, as fastai's.
        beta: fastai's name for `smoothing` (`AvgSmoothLoss(beta=0.98)`); give
            one of the two, or both with the same value.

    Returns:
        The smoothed losses (float64 array of the same length).

    Raises:
        ValueError: If `losses` is not a 1-D sequence of floats; if
            `smoothing` or `beta` is not None or a float in [0, 1); if both
            are given with different values.

    Example:

    ```python
    >>> import numpy as np
    >>> from kerasx.lr_finder import smooth
    >>> np.round(smooth([1.0, 2.0, 3.0], 0.5), 4).tolist()  # 0.5 / (1 - 0.5), ...
    [1.0, 1.6667, 2.4286]
    >>> smooth([1.0, 2.0, 3.0], 0.0).tolist()
    [1.0, 2.0, 3.0]

    ```

    Reference:
        - fastai `AvgSmoothLoss` (`fastai.learner`).
    """
    losses = _curve("losses", losses)
    smoothing = _smoothing_coefficient(smoothing, beta)
    average = _BiasCorrectedEMA(smoothing)
    return np.array([average.update(float(loss)) for loss in losses], dtype="float64")


def valley(rates: Sequence[float], losses: Sequence[float]) -> float:
    """fastai's `valley`: 1/3 + 1/6 along the longest decreasing run of `losses`.

    The longest (not necessarily contiguous) decreasing subsequence ends at
    `end`, starts at `start = end - length`, and the suggestion is the rate at
    `start + int((end - start) / 3) + int((end - start) / 6)`. Applied to all
    the points given (no trimming; see `suggest`). When that index is -1 (a run
    of 2 points from the first one) the suggestion is the first rate, where
    fastai's Python indexing wraps around to the last, highest rate.

    Args:
        rates: Learning rates, increasing, finite and > 0 (at least 2).
        losses: Smoothed loss at each rate, finite.

    Returns:
        The suggested rate.

    Raises:
        ValueError: If `rates` or `losses` is not a 1-D sequence of floats;
            if they differ in length or hold fewer than 2 points; if a rate
            is not finite and > 0; if a loss is not finite.

    Example:

    ```python
    >>> import numpy as np
    >>> from kerasx.lr_finder import valley
    >>> rates = 10.0 ** np.linspace(-5, 0, 51)  # 0.1 decade per step
    >>> losses = 1.0 + (np.log10(rates) + 2.0) ** 2  # lowest at 1e-2
    >>> round(valley(rates, losses), 6)  # index -1 + 10 + 5 = 14: 10 ** -3.6
    0.000251

    ```

    Reference:
        - fastai `valley` (`fastai.callback.schedule`, fastai 2.8).
    """
    rates, losses = _rule_curve(rates, losses)
    lengths = np.ones(len(losses), dtype=int)
    max_start = max_end = 0
    for i in range(1, len(losses)):
        for j in range(i):
            if losses[i] < losses[j] and lengths[i] < lengths[j] + 1:
                lengths[i] = lengths[j] + 1
            if lengths[max_end] < lengths[i]:
                max_end, max_start = i, i - lengths[i]
    section = (max_end - max_start) / 3
    return float(rates[max(max_start + int(section) + int(section / 2), 0)])


def steep(rates: Sequence[float], losses: Sequence[float]) -> float:
    """fastai's `steep`: the rate where the loss falls fastest against log rate.

    The rate at `argmin_k (loss_{k+1} - loss_k) / (log rate_{k+1} - log rate_k)`.

    Args:
        rates: Learning rates, increasing, finite and > 0 (at least 2).
        losses: Smoothed loss at each rate, finite.

    Returns:
        The suggested rate.

    Raises:
        ValueError: If `rates` or `losses` is not a 1-D sequence of floats;
            if they differ in length or hold fewer than 2 points; if a rate
            is not finite and > 0; if a loss is not finite.

    Example:

    ```python
    >>> import numpy as np
    >>> from kerasx.lr_finder import steep
    >>> rates = 10.0 ** np.linspace(-5, 0, 51)  # 0.1 decade per step
    >>> losses = 1.0 + (np.log10(rates) + 2.0) ** 2  # lowest at 1e-2
    >>> round(steep(rates, losses), 6)  # the parabola is steepest at its left end
    1e-05

    ```

    Reference:
        - fastai `steep` (`fastai.callback.schedule`, fastai 2.8).
    """
    rates, losses = _rule_curve(rates, losses)
    slopes = np.diff(losses) / np.diff(np.log(rates))
    return float(rates[int(np.argmin(slopes))])


def minimum(rates: Sequence[float], losses: Sequence[float]) -> float:
    """fastai's `minimum`: the rate at the lowest loss, divided by 10.

    Args:
        rates: Learning rates, finite and > 0 (at least 2).
        losses: Smoothed loss at each rate, finite.

    Returns:
        The suggested rate.

    Raises:
        ValueError: If `rates` or `losses` is not a 1-D sequence of floats;
            if they differ in length or hold fewer than 2 points; if a rate
            is not finite and > 0; if a loss is not finite.

    Example:

    ```python
    >>> import numpy as np
    >>> from kerasx.lr_finder import minimum
    >>> rates = 10.0 ** np.linspace(-5, 0, 51)  # 0.1 decade per step
    >>> losses = 1.0 + (np.log10(rates) + 2.0) ** 2  # lowest at 1e-2
    >>> round(minimum(rates, losses), 6)  # 1e-2 / 10
    0.001

    ```

    Reference:
        - fastai `minimum` (`fastai.callback.schedule`, fastai 2.8).
    """
    rates, losses = _rule_curve(rates, losses)
    return float(rates[int(np.argmin(losses))]) / 10


def slide(
    rates: Sequence[float],
    losses: Sequence[float],
    *,
    lr_diff: int = 15,
    thresh: float = 0.005,
    adjust_value: float = 1.0,
) -> float:
    """fastai's `slide`: slides a window left until the loss's slope levels off.

    With `g = np.gradient(losses)` (per point, not per log rate) and a window
    whose right end `r` starts at the last point and left end at
    `l = r - lr_diff`, the window slides one point left while
    `|g[r] - g[l]| > thresh` and `l >= 0`. The suggestion is
    `adjust_value` times the rate at the window's last left end that passed the
    test (the rate at `l = len - 1 - lr_diff` when the first window already
    fails it, the first rate when every window passes). A curve of
    `lr_diff` points or fewer has no window: the suggestion is NaN (fastai
    raises an `IndexError`).

    Args:
        rates: Learning rates, increasing, finite and > 0 (at least 2).
        losses: Smoothed loss at each rate, finite.
        lr_diff: Width of the window in points, an integer >= 1.
        thresh: Largest difference of the two slopes that counts as level, a
            float >= 0.
        adjust_value: Factor applied to the rate found, a float > 0.

    Returns:
        The suggested rate.

    Raises:
        ValueError: If `rates` or `losses` is not a 1-D sequence of floats;
            if they differ in length or hold fewer than 2 points; if a rate
            is not finite and > 0; if a loss is not finite; if `lr_diff` is
            not an integer >= 1, `thresh` not a float >= 0 or `adjust_value`
            not a float > 0.

    Example:

    ```python
    >>> import numpy as np
    >>> from kerasx.lr_finder import slide
    >>> rates = 10.0 ** np.linspace(-5, 0, 51)
    >>> losses = np.concatenate([np.full(20, 2.0), np.linspace(2.0, 0.5, 31)])
    >>> losses[-10:] += 0.3 * np.arange(10) ** 2  # a blow-up at the end
    >>> round(slide(rates, losses), 6)  # 10 ** -2.4: on the straight fall
    0.003981

    ```

    Reference:
        - fastai `slide` (`fastai.callback.schedule`, fastai 2.8), its
          "interval slide rule", with the same defaults.
    """
    rates, losses = _rule_curve(rates, losses)
    lr_diff = _checks.integer("lr_diff", lr_diff, minimum=1)
    thresh = _checks.number("thresh", thresh, low=0)
    adjust_value = _checks.number("adjust_value", adjust_value, low=0, low_open=True)
    gradient = np.gradient(losses)
    right = len(losses) - 1
    left = right - lr_diff
    if left < 0:
        return math.nan
    found = rates[left]
    while left >= 0 and abs(gradient[right] - gradient[left]) > thresh:
        found = rates[left]
        right, left = right - 1, left - 1
    return float(found) * adjust_value


_RULES = {"valley": valley, "steep": steep, "minimum": minimum, "slide": slide}


def suggestion_range(
    smoothed_losses: Sequence[float],
    num_steps: int | None = None,
    *,
    skip_start: int | None = None,
    skip_end: int = 5,
) -> tuple[int, int]:
    """The points `suggest` uses, `[start, stop)`, as fastai's `lr_find` picks them.

    `start = skip_start` (default `num_steps // 10`), `stop = len - skip_end`
    (default 5), and `stop` moves back to the first non-finite smoothed loss
    inside that range.

    Args:
        smoothed_losses: The recorded smoothed losses.
        num_steps: The requested length of the sweep (fastai's `num_it`), an
            integer >= 0; defaults to the number of recorded points.
        skip_start: Points skipped at the start, an integer >= 0 or None for
            fastai's `num_steps // 10`.
        skip_end: Points skipped at the end, an integer >= 0 (fastai: 5).

    Returns:
        `(start, stop)` indices; `stop <= start` when no point is left.

    Raises:
        ValueError: If `smoothed_losses` is not a 1-D sequence of floats; if
            `num_steps` or `skip_start` is not None or an integer >= 0; if
            `skip_end` is not an integer >= 0.

    Example:

    ```python
    >>> import numpy as np
    >>> from kerasx.lr_finder import suggestion_range
    >>> losses = np.linspace(2.0, 1.0, 50)
    >>> suggestion_range(losses)  # 50 // 10 skipped at the start, 5 at the end
    (5, 45)
    >>> losses[20] = np.nan  # the range stops before the first NaN
    >>> suggestion_range(losses)
    (5, 20)
    >>> suggestion_range(losses, skip_start=0, skip_end=0)
    (0, 20)

    ```
    """
    smoothed_losses = _curve("smoothed_losses", smoothed_losses)
    num_steps = _checks.integer("num_steps", num_steps, minimum=0, allow_none=True)
    skip_start = _checks.integer("skip_start", skip_start, minimum=0, allow_none=True)
    skip_end = _checks.integer("skip_end", skip_end, minimum=0)
    count = len(smoothed_losses)
    num_steps = count if num_steps is None else num_steps
    start = num_steps // 10 if skip_start is None else skip_start
    stop = count - skip_end
    finite = np.isfinite(smoothed_losses[start:stop])
    if not finite.all():
        stop = start + int(np.argmin(finite))
    return start, stop


def _is_flat(smoothed_losses: Sequence[float]) -> bool:
    """Whether a curve is too flat to suggest from.

    `max - min <= FLAT_TOLERANCE * max(|max|, |min|)` over the finite values
    (`FLAT_TOLERANCE = 1e-3`), so an all-zero curve is flat too: a loss that
    moves by less than 0.1 % over the whole sweep says nothing about the rate
    (a constant loss, or rates far too small to train).

    Args:
        smoothed_losses: Smoothed losses (the points the rules see).

    Returns:
        True when the curve is flat (or has no finite value).
    """
    losses = _curve("smoothed_losses", smoothed_losses)
    losses = losses[np.isfinite(losses)]
    if not losses.size:
        return True
    highest, lowest = float(losses.max()), float(losses.min())
    return highest - lowest <= FLAT_TOLERANCE * max(abs(highest), abs(lowest))


def suggest(
    rates: Sequence[float],
    smoothed_losses: Sequence[float],
    num_steps: int | None = None,
    *,
    skip_start: int | None = None,
    skip_end: int = 5,
) -> dict[str, float]:
    """fastai's `lr_find` suggestions: `valley`, `steep`, `minimum` and `slide`.

    As in fastai's `Learner.lr_find`, the rules see only the recorded points
    `[skip_start : len - skip_end]`, by default fastai's `[num_steps // 10 : -5]`
    (the first tenth of the requested sweep and the last five points are
    skipped), truncated at the first non-finite smoothed loss (fastai truncates
    at the first NaN, and its sweep stops at an infinite one). With fewer than
    2 points left, or a flat curve there (see `FLAT_TOLERANCE`), every suggestion is
    NaN; `slide` is also NaN on 15 points or fewer (its window is 15 points
    wide).

    Args:
        rates: Learning rates of the recorded points, increasing, finite and > 0.
        smoothed_losses: Smoothed loss of each point (see `smooth`), as many
            as `rates`.
        num_steps: The requested length of the sweep (fastai's `num_it`);
            defaults to the number of recorded points.
        skip_start: Points skipped at the start, an integer >= 0, or None for
            fastai's `num_steps // 10`.
        skip_end: Points skipped at the end, an integer >= 0 (fastai: 5).

    Returns:
        `{"valley": ..., "steep": ..., "minimum": ..., "slide": ...}`.

    Raises:
        ValueError: If `rates` or `smoothed_losses` is not a 1-D sequence of
            floats, or they differ in length; if a rate is not finite and
            positive; if `num_steps` or `skip_start` is not None or an
            integer >= 0; if `skip_end` is not an integer >= 0.

    Example:

    ```python
    >>> import numpy as np
    >>> from kerasx.lr_finder import suggest, suggestion_range
    >>> rates = 10.0 ** np.linspace(-5, 0, 51)  # 0.1 decade per step
    >>> losses = 1.0 + (np.log10(rates) + 2.0) ** 2  # lowest at 1e-2
    >>> suggestion_range(losses)  # 51 // 10 skipped at the start, 5 at the end
    (5, 46)
    >>> {name: round(rate, 6) for name, rate in suggest(rates, losses).items()}
    {'valley': 0.000398, 'steep': 3.2e-05, 'minimum': 0.001, 'slide': 3.2e-05}

    ```

    Reference:
        - fastai `Learner.lr_find` and `valley` / `steep` / `minimum`
          (`fastai.callback.schedule`, fastai 2.8).
    """
    rates = _curve("rates", rates)
    losses = _curve("smoothed_losses", smoothed_losses)
    _check_same_length(rates, losses, "smoothed_losses")
    _check_rates(rates)
    start, stop = suggestion_range(
        losses, num_steps, skip_start=skip_start, skip_end=skip_end
    )
    if stop - start < 2 or _is_flat(losses[start:stop]):
        return dict.fromkeys(_RULES, math.nan)
    rates, losses = rates[start:stop], losses[start:stop]
    return {name: rule(rates, losses) for name, rule in _RULES.items()}


@dataclass(frozen=True)
class LRFinderResult:
    """Outcome of a learning-rate range test.

    Unpacks as `rates, losses = result` (like Hands-On ML's `exp_lr.rates,
    exp_lr.losses`).

    Attributes:
        rates: Learning rate of every step.
        losses: True loss of every step's batch.
        smoothed_losses: Bias-corrected EMA of `losses` (see `smooth`).
        suggestions: `"valley"`, `"steep"`, `"minimum"` and `"slide"`, computed
            as fastai's `lr_find` computes them (see `suggest`); all NaN when
            the curve is flat or the model has no trainable weights.
        stop_reason: Why the sweep ended: `"completed"` (all `num_steps`),
            `"diverged"` (the smoothed loss rose too far above its minimum; see
            `find_learning_rate`), `"non-finite loss"`, `"data exhausted"` or
            `"stopped by a callback"`; or why there is no suggestion: `"flat
            loss curve"` (see `suggest`) or `"no trainable weights"` (no sweep
            ran).
        num_steps: The requested length of the sweep (fastai's `num_it`).
        skip_start: Points the suggestions skip at the start (None: fastai's
            `num_steps // 10`).
        skip_end: Points the suggestions skip at the end (fastai: 5).
        suggestion: The `"valley"` suggestion.
        suggestion_range: `(start, stop)`: the points the suggestions use.

    Raises:
        dataclasses.FrozenInstanceError: On assignment to an attribute (the
            result is frozen).
        ValueError: From `LRFinderResult.from_losses`, if its arguments are
            refused (see there); the plain constructor checks nothing.

    Example:

    ```python
    >>> import numpy as np
    >>> from kerasx.lr_finder import LRFinderResult
    >>> rates = 10.0 ** np.linspace(-5, 0, 51)
    >>> losses = 1.0 + (np.log10(rates) + 2.0) ** 2  # lowest at 1e-2
    >>> result = LRFinderResult.from_losses(rates, losses, smoothing=0.0)
    >>> result.stop_reason, result.suggestion_range
    ('completed', (5, 46))
    >>> round(result.suggestion, 6)  # the valley rule
    0.000398
    >>> rates, losses = result
    >>> len(rates), len(losses), result.smoothed_losses.dtype.name
    (51, 51, 'float64')

    ```
    """

    rates: np.ndarray
    losses: np.ndarray
    smoothed_losses: np.ndarray
    suggestions: dict[str, float] = field(default_factory=dict)
    stop_reason: str = COMPLETED
    num_steps: int | None = None
    skip_start: int | None = None
    skip_end: int = 5

    @property
    def suggestion(self) -> float:
        return self.suggestions["valley"]

    @property
    def suggestion_range(self) -> tuple[int, int]:
        return suggestion_range(
            self.smoothed_losses,
            self.num_steps,
            skip_start=self.skip_start,
            skip_end=self.skip_end,
        )

    def __iter__(self) -> Iterator[np.ndarray]:
        return iter((self.rates, self.losses))

    @classmethod
    def from_losses(
        cls,
        rates: Sequence[float],
        losses: Sequence[float],
        smoothing: float | None = None,
        *,
        beta: float | None = None,
        num_steps: int | None = None,
        skip_start: int | None = None,
        skip_end: int = 5,
        stop_reason: str = COMPLETED,
    ) -> LRFinderResult:
        """Smooths `losses` (see `smooth`) and computes the suggestions.

        A curve that is flat over the points the rules use (see `suggest`)
        warns, and the result's `stop_reason` is `"flat loss curve"`;
        `stop_reason="no trainable weights"` gives NaN suggestions whatever the
        curve.

        Args:
            rates: Learning rates, increasing.
            losses: Loss at each rate.
            smoothing: EMA coefficient in [0, 1); 0 keeps the raw losses.
                Default 0.98, as fastai's.
            beta: fastai's name for `smoothing`; give one of the two, or both
                with the same value.
            num_steps: Requested length of the sweep; defaults to `len(rates)`.
            skip_start: Points the suggestions skip at the start, a
                non-negative integer, or None for fastai's `num_steps // 10`.
            skip_end: Points the suggestions skip at the end, an integer >= 0
                (fastai: 5).
            stop_reason: Why the sweep ended.

        Returns:
            An `LRFinderResult`.

        Raises:
            ValueError: If `rates` or `losses` is not a 1-D sequence of
                floats, or they differ in length; if `stop_reason` is not one
                of the reasons listed under `stop_reason` above; if
                `smoothing`, `beta`, `num_steps`, `skip_start` or `skip_end`
                is refused (see `smooth` and `suggest`); if a rate is not
                finite and > 0.
        """
        rates, losses = _curve("rates", rates), _curve("losses", losses)
        _check_same_length(rates, losses, "losses")
        stop_reason = _checks.choice("stop_reason", stop_reason, _STOP_REASONS)
        smoothed = smooth(losses, smoothing, beta=beta)
        num_steps = len(rates) if num_steps is None else num_steps
        skip = {"skip_start": skip_start, "skip_end": skip_end}
        suggestions = suggest(rates, smoothed, num_steps, **skip)
        start, stop = suggestion_range(smoothed, num_steps, **skip)
        if stop_reason == NO_TRAINABLE_WEIGHTS:
            suggestions = dict.fromkeys(_RULES, math.nan)
        elif stop - start >= 2 and _is_flat(smoothed[start:stop]):
            _warn_flat(smoothed[start:stop])
            stop_reason = FLAT
        return cls(
            rates,
            losses,
            smoothed,
            suggestions,
            stop_reason,
            num_steps,
            skip_start,
            skip_end,
        )


def _warn_flat(losses: np.ndarray) -> None:
    highest, lowest = float(np.max(losses)), float(np.min(losses))
    warnings.warn(
        f"The loss curve is flat: over the {len(losses)} points the suggestion "
        f"rules use, the smoothed loss spans {highest - lowest:.3g} "
        f"(from {lowest:.6g} to {highest:.6g}), at most {FLAT_TOLERANCE:g} of its "
        "magnitude, so no learning rate can be read off it and every suggestion "
        "is NaN. Check that the loss depends on the trainable weights and that "
        "`max_rate` is large enough to move it.",
        stacklevel=3,
    )


def _diverged(
    smoothed: float, best: float, first: float, threshold: float, negative: bool
) -> bool:
    """Whether the smoothed loss has risen too far above its best (lowest) value.

    While no loss has been negative (`negative` False): fastai's
    `smoothed > threshold * best`. Once one has: `smoothed - best > (threshold -
    1) * scale` with `scale = max(|best|, first - best)`, `first` being the
    first smoothed loss; never while `scale` is 0. See `find_learning_rate`.
    """
    if not negative:
        return smoothed > threshold * best
    scale = max(abs(best), first - best)
    return scale > 0 and smoothed - best > (threshold - 1) * scale


class _StopOnDivergence(keras.callbacks.Callback):
    """Stops after `num_steps` batches or once the smoothed loss diverges."""

    def __init__(self, sweep, num_steps, smoothing, threshold):
        super().__init__()
        self.sweep, self.num_steps, self.threshold = sweep, num_steps, threshold
        self.average = _BiasCorrectedEMA(smoothing)
        self.best, self.first, self.reason = math.inf, None, None
        self.negative = False  # whether any loss so far was < 0

    def on_train_batch_end(self, batch, logs=None):
        loss = self.sweep.losses[-1]
        smoothed = self.average.update(loss)
        self.best = min(self.best, smoothed)
        self.negative = self.negative or loss < 0
        if self.first is None:
            self.first = smoothed
        if not math.isfinite(smoothed):
            self.reason = NON_FINITE
        elif _diverged(smoothed, self.best, self.first, self.threshold, self.negative):
            self.reason = DIVERGED
        elif len(self.sweep.losses) >= self.num_steps:
            self.reason = COMPLETED
        if self.reason is not None:
            self.model.stop_training = True


class _Snapshot:
    """Every piece of state a `fit` can change, copied so it restores bit-exactly."""

    def __init__(self, model):
        self.model = model
        self.numpy_state = np.random.get_state()  # noqa: NPY002 (the user's global RNG)
        self.python_state = random.getstate()
        generator = _keras_internals.global_seed_generator()
        self.variables = VariableSnapshot(
            [
                *model.variables,
                *model.optimizer.variables,
                *model.metrics_variables,
                *([generator.state] if generator is not None else []),
            ]
        )
        self.attributes = {
            name: getattr(model, name)
            for name in ("history", "stop_training")
            if hasattr(model, name)
        }

    def restore(self) -> None:
        self.variables.restore()
        np.random.set_state(self.numpy_state)  # noqa: NPY002
        random.setstate(self.python_state)
        for name, value in self.attributes.items():
            setattr(self.model, name, value)


def _array_leaves(data) -> list | None:
    """The leaves of array-like data (possibly nested); None for other inputs."""
    if data is None:
        return []
    leaves = keras.tree.flatten(data)
    if not leaves or not all(
        hasattr(leaf, "shape") and len(leaf.shape) >= 1 for leaf in leaves
    ):
        return None
    return leaves


def _check_arrays(named_leaves: dict[str, list]) -> int:
    """All arrays have the same number of samples, and float ones are finite."""
    counts = {
        name: {int(leaf.shape[0]) for leaf in leaves}
        for name, leaves in named_leaves.items()
        if leaves
    }
    if len(counts["x"]) != 1:
        raise _checks.invalid_described(
            "x",
            "arrays with the same number of samples",
            f"arrays of {sorted(counts['x'])} samples",
        )
    (samples,) = counts["x"]
    for name in ("y", "sample_weight"):
        if name in counts and counts[name] != {samples}:
            raise _checks.invalid_described(
                name,
                f"as many samples as `x` ({samples})",
                f"{sorted(counts[name])} samples",
            )
    for name, leaves in named_leaves.items():
        for leaf in leaves:
            values = np.asarray(keras.ops.convert_to_numpy(leaf))
            if np.issubdtype(values.dtype, np.inexact):
                bad = int(np.size(values) - np.count_nonzero(np.isfinite(values)))
                if bad:
                    raise _checks.invalid_described(
                        name,
                        "finite values (a NaN or inf in the data makes every loss "
                        "after it NaN)",
                        f"{bad} non-finite value(s)",
                    )
    return samples


def _known_length(x) -> int | None:
    """Batches per epoch of a dataset-like input, when it has one."""
    cardinality = getattr(x, "cardinality", None)
    if callable(cardinality):  # tf.data.Dataset: -1 infinite, -2 unknown
        count = int(cardinality())
        return count if count >= 0 else None
    try:
        return len(x)
    except TypeError:
        return None


def _whole_batches(arrays, samples: int, size: int, shuffle: bool) -> tuple:
    """The first `size` samples of each structure, after one shared permutation.

    The permutation is drawn from NumPy's global RNG, which
    `keras.utils.set_random_seed` seeds and the sweep's snapshot restores. (Not
    from Keras' global `SeedGenerator`: creating that inside a distribution
    strategy's scope would tie it to the strategy.)
    """
    kept = min(samples, size)
    if shuffle:
        order = np.random.permutation(samples)[:kept]  # noqa: NPY002

        def take(leaf):
            return np.asarray(keras.ops.convert_to_numpy(leaf))[order]

    else:

        def take(leaf):
            return leaf[:kept]

    return tuple(
        None if data is None else keras.tree.map_structure(take, data)
        for data in arrays
    )


def find_learning_rate(
    model: keras.Model,
    x: Any,
    y: Any = None,
    *,
    epochs: int = 1,
    batch_size: int = 32,
    min_rate: float = 1e-5,
    max_rate: float = 10.0,
    num_steps: int | None = None,
    smoothing: float | None = None,
    divergence_threshold: float = 4.0,
    shuffle: bool = True,
    sample_weight: Any = None,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    beta: float | None = None,
    skip_start: int | None = None,
    skip_end: int = 5,
) -> LRFinderResult:
    """Runs the LR range test on `model`, then puts everything back.

    Trains for `num_steps` optimizer steps with the learning rate growing
    geometrically from `min_rate` (first step) to `max_rate` (last step),
    `rate_k = min_rate * (max_rate / min_rate) ** (k / (num_steps - 1))`, and
    records the true loss of every batch. The sweep stops early once the
    smoothed loss is non-finite or has diverged; `result.stop_reason` says why
    it ended. The suggestions are fastai's (see `suggest`), on the points
    `[skip_start : len - skip_end]` (fastai's `[num_steps // 10 : -5]` by
    default).

    Divergence is judged against `best`, the lowest smoothed loss so far, and
    `first`, the first one, with `t = divergence_threshold`:

    - While no batch loss has been negative: `smoothed > t * best`, fastai's
      rule. A loss that is never negative has zero as its floor, and `best`
      measures how far above it the loss is; `smoothed > t * best` is
      `smoothed - best > (t - 1) * best`, a rise of `t - 1` times that scale.
    - Once a batch loss was negative (cosine similarity, a log-likelihood, a
      shifted MSE: a loss with no floor at zero), the rise is measured against
      `scale = max(|best|, first - best)`: diverged when
      `smoothed - best > (t - 1) * scale`, never while `scale` is 0. fastai's
      `smoothed > t * best` would hold at once below zero (`t * best < best`),
      stopping the sweep after a step or two. The scale is the loss's
      magnitude at its best or, when larger, its fall from the first loss (so
      a loss that crosses zero, `best` near 0, still has one). Where in doubt
      the rule lets the sweep run on: a sweep that runs long costs steps, one
      that stops early leaves no curve.

    A loss that can be negative but has not been yet is judged by fastai's
    rule: near zero (cosine similarity of a fresh model, say) a noisy rise can
    then stop the sweep early. Pass a larger `divergence_threshold` (1e9 turns
    the early stop off) for such a loss.

    When the curve is flat over those points (its smoothed losses span at most
    `FLAT_TOLERANCE = 1e-3` of their magnitude: a constant loss, or rates far
    too small) the sweep warns, every suggestion is NaN and `stop_reason` is
    `"flat loss curve"`. A model without trainable weights warns, runs no
    sweep (empty `rates` and `losses`), and its result has NaN suggestions and
    `stop_reason="no trainable weights"`.

    `x` is anything `Model.fit` takes: arrays or dicts / lists of arrays (with
    `y` and `sample_weight`), a `keras.utils.PyDataset`, a `tf.data.Dataset`, a
    torch `DataLoader`, or a generator. `num_steps` defaults to `epochs` epochs
    wherever the input has a length (arrays, `len`, known cardinality) and is
    required otherwise. Array inputs are checked as Keras checks them (the same
    number of samples everywhere) and must be finite; they are cut to whole
    batches (so each recovered batch loss is exact) and, with `shuffle=True`,
    permuted once with a permutation drawn from NumPy's global RNG, which
    `keras.utils.set_random_seed` seeds and the restore puts back; a
    `PyDataset`'s batch order is shuffled as `fit` shuffles it.
    A sweep that would pass over the data more than 10 times (a `num_steps`
    far above the batches of `x`) warns before it starts.

    Afterwards the model's variables (weights, non-trainable state,
    seed-generator states), every optimizer variable (iterations, slots,
    learning rate), the metrics, Keras' global seed generator and the NumPy and
    Python global RNG states are bit-exactly as before, also when the sweep
    raises or is interrupted.

    Args:
        model: A compiled, built model whose optimizer has a float learning rate.
        x: Input data (see above).
        y: Targets, for array inputs; required when the model was compiled
            with a loss.
        epochs: Passes over the data when `num_steps` is None.
        batch_size: Batch size for array inputs.
        min_rate: First learning rate, > 0 (a positive normal float32).
        max_rate: Last learning rate, > `min_rate` (a positive normal float32,
            at most `3.4e38` times `min_rate`).
        num_steps: Steps of the sweep, >= 2; default `epochs` epochs of `x`.
        smoothing: EMA coefficient for `smoothed_losses`, in [0, 1); default
            0.98, as fastai's.
        divergence_threshold: Early-stop factor, > 1 (see above; fastai: 4).
        shuffle: Whether to permute array inputs (as `fit` does by default).
        sample_weight: Per-sample weights, for array inputs.
        callbacks: Extra callbacks for the sweep's `fit` (e.g. progress), a
            sequence of `keras.callbacks.Callback`.
        beta: fastai's name for `smoothing` (`AvgSmoothLoss(beta=0.98)`); give
            one of the two, or both with the same value.
        skip_start: Points the suggestions skip at the start, an integer >= 0,
            or None for fastai's `num_steps // 10`.
        skip_end: Points the suggestions skip at the end, an integer >= 0
            (fastai: 5).

    Returns:
        An `LRFinderResult` (`rates, losses = result`).

    Raises:
        ValueError: If `model` is not a `keras.Model`, is not compiled or
            not built, or its optimizer's learning rate is a schedule or a
            callable; if `min_rate` is not a positive normal float32; if
            `max_rate` is not a positive normal float32 > `min_rate`, is more
            than `3.4e38` times `min_rate`, or is so close to it that the
            per-step factor rounds to 1 in float32; if `smoothing` or `beta`
            is not None or a float in [0, 1), or both are given with
            different values; if `skip_start` is not None or an integer >= 0,
            or `skip_end` not an integer >= 0; if `divergence_threshold` is
            not a float > 1; if `epochs` or `batch_size` is not a positive
            integer; if `num_steps` is not None or an integer >= 2; if `shuffle`
            is not a bool; if `callbacks` is not a sequence of
            `keras.callbacks.Callback` instances; if `x` is None. For array
            inputs: if `y` or `sample_weight` is not arrays too, `y` is None
            while the model has a loss, the arrays differ in their number of
            samples, a float array holds a NaN or inf, or there is no sample.
            For other inputs: if `num_steps` is None and `x` has no length,
            or `x` has no batch. If the sweep would be shorter than 2 steps.
            When the sweep's `fit` begins: if the model was compiled with
            `steps_per_execution` other than 1.

    Example:

    ```python
    >>> import keras, numpy as np
    >>> from kerasx.lr_finder import find_learning_rate
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    >>> model.compile(keras.optimizers.SGD(0.01), "mse")
    >>> x = np.random.default_rng(0).random((64, 4))
    >>> y = x @ np.array([[1.0], [2.0], [3.0], [4.0]])  # a noise-free linear target
    >>> weights = model.get_weights()
    >>> result = find_learning_rate(model, x, y, batch_size=4, min_rate=1e-4,
    ...                             max_rate=0.1)  # 64 / 4 = 16 steps
    >>> result.stop_reason, len(result.rates)
    ('completed', 16)
    >>> round(float(result.rates[0]), 6), round(float(result.rates[-1]), 6)
    (0.0001, 0.1)
    >>> sorted(result.suggestions)
    ['minimum', 'slide', 'steep', 'valley']
    >>> # Everything is put back: the weights, the rate, the step count.
    >>> all(np.array_equal(a, b) for a, b in zip(weights, model.get_weights()))
    True
    >>> round(float(model.optimizer.learning_rate), 6), int(model.optimizer.iterations)
    (0.01, 0)

    ```

    Reference:
        - [Smith, 2017](https://arxiv.org/abs/1506.01186), "Cyclical Learning Rates".
        - fastai `Learner.lr_find` and `valley` / `steep` / `minimum` suggestions.
    """
    _checks.model(model)
    if not getattr(model, "compiled", False) or model.optimizer is None:
        raise _checks.invalid_described(
            "model",
            "a compiled model (call `model.compile(optimizer, loss)` first)",
            f"uncompiled model {model.name!r}",
        )
    if not model.built:
        raise _checks.invalid_described(
            "model",
            "a built model (give it an `Input` or call it on a batch) so that its "
            "weights can be restored",
            f"unbuilt model {model.name!r}",
        )
    check_learning_rate_is_variable(model.optimizer)
    min_rate = _checks.learning_rate("min_rate", min_rate)
    max_rate = _checks.number(
        "max_rate",
        max_rate,
        low=min_rate,
        low_open=True,
        expected=f"a float > min_rate={min_rate}",
    )
    max_rate = _checks.learning_rate("max_rate", max_rate)
    if max_rate / min_rate > _checks.FLOAT32_MAX:
        # The sweep computes (max_rate / min_rate) ** (k / (num_steps - 1)).
        raise _checks.invalid(
            "max_rate",
            f"a float with max_rate / min_rate <= {_checks.FLOAT32_MAX:.8g} "
            "(the sweep's growth is computed in float32; "
            f"it is {max_rate / min_rate:.6g})",
            max_rate,
        )
    smoothing = _smoothing_coefficient(smoothing, beta)
    skip_start = _checks.integer("skip_start", skip_start, minimum=0, allow_none=True)
    skip_end = _checks.integer("skip_end", skip_end, minimum=0)
    divergence_threshold = _checks.number(
        "divergence_threshold", divergence_threshold, low=1, low_open=True
    )
    epochs = _checks.integer("epochs", epochs, minimum=1)
    batch_size = _checks.integer("batch_size", batch_size, minimum=1)
    num_steps = _checks.integer("num_steps", num_steps, minimum=2, allow_none=True)
    shuffle = _checks.boolean("shuffle", shuffle)
    if (
        isinstance(callbacks, (str, bytes))
        or not isinstance(callbacks, Sequence)
        or not all(isinstance(c, keras.callbacks.Callback) for c in callbacks)
    ):
        raise _checks.invalid(
            "callbacks", "a sequence of keras.callbacks.Callback instances", callbacks
        )
    if x is None:
        raise _checks.invalid(
            "x",
            "input data (arrays, a dataset, a `keras.utils.PyDataset` or a generator)",
            x,
        )

    optimizer = model.optimizer
    if not optimizer.built:
        with keras.name_scope(optimizer.name, caller=optimizer):
            optimizer.build(model.trainable_variables)
    x_leaves = _array_leaves(x)
    fit_kwargs: dict[str, Any] = {}
    # The sweep counts applied updates: `accumulation` batches each, plus room
    # for the batches a loss-scale optimizer skips (they apply nothing).
    accumulation = accumulation_steps(optimizer)
    loss_scaled = isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
    skip_allowance = 32  # batches, for an input without a length
    if x_leaves is not None:
        named = {"x": x_leaves}
        for name, data in (("y", y), ("sample_weight", sample_weight)):
            leaves = _array_leaves(data)
            if leaves is None:
                raise _checks.invalid_described(
                    name, "arrays, as `x` is", f"a {type(data).__name__}"
                )
            named[name] = leaves
        if y is None and model.loss is not None:
            raise _checks.invalid(
                "y",
                "targets for array `x`, as the model's loss needs them (only a "
                "dataset or generator can yield its own `(x, y)` batches)",
                y,
            )
        samples = _check_arrays(named)
        if samples == 0:
            raise _checks.invalid_described("x", "at least one sample", "0 samples")
        # Whole batches only, so every recovered batch loss is exact.
        steps_per_epoch = max(samples // batch_size, 1)
        total = num_steps or epochs * steps_per_epoch // accumulation
        fit_kwargs.update(
            batch_size=batch_size,
            shuffle=False,
            epochs=math.ceil(total * accumulation / steps_per_epoch) + loss_scaled,
        )
    else:
        steps_per_epoch = _known_length(x)
        if num_steps is None and steps_per_epoch is None:
            raise _checks.invalid(
                "num_steps",
                "an integer >= 2 when `x` has no length (a generator, or a dataset "
                "of unknown cardinality)",
                None,
            )
        if steps_per_epoch == 0:
            raise _checks.invalid_described("x", "at least one batch", "0 batches")
        total = num_steps or epochs * steps_per_epoch // accumulation
        if steps_per_epoch is None:
            batches = total * accumulation + loss_scaled * skip_allowance
            fit_kwargs.update(epochs=1, steps_per_epoch=batches)
        else:
            passes = math.ceil(total * accumulation / steps_per_epoch)
            fit_kwargs.update(epochs=passes + loss_scaled)
        # `fit` shuffles a PyDataset's batch order (NumPy's global RNG, which the
        # snapshot restores); for other inputs it would only warn that it cannot.
        fit_kwargs.update(shuffle=shuffle and isinstance(x, keras.utils.PyDataset))
    if total < 2:
        raise _checks.invalid_described(
            "num_steps",
            "a sweep of at least 2 steps",
            f"None: {total} step(s) from batch_size={batch_size}, epochs={epochs}",
        )
    factor = (max_rate / min_rate) ** (1.0 / (total - 1))
    if not np.float32(factor) > 1:
        raise _checks.invalid(
            "max_rate",
            f"a float far enough above min_rate={min_rate} that the per-step "
            f"factor (max_rate / min_rate) ** (1 / ({total} - 1)) = {factor!r} is "
            "> 1 in float32 (else every step has the same rate)",
            max_rate,
        )
    skip = {"skip_start": skip_start, "skip_end": skip_end}
    if not model.trainable_weights:
        warnings.warn(
            f"find_learning_rate: model {model.name!r} has no trainable weights, "
            "so its loss cannot depend on the learning rate: no sweep ran and "
            "every suggestion is NaN. Unfreeze some layers "
            "(`layer.trainable = True`, then compile again) first.",
            stacklevel=2,
        )
        return LRFinderResult.from_losses(
            [], [], smoothing, num_steps=total, stop_reason=NO_TRAINABLE_WEIGHTS, **skip
        )
    passes = fit_kwargs["epochs"] - loss_scaled  # not the pass kept for skips
    if passes > _MAX_QUIET_PASSES:
        warnings.warn(
            f"find_learning_rate: the sweep of {total} steps makes {passes} passes "
            f"over the data ({steps_per_epoch} batch(es) each), more than "
            f"{_MAX_QUIET_PASSES}; a range test usually needs one. Pass a smaller "
            "`num_steps` (or `epochs`) unless this is intended.",
            stacklevel=2,
        )
    sweep = ExponentialLearningRate(factor)
    stopper = _StopOnDivergence(sweep, total, smoothing, divergence_threshold)
    snapshot = _Snapshot(model)
    try:
        if x_leaves is not None:
            x, y, sample_weight = _whole_batches(
                (x, y, sample_weight), samples, steps_per_epoch * batch_size, shuffle
            )
            fit_kwargs.update(y=y, sample_weight=sample_weight)
        optimizer.learning_rate.assign(min_rate)
        # The stop rule sees one point per applied update, not per batch.
        stopper_per_update = PerUpdate(sweep, stopper)
        callbacks = [sweep, stopper_per_update, *callbacks]
        model.fit(x, verbose=0, callbacks=callbacks, **fit_kwargs)
    finally:
        remove_step_hook(model)
        snapshot.restore()
    stop_reason = stopper.reason
    if stop_reason is None and len(sweep.losses) >= total:
        stop_reason = COMPLETED
    elif stop_reason is None:
        # Only an input without a length can run out before `total` steps.
        length_known = x_leaves is not None or steps_per_epoch is not None
        stop_reason = STOPPED if length_known else DATA_EXHAUSTED
    if stop_reason == DATA_EXHAUSTED:
        warnings.warn(
            f"find_learning_rate: the data ran out after {len(sweep.losses)} of "
            f"{total} steps; the sweep stops at "
            f"{sweep.rates[-1] if sweep.rates else min_rate:.3g} instead of "
            f"max_rate={max_rate:g}. Pass data that yields at least num_steps "
            "batches (e.g. `dataset.repeat()`), or a smaller `num_steps`.",
            stacklevel=2,
        )
    return LRFinderResult.from_losses(
        sweep.rates,
        sweep.losses,
        smoothing,
        num_steps=total,
        stop_reason=stop_reason,
        **skip,
    )
