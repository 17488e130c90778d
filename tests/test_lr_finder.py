"""find_learning_rate: sweep, early stop, bit-exact restore, suggestions, plot."""

from __future__ import annotations

import random

import keras
import numpy as np
import pytest

from kerasx.lr_finder import LRFinderResult, find_learning_rate, plot_lr_vs_loss


def make_model(optimizer=None):
    model = keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(8, activation="relu"),
            keras.layers.Dropout(0.3),
            keras.layers.Dense(1),
        ]
    )
    model.compile(optimizer or keras.optimizers.Adam(1e-3), "mse")
    return model


def data(samples=64):
    rng = np.random.default_rng(7)
    x = rng.normal(size=(samples, 4)).astype("float32")
    return x, (x @ np.arange(1.0, 5.0)[:, None]).astype("float32")


def state(model):
    values = [v.numpy().copy() for v in model.variables + model.optimizer.variables]
    return values, np.random.get_state()[1].copy(), random.getstate()  # noqa: NPY002


def assert_same_state(before, after):
    assert len(before[0]) == len(after[0])
    for a, b in zip(before[0], after[0], strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(before[1], after[1])
    assert before[2] == after[2]


def test_sweep_rates_and_bit_exact_restore(seed):
    model = make_model()
    x, y = data()
    model.fit(x, y, batch_size=16, verbose=0)  # slots and iterations are non-trivial
    before = state(model)
    result = find_learning_rate(
        model,
        x,
        y,
        batch_size=8,
        min_rate=1e-4,
        max_rate=1e-1,
        divergence_threshold=1e9,
    )
    # One epoch of 8 batches, geometric from 1e-4 to 1e-1: ratio 10 ** (3 / 7).
    np.testing.assert_allclose(
        result.rates, 1e-4 * 10 ** (3 * np.arange(8) / 7), rtol=1e-6
    )
    assert result.losses.shape == result.smoothed_losses.shape == (8,)
    assert set(result.suggestions) == {"valley", "steep", "minimum"}
    assert result.suggestion == result.suggestions["valley"]
    rates, losses = result
    assert rates is result.rates and losses is result.losses
    assert_same_state(before, state(model))
    assert int(model.optimizer.iterations) == 4
    # The optimizer trains as before (the hook is gone).
    model.fit(x, y, batch_size=16, verbose=0)
    assert int(model.optimizer.iterations) == 8


class Interrupt(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        if batch == 2:
            raise KeyboardInterrupt


def test_restore_after_interruption(seed):
    model = make_model(keras.optimizers.SGD(0.01, momentum=0.9))
    x, y = data()
    model.fit(x, y, batch_size=16, verbose=0)
    before = state(model)
    with pytest.raises(KeyboardInterrupt):
        find_learning_rate(model, x, y, batch_size=8, callbacks=[Interrupt()])
    assert_same_state(before, state(model))
    assert float(model.optimizer.learning_rate) == pytest.approx(0.01)
    assert "apply" not in model.optimizer.__dict__


def test_num_steps_and_divergence_stop(seed):
    model = make_model(keras.optimizers.SGD(0.01))
    x, y = data(256)
    result = find_learning_rate(model, x, y, batch_size=8, num_steps=5, max_rate=1e-2)
    assert len(result.rates) == 5
    np.testing.assert_allclose(result.rates[-1], 1e-2, rtol=1e-6)
    # With rates up to 1e6 SGD on MSE blows up long before the last of 64 steps.
    result = find_learning_rate(model, x, y, batch_size=4, max_rate=1e6)
    assert 2 <= len(result.rates) < 64
    last = result.smoothed_losses[-1]
    assert not np.isfinite(last) or last > 4.0 * np.min(result.smoothed_losses)


def test_suggestions_on_a_synthetic_curve():
    rates = 10.0 ** np.linspace(-5, 1, 61)  # 0.1 decade per step
    log_rate = np.log10(rates)
    # Flat at 2 until 1e-4, falling (steepest at 1e-3), minimum at 1e-1, then up.
    losses = np.where(log_rate < -4, 2.0, 1.0 + np.cos(np.pi * (log_rate + 4) / 3))
    losses = np.where(log_rate > -1, (log_rate + 1) ** 2, losses)
    result = LRFinderResult.from_losses(rates, losses, smoothing=0.0)
    np.testing.assert_array_equal(result.smoothed_losses, losses)
    assert result.suggestions["minimum"] == pytest.approx(1e-2)
    # Steepest forward difference of 1 + cos(pi (t + 4) / 3): centred at t = -2.5.
    assert result.suggestions["steep"] == pytest.approx(10**-2.6)
    # Longest decreasing run: indices 10 (1e-4) .. 40 (1e-1), lds = 31, so
    # fastai's start = 40 - 31 = 9 and idx = 9 + int(31 / 3) + int(31 / 6) = 24.
    assert result.suggestion == pytest.approx(rates[24])


def test_smoothing_is_bias_corrected():
    result = LRFinderResult.from_losses(
        [1e-3, 1e-2, 1e-1], [4.0, 2.0, 1.0], smoothing=0.5
    )
    # a = [2, 2, 1.5]; corrections 1 - 0.5 ** k = [0.5, 0.75, 0.875].
    np.testing.assert_allclose(result.smoothed_losses, [4.0, 8.0 / 3.0, 1.5 / 0.875])


def test_plot_lr_vs_loss():
    import matplotlib

    matplotlib.use("Agg")
    rates = 10.0 ** np.linspace(-4, 0, 20)
    result = LRFinderResult.from_losses(
        rates, (np.log10(rates) + 2) ** 2, smoothing=0.5
    )
    ax = plot_lr_vs_loss(result)
    assert ax.get_xscale() == "log"
    assert len(ax.lines) == 5  # raw, smoothed, three suggestions
    np.testing.assert_allclose(ax.lines[1].get_ydata(), result.smoothed_losses)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(min_rate=0.0), "`min_rate`. Expected a float > 0"),
        (
            dict(min_rate=1.0, max_rate=0.1),
            "`max_rate`. Expected a float > min_rate=1.0",
        ),
        (dict(num_steps=1), "`num_steps`. Expected an int >= 2 or None"),
        (dict(smoothing=1.0), "`smoothing`. Expected a float in \\[0, 1\\)"),
        (
            dict(divergence_threshold=1.0),
            "`divergence_threshold`. Expected a float > 1",
        ),
        (dict(batch_size=0), "`batch_size`. Expected an int >= 1"),
        (dict(epochs=0), "`epochs`. Expected an int >= 1"),
    ],
)
def test_argument_errors(kwargs, match):
    x, y = data(16)
    with pytest.raises(ValueError, match=match):
        find_learning_rate(make_model(), x, y, **kwargs)


def test_model_and_data_errors():
    x, y = data(16)
    uncompiled = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    with pytest.raises(ValueError, match="Expected a compiled model"):
        find_learning_rate(uncompiled, x, y)
    unbuilt = keras.Sequential([keras.layers.Dense(1)])
    unbuilt.compile("sgd", "mse")
    with pytest.raises(ValueError, match="Expected a built model"):
        find_learning_rate(unbuilt, x, y)
    scheduled = make_model(
        keras.optimizers.SGD(keras.optimizers.schedules.ExponentialDecay(0.1, 10, 0.5))
    )
    with pytest.raises(ValueError, match="Expected a float learning rate"):
        find_learning_rate(scheduled, x, y)
    with pytest.raises(ValueError, match=r"`x`\. Expected at least one sample"):
        find_learning_rate(make_model(), x[:0], y[:0])
    with pytest.raises(ValueError, match="Expected a sweep of at least 2 steps"):
        find_learning_rate(make_model(), x[:8], y[:8], batch_size=8)
