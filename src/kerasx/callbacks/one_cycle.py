"""The 1cycle callback of Hands-On Machine Learning, exact per optimizer step."""

from __future__ import annotations

import warnings
from typing import Any

import keras
from keras import ops

from kerasx.callbacks._step_hook import (
    StepHook,
    check_learning_rate_is_variable,
    remove_step_hook,
)
from kerasx.schedules import _check_momentum, _piecewise


class _HandsOnMLOneCycle(keras.optimizers.schedules.LearningRateSchedule):
    """Géron's three linear phases, ending exactly at `last_rate` on the last step."""

    def __init__(self, iterations, max_rate, start_rate, last_iterations, last_rate):
        self.iterations = iterations
        half = (iterations - last_iterations) // 2
        self.knots = [0.0, float(half), float(2 * half), float(iterations - 1)]
        self.rates = (start_rate, max_rate, start_rate, last_rate)

    def _evaluate(self, step, values):
        step = ops.clip(ops.cast(step, "float32"), 0.0, self.knots[-1])
        phases = [
            (self.knots[i], self.knots[i + 1], values[i], values[i + 1])
            for i in range(3)
            if i == 2 or self.knots[i + 1] > self.knots[i]
        ]
        value = _piecewise(step, phases, "linear")
        # When the last phase is empty its start and end coincide: end wins.
        return ops.where(step >= self.knots[-1], values[-1], value)

    def __call__(self, step):
        return self._evaluate(step, self.rates)

    def momentum(self, step, base_momentum=0.85, max_momentum=0.95):
        return self._evaluate(
            step, (max_momentum, base_momentum, max_momentum, max_momentum)
        )


def _check_positive(name: str, value, upper=None, upper_name=None) -> None:
    if not (isinstance(value, (int, float)) and value > 0) or (
        upper is not None and value > upper
    ):
        bound = f" and <= {upper_name} ({upper})" if upper is not None else ""
        raise ValueError(
            f"Invalid value received for argument `{name}`. Expected a float > 0"
            f"{bound}. Received: {name}={value}"
        )


@keras.saving.register_keras_serializable(package="kerasx")
class OneCycleScheduler(keras.callbacks.Callback):
    """Drives the learning rate through one cycle, per optimizer step.

    The Hands-On ML (ch. 11) 1cycle curve, in optimizer steps `s`:
    `start_rate -> max_rate` linearly over `[0, half]`, back to `start_rate` over
    `[half, 2 * half]`, then down to `last_rate` at `s = iterations - 1`, and
    `last_rate` for every later step; `half = (iterations - last_iterations) // 2`.
    With `cycle_momentum=True` the momentum (SGD `momentum`, Adam-family `beta_1`)
    moves the other way: `max_momentum -> base_momentum -> max_momentum`.

    The step is `optimizer.iterations - start_step`, evaluated inside the
    compiled train step, so the rate is exact for every optimizer step with
    `steps_per_execution > 1`, with `gradient_accumulation_steps`, and after
    `save` / `load` / `fit(initial_epoch=...)`. The optimizer's learning rate
    (and momentum) are restored when training ends; `logs["learning_rate"]` holds
    the rate of each epoch's last step. Installing the schedule retraces the
    train function once per `fit`.

    Args:
        iterations: Length of the cycle in optimizer steps, an int >= 2 (for
            example `epochs * math.ceil(n_samples / batch_size)`).
        max_rate: Peak learning rate.
        start_rate: Rate at step 0; defaults to `max_rate / 10`.
        last_iterations: Length of the final annealing phase; defaults to
            `iterations // 10 + 1`.
        last_rate: Rate at step `iterations - 1`; defaults to `start_rate / 1000`.
        start_step: Optimizer step at which the cycle starts. To start a new cycle
            on an optimizer that has trained already, pass
            `start_step=int(model.optimizer.iterations)`.
        cycle_momentum: Whether to cycle the momentum as well.
        base_momentum: Momentum at the peak rate.
        max_momentum: Momentum at the start and the end of the cycle.

    Example:

    ```python
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    >>> model.compile(keras.optimizers.SGD(0.01), "mse")
    >>> cycle = OneCycleScheduler(iterations=20, max_rate=0.05)
    >>> x, y = np.ones((40, 4)), np.zeros((40, 1))
    >>> history = model.fit(x, y, batch_size=4, epochs=2, callbacks=[cycle], verbose=0)
    >>> round(history.history["learning_rate"][-1], 9)
    5e-06

    ```

    Reference:
        - Géron, *Hands-On Machine Learning*, 3rd ed., ch. 11, `OneCycleScheduler`.
        - [Smith, 2018](https://arxiv.org/abs/1803.09820), "A disciplined approach
          to neural network hyper-parameters".
    """

    def __init__(
        self,
        iterations: int,
        max_rate: float,
        start_rate: float | None = None,
        last_iterations: int | None = None,
        last_rate: float | None = None,
        *,
        start_step: int = 0,
        cycle_momentum: bool = False,
        base_momentum: float = 0.85,
        max_momentum: float = 0.95,
    ) -> None:
        super().__init__()
        if isinstance(iterations, bool) or not (
            isinstance(iterations, int) and iterations >= 2
        ):
            raise ValueError(
                "Invalid value received for argument `iterations`. Expected an int "
                f">= 2. Received: iterations={iterations}"
            )
        _check_positive("max_rate", max_rate)
        start_rate = max_rate / 10 if start_rate is None else start_rate
        _check_positive("start_rate", start_rate, max_rate, "max_rate")
        last_rate = start_rate / 1000 if last_rate is None else last_rate
        _check_positive("last_rate", last_rate, max_rate, "max_rate")
        last_iterations = (
            iterations // 10 + 1 if last_iterations is None else last_iterations
        )
        if isinstance(last_iterations, bool) or not (
            isinstance(last_iterations, int) and 1 <= last_iterations <= iterations
        ):
            raise ValueError(
                "Invalid value received for argument `last_iterations`. Expected an "
                f"int in [1, iterations={iterations}]. "
                f"Received: last_iterations={last_iterations}"
            )
        self._arguments = dict(
            iterations=iterations,
            max_rate=float(max_rate),
            start_rate=float(start_rate),
            last_iterations=last_iterations,
            last_rate=float(last_rate),
        )
        schedule = _HandsOnMLOneCycle(**self._arguments)
        self._setup(schedule, start_step, cycle_momentum, base_momentum, max_momentum)

    def _setup(self, schedule, start_step, cycle_momentum, base_momentum, max_momentum):
        if isinstance(start_step, bool) or not (
            isinstance(start_step, int) and start_step >= 0
        ):
            raise ValueError(
                "Invalid value received for argument `start_step`. Expected an int "
                f">= 0. Received: start_step={start_step}"
            )
        _check_momentum(base_momentum, max_momentum)
        if cycle_momentum and not hasattr(schedule, "momentum"):
            raise ValueError(
                "Invalid value received for argument `cycle_momentum`. Expected a "
                "schedule with a `momentum(step, base_momentum, max_momentum)` method "
                f"(e.g. kerasx.schedules.OneCycle). Received: schedule={schedule!r}"
            )
        self.schedule = schedule
        self.start_step = start_step
        self.cycle_momentum = bool(cycle_momentum)
        self.base_momentum = float(base_momentum)
        self.max_momentum = float(max_momentum)
        self._hook = None

    @classmethod
    def from_schedule(
        cls,
        schedule: keras.optimizers.schedules.LearningRateSchedule,
        *,
        start_step: int = 0,
        cycle_momentum: bool = False,
        base_momentum: float = 0.85,
        max_momentum: float = 0.95,
    ) -> OneCycleScheduler:
        """Drives any `LearningRateSchedule` per optimizer step, like the 1cycle curve.

        Args:
            schedule: The schedule, called with `optimizer.iterations - start_step`.
            start_step: As in the constructor.
            cycle_momentum: As in the constructor; needs a schedule with a
                `momentum` method (e.g. `kerasx.schedules.OneCycle`).
            base_momentum: As in the constructor.
            max_momentum: As in the constructor.

        Returns:
            A `OneCycleScheduler` callback.
        """
        if not isinstance(schedule, keras.optimizers.schedules.LearningRateSchedule):
            raise ValueError(
                "Invalid value received for argument `schedule`. Expected a "
                "keras.optimizers.schedules.LearningRateSchedule. "
                f"Received: schedule={schedule!r}"
            )
        callback = cls.__new__(cls)
        keras.callbacks.Callback.__init__(callback)
        callback._arguments = None
        callback._setup(
            schedule, start_step, cycle_momentum, base_momentum, max_momentum
        )
        return callback

    @property
    def iterations(self) -> int | None:
        return getattr(
            self.schedule, "iterations", getattr(self.schedule, "total_steps", None)
        )

    def on_train_begin(self, logs=None):
        optimizer = self.model.optimizer
        remove_step_hook(self.model)
        check_learning_rate_is_variable(optimizer)
        step = int(ops.convert_to_numpy(optimizer.iterations)) - self.start_step
        if self.iterations is not None and step >= self.iterations:
            warnings.warn(
                f"The 1cycle schedule is already over (step {step} of "
                f"{self.iterations}): training continues at its final rate. To start "
                "a new cycle, pass `start_step=int(model.optimizer.iterations)`.",
                stacklevel=2,
            )
        momentum_fn = None
        if self.cycle_momentum:

            def momentum_fn(s):
                return self.schedule.momentum(s, self.base_momentum, self.max_momentum)

        self._hook = StepHook(self.model, self.schedule, momentum_fn, self.start_step)
        self._hook.install()

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = float(ops.convert_to_numpy(self._hook.variable))

    def on_train_end(self, logs=None):
        if self._hook is not None:
            self._hook.remove()
            self._hook = None

    def get_config(self) -> dict[str, Any]:
        common = dict(
            start_step=self.start_step,
            cycle_momentum=self.cycle_momentum,
            base_momentum=self.base_momentum,
            max_momentum=self.max_momentum,
        )
        if self._arguments is None:
            schedule = keras.saving.serialize_keras_object(self.schedule)
            return {"schedule": schedule, **common}
        return {**self._arguments, **common}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> OneCycleScheduler:
        config = dict(config)
        if "schedule" in config:
            schedule = keras.saving.deserialize_keras_object(config.pop("schedule"))
            return cls.from_schedule(schedule, **config)
        return cls(**config)
