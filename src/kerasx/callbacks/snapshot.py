"""Snapshot ensembles: one saved member per learning-rate cycle (Huang et al., 2017)."""

from __future__ import annotations

import math
import os
from typing import Any

import keras
from keras import ops

from kerasx import _checks, saving
from kerasx.callbacks._step_hook import StepHook, check_learning_rate_is_variable

_FORMATS = (".keras", ".h5", ".hdf5", ".json", ".yaml", ".yml")


class _CosineRestarts(keras.optimizers.schedules.LearningRateSchedule):
    """`min + (max - min) / 2 * (1 + cos(pi * (step mod L) / L))`, `L = cycle_steps`."""

    def __init__(self, max_rate: float, min_rate: float, cycle_steps: int) -> None:
        self.max_rate = max_rate
        self.min_rate = min_rate
        self.cycle_steps = cycle_steps

    def __call__(self, step):
        position = ops.mod(ops.cast(step, "float32"), float(self.cycle_steps))
        cosine = ops.cos(math.pi * position / float(self.cycle_steps))
        return self.min_rate + (self.max_rate - self.min_rate) * 0.5 * (1.0 + cosine)

    def get_config(self) -> dict[str, Any]:
        return dict(
            max_rate=self.max_rate,
            min_rate=self.min_rate,
            cycle_steps=self.cycle_steps,
        )


@keras.saving.register_keras_serializable(package="kerasx")
class SnapshotEnsemble(keras.callbacks.Callback):
    """Saves one ensemble member at the end of each learning-rate cycle.

    Snapshot ensembles (Huang et al., 2017) train one model through `M`
    cycles of a cyclic learning rate and keep the model at the end of each
    cycle, where the rate is lowest and the model sits in a local minimum; the
    snapshots are then averaged as an ensemble (`kerasx.uncertainty.ensemble_predict`
    takes the saved paths). Members are saved with `kerasx.saving.save`
    (atomic: an interrupted save leaves no partial file) as
    `directory/snapshot_001.keras`, `snapshot_002.keras`, ... and listed in
    `paths`.

    A cycle is `cycle_length` epochs: a member is saved at the end of every
    epoch `e` with `(e + 1) % cycle_length == 0` (epochs counted from 0 as
    `fit` counts them; a last partial cycle is not saved). With
    `cycle_length=None` a cycle is the whole `fit`, and the member is saved
    when `fit` ends: call `fit` once per cycle, e.g. each with a new
    `kerasx.callbacks.OneCycleScheduler` (a fresh 1cycle per member).

    With `max_rate`, the callback drives Huang et al.'s cosine annealing with
    warm restarts itself, per optimizer step `s` counted from epoch 0 of the
    `fit`: `rate(s) = min_rate + (max_rate - min_rate) / 2 * (1 + cos(pi *
    (s mod L) / L))` with `L = cycle_length * steps_per_epoch` optimizer
    steps (the whole `fit` when `cycle_length=None`), evaluated inside the
    train step as `OneCycleScheduler` is (exact with `steps_per_execution`
    and gradient accumulation, nothing left installed after an interrupted
    `fit`, the last applied rate kept after `fit`). It then refuses another
    per-step kerasx schedule in the same `fit`. With `max_rate=None` the
    rates are left to the optimizer and the other callbacks.

    The list of `paths` grows over every `fit` the callback is used in (the
    members of one ensemble); use a new callback (or directory) for a new
    ensemble, since the names restart at `snapshot_001`.

    Args:
        directory: Folder for the members (str or os.PathLike), created if
            missing.
        cycle_length: Epochs per cycle, an integer >= 1, or None for one
            cycle per `fit`.
        max_rate: Rate at the start of each cycle (Huang et al.'s `alpha_0`,
            a float > 0), or None to leave the rates alone.
        min_rate: Rate the cosine reaches at the end of each cycle, a float in
            `[0, max_rate)` (Huang et al.: 0); only with `max_rate`.
        format: Suffix of the saved files: `".keras"` (default), `".h5"`,
            `".hdf5"`, `".json"`, `".yaml"` or `".yml"` (formats that
            `kerasx.saving.load` reads without a model).

    Attributes:
        paths: The saved members, in order (over every `fit`).

    Raises:
        ValueError: If `directory` is not a non-empty str or os.PathLike; if
            `cycle_length` is not None or an integer >= 1; if `max_rate` is
            not None or a positive normal float32; if `min_rate` is not 0.0
            when `max_rate` is None, or not a float in [0, max_rate); if
            `format` is not one of the suffixes above. When training begins,
            with `max_rate`: if the optimizer's learning rate is a schedule or
            a callable; if the number of steps per epoch is unknown; if
            another kerasx callback that sets the rate of every step is in
            the same `fit`.

    Example:

    ```python
    >>> import os, shutil, tempfile, keras, numpy as np
    >>> from kerasx.callbacks import SnapshotEnsemble
    >>> from kerasx.uncertainty import ensemble_predict
    >>> model = keras.Sequential([keras.Input((3,)),
    ...     keras.layers.Dense(2, activation="softmax")])
    >>> model.compile(keras.optimizers.SGD(0.1), "sparse_categorical_crossentropy")
    >>> x, y = np.ones((8, 3)), np.zeros((8,))
    >>> folder = tempfile.mkdtemp()
    >>> snapshots = SnapshotEnsemble(folder, cycle_length=2, max_rate=0.1)
    >>> _ = model.fit(x, y, batch_size=4, epochs=4, callbacks=[snapshots], verbose=0)
    >>> [os.path.basename(path) for path in snapshots.paths]
    ['snapshot_001.keras', 'snapshot_002.keras']
    >>> ensemble_predict(snapshots.paths, x).n_samples
    2
    >>> shutil.rmtree(folder)

    ```

    Reference:
        - [Huang et al., 2017](https://arxiv.org/abs/1704.00109), "Snapshot
          Ensembles: Train 1, get M for free" (eq. 2, rate per iteration).
        - [Loshchilov & Hutter, 2017](https://arxiv.org/abs/1608.03983),
          "SGDR: Stochastic Gradient Descent with Warm Restarts".
    """

    def __init__(
        self,
        directory: str | os.PathLike,
        cycle_length: int | None = None,
        *,
        max_rate: float | None = None,
        min_rate: float = 0.0,
        format: str = ".keras",
    ) -> None:
        super().__init__()
        if not isinstance(directory, (str, os.PathLike)) or not os.fspath(directory):
            raise _checks.invalid(
                "directory", "a non-empty str or os.PathLike", directory
            )
        self.directory = os.fspath(directory)
        self.cycle_length = _checks.integer(
            "cycle_length", cycle_length, minimum=1, allow_none=True
        )
        self.max_rate = (
            None if max_rate is None else _checks.learning_rate("max_rate", max_rate)
        )
        if self.max_rate is None:
            if min_rate != 0.0:
                raise _checks.invalid(
                    "min_rate", "0.0 when max_rate is None (no schedule)", min_rate
                )
            self.min_rate = 0.0
        else:
            self.min_rate = _checks.number(
                "min_rate",
                min_rate,
                low=0,
                high=self.max_rate,
                high_open=True,
                expected=f"a float >= 0 and < max_rate ({self.max_rate})",
            )
        self.format = _checks.choice("format", format, _FORMATS)
        self.paths: list[str] = []
        self._hook = None

    def _schedule(self) -> tuple[_CosineRestarts, int]:
        """This `fit`'s cosine schedule and its optimizer steps per epoch."""
        steps = self.params.get("steps")
        if not steps:
            raise _checks.invalid(
                "max_rate",
                "None when the number of steps per epoch is unknown (give `fit` a "
                "`steps_per_epoch`, or data with a length)",
                self.max_rate,
            )
        accumulation = self.model.optimizer.gradient_accumulation_steps or 1
        updates_per_epoch = steps // accumulation
        epochs = self.cycle_length or self.params.get("epochs")
        cycle_steps = max(1, epochs * updates_per_epoch)
        schedule = _CosineRestarts(self.max_rate, self.min_rate, cycle_steps)
        return schedule, updates_per_epoch

    def on_train_begin(self, logs=None):
        os.makedirs(self.directory, exist_ok=True)
        self._hook = None
        self._first_epoch = True
        if self.max_rate is None:
            return
        check_learning_rate_is_variable(self.model.optimizer)
        schedule, self._updates_per_epoch = self._schedule()
        self._hook = StepHook(self, self.model, schedule)
        self._hook.install()

    def on_epoch_begin(self, epoch, logs=None):
        if self._first_epoch and self._hook is not None:
            # Step 0 of the schedule is epoch 0 of this `fit`; the train
            # function is traced on the first batch, after this.
            iterations = int(ops.convert_to_numpy(self.model.optimizer.iterations))
            self._hook.start_step = iterations - epoch * self._updates_per_epoch
        self._first_epoch = False

    def on_epoch_end(self, epoch, logs=None):
        if self._hook is not None and logs is not None:
            logs["learning_rate"] = float(ops.convert_to_numpy(self._hook.variable))
        if self.cycle_length is not None and (epoch + 1) % self.cycle_length == 0:
            self._save()

    def on_train_end(self, logs=None):
        if self._hook is not None:
            self._hook.finish()
            self._hook = None
        if self.cycle_length is None:
            self._save()

    def _save(self) -> None:
        name = f"snapshot_{len(self.paths) + 1:03d}{self.format}"
        path = os.path.join(self.directory, name)
        saving.save(self.model, path)
        self.paths.append(path)

    def get_config(self) -> dict[str, Any]:
        return dict(
            directory=self.directory,
            cycle_length=self.cycle_length,
            max_rate=self.max_rate,
            min_rate=self.min_rate,
            format=self.format,
        )

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> SnapshotEnsemble:
        return cls(**config)
