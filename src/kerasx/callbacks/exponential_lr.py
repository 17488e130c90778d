"""The exponential learning-rate sweep of the LR range test."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from kerasx import _checks
from kerasx.callbacks._step_hook import StepHook, check_learning_rate_is_variable


@keras.saving.register_keras_serializable(package="kerasx")
class ExponentialLearningRate(keras.callbacks.Callback):
    """Multiplies the learning rate by `factor` after every optimizer step.

    The rate of step `k` of a `fit` call is `rate_0 * factor ** k`, where
    `rate_0` is the optimizer's learning rate when training begins; it is
    computed inside the train step from `optimizer.iterations`. After each batch
    the callback records the rate used and the **true** loss of that batch.
    Keras only reports the running mean of the epoch, weighted by batch size;
    with equal batches the batch loss is recovered as

    `loss_k = k * mean_k - (k - 1) * mean_{k-1}`   (k = 1, 2, ... within an epoch)

    in float64. A smaller final batch is recovered under the same equal-size
    assumption (drop the remainder when that matters). The lists are reset when
    training begins. After `fit`, completed or interrupted, the optimizer holds
    the last applied rate, as `keras.callbacks.LearningRateScheduler` leaves it,
    and nothing of the sweep stays installed.

    Args:
        factor: Multiplicative step, a float > 0 (> 1 for a sweep upwards).

    Attributes:
        rates: Learning rate of every batch (Python floats).
        losses: Loss of every batch (Python floats).

    Example:

    ```python
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    >>> model.compile(keras.optimizers.SGD(1e-4), "mse")
    >>> sweep = ExponentialLearningRate(factor=10.0)
    >>> x, y = np.ones((12, 4)), np.zeros((12, 1))
    >>> _ = model.fit(x, y, batch_size=4, callbacks=[sweep], verbose=0)
    >>> [round(rate, 6) for rate in sweep.rates]
    [0.0001, 0.001, 0.01]

    ```

    Reference:
        - Géron, *Hands-On Machine Learning*, 3rd ed., ch. 11,
          `ExponentialLearningRate`.
        - [Smith, 2017](https://arxiv.org/abs/1506.01186), "Cyclical Learning Rates".
    """

    def __init__(self, factor: float) -> None:
        super().__init__()
        self.factor = _checks.number("factor", factor, low=0, low_open=True)
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
        self._initial_rate = float(ops.convert_to_numpy(model.optimizer.learning_rate))
        self._accumulation = model.optimizer.gradient_accumulation_steps or 1
        self._batches_seen = 0
        start = int(ops.convert_to_numpy(model.optimizer.iterations))
        initial, factor = self._initial_rate, self.factor

        def learning_rate_fn(step):
            return initial * ops.power(factor, ops.cast(step, "float32"))

        self._hook = StepHook(self, model, learning_rate_fn, start_step=start)
        self._hook.install()

    def on_epoch_begin(self, epoch, logs=None):
        self._previous_mean = 0.0

    def on_train_batch_end(self, batch, logs=None):
        mean = float((logs or {})["loss"])
        self.losses.append((batch + 1) * mean - batch * self._previous_mean)
        self._previous_mean = mean
        step = self._batches_seen // self._accumulation
        self.rates.append(self._initial_rate * self.factor**step)
        self._batches_seen += 1

    def on_train_end(self, logs=None):
        if self._hook is not None:
            self._hook.finish()
            self._hook = None

    def get_config(self) -> dict[str, Any]:
        return {"factor": self.factor}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> ExponentialLearningRate:
        return cls(**config)
