"""The LR callbacks under `gradient_accumulation_steps`: one step per update.

The probe (as in test_mixed_precision.py): a bias-free linear model, loss
`mean(y_pred) + 100`, plain SGD, inputs multiples of 0.5, so an update applies
`delta_kernel = -rate * mean(x over its accumulated batches)` (Keras averages
the accumulated gradients) and the rates are read from the weights.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
from keras import ops

from kerasx.callbacks import ExponentialLearningRate, OneCycleScheduler
from linear_probe import fit_recording_kernels, half_integer_data

BATCH = 2
DELTA_RTOL = 1e-5


def offset_mean_prediction(y_true, y_pred):
    return ops.mean(y_pred) + 100.0


def probe_model(rate, accumulation):
    model = keras.Sequential(
        [
            keras.Input((2,)),
            keras.layers.Dense(1, use_bias=False, kernel_initializer="zeros"),
        ]
    )
    optimizer = keras.optimizers.SGD(rate, gradient_accumulation_steps=accumulation)
    model.compile(optimizer, loss=offset_mean_prediction)
    return model


def probe_data(batches, seed=7):
    return half_integer_data(batches, BATCH, seed=seed)


def fit(model, callback, x, y, epochs):
    return fit_recording_kernels(model, callback, x, y, BATCH, epochs)


def applied_rates(kernels, x, epochs, accumulation):
    """Rate of each update: the kernel moves only on every `accumulation`-th batch
    of the whole `fit` (the count runs across epochs), by `-rate * mean(x)` of the
    batches accumulated since the previous update."""
    batches_per_epoch = len(x) // BATCH
    batch_x = [
        x[BATCH * (b % batches_per_epoch) : BATCH * (b % batches_per_epoch + 1)]
        for b in range(epochs * batches_per_epoch)
    ]
    largest = np.float32(np.max(np.abs(kernels)))
    atol = 4 * float(np.spacing(largest)) / 0.5
    rates, pending = [], []
    for b, xb in enumerate(batch_x):
        pending.append(xb.astype("float64").mean(axis=0))
        delta = kernels[b + 1][:, 0] - kernels[b][:, 0]
        if (b + 1) % accumulation:
            np.testing.assert_array_equal(delta, 0.0)
            continue
        per_weight = -delta / np.mean(pending, axis=0)
        np.testing.assert_allclose(per_weight, per_weight[0], rtol=1e-5, atol=atol)
        rates.append(per_weight[0])
        pending = []
    return np.array(rates), atol


def hands_on_ml(iterations, max_rate=1.0):
    last_iterations = iterations // 10 + 1
    half = (iterations - last_iterations) // 2
    knots = [0, half, 2 * half, iterations - 1]
    start = max_rate / 10
    return np.interp(
        np.arange(iterations), knots, [start, max_rate, start, start / 1000]
    )


@pytest.mark.parametrize(
    ("batches_per_epoch", "accumulation", "epochs", "updates"),
    [(5, 2, 2, 5), (3, 4, 3, 2), (3, 4, 4, 3), (4, 2, 3, 6)],
)
def test_one_cycle_of_the_whole_fit_ends_at_the_last_update(
    batches_per_epoch, accumulation, epochs, updates
):
    """Updates straddle epochs: `epochs * batches // accumulation` in all.

    Plant: `epochs * (batches // accumulation)` (the count before the fix): 4
    updates for 5x2 (the cycle ends one update early) and 0 for 3x4 (raises).
    """
    model = probe_model(0.5, accumulation)
    x, y = probe_data(batches_per_epoch)
    callback = OneCycleScheduler(max_rate=1.0)
    kernels = fit(model, callback, x, y, epochs)
    assert callback.iterations == updates
    rates, atol = applied_rates(kernels, x, epochs, accumulation)
    np.testing.assert_allclose(rates, hands_on_ml(updates), rtol=DELTA_RTOL, atol=atol)
    # The last update applied the cycle's last rate.
    assert rates[-1] == pytest.approx(1e-4, abs=atol)


def test_one_cycle_with_too_few_updates_is_refused():
    model = probe_model(0.5, 4)
    x, y = probe_data(3)
    with pytest.raises(
        ValueError, match=r"`iterations`\. Expected a `fit` of at least 2 optimizer "
    ):
        fit(model, OneCycleScheduler(max_rate=1.0), x, y, epochs=2)


def test_exponential_rate_multiplies_once_per_update():
    """Plant: multiply per batch (rates 0.01 * 2**(k * 3)) or record per batch."""
    model = probe_model(0.01, 3)
    x, y = probe_data(4)
    sweep = ExponentialLearningRate(2.0)
    kernels = fit(model, sweep, x, y, epochs=3)  # 12 batches, 4 updates
    expected = [0.01 * 2.0**k for k in range(4)]
    np.testing.assert_allclose(sweep.rates, expected, rtol=1.2e-7)
    rates, atol = applied_rates(kernels, x, 3, 3)
    np.testing.assert_allclose(rates, expected, rtol=DELTA_RTOL, atol=atol)
    # One loss per update: the mean of its 3 batch losses, `mean(x_b @ w) + 100`.
    batch_losses, kernel = [], np.zeros(2)
    for b in range(12):
        xb = x[BATCH * (b % 4) : BATCH * (b % 4 + 1)].astype("float64")
        batch_losses.append(float(np.mean(xb @ kernel)) + 100.0)
        kernel = np.array(kernels[b + 1][:, 0])
    expected_losses = np.mean(np.reshape(batch_losses, (4, 3)), axis=1)
    np.testing.assert_allclose(sweep.losses, expected_losses, rtol=1e-6)
