"""The learning-rate range test: sweep, smooth, suggest, plot; state restored."""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np

from kerasx import _keras_internals
from kerasx._state import VariableSnapshot
from kerasx.callbacks._step_hook import (
    check_learning_rate_is_variable,
    remove_step_hook,
)
from kerasx.callbacks.exponential_lr import ExponentialLearningRate
from kerasx.plotting import plot_lr_vs_loss

__all__ = ["LRFinderResult", "find_learning_rate", "plot_lr_vs_loss"]


def _require(condition: bool, name: str, value, expected: str) -> None:
    if not condition:
        raise ValueError(
            f"Invalid value received for argument `{name}`. Expected {expected}. "
            f"Received: {name}={value}"
        )


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


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


class _StopOnDivergence(keras.callbacks.Callback):
    """Stops after `num_steps` batches or once the smoothed loss diverges."""

    def __init__(self, sweep, num_steps, smoothing, threshold):
        super().__init__()
        self.sweep, self.num_steps = sweep, num_steps
        self.smoothing, self.threshold = smoothing, threshold
        self.average, self.best = 0.0, math.inf

    def on_train_batch_end(self, batch, logs=None):
        k = len(self.sweep.losses)
        loss = self.sweep.losses[-1]
        self.average = self.smoothing * self.average + (1.0 - self.smoothing) * loss
        smoothed = self.average / (1.0 - self.smoothing**k)
        self.best = min(self.best, smoothed)
        diverged = not math.isfinite(smoothed) or smoothed > self.threshold * self.best
        if diverged or k >= self.num_steps:
            self.model.stop_training = True


class _Snapshot:
    """Every piece of state a `fit` can change, copied so it restores bit-exactly."""

    def __init__(self, model):
        self.model = model
        generator = _keras_internals.global_seed_generator()
        self.variables = VariableSnapshot(
            [
                *model.variables,
                *model.optimizer.variables,
                *model.metrics_variables,
                *([generator.state] if generator is not None else []),
            ]
        )
        self.numpy_state = np.random.get_state()  # noqa: NPY002 (the user's global RNG)
        self.python_state = random.getstate()
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


def _num_samples(x) -> int | None:
    """Number of samples of array-like inputs (possibly nested); None otherwise."""
    leaves = [leaf for leaf in keras.tree.flatten(x) if hasattr(leaf, "shape")]
    if not leaves or len(keras.tree.flatten(x)) != len(leaves):
        return None
    return int(leaves[0].shape[0]) if len(leaves[0].shape) else None


def _take(data, count):
    return keras.tree.map_structure(lambda leaf: leaf[:count], data)


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
    smoothing: float = 0.98,
    divergence_threshold: float = 4.0,
    callbacks: Sequence[keras.callbacks.Callback] = (),
) -> LRFinderResult:
    """Runs the LR range test on `model`, then puts everything back.

    Trains for `num_steps` optimizer steps with the learning rate growing
    geometrically from `min_rate` (first step) to `max_rate` (last step),
    `rate_k = min_rate * (max_rate / min_rate) ** (k / (num_steps - 1))`, and
    records the true loss of every batch. The sweep stops early once the
    smoothed loss is non-finite or above `divergence_threshold` times its
    minimum. Afterwards the model's variables (weights, non-trainable state,
    seed-generator states), every optimizer variable (iterations, slots,
    learning rate), the metrics, Keras' global seed generator and the NumPy and
    Python global RNG states are bit-exactly as before, also when the sweep
    raises or is interrupted. Array data is used in the given order (no
    shuffling, so no RNG is consumed): shuffle it beforehand.

    Args:
        model: A compiled, built model whose optimizer has a float learning rate.
        x: Inputs (arrays, or a `tf.data.Dataset` / `PyDataset` / generator with
            `num_steps` given).
        y: Targets, for array inputs.
        epochs: Passes over the data when `num_steps` is None.
        batch_size: Batch size for array inputs.
        min_rate: First learning rate, > 0.
        max_rate: Last learning rate, > `min_rate`.
        num_steps: Steps of the sweep, >= 2; default `epochs` epochs of `x`.
        smoothing: EMA coefficient for `smoothed_losses`, in [0, 1).
        divergence_threshold: Early-stop factor, > 1.
        callbacks: Extra callbacks for the sweep's `fit` (e.g. progress).

    Returns:
        An `LRFinderResult` (`rates, losses = result`).

    Example:

    ```python
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    >>> model.compile(keras.optimizers.SGD(0.01), "mse")
    >>> x, y = np.random.rand(256, 4), np.random.rand(256, 1)
    >>> result = find_learning_rate(model, x, y, batch_size=8, max_rate=1.0)
    >>> len(result.rates) <= 32, round(float(model.optimizer.learning_rate), 6)
    (True, 0.01)

    ```

    Reference:
        - [Smith, 2017](https://arxiv.org/abs/1506.01186), "Cyclical Learning Rates".
        - fastai `LRFinder` and `valley` / `steep` / `minimum` suggestions.
    """
    if not getattr(model, "compiled", False) or model.optimizer is None:
        raise ValueError(
            "Invalid value received for argument `model`. Expected a compiled model "
            "(call `model.compile(optimizer, loss)` first). Received: an uncompiled "
            f"model {model.name!r}"
        )
    if not model.built:
        raise ValueError(
            "Invalid value received for argument `model`. Expected a built model "
            "(give it an `Input` or call it on a batch) so that its weights can be "
            f"restored. Received: an unbuilt model {model.name!r}"
        )
    check_learning_rate_is_variable(model.optimizer)
    number = (int, float)
    _require(
        isinstance(min_rate, number) and min_rate > 0,
        "min_rate",
        min_rate,
        "a float > 0",
    )
    _require(
        isinstance(max_rate, number) and max_rate > min_rate,
        "max_rate",
        max_rate,
        f"a float > min_rate={min_rate}",
    )
    _require(
        isinstance(smoothing, number) and 0 <= smoothing < 1,
        "smoothing",
        smoothing,
        "a float in [0, 1)",
    )
    _require(
        isinstance(divergence_threshold, number) and divergence_threshold > 1,
        "divergence_threshold",
        divergence_threshold,
        "a float > 1",
    )
    for name, value in (("epochs", epochs), ("batch_size", batch_size)):
        _require(_is_int(value) and value >= 1, name, value, "an int >= 1")
    _require(
        num_steps is None or (_is_int(num_steps) and num_steps >= 2),
        "num_steps",
        num_steps,
        "an int >= 2 or None",
    )
    samples = _num_samples(x)
    if samples == 0:
        raise ValueError(
            "Invalid value received for argument `x`. Expected at least one sample. "
            "Received: x with 0 samples"
        )
    fit_kwargs: dict[str, Any] = {}
    if samples is not None:
        # Whole batches only, so every recovered batch loss is exact.
        if samples >= batch_size:
            samples -= samples % batch_size
        x, y = _take(x, samples), (None if y is None else _take(y, samples))
        steps_per_epoch = math.ceil(samples / batch_size)
        total = num_steps or epochs * steps_per_epoch
        fit_kwargs.update(
            batch_size=batch_size,
            shuffle=False,
            epochs=math.ceil(total / steps_per_epoch),
        )
    elif num_steps is None:
        raise ValueError(
            "Invalid value received for argument `num_steps`. Expected an int >= 2 "
            "when `x` is a dataset or generator. Received: num_steps=None"
        )
    else:
        total = num_steps
        fit_kwargs.update(epochs=1, steps_per_epoch=num_steps)
    if total < 2:
        raise ValueError(
            "Invalid value received for argument `num_steps`. Expected a sweep of at "
            f"least 2 steps. Received: {samples} samples at batch_size={batch_size}, "
            f"epochs={epochs}"
        )
    optimizer = model.optimizer
    if not optimizer.built:
        with keras.name_scope(optimizer.name, caller=optimizer):
            optimizer.build(model.trainable_variables)
    sweep = ExponentialLearningRate((max_rate / min_rate) ** (1.0 / (total - 1)))
    stopper = _StopOnDivergence(sweep, total, smoothing, divergence_threshold)
    snapshot = _Snapshot(model)
    try:
        optimizer.learning_rate.assign(min_rate)
        model.fit(x, y, verbose=0, callbacks=[sweep, stopper, *callbacks], **fit_kwargs)
    finally:
        remove_step_hook(model)
        snapshot.restore()
    return LRFinderResult.from_losses(sweep.rates, sweep.losses, smoothing)
