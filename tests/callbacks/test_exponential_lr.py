"""ExponentialLearningRate: rates applied per step, true per-batch losses."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from kerasx.callbacks import ExponentialLearningRate

BATCH = 4


def data(batches):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(batches * BATCH, 2))
    y = x @ np.array([[0.7], [-1.3]]) + 0.5
    return x, y


def reference(batches, initial_rate, factor, epochs):
    """Float64 SGD on MSE with rate `initial * factor**k`: per-batch losses."""
    x, y = data(batches)
    kernel, bias, losses = np.zeros((2, 1)), 0.0, []
    for k in range(batches * epochs):
        i = k % batches
        xb, yb = x[BATCH * i : BATCH * i + BATCH], y[BATCH * i : BATCH * i + BATCH]
        error = xb @ kernel + bias - yb
        losses.append(float(np.mean(error**2)))
        rate = initial_rate * factor**k
        kernel = kernel - rate * 2.0 * xb.T @ error / BATCH
        bias = bias - rate * 2.0 * float(np.mean(error))
    return losses


def make_model(rate=0.01, steps_per_execution=1):
    model = keras.Sequential(
        [keras.Input((2,)), keras.layers.Dense(1, kernel_initializer="zeros")]
    )
    model.compile(
        keras.optimizers.SGD(rate), "mse", steps_per_execution=steps_per_execution
    )
    return model


def test_records_rates_and_true_batch_losses():
    model, sweep = make_model(), ExponentialLearningRate(1.5)
    x, y = data(6)
    model.fit(
        x.astype("float32"),
        y.astype("float32"),
        batch_size=BATCH,
        epochs=2,
        shuffle=False,
        callbacks=[sweep],
        verbose=0,
    )
    # The recorded rates are the applied float32 values: within one float32 ulp
    # (1.2e-7 relative) of the float64 rates.
    expected_rates = [0.01 * 1.5**k for k in range(12)]
    np.testing.assert_allclose(sweep.rates, expected_rates, rtol=1.2e-7)
    # Recovered from float32 running means: k * mean_k - (k - 1) * mean_{k-1}.
    np.testing.assert_allclose(sweep.losses, reference(6, 0.01, 1.5, 2), rtol=1e-4)
    # The losses are not the running means Keras reports.
    assert abs(sweep.losses[5] - np.mean(sweep.losses[:6])) > 0.1
    # Keras' LearningRateScheduler leaves the last applied rate: so does the sweep.
    assert float(model.optimizer.learning_rate) == pytest.approx(0.01 * 1.5**11)


def test_resets_on_train_begin_and_continues_from_the_held_rate():
    model, sweep = make_model(), ExponentialLearningRate(2.0)
    x, y = data(3)
    for _ in range(2):
        model.fit(x, y, batch_size=BATCH, shuffle=False, callbacks=[sweep], verbose=0)
    # The first fit ends holding 0.04; the second sweep starts there.
    np.testing.assert_allclose(sweep.rates, [0.04, 0.08, 0.16], rtol=3e-8)
    assert len(sweep.losses) == 3


def test_serialization_round_trip():
    sweep = ExponentialLearningRate(1.05)
    clone = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(sweep)
    )
    assert isinstance(clone, ExponentialLearningRate) and clone.get_config() == {
        "factor": 1.05
    }


@pytest.mark.parametrize("factor", [0.0, -1.0, float("inf"), float("nan"), "2", True])
def test_invalid_factor(factor):
    with pytest.raises(ValueError, match=r"`factor`\. Expected a float > 0\. Rec"):
        ExponentialLearningRate(factor)


def test_numpy_scalar_factor():
    assert ExponentialLearningRate(np.float32(1.5)).get_config() == {"factor": 1.5}


@pytest.mark.skipif(
    keras.backend.backend() == "torch",
    reason="Keras does not support steps_per_execution > 1 on the torch backend",
)
def test_steps_per_execution_is_refused():
    model = make_model(steps_per_execution=2)
    x, y = data(4)
    with pytest.raises(ValueError, match=r"`steps_per_execution`\. Expected 1"):
        model.fit(
            x, y, batch_size=BATCH, callbacks=[ExponentialLearningRate(1.1)], verbose=0
        )


class KernelRecorder(keras.callbacks.Callback):
    """The kernel after every batch (JAX state synced first)."""

    def __init__(self):
        super().__init__()
        self.kernels = []

    def on_train_begin(self, logs=None):
        self.kernels = [np.array(self.model.layers[0].kernel.numpy(), "float64")]

    def on_train_batch_end(self, batch, logs=None):
        if keras.backend.backend() == "jax":
            self.model.jax_state_sync()
        self.kernels.append(np.array(self.model.layers[0].kernel.numpy(), "float64"))


def test_recorded_rates_are_the_rates_the_weights_moved_by():
    """`rates` against a hand-computed sequence and against the weight deltas.

    Plain SGD on MSE: `delta_kernel = -rate_k * grad_k`, `grad_k` from NumPy at
    the recorded kernel. Plant: record `initial * factor**k` from Python while
    the step applies another rate (e.g. the rate of step k + 1, or a rate set on
    an optimizer the step does not use): the weight-delta assert fails.
    """
    model, sweep = make_model(), ExponentialLearningRate(1.5)
    x, y = data(5)
    x, y = x.astype("float32"), y.astype("float32")
    recorder = KernelRecorder()
    model.fit(
        x, y, batch_size=BATCH, shuffle=False, callbacks=[sweep, recorder], verbose=0
    )
    expected = [0.01 * 1.5**k for k in range(5)]
    np.testing.assert_allclose(sweep.rates, expected, rtol=1.2e-7)
    bias = 0.0
    for k, rate in enumerate(sweep.rates):
        kernel = recorder.kernels[k]
        xb, yb = x[BATCH * k : BATCH * (k + 1)], y[BATCH * k : BATCH * (k + 1)]
        error = xb @ kernel + bias - yb
        grad = 2.0 * xb.T @ error / BATCH
        delta = recorder.kernels[k + 1] - kernel
        # float32 weights and gradient: 1e-4 relative on a delta of 1e-2.
        np.testing.assert_allclose(-delta / grad, rate, rtol=1e-4)
        bias -= rate * 2.0 * float(np.mean(error))
