"""The result of the LR range test: smoothing, suggestions and the plot."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np


def _smooth(losses: np.ndarray, smoothing: float) -> np.ndarray:
    """Bias-corrected exponential moving average: `avg_k / (1 - beta**(k+1))`."""
    smoothed, average = np.empty(len(losses)), 0.0
    for k, loss in enumerate(losses):
        average = smoothing * average + (1.0 - smoothing) * loss
        smoothed[k] = average / (1.0 - smoothing ** (k + 1))
    return smoothed


def _valley(rates: np.ndarray, losses: np.ndarray) -> float:
    """fastai's valley: 1/3 + 1/6 along the longest decreasing run of the loss."""
    lengths = np.ones(len(losses), dtype=int)
    max_start = max_end = 0
    for i in range(1, len(losses)):
        for j in range(i):
            if losses[i] < losses[j] and lengths[i] < lengths[j] + 1:
                lengths[i] = lengths[j] + 1
            if lengths[max_end] < lengths[i]:
                max_end, max_start = i, i - lengths[i]
    section = (max_end - max_start) / 3
    return float(rates[max_start + int(section) + int(section / 2)])


def _suggestions(rates: np.ndarray, smoothed: np.ndarray) -> dict[str, float]:
    finite = np.isfinite(smoothed)
    rates, smoothed = rates[finite], smoothed[finite]
    if len(rates) < 2:
        value = float(rates[0]) if len(rates) else float("nan")
        return {"valley": value, "steep": value, "minimum": value / 10}
    slopes = np.diff(smoothed) / np.diff(np.log(rates))
    return {
        "valley": _valley(rates, smoothed),
        "steep": float(rates[int(np.argmin(slopes))]),
        "minimum": float(rates[int(np.argmin(smoothed))]) / 10,
    }


@dataclass(frozen=True)
class LRFinderResult:
    """Outcome of a learning-rate range test.

    Unpacks as `rates, losses = result` (like Hands-On ML's `exp_lr.rates,
    exp_lr.losses`).

    Attributes:
        rates: Learning rate of every step.
        losses: True loss of every step's batch.
        smoothed_losses: Bias-corrected EMA of `losses` (see `from_losses`).
        suggestions: `"valley"` (fastai's rule: a third-plus-a-sixth along the
            longest decreasing run of the smoothed loss), `"steep"` (rate of the
            steepest descent of smoothed loss vs log rate) and `"minimum"` (rate
            at the smoothed minimum, divided by 10).
        suggestion: The `"valley"` suggestion.
    """

    rates: np.ndarray
    losses: np.ndarray
    smoothed_losses: np.ndarray
    suggestions: dict[str, float] = field(default_factory=dict)

    @property
    def suggestion(self) -> float:
        return self.suggestions["valley"]

    def __iter__(self) -> Iterator[np.ndarray]:
        return iter((self.rates, self.losses))

    @classmethod
    def from_losses(
        cls, rates: Sequence[float], losses: Sequence[float], smoothing: float = 0.98
    ) -> LRFinderResult:
        """Smooths `losses` and computes the suggestions.

        `smoothed_k = a_k / (1 - smoothing**(k+1))` with
        `a_k = smoothing * a_{k-1} + (1 - smoothing) * loss_k`, `a_{-1} = 0`.

        Args:
            rates: Learning rates, increasing.
            losses: Loss at each rate.
            smoothing: EMA coefficient in [0, 1); 0 keeps the raw losses.

        Returns:
            An `LRFinderResult`.
        """
        if not (isinstance(smoothing, (int, float)) and 0 <= smoothing < 1):
            raise ValueError(
                "Invalid value received for argument `smoothing`. Expected a float in "
                f"[0, 1). Received: smoothing={smoothing}"
            )
        rates = np.asarray(rates, dtype="float64")
        losses = np.asarray(losses, dtype="float64")
        smoothed = _smooth(losses, smoothing)
        return cls(rates, losses, smoothed, _suggestions(rates, smoothed))


def plot_lr_vs_loss(result: LRFinderResult, ax=None):
    """Plots loss against learning rate (log x axis) with the suggestions marked.

    Args:
        result: The `LRFinderResult` of `find_learning_rate`.
        ax: A matplotlib Axes to draw on; a new figure's Axes by default.

    Returns:
        The matplotlib Axes.
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots()
    ax.plot(result.rates, result.losses, alpha=0.35, label="loss")
    ax.plot(result.rates, result.smoothed_losses, label="smoothed loss")
    finite = np.isfinite(result.smoothed_losses)
    for (name, rate), marker in zip(result.suggestions.items(), "ovs", strict=True):
        if math.isfinite(rate) and finite.any():
            loss = np.interp(
                np.log(rate),
                np.log(result.rates[finite]),
                result.smoothed_losses[finite],
            )
            ax.plot([rate], [loss], marker, markersize=8, label=f"{name}: {rate:.2e}")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("loss")
    ax.legend()
    return ax
