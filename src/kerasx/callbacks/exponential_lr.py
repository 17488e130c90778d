"""The exponential learning-rate sweep of the LR range test."""

from __future__ import annotations

import math
import warnings
from typing import Any

import keras
import numpy as np
from keras import ops

from kerasx import _checks
from kerasx.callbacks._step_hook import (
    StepHook,
    applying_optimizer,
    check_learning_rate_is_variable,
    raw_step_count,
)

# The next rate is predicted in float64 from the float32 inputs; the train step
# computes it in float32 (`power` to within a few ulps), hence the margin.
_LOG_MARGIN = 1e-4
_LOG_LOWEST = math.log(_checks.FLOAT32_TINY)
_LOG_HIGHEST = math.log(_checks.FLOAT32_MAX)


def _scientific(log_value: float) -> str:
    """`exp(log_value)` written as `1.5e+57`, also beyond the float64 range."""
    exponent = math.floor(log_value / math.log(10))
    mantissa = math.exp(log_value - exponent * math.log(10))
    return f"{mantissa:.3g}e{exponent:+03d}"


@keras.saving.register_keras_serializable(package="kerasx")
class ExponentialLearningRate(keras.callbacks.Callback):
    """Multiplies the learning rate by `factor` after every applied update.

    The rate of update `k` of a `fit` call is `rate_0 * factor ** k`, where
    `rate_0` is the optimizer's learning rate when training begins; it is
    computed inside the train step from `optimizer.iterations`. After each
    applied update the callback records the rate used and the **true** loss of
    its batch. Keras only reports the running mean of the epoch, weighted by
    batch size; with equal batches the batch loss is recovered as

    `loss_k = k * mean_k - (k - 1) * mean_{k-1}`   (k = 1, 2, ... within an epoch)

    in float64. A smaller final batch is recovered under the same equal-size
    assumption (drop the remainder when that matters). The recorded rate is the
    one actually applied: after each update it is read back from the
    optimizer's learning-rate variable (float32), not computed in Python.

    Updates, not batches, are counted. With `gradient_accumulation_steps=n` on
    the optimizer one point is recorded per `n` batches, its loss the mean of
    their losses (the loss of the accumulated gradient). Under mixed precision
    the rate is set on the optimizer inside the `LossScaleOptimizer`, and a
    batch the loss-scale optimizer skips for non-finite gradients (the loss
    scale is too high) applies nothing: the rate stays, no point is recorded and
    the batch's loss is dropped (unless the loss itself is not finite: the
    model diverged, and that batch is recorded, with the rate the variable
    still holds, the last applied one).

    When the next rate (or `factor ** k`, computed on the way) would leave the
    positive normal float32 range (overflow to inf, or underflow
    below 1.1754944e-38), training stops after the current batch with a
    warning, as `keras.callbacks.TerminateOnNaN` stops it, instead of applying
    inf. The lists are reset when training begins. After `fit`, completed or
    interrupted, the optimizer holds the last applied rate, as
    `keras.callbacks.LearningRateScheduler` leaves it, and nothing of the sweep
    stays installed.

    Args:
        factor: Multiplicative step, a float > 0 (> 1 for a sweep upwards)
            that is a positive normal float32. The optimizer's learning rate
            when training begins must be a positive normal float32 too.

    Attributes:
        rates: Learning rate of every applied update, read back from the
            optimizer's variable (Python floats of the float32 values).
        losses: Loss of every applied update's batch (or the mean over its
            accumulated batches), as Python floats.

    Raises:
        ValueError: If `factor` is not a float > 0 that is a positive normal
            float32. When training begins: if the optimizer's learning rate
            is a schedule or a callable, or is not a positive normal float32;
            if the model was compiled with `steps_per_execution` other than
            1; if another kerasx callback that sets the rate of every step
            (`OneCycleScheduler`, `SnapshotEnsemble(max_rate=...)`) is in the
            same `fit`.

    Example:

    ```python
    >>> import keras, numpy as np
    >>> from kerasx.callbacks import ExponentialLearningRate
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    >>> model.compile(keras.optimizers.SGD(1e-4), "mse")
    >>> sweep = ExponentialLearningRate(factor=10.0)
    >>> x, y = np.ones((12, 4)), np.zeros((12, 1))
    >>> _ = model.fit(x, y, batch_size=4, callbacks=[sweep], verbose=0)
    >>> [round(rate, 6) for rate in sweep.rates]  # one per batch
    [0.0001, 0.001, 0.01]
    >>> len(sweep.losses)
    3
    >>> round(float(model.optimizer.learning_rate), 6)  # the last applied rate
    0.01

    ```

    Reference:
        - Géron, *Hands-On Machine Learning*, 3rd ed., ch. 11,
          `ExponentialLearningRate`.
        - [Smith, 2017](https://arxiv.org/abs/1506.01186), "Cyclical Learning Rates".
    """

    def __init__(self, factor: float) -> None:
        super().__init__()
        self.factor = _checks.learning_rate("factor", factor)
        self.rates: list[float] = []
        self.losses: list[float] = []
        self._hook = None

    def on_train_begin(self, logs=None):
        model = self.model
        check_learning_rate_is_variable(model.optimizer)
        if (model.steps_per_execution or 1) != 1:
            raise _checks.invalid(
                "steps_per_execution",
                "1 (per-batch losses are only reported once per execution)",
                model.steps_per_execution,
            )
        self.rates, self.losses = [], []
        optimizer = applying_optimizer(model.optimizer)
        self._initial_rate = float(ops.convert_to_numpy(optimizer.learning_rate))
        if not _checks.is_normal_float32(self._initial_rate):
            raise _checks.invalid(
                "optimizer.learning_rate",
                f"a positive normal float32 to start the sweep from, in "
                f"{_checks.FLOAT32_RANGE}",
                self._initial_rate,
            )
        self._log_initial = math.log(self._initial_rate)
        # The train step raises the float32 factor to the power: predict with it.
        self._log_factor = math.log(float(np.float32(self.factor)))
        start = int(ops.convert_to_numpy(optimizer.iterations))
        self._updates, self._batches = start, raw_step_count(optimizer)
        self._pending_losses: list[float] = []
        initial, factor = self._initial_rate, self.factor

        def learning_rate_fn(step):
            return initial * ops.power(factor, ops.cast(step, "float32"))

        self._hook = StepHook(self, model, learning_rate_fn, start_step=start)
        self._hook.install()

    def on_epoch_begin(self, epoch, logs=None):
        self._previous_mean = 0.0

    def on_train_batch_end(self, batch, logs=None):
        mean = float((logs or {})["loss"])
        loss = (batch + 1) * mean - batch * self._previous_mean
        self._previous_mean = mean
        # JAX's `fit` keeps the variables' values outside them between batches;
        # its public sync puts them back (a no-op once synced).
        sync = getattr(self.model, "jax_state_sync", None)
        if sync is not None:
            sync()
        optimizer = self._hook.optimizer
        batches = raw_step_count(optimizer)
        if batches > self._batches:  # not skipped by a loss-scale optimizer
            self._pending_losses.append(loss)
        self._batches = batches
        updates = int(ops.convert_to_numpy(optimizer.iterations))
        applied = updates > self._updates
        if not (applied or math.isfinite(loss)):
            # The loss itself, not only its scaled gradient, is not finite: the
            # model diverged, whether or not a loss-scale optimizer skips the step.
            self.rates.append(float(ops.convert_to_numpy(self._hook.variable)))
            self.losses.append(loss)
        if applied:
            self.rates.append(float(ops.convert_to_numpy(self._hook.variable)))
            self.losses.append(float(np.mean(self._pending_losses)))
            self._pending_losses = []
            self._updates = updates
            self._stop_before_float32_overflow(updates - self._hook.start_step)

    def _stop_before_float32_overflow(self, step: int) -> None:
        """Stops training when the rate of `step` would not be a normal float32.

        The train step computes `initial * factor ** step` in float32, so both
        the rate and the power on the way to it must stay in range.
        """
        log_power = step * self._log_factor
        candidates = (
            (
                f"the next learning rate {self._initial_rate:.6g} * factor ** {step}",
                self._log_initial + log_power,
            ),
            (f"factor ** {step}, on the way to the next learning rate", log_power),
        )
        for quantity, log_value in candidates:
            if log_value > _LOG_HIGHEST - _LOG_MARGIN:
                problem = f"overflow float32 (max {_checks.FLOAT32_MAX:.8g})"
            elif log_value < _LOG_LOWEST + _LOG_MARGIN:
                tiny = _checks.FLOAT32_TINY
                problem = f"underflow float32 (smallest normal {tiny:.8g})"
            else:
                continue
            warnings.warn(
                f"ExponentialLearningRate: stopping training after "
                f"{len(self.rates)} batch(es): {quantity} = {_scientific(log_value)} "
                f"would {problem}. Use a factor closer to 1 or fewer steps.",
                stacklevel=2,
            )
            self.model.stop_training = True
            return

    def on_train_end(self, logs=None):
        if self._hook is not None:
            self._hook.finish()
            self._hook = None

    def get_config(self) -> dict[str, Any]:
        return {"factor": self.factor}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> ExponentialLearningRate:
        return cls(**config)


class PerUpdate(keras.callbacks.Callback):
    """Calls `callback.on_train_batch_end` only after batches that recorded a point.

    Batches that only accumulate a gradient, or that a loss-scale optimizer
    skips, add no point to `sweep`; a callback that judges the sweep (the LR
    finder's stop rule) sees one call per applied update. Everything else is
    forwarded unchanged.
    """

    def __init__(self, sweep: ExponentialLearningRate, callback) -> None:
        super().__init__()
        self.sweep, self.callback, self._seen = sweep, callback, 0

    def set_model(self, model):
        super().set_model(model)
        self.callback.set_model(model)

    def set_params(self, params):
        super().set_params(params)
        self.callback.set_params(params)

    def on_train_begin(self, logs=None):
        self._seen = 0
        self.callback.on_train_begin(logs)

    def on_train_end(self, logs=None):
        self.callback.on_train_end(logs)

    def on_epoch_begin(self, epoch, logs=None):
        self.callback.on_epoch_begin(epoch, logs)

    def on_epoch_end(self, epoch, logs=None):
        self.callback.on_epoch_end(epoch, logs)

    def on_train_batch_end(self, batch, logs=None):
        if len(self.sweep.rates) > self._seen:
            self._seen = len(self.sweep.rates)
            self.callback.on_train_batch_end(batch, logs)
