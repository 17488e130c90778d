"""fastai's `fine_tune` recipe on a compiled Keras model."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import keras

from kerasx import _checks, _keras_internals
from kerasx.callbacks import OneCycleScheduler
from kerasx.callbacks._step_hook import accumulation_steps
from kerasx.lr_finder import LRFinderResult, find_learning_rate
from kerasx.schedules import OneCycle
from kerasx.transfer._freeze import LayerSpec, select_layers, unfreeze
from kerasx.transfer._optimizer import LayerRateOptimizer, check_exact_optimizer

# fastai's `fit_one_cycle` ends at `lr_max / div_final`.
_DIV_FINAL = 1e5
# Arguments of `fit` that `fine_tune` sets itself.
_OWN_FIT_ARGUMENTS = ("x", "y", "epochs", "initial_epoch")


class _FitOneCycle(OneCycleScheduler):
    """fastai's `fit_one_cycle` curve over the whole `fit` (cosine warm-up and decay).

    The cycle length is known only once `fit` has counted its steps, so the
    schedule is made in `on_train_begin`, from the callback's `params` (divided
    by the optimizer's `gradient_accumulation_steps`: one step per update).
    """

    @classmethod
    def make(cls, max_rate: float, pct_start: float, div: float) -> _FitOneCycle:
        callback = cls.from_schedule(cls._curve(max_rate, 2, pct_start, div))
        callback.curve = (max_rate, pct_start, div)
        return callback

    @staticmethod
    def _curve(max_rate, total_steps, pct_start, div) -> OneCycle:
        return OneCycle(
            max_rate,
            total_steps,
            pct_start=pct_start,
            div_factor=div,
            final_div_factor=_DIV_FINAL / div,
        )

    def on_train_begin(self, logs=None):
        steps = self.params.get("steps")
        if not steps:
            raise _checks.invalid(
                "x",
                "data with a length, or a `steps_per_epoch` (the 1cycle of each "
                "phase spans its whole `fit`)",
                None,
            )
        # Each phase starts a fresh optimizer (iterations 0); with gradient
        # accumulation the cycle spans the updates, not the batches.
        updates = (
            self.params["epochs"] * steps // accumulation_steps(self.model.optimizer)
        )
        total_steps = max(2, updates)
        self.schedule = self._curve(self.curve[0], total_steps, *self.curve[1:])
        super().on_train_begin(logs)


@dataclass(frozen=True)
class FineTuneResult:
    """What `fine_tune` returns; unpacks as `frozen, unfrozen = result`.

    Attributes:
        frozen: The `History` of the frozen phase (the head alone).
        unfrozen: The `History` of the unfrozen phase (discriminative rates).
        base_lr: The head's peak rate of the frozen phase (the unfrozen phase
            peaks at half of it), given or found.
        lr_finder: The `LRFinderResult` when `base_lr` was found, else None.

    Raises:
        dataclasses.FrozenInstanceError: On assignment to an attribute (the
            result is frozen).

    Example:

    ```python
    >>> import keras
    >>> from kerasx.transfer import FineTuneResult
    >>> result = FineTuneResult(
    ...     keras.callbacks.History(), keras.callbacks.History(), base_lr=0.01)
    >>> frozen, unfrozen = result  # the two phases' `History`s
    >>> type(frozen).__name__, result.base_lr, result.lr_finder
    ('History', 0.01, None)

    ```
    """

    frozen: keras.callbacks.History
    unfrozen: keras.callbacks.History
    base_lr: float
    lr_finder: LRFinderResult | None = None

    def __iter__(self):
        return iter((self.frozen, self.unfrozen))


def _fresh_copy(optimizer: keras.optimizers.Optimizer, learning_rate: float):
    config = {**optimizer.get_config(), "learning_rate": float(learning_rate)}
    return type(optimizer).from_config(config)


def _loss_scale_arguments(optimizer: keras.optimizers.Optimizer) -> dict | None:
    """The settings of the user's `LossScaleOptimizer`, or None when unwrapped."""
    if not isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        return None
    return {
        "initial_scale": optimizer.initial_scale,
        "dynamic_growth_steps": optimizer.dynamic_growth_steps,
    }


def fine_tune(
    model: keras.Model,
    x: Any,
    y: Any = None,
    *,
    base: LayerSpec,
    epochs: int,
    freeze_epochs: int = 1,
    base_lr: float | None = None,
    lr_mult: float = 100.0,
    pct_start: float = 0.3,
    div: float = 5.0,
    **fit_kwargs: Any,
) -> FineTuneResult:
    """Fine-tunes a pretrained part of `model`: fastai's `Learner.fine_tune`.

    Two `fit`s, each a 1cycle over its whole length (fastai's `fit_one_cycle`
    curve: cosine warm-up from `lr / div` to `lr`, cosine decay to
    `lr / 1e5`, as `kerasx.schedules.OneCycle` computes it, driven per step
    by `kerasx.callbacks.OneCycleScheduler`):

    1. `base` frozen, `freeze_epochs` epochs at peak rate `base_lr`, warming
       up over 99 % of the steps (`pct_start=0.99`, `div=25`);
    2. `base_lr /= 2`; `base` unfrozen except its BatchNorm layers (see
       `unfreeze`); `epochs` epochs with the head peaking at `base_lr` and the
       base at `base_lr / lr_mult` (discriminative rates, through
       `LayerRateOptimizer`), `pct_start` and `div` as given.

    `model` must be compiled: each phase recompiles it with a fresh copy of
    its optimizer (from its config, so each phase starts with empty slots and
    `iterations=0`) and the same loss, metrics and other compile arguments.
    The optimizer must be SGD, Adam, AdamW, Nadam or Adamax (see
    `LayerRateOptimizer`), with `gradient_accumulation_steps` if wanted (each
    1cycle then spans the phase's applied updates). Under mixed precision the
    optimizer may be a `LossScaleOptimizer` around one of those (`compile`
    wraps it under `"mixed_float16"`): each phase's optimizer is wrapped in a
    new one with the same `initial_scale` and `dynamic_growth_steps`, so the
    unfrozen phase trains with `LossScaleOptimizer(LayerRateOptimizer(...))`
    and every rate is set on the optimizer inside it.

    With `base_lr=None` the rate is found first: the base is frozen and
    `kerasx.lr_finder.find_learning_rate` runs on `x, y` (with `fit_kwargs`'
    `batch_size`, `sample_weight` and `shuffle`), and its valley `suggestion`
    is used (fastai's default is a fixed 2e-3; pass
    `base_lr=2e-3` for it). The momentum is not cycled.

    Nothing is restored afterwards: the model ends with every layer trainable
    except the BatchNorm layers of `base` that `fine_tune` froze (plus layers
    outside `base` that were frozen before), compiled with a
    `LayerRateOptimizer` over the user's optimizer (holding the last applied
    rate; inside a `LossScaleOptimizer` when the user's was one) and the
    user's loss and metrics.

    Args:
        model: A compiled `keras.Model` whose leading layers are pretrained.
        x: Training inputs, anything `fit` takes.
        y: Targets, as for `fit`.
        base: The pretrained part, named as `freeze`'s `up_to` (an index `k`
            for `model.layers[:k]`, a layer name for every layer up to and
            including it, a list of names, or a predicate); it must leave at
            least one layer (the head) outside it.
        epochs: Epochs of the unfrozen phase, an integer >= 1.
        freeze_epochs: Epochs of the frozen phase, an integer >= 1.
        base_lr: Peak rate of the frozen phase, or None to find it.
        lr_mult: Ratio of the head's rate to the base's in the unfrozen phase,
            a float > 0 (fastai's default 100).
        pct_start: Fraction of the unfrozen phase spent warming up, in (0, 1).
        div: The unfrozen phase starts at `base_lr / div`, a float > 0.
        **fit_kwargs: Passed to both `fit`s (`batch_size`, `validation_data`,
            `callbacks`, `verbose`, ...); not `epochs` or `initial_epoch`.

    Returns:
        A `FineTuneResult`: `frozen, unfrozen = fine_tune(...)` gives the two
        `History`s; `.base_lr` and `.lr_finder` say which rate was used.

    Raises:
        ValueError: If `model` is not a compiled `keras.Model`; if its
            optimizer (or the one inside its `LossScaleOptimizer`) is not one
            `LayerRateOptimizer` accepts (Keras' SGD, Adam, AdamW, Nadam or
            Adamax, without `global_clipnorm`, `use_ema` or
            `loss_scale_factor`); if `base` is refused as `freeze` refuses
            `up_to`, or selects every layer; if `epochs` or `freeze_epochs`
            is not an integer >= 1; if `base_lr` is not None or a positive
            normal float32; if `lr_mult` or `div` is not a float > 0; if
            `pct_start` is not a float in (0, 1); if `fit_kwargs` holds
            `initial_epoch`. With `base_lr=None`: as `find_learning_rate`
            raises, and if the range test gives no suggestion (a flat or
            diverging curve). When a phase's `fit` begins: if `x` has no
            length and `fit_kwargs` no `steps_per_epoch` (the 1cycle spans
            the whole `fit`).

    Example:

    ```python
    >>> import keras, numpy as np
    >>> from kerasx.transfer import fine_tune
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, name="body"),
    ...                           keras.layers.Dense(1, name="head")])
    >>> model.compile(keras.optimizers.Adam(), "mse")
    >>> rng = np.random.default_rng(0)
    >>> x, y = rng.random((16, 4)), rng.random((16, 1))
    >>> result = fine_tune(model, x, y, base="body", epochs=2, base_lr=1e-2,
    ...                    batch_size=8, verbose=0)
    >>> frozen, unfrozen = result
    >>> len(frozen.history["loss"]), len(unfrozen.history["loss"])
    (1, 2)
    >>> result.base_lr, result.lr_finder
    (0.01, None)
    >>> [layer.trainable for layer in model.layers]
    [True, True]
    >>> type(model.optimizer).__name__
    'LayerRateOptimizer'
    >>> round(float(model.optimizer.learning_rate), 10)  # last applied: 0.01 / 2 / 1e5
    5e-08

    ```

    Reference:
        - fastai `Learner.fine_tune` (fastai/callback/schedule.py): defaults
          `freeze_epochs=1`, `lr_mult=100`, `pct_start=0.3`, `div=5.0`.
        - [Howard & Ruder, 2018](https://arxiv.org/abs/1801.06146), "Universal
          Language Model Fine-tuning".
        - Géron, *Hands-On Machine Learning*, 3rd ed., ch. 11, "Reusing
          Pretrained Layers".
    """
    model = _checks.model(model)
    if getattr(model, "optimizer", None) is None or not model.compiled:
        raise _checks.invalid_described(
            "model",
            "a compiled model (fine_tune reuses its optimizer, loss and metrics)",
            "an uncompiled model",
        )
    template = model.optimizer
    # Mixed precision: `compile` (or the user) wrapped the optimizer in a
    # LossScaleOptimizer. Each phase wraps its own optimizer the same way, the
    # LayerRateOptimizer of the unfrozen phase included (one loss scale for all
    # groups); OneCycleScheduler sets the rate inside it.
    loss_scale = _loss_scale_arguments(template)
    if loss_scale is None:
        check_exact_optimizer(template, "model.optimizer")
    else:
        template = template.inner_optimizer
        check_exact_optimizer(template, "model.optimizer.inner_optimizer")
    base_layers = select_layers(model, base, "base", True)
    if len(base_layers) == len(model.layers):
        raise _checks.invalid(
            "base",
            "a part that leaves at least one layer (the head) to train in the "
            f"frozen phase; it selects all {len(model.layers)} layers",
            base,
        )
    epochs = _checks.integer("epochs", epochs, minimum=1)
    freeze_epochs = _checks.integer("freeze_epochs", freeze_epochs, minimum=1)
    if base_lr is not None:
        base_lr = _checks.learning_rate("base_lr", base_lr)
    lr_mult = _checks.number("lr_mult", lr_mult, low=0, low_open=True)
    pct_start = _checks.number(
        "pct_start", pct_start, low=0, high=1, low_open=True, high_open=True
    )
    div = _checks.number("div", div, low=0, low_open=True)
    for argument in _OWN_FIT_ARGUMENTS:
        if argument in fit_kwargs:
            raise _checks.invalid(
                "fit_kwargs",
                "no `x`, `y`, `epochs` or `initial_epoch` (fine_tune sets them)",
                {argument: fit_kwargs[argument]},
            )
    user_callbacks = list(fit_kwargs.pop("callbacks", None) or [])
    # The live arguments, not a deserialized copy: a custom loss or metric
    # need not be registered.
    compile_arguments = dict(_keras_internals.compile_config_dict(model) or {})

    def compile_with(optimizer):
        if loss_scale is not None:
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer, **loss_scale)
        model.compile(**{**compile_arguments, "optimizer": optimizer})

    for layer in base_layers:
        layer.trainable = False
    finder = None
    if base_lr is None:
        compile_with(_fresh_copy(template, 1e-3))
        finder_arguments = {
            key: fit_kwargs[key]
            for key in ("batch_size", "sample_weight", "shuffle")
            if fit_kwargs.get(key) is not None
        }
        finder = find_learning_rate(model, x, y, **finder_arguments)
        suggestion = finder.suggestion
        if suggestion is None or not math.isfinite(suggestion):
            raise _checks.invalid(
                "base_lr",
                "an explicit rate: the LR range test gave no suggestion "
                f"({finder.stop_reason})",
                None,
            )
        base_lr = float(suggestion)
    compile_with(_fresh_copy(template, base_lr))
    frozen = model.fit(
        x,
        y,
        epochs=freeze_epochs,
        callbacks=[_FitOneCycle.make(base_lr, 0.99, 25.0), *user_callbacks],
        **fit_kwargs,
    )

    unfrozen_lr = base_lr / 2
    unfreeze(model, [layer.name for layer in base_layers])
    base_paths = [v.path for layer in base_layers for v in layer.trainable_weights]
    optimizer = LayerRateOptimizer(
        _fresh_copy(template, unfrozen_lr), [base_paths], [1.0 / lr_mult]
    )
    compile_with(optimizer)
    unfrozen = model.fit(
        x,
        y,
        epochs=epochs,
        callbacks=[_FitOneCycle.make(unfrozen_lr, pct_start, div), *user_callbacks],
        **fit_kwargs,
    )
    return FineTuneResult(frozen, unfrozen, base_lr, finder)
