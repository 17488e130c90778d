"""The 1cycle callback of Hands-On Machine Learning, exact per optimizer step."""

from __future__ import annotations

import warnings
from typing import Any

import keras
import numpy as np
from keras import ops

from kerasx import _checks
from kerasx.callbacks._step_hook import (
    StepHook,
    accumulation_steps,
    applying_optimizer,
    check_learning_rate_is_variable,
    raw_step_count,
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


def _check_rate(name: str, value, max_rate: float, default: str, derived: float):
    """A rate in `(0, max_rate]` that is a positive normal float32.

    `value` None stands for the default rate `derived` (the formula `default`,
    e.g. "max_rate / 10"), which must be a positive normal float32 too.
    """
    if value is None:
        if not _checks.is_normal_float32(derived):
            raise _checks.invalid(
                name,
                f"an explicit {name}: its default {default} = {derived:.6g} is not "
                f"a positive normal float32 (in {_checks.FLOAT32_RANGE})",
                None,
            )
        return derived
    expected = f"a float > 0 and <= max_rate ({max_rate})"
    value = _checks.number(
        name, value, low=0, high=max_rate, low_open=True, expected=expected
    )
    return _checks.learning_rate(name, value)


@keras.saving.register_keras_serializable(package="kerasx")
class OneCycleScheduler(keras.callbacks.Callback):
    """Drives the learning rate through one cycle, per optimizer step.

    The Hands-On ML (ch. 11) 1cycle curve, in optimizer steps `s`:
    `start_rate -> max_rate` linearly over `[0, half]`, back to `start_rate` over
    `[half, 2 * half]`, then down to `last_rate` at `s = iterations - 1`, and
    `last_rate` for every later step; `half = (iterations - last_iterations) // 2`.
    With `cycle_momentum=True` the momentum (SGD `momentum`, Adam-family `beta_1`)
    moves the other way: `max_momentum -> base_momentum -> max_momentum`.

    With `iterations=None` (the default) the cycle spans the whole `fit`, as
    fastai's `fit_one_cycle`: the optimizer updates that `epochs *
    steps_per_epoch` batches (from the callback's `params`) apply, starting at
    epoch 0 of that `fit`, so `fit(initial_epoch=k)` continues at epoch `k`'s
    step. With `gradient_accumulation_steps=n` that is the number of multiples
    of `n` the optimizer's batch count passes, also when updates straddle
    epochs (5 batches an epoch, `n=2`, 2 epochs: 5 updates).

    The step is an applied update, as for a Keras `LearningRateSchedule`: under
    gradient accumulation the rate changes once per `n` batches, and under
    mixed precision the rate and momentum are set on the optimizer inside the
    `LossScaleOptimizer`, whose `iterations` do not count the steps it skips
    for non-finite gradients. A skipped step applies nothing and the next
    update gets the rate the skipped one would have had, so every rate of the
    curve is applied once, in order; the cost is that a `fit` with skipped
    steps ends that many updates before the cycle's end. (PyTorch's
    `OneCycleLR` stepped per batch with a `GradScaler` instead drops the rate of
    a skipped step and ends on time.)

    With an explicit `iterations` the step is `optimizer.iterations -
    start_step`, evaluated inside the compiled train step, so the rate is exact
    for every optimizer step with `steps_per_execution > 1`, with
    `gradient_accumulation_steps`, and after `save` / `load` /
    `fit(initial_epoch=...)`. After `fit`, completed or interrupted, the
    optimizer holds the last applied rate (and momentum) as a plain float, as
    `keras.callbacks.LearningRateScheduler` leaves it, and nothing of the
    schedule stays installed: a later `fit` without this callback trains at
    that constant rate. `logs["learning_rate"]` holds the rate of each epoch's
    last step. Installing the schedule retraces the train function once per
    `fit`.

    Args:
        iterations: Length of the cycle in optimizer steps, an integer >= 2 (for
            example `epochs * math.ceil(n_samples / batch_size)`), or None for
            the whole `fit`.
        max_rate: Peak learning rate, a float > 0 (required). `max_rate`,
            `start_rate` and `last_rate` (given or default) must be positive
            normal float32 values, in `[1.1754944e-38, 3.4028235e+38]`.
        start_rate: Rate at step 0; defaults to `max_rate / 10`.
        last_iterations: Length of the final annealing phase; defaults to
            `iterations // 10 + 1`.
        last_rate: Rate at step `iterations - 1`; defaults to `start_rate / 1000`.
        start_step: Optimizer step at which the cycle starts (explicit
            `iterations` only). To start a new cycle on an optimizer that has
            trained already, pass `start_step=int(model.optimizer.iterations)`.
        cycle_momentum: Whether to cycle the momentum as well.
        base_momentum: Momentum at the peak rate, a float in [0, 1).
        max_momentum: Momentum at the start and the end of the cycle, a float
            in [base_momentum, 1).

    Raises:
        ValueError: If `iterations` is not None or an integer >= 2; if
            `max_rate` is missing or not a positive normal float32; if
            `start_rate` or `last_rate` is not a float in (0, max_rate] that
            is a positive normal float32 (or, left to its default, the
            default is not one); if `last_iterations` is not None or an
            integer in [1, iterations]; if `start_step` is not a non-negative
            integer, or not 0 with `iterations=None`; if `cycle_momentum` is not
            a bool; if `base_momentum` is not a float in [0, 1), or
            `max_momentum` not a float in [base_momentum, 1). When training
            begins: if the optimizer's learning rate is a schedule or a
            callable (pass it to `from_schedule`); if `start_step` exceeds
            the largest value of the optimizer's step counter; with
            `iterations=None`, if the number of steps per epoch is unknown,
            the `fit` applies fewer than 2 updates, or `last_iterations`
            exceeds them; with `cycle_momentum=True`, if the optimizer has no
            `beta_1` and is not SGD with `momentum > 0` and `nesterov=False`;
            if another kerasx callback that sets the rate of every step is in
            the same `fit`.

    Example:

    ```python
    >>> import keras, numpy as np
    >>> from kerasx.callbacks import OneCycleScheduler
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    >>> model.compile(keras.optimizers.SGD(0.01), "mse")
    >>> cycle = OneCycleScheduler(max_rate=0.05)  # the whole fit: 2 x 10 steps
    >>> x, y = np.ones((40, 4)), np.zeros((40, 1))
    >>> history = model.fit(x, y, batch_size=4, epochs=2, callbacks=[cycle], verbose=0)
    >>> round(history.history["learning_rate"][-1], 9)
    5e-06
    >>> round(float(model.optimizer.learning_rate), 9)  # the last applied rate
    5e-06

    ```

    Reference:
        - Géron, *Hands-On Machine Learning*, 3rd ed., ch. 11, `OneCycleScheduler`.
        - [Smith, 2018](https://arxiv.org/abs/1803.09820), "A disciplined approach
          to neural network hyper-parameters".
        - fastai `Learner.fit_one_cycle` (the cycle spans the whole `fit`).
    """

    def __init__(
        self,
        iterations: int | None = None,
        max_rate: float | None = None,
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
        iterations = _checks.integer(
            "iterations", iterations, minimum=2, allow_none=True
        )
        max_rate = _checks.learning_rate("max_rate", max_rate)
        start_rate = _check_rate(
            "start_rate", start_rate, max_rate, "max_rate / 10", max_rate / 10
        )
        last_rate = _check_rate(
            "last_rate", last_rate, max_rate, "start_rate / 1000", start_rate / 1000
        )
        if iterations is None:
            last_iterations = _checks.integer(
                "last_iterations", last_iterations, minimum=1, allow_none=True
            )
            if start_step != 0:
                raise _checks.invalid(
                    "start_step",
                    "0 when iterations=None (the cycle starts with the `fit`)",
                    start_step,
                )
        else:
            if last_iterations is None:
                last_iterations = iterations // 10 + 1
            last_iterations = _checks.integer(
                "last_iterations", last_iterations, minimum=1, maximum=iterations
            )
        self._arguments = dict(
            iterations=iterations,
            max_rate=max_rate,
            start_rate=start_rate,
            last_iterations=last_iterations,
            last_rate=last_rate,
        )
        schedule = None if iterations is None else self._cycle(iterations)
        self._setup(schedule, start_step, cycle_momentum, base_momentum, max_momentum)

    def _cycle(self, iterations: int) -> _HandsOnMLOneCycle:
        arguments = {**self._arguments, "iterations": iterations}
        if arguments["last_iterations"] is None:
            arguments["last_iterations"] = iterations // 10 + 1
        elif arguments["last_iterations"] > iterations:
            raise _checks.invalid(
                "last_iterations",
                f"an integer in [1, iterations={iterations}] (the steps of this fit)",
                arguments["last_iterations"],
            )
        return _HandsOnMLOneCycle(**arguments)

    def _setup(self, schedule, start_step, cycle_momentum, base_momentum, max_momentum):
        self.start_step = _checks.integer("start_step", start_step, minimum=0)
        self.cycle_momentum = _checks.boolean("cycle_momentum", cycle_momentum)
        self.base_momentum, self.max_momentum = _check_momentum(
            base_momentum, max_momentum
        )
        has_momentum = schedule is None or hasattr(schedule, "momentum")
        if self.cycle_momentum and not has_momentum:
            raise _checks.invalid(
                "cycle_momentum",
                "a schedule with a `momentum(step, base_momentum, max_momentum)` "
                "method (e.g. kerasx.schedules.OneCycle)",
                schedule,
            )
        self.schedule = schedule
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

        Raises:
            ValueError: If `schedule` is not a
                `keras.optimizers.schedules.LearningRateSchedule`; if
                `start_step`, `cycle_momentum`, `base_momentum` or
                `max_momentum` is refused as in the constructor; if
                `cycle_momentum=True` and the schedule has no `momentum`
                method.

        Example:

        ```python
        >>> import keras, numpy as np
        >>> from kerasx.callbacks import OneCycleScheduler
        >>> from kerasx.schedules import OneCycle
        >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
        >>> model.compile(keras.optimizers.SGD(0.01, momentum=0.9), "mse")
        >>> cycle = OneCycleScheduler.from_schedule(
        ...     OneCycle(0.05, total_steps=10), cycle_momentum=True)
        >>> cycle.iterations
        10
        >>> x, y = np.ones((40, 4)), np.zeros((40, 1))  # 10 steps of 4
        >>> _ = model.fit(x, y, batch_size=4, callbacks=[cycle], verbose=0)
        >>> round(float(model.optimizer.learning_rate), 9)  # 0.05 / 25 / 1e4
        2e-07
        >>> round(model.optimizer.momentum, 6)
        0.95

        ```
        """
        if not isinstance(schedule, keras.optimizers.schedules.LearningRateSchedule):
            raise _checks.invalid(
                "schedule",
                "a keras.optimizers.schedules.LearningRateSchedule",
                schedule,
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
        """Length of the cycle; None until a `fit` when it spans the whole `fit`."""
        return getattr(
            self.schedule, "iterations", getattr(self.schedule, "total_steps", None)
        )

    def _fit_cycle(self, first_batch: int) -> tuple[_HandsOnMLOneCycle, int]:
        """The cycle of this `fit` (`iterations=None`) and its start step.

        `first_batch` is the optimizer's batch count at epoch 0 of the `fit`.
        An update is applied when the batch count reaches a multiple of the
        accumulation steps `n`, so the batches `[first_batch, first_batch +
        epochs * steps)` apply `(first_batch + epochs * steps) // n -
        first_batch // n` updates, the first while `iterations` is
        `first_batch // n`.
        """
        steps = self.params.get("steps")
        epochs = self.params.get("epochs")
        if not steps:
            raise _checks.invalid(
                "iterations",
                "an integer >= 2 when the number of steps per epoch is unknown (give "
                "`fit` a `steps_per_epoch`, or data with a length)",
                None,
            )
        accumulation = accumulation_steps(self.model.optimizer)
        start = first_batch // accumulation
        iterations = (first_batch + epochs * steps) // accumulation - start
        if iterations < 2:
            per_update = (
                f", {accumulation} batches per update" if accumulation > 1 else ""
            )
            raise _checks.invalid(
                "iterations",
                f"a `fit` of at least 2 optimizer updates (epochs={epochs} x "
                f"{steps} batches{per_update}: {iterations})",
                None,
            )
        return self._cycle(iterations), start

    def on_train_begin(self, logs=None):
        optimizer = applying_optimizer(self.model.optimizer)
        check_learning_rate_is_variable(optimizer)
        dtype = keras.backend.standardize_dtype(optimizer.iterations.dtype)
        largest_step = int(np.iinfo(dtype).max)
        if self.start_step > largest_step:
            raise _checks.invalid(
                "start_step",
                f"an integer <= {largest_step} (this optimizer counts its steps in "
                f"{dtype})",
                self.start_step,
            )
        self._spans_fit = self._arguments is not None and (
            self._arguments["iterations"] is None
        )
        start_step = self.start_step
        if self._spans_fit:
            self.schedule, start_step = self._fit_cycle(raw_step_count(optimizer))
        else:
            step = int(ops.convert_to_numpy(optimizer.iterations)) - self.start_step
            if self.iterations is not None and step >= self.iterations:
                warnings.warn(
                    f"The 1cycle schedule is already over (step {step} of "
                    f"{self.iterations}): training continues at its final rate. To "
                    "start a new cycle, pass "
                    "`start_step=int(model.optimizer.iterations)`.",
                    stacklevel=2,
                )

        # Read at trace time: the first epoch may replace the schedule.
        def learning_rate_fn(s):
            return self.schedule(s)

        momentum_fn = None
        if self.cycle_momentum:

            def momentum_fn(s):
                return self.schedule.momentum(s, self.base_momentum, self.max_momentum)

        self._hook = StepHook(
            self, self.model, learning_rate_fn, momentum_fn, start_step
        )
        self._hook.install()
        self._first_epoch = True

    def on_epoch_begin(self, epoch, logs=None):
        if self._first_epoch and self._spans_fit and epoch > 0:
            # The cycle's step 0 is epoch 0 of this `fit` (`initial_epoch`
            # epochs of batches ago); the train function is traced on the first
            # batch, after this.
            first_batch = raw_step_count(self.model.optimizer)
            first_batch -= epoch * self.params["steps"]
            try:
                self.schedule, self._hook.start_step = self._fit_cycle(first_batch)
            except ValueError:
                self._hook.finish()
                raise
        self._first_epoch = False

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = float(ops.convert_to_numpy(self._hook.variable))

    def on_train_end(self, logs=None):
        if self._hook is not None:
            self._hook.finish()
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
