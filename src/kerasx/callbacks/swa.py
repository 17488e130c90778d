"""Stochastic weight averaging (SWA), as PyTorch's `AveragedModel` + `SWALR`."""

from __future__ import annotations

import math
import warnings
from typing import Any

import keras
import numpy as np
from keras import ops

from kerasx import _checks
from kerasx._batch_norm_statistics import batch_norm_layers, update_batchnorm
from kerasx.callbacks import _step_hook

_ANNEAL_STRATEGIES = ("cos", "linear")


def swa_learning_rate(
    initial_rate: float,
    swa_lr: float,
    epochs: int,
    anneal_epochs: int,
    anneal_strategy: str = "cos",
) -> float:
    """The rate of PyTorch's `SWALR` after `epochs` scheduler steps.

    `initial_rate + (swa_lr - initial_rate) * a(t)` with
    `t = min(1, epochs / anneal_epochs)` (`t = 1` when `anneal_epochs == 0`)
    and `a(t) = (1 - cos(pi t)) / 2` ("cos") or `a(t) = t` ("linear").
    """
    t = 1.0 if anneal_epochs == 0 else min(1.0, epochs / anneal_epochs)
    alpha = (1.0 - math.cos(math.pi * t)) / 2.0 if anneal_strategy == "cos" else t
    return swa_lr * alpha + initial_rate * (1.0 - alpha)


def averaged_variables(model: keras.Model) -> list[keras.Variable]:
    """The variables SWA averages: `[w for w in model.weights if w.trainable]`.

    PyTorch's `parameters()`: weights of frozen layers included (they do not
    change, so their average is themselves), BatchNorm moving statistics and
    other non-trainable state excluded.
    """
    variables, seen = [], set()
    for variable in model.weights:
        if variable.trainable and id(variable) not in seen:
            seen.add(id(variable))
            variables.append(variable)
    return variables


@keras.saving.register_keras_serializable(package="kerasx")
class StochasticWeightAveraging(keras.callbacks.Callback):
    """Averages the weights of the epochs from `start_epoch` on (SWA).

    At the end of every epoch `e >= start_epoch` (counted from 0, as `fit`
    counts them) the weights are added to an equal-weight running average,
    as PyTorch's `torch.optim.swa_utils.AveragedModel.update_parameters`
    does: the first average is a copy, then
    `average <- average + (w - average) / (n + 1)` after `n` epochs averaged.
    The average is kept beside the model, in non-trainable variables of the
    callback, until the end of `fit`; then, with `swap=True`, the model gets
    the averaged weights and, if `update_bn_data` is given, BatchNorm moving
    statistics recomputed for them by `kerasx.models.update_batchnorm`
    (without it a model with BatchNorm layers triggers a warning: statistics
    of the last weights do not fit the averaged ones). With `swap=False` the
    model keeps its last weights; `averaged_weights` and `apply_average()`
    give the average. An interrupted `fit` leaves the model's weights as they
    were after the last batch (the average stays in the callback).

    Averaged are `[w for w in model.weights if w.trainable]` (PyTorch's
    `parameters()`); moving statistics and other non-trainable state are not.

    With `swa_lr`, the callback sets the learning rate at the start of each
    epoch from `start_epoch` on, as PyTorch's `SWALR` (constructed at
    `start_epoch` and stepped after each averaged epoch): during the `j`-th
    SWA epoch of the `fit` (from 0), the rate is
    `r0 + (swa_lr - r0) * a(min(1, j / anneal_epochs))` with `r0` the
    optimizer's rate when epoch `start_epoch` begins, and
    `a(t) = (1 - cos(pi t)) / 2` ("cos") or `t` ("linear"); `swa_lr` from
    the start when `anneal_epochs=0`. After `fit` the optimizer keeps the
    last rate, as `keras.callbacks.LearningRateScheduler` leaves it. A
    callback that sets the rate per step (`kerasx.callbacks.OneCycleScheduler`,
    `SnapshotEnsemble(max_rate=...)`) cannot share the `fit` with `swa_lr`
    and is refused; with `swa_lr=None` the rates are left to the optimizer
    and the other callbacks (average the last epochs of a 1cycle run, for
    example). A Keras `LearningRateScheduler` or `ReduceLROnPlateau` in the
    same `fit` would overwrite the SWA rate: leave them out with `swa_lr`.

    Each `fit` starts a new average. `update_bn_data` is not part of
    `get_config` (data does not serialize); pass it again after loading.

    Args:
        start_epoch: First epoch averaged, an integer >= 0.
        swa_lr: Learning rate of the SWA epochs, or None to leave the rate as
            it is.
        anneal_epochs: Epochs of the annealing from the current rate to
            `swa_lr`, an integer >= 0 (PyTorch's default 10).
        anneal_strategy: `"cos"` or `"linear"`.
        update_bn_data: Inputs for `kerasx.models.update_batchnorm` (anything
            it takes: arrays, a dataset, a `PyDataset`), used when the average
            is applied; None to skip the BatchNorm update.
        swap: Whether the model gets the average at the end of `fit`.
        update_bn_steps: `steps` for `update_batchnorm`.
        update_bn_batch_size: `batch_size` for `update_batchnorm` (array
            inputs).

    Attributes:
        n_averaged: Number of epochs averaged in the last `fit`.
        averaged_weights: The average, as NumPy arrays (in the order of
            `[w for w in model.weights if w.trainable]`).

    Raises:
        ValueError: If `start_epoch` is not an integer >= 0; if `swa_lr` is
            not None or a positive normal float32; if `anneal_epochs` is not
            an integer >= 0; if `anneal_strategy` is not `"cos"` or
            `"linear"`; if `swap` is not a bool; if `update_bn_steps` or
            `update_bn_batch_size` is not None or an integer >= 1. When
            training begins, with `swa_lr`: if the optimizer's learning rate
            is a schedule or a callable; if another kerasx callback sets the
            rate of every step in the same `fit`.

    Example:

    ```python
    >>> import keras, numpy as np
    >>> from kerasx.callbacks import StochasticWeightAveraging
    >>> model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    >>> model.compile(keras.optimizers.SGD(0.1), "mse")
    >>> x, y = np.ones((8, 3)), np.ones((8, 1))
    >>> swa = StochasticWeightAveraging(start_epoch=2, swa_lr=0.05, anneal_epochs=0)
    >>> history = model.fit(x, y, epochs=4, callbacks=[swa], verbose=0)
    >>> swa.n_averaged  # epochs 2 and 3
    2
    >>> [round(rate, 6) for rate in history.history["learning_rate"]]
    [0.1, 0.1, 0.05, 0.05]
    >>> bool(np.allclose(model.layers[0].kernel.numpy(), swa.averaged_weights[0]))
    True

    ```

    Reference:
        - [Izmailov et al., 2018](https://arxiv.org/abs/1803.05407), "Averaging
          Weights Leads to Wider Optima and Better Generalization".
        - PyTorch `torch.optim.swa_utils`: `AveragedModel`, `SWALR`,
          `update_bn`.
    """

    def __init__(
        self,
        start_epoch: int,
        swa_lr: float | None = None,
        anneal_epochs: int = 10,
        anneal_strategy: str = "cos",
        update_bn_data: Any = None,
        swap: bool = True,
        *,
        update_bn_steps: int | None = None,
        update_bn_batch_size: int | None = None,
    ) -> None:
        super().__init__()
        self.start_epoch = _checks.integer("start_epoch", start_epoch, minimum=0)
        self.swa_lr = (
            None if swa_lr is None else _checks.learning_rate("swa_lr", swa_lr)
        )
        self.anneal_epochs = _checks.integer("anneal_epochs", anneal_epochs, minimum=0)
        self.anneal_strategy = _checks.choice(
            "anneal_strategy", anneal_strategy, _ANNEAL_STRATEGIES
        )
        self.update_bn_data = update_bn_data
        self.swap = _checks.boolean("swap", swap)
        self.update_bn_steps = _checks.integer(
            "update_bn_steps", update_bn_steps, minimum=1, allow_none=True
        )
        self.update_bn_batch_size = _checks.integer(
            "update_bn_batch_size", update_bn_batch_size, minimum=1, allow_none=True
        )
        self.n_averaged = 0
        self._variables: list[keras.Variable] = []
        self._average: list[keras.Variable] = []

    @property
    def averaged_weights(self) -> list[np.ndarray]:
        """The average, as NumPy arrays (order: `averaged_variables(model)`).

        The order of `[w for w in model.weights if w.trainable]`.
        """
        return [ops.convert_to_numpy(average) for average in self._average]

    def apply_average(self, model: keras.Model | None = None) -> None:
        """Assigns the average to the model and updates its BatchNorm statistics.

        Called at the end of `fit` when `swap=True`; call it yourself with
        `swap=False`. The statistics are recomputed with `update_bn_data`
        when given; else a model with BatchNorm layers triggers a warning.

        Args:
            model: The model to assign to (one with the same weights as the
                trained model, e.g. a clone); defaults to the trained model.

        Raises:
            ValueError: If no epoch has been averaged; if `model` is not a
                `keras.Model`, or its weights differ in shape or order from
                the average. As `kerasx.models.update_batchnorm` raises, with
                `update_bn_data`.
        """
        if self.n_averaged == 0:
            raise _checks.invalid_described(
                "n_averaged",
                f"at least one averaged epoch (epochs from start_epoch="
                f"{self.start_epoch} on are averaged)",
                "no epoch averaged",
            )
        model = self.model if model is None else _checks.model(model)
        variables = averaged_variables(model)
        shapes = [tuple(variable.shape) for variable in variables]
        if shapes != [tuple(average.shape) for average in self._average]:
            raise _checks.invalid_described(
                "model",
                "a model with the trained model's weights (same shapes, same order)",
                f"weights of shapes {shapes}",
            )
        for variable, average in zip(variables, self._average, strict=True):
            variable.assign(average)
        if self.update_bn_data is not None:
            update_batchnorm(
                model,
                self.update_bn_data,
                self.update_bn_steps,
                batch_size=self.update_bn_batch_size,
            )
        elif batch_norm_layers(model):
            warnings.warn(
                "The averaged weights were assigned, but the BatchNorm moving "
                "statistics still belong to the last weights of training. Pass "
                "`update_bn_data` to StochasticWeightAveraging, or call "
                "`kerasx.models.update_batchnorm(model, data)`.",
                stacklevel=2,
            )

    def _refuse_step_schedule(self) -> None:
        optimizer = getattr(self.model, "optimizer", None)
        hook = getattr(optimizer, _step_hook._HOOK_ATTRIBUTE, None)
        if self.swa_lr is not None and hook is not None and hook.model is self.model:
            raise _checks.invalid(
                "swa_lr",
                "None when another kerasx callback sets the learning rate of "
                f"every step ({type(hook.owner).__name__} does): with swa_lr=None "
                "the rates stay that callback's",
                self.swa_lr,
            )

    def on_train_begin(self, logs=None):
        self.n_averaged = 0
        self._variables = averaged_variables(self.model)
        self._average = []
        self._swa_epochs = 0
        self._initial_rate = None
        self._checked_schedules = False
        if self.swa_lr is not None:
            optimizer = self.model.optimizer
            if not isinstance(optimizer.learning_rate, keras.Variable):
                raise _checks.invalid(
                    "swa_lr",
                    "None when the optimizer's learning rate is a schedule (with "
                    "swa_lr the callback sets the rate of each SWA epoch; compile "
                    "with a float learning rate)",
                    self.swa_lr,
                )
        self._refuse_step_schedule()

    def on_epoch_begin(self, epoch, logs=None):
        if not self._checked_schedules:
            # Every callback's `on_train_begin` has run: a per-step hook is there.
            self._refuse_step_schedule()
            self._checked_schedules = True
        if self.swa_lr is None or epoch < self.start_epoch:
            return
        variable = self.model.optimizer.learning_rate
        if self._initial_rate is None:
            self._initial_rate = float(ops.convert_to_numpy(variable))
        rate = swa_learning_rate(
            self._initial_rate,
            self.swa_lr,
            self._swa_epochs,
            self.anneal_epochs,
            self.anneal_strategy,
        )
        variable.assign(ops.cast(rate, variable.dtype))
        self._swa_epochs += 1

    def on_epoch_end(self, epoch, logs=None):
        if self.swa_lr is not None and logs is not None:
            rate = self.model.optimizer.learning_rate
            logs["learning_rate"] = float(ops.convert_to_numpy(rate))
        if epoch < self.start_epoch:
            return
        if self.n_averaged == 0:
            self._average = [
                keras.Variable(
                    ops.copy(variable.value),
                    dtype=variable.dtype,
                    trainable=False,
                    name=f"swa_{variable.name}",
                )
                for variable in self._variables
            ]
        else:
            weight = 1.0 / (self.n_averaged + 1)
            for average, variable in zip(self._average, self._variables, strict=True):
                step = ops.multiply(ops.subtract(variable.value, average.value), weight)
                average.assign(ops.add(average.value, step))
        self.n_averaged += 1

    def on_train_end(self, logs=None):
        if self.n_averaged == 0:
            warnings.warn(
                f"No epoch was averaged: training ended before start_epoch="
                f"{self.start_epoch}, and the model keeps its last weights.",
                stacklevel=2,
            )
            return
        if self.swap:
            self.apply_average()

    def get_config(self) -> dict[str, Any]:
        return dict(
            start_epoch=self.start_epoch,
            swa_lr=self.swa_lr,
            anneal_epochs=self.anneal_epochs,
            anneal_strategy=self.anneal_strategy,
            swap=self.swap,
            update_bn_steps=self.update_bn_steps,
            update_bn_batch_size=self.update_bn_batch_size,
        )

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> StochasticWeightAveraging:
        return cls(**config)
