"""`fine_tune`: fastai's two 1cycles, the frozen then trained base, refusals."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest

from kerasx.transfer import FineTuneResult, LayerRateOptimizer, fine_tune


def _model(optimizer=None):
    model = keras.Sequential(
        [
            keras.Input((3,)),
            keras.layers.Dense(4, name="body"),
            keras.layers.BatchNormalization(name="bn"),
            keras.layers.Dense(1, name="head"),
        ]
    )
    model.compile(optimizer or keras.optimizers.Adam(), "mse", jit_compile=False)
    return model


def _one_cycle(max_rate, total_steps, pct_start, div):
    """torch OneCycleLR (cos, two phases) in float64, fastai's `div_final=1e5`."""
    initial, final = max_rate / div, max_rate / 1e5
    end_warm_up, end = pct_start * total_steps - 1, total_steps - 1

    def cos(start, stop, pct):
        return stop + (start - stop) / 2 * (1 + math.cos(math.pi * pct))

    rates = []
    for step in range(total_steps):
        if step <= end_warm_up:
            rates.append(cos(initial, max_rate, step / end_warm_up))
        else:
            pct = (step - end_warm_up) / (end - end_warm_up)
            rates.append(cos(max_rate, final, pct))
    return rates


def test_rates_follow_fastai_fine_tune(rng):
    model = _model()
    x, y = rng.normal(size=(8, 3)), rng.normal(size=(8, 1))
    # One batch per epoch: `logs["learning_rate"]` is then every step's rate.
    frozen, unfrozen = fine_tune(
        model,
        x,
        y,
        base=2,
        epochs=4,
        freeze_epochs=3,
        base_lr=0.01,
        batch_size=8,
        verbose=0,
    )
    np.testing.assert_allclose(
        frozen.history["learning_rate"], _one_cycle(0.01, 3, 0.99, 25.0), rtol=1e-5
    )
    np.testing.assert_allclose(
        unfrozen.history["learning_rate"], _one_cycle(0.005, 4, 0.3, 5.0), rtol=1e-5
    )
    base_optimizer, head_optimizer = model.optimizer.inner_optimizers
    last = unfrozen.history["learning_rate"][-1]
    np.testing.assert_allclose(
        float(base_optimizer.learning_rate), last / 100, rtol=1e-6
    )
    np.testing.assert_allclose(float(head_optimizer.learning_rate), last, rtol=1e-6)
    assert model.jit_compile is False  # the user's compile arguments, kept


def test_base_frozen_then_trained_batchnorm_kept_in_inference_mode(rng):
    model = _model(keras.optimizers.SGD(momentum=0.9))
    bn = model.get_layer("bn")
    moving_mean = keras.ops.convert_to_numpy(bn.moving_mean).copy()
    kernels = []

    class Snapshot(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            kernels.append(keras.ops.convert_to_numpy(self.model.layers[0].kernel))

        def on_train_end(self, logs=None):
            kernels.append(keras.ops.convert_to_numpy(self.model.layers[0].kernel))

    x, y = rng.normal(size=(16, 3)), rng.normal(size=(16, 1))
    result = fine_tune(
        model,
        x,
        y,
        base="bn",
        epochs=2,
        base_lr=0.05,
        batch_size=8,
        callbacks=[Snapshot()],
        verbose=0,
    )
    assert isinstance(result, FineTuneResult)
    assert result.base_lr == 0.05 and result.lr_finder is None
    np.testing.assert_array_equal(kernels[0], kernels[1])  # frozen phase
    assert not np.allclose(kernels[2], kernels[3])  # unfrozen phase
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(bn.moving_mean), moving_mean
    )
    assert [layer.trainable for layer in model.layers] == [True, False, True]
    assert isinstance(model.optimizer, LayerRateOptimizer)
    assert type(model.optimizer.template).__name__ == "SGD"
    assert model.optimizer.template.momentum == 0.9
    assert model.optimizer.multipliers == [0.01]
    assert model.loss == "mse"


def test_base_lr_none_runs_the_lr_finder(rng):
    model = _model()
    x, y = rng.normal(size=(160, 3)), rng.normal(size=(160, 1))
    result = fine_tune(model, x, y, base=-1, epochs=1, batch_size=8, verbose=0)
    assert result.lr_finder is not None
    assert result.base_lr == result.lr_finder.suggestion
    # The frozen phase peaks at the suggestion and ends at suggestion / 1e5.
    np.testing.assert_allclose(
        result.frozen.history["learning_rate"][-1], result.base_lr / 1e5, rtol=1e-5
    )


def test_refuses_an_uncompiled_model():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    with pytest.raises(
        ValueError, match=r"argument `model`. Expected a compiled model"
    ):
        fine_tune(model, np.zeros((4, 3)), np.zeros((4, 1)), base=0, epochs=1)


def test_refuses_an_optimizer_without_exact_groups():
    model = _model(keras.optimizers.RMSprop())
    with pytest.raises(
        ValueError, match=r"argument `model.optimizer`. Expected a Keras"
    ):
        fine_tune(model, np.zeros((4, 3)), np.zeros((4, 1)), base=1, epochs=1)


@pytest.mark.parametrize(
    ("arguments", "match"),
    [
        (dict(base=3, epochs=1), r"argument `base`.*leaves at least one layer"),
        (dict(base="nope", epochs=1), r"argument `base`.*layer names of this model"),
        (dict(base=1, epochs=0), r"argument `epochs`"),
        (dict(base=1, epochs=1, freeze_epochs=0), r"argument `freeze_epochs`"),
        (dict(base=1, epochs=1, base_lr=-1.0), r"argument `base_lr`"),
        (dict(base=1, epochs=1, lr_mult=0), r"argument `lr_mult`"),
        (dict(base=1, epochs=1, pct_start=1.0), r"argument `pct_start`"),
        (dict(base=1, epochs=1, div=0.0), r"argument `div`"),
        (
            dict(base=1, epochs=1, initial_epoch=2),
            r"argument `fit_kwargs`.*initial_epoch",
        ),
    ],
)
def test_refuses_bad_arguments(arguments, match):
    model = _model()
    with pytest.raises(ValueError, match=match):
        fine_tune(model, np.zeros((4, 3)), np.zeros((4, 1)), **arguments)


def test_refuses_epochs_in_fit_kwargs_by_position():
    model = _model()
    with pytest.raises(TypeError):
        fine_tune(model, np.zeros((4, 3)), np.zeros((4, 1)), 1, base=1, epochs=1)
