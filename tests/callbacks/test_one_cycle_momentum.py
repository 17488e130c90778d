"""cycle_momentum: the momentum used inside the compiled step really changes.

Each test trains a linear least-squares model for a few steps and compares the
final kernel with a float64 NumPy re-implementation of Keras' update rule fed
with the scheduled rate and momentum. A control asserts that the constant-
momentum result differs by far more than the tolerance, so the comparison can
tell "cycled" from "ignored". Tolerance: 1e-5 relative (float32 over 9 steps).
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

from kerasx.callbacks import OneCycleScheduler

TORCH_NO_STEPS_PER_EXECUTION = pytest.mark.skipif(
    keras.backend.backend() == "torch",
    reason="Keras does not support steps_per_execution > 1 on the torch backend",
)
STEPS_PER_EXECUTION = [1, pytest.param(3, marks=TORCH_NO_STEPS_PER_EXECUTION)]
STEPS = 9
KNOTS = [0.0, 4.0, 8.0, 9.0]  # iterations=10: half=4, 2*half=8, end at 9
RATES = [0.01, 0.1, 0.01, 1e-5]
MOMENTA = [0.95, 0.5, 0.95, 0.95]


def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(STEPS * 4, 3))
    y = x @ np.array([[1.0], [-2.0], [0.5]]) + 0.1 * rng.normal(size=(STEPS * 4, 1))
    return x, y


def train(optimizer, cycle_momentum, steps_per_execution=1):
    x, y = data()
    model = keras.Sequential(
        [
            keras.Input((3,)),
            keras.layers.Dense(1, use_bias=False, kernel_initializer="ones"),
        ]
    )
    model.compile(optimizer, "mse", steps_per_execution=steps_per_execution)
    callback = OneCycleScheduler(
        10, 0.1, last_rate=1e-5, cycle_momentum=cycle_momentum, base_momentum=0.5
    )
    model.fit(
        x.astype("float32"),
        y.astype("float32"),
        batch_size=4,
        shuffle=False,
        callbacks=[callback],
        verbose=0,
    )
    return model.layers[0].kernel.numpy().astype("float64")


def gradient(kernel, step):
    """Gradient of Keras' "mse" on batch `step` w.r.t. the kernel, in float64."""
    x, y = data()
    xb, yb = x[4 * step : 4 * step + 4], y[4 * step : 4 * step + 4]
    return 2.0 * xb.T @ (xb @ kernel - yb) / len(xb)


def reference_sgd(cycle):
    kernel, velocity = np.ones((3, 1)), np.zeros((3, 1))
    for step in range(STEPS):
        rate = np.interp(step, KNOTS, RATES)
        momentum = np.interp(step, KNOTS, MOMENTA) if cycle else 0.9
        velocity = momentum * velocity - rate * gradient(kernel, step)
        kernel = kernel + velocity
    return kernel


def reference_adam(cycle):
    kernel, m, v = np.ones((3, 1)), np.zeros((3, 1)), np.zeros((3, 1))
    for step in range(STEPS):
        grad = gradient(kernel, step)
        rate = np.interp(step, KNOTS, RATES)
        beta_1 = np.interp(step, KNOTS, MOMENTA) if cycle else 0.9
        t = step + 1
        alpha = rate * np.sqrt(1 - 0.999**t) / (1 - beta_1**t)
        m = m + (grad - m) * (1 - beta_1)
        v = v + (grad**2 - v) * (1 - 0.999)
        kernel = kernel - alpha * m / (np.sqrt(v) + 1e-7)
    return kernel


@pytest.mark.parametrize("steps_per_execution", STEPS_PER_EXECUTION)
def test_sgd_momentum_is_cycled_inside_the_step(steps_per_execution):
    kernel = train(keras.optimizers.SGD(0.01, momentum=0.9), True, steps_per_execution)
    expected = reference_sgd(cycle=True)
    np.testing.assert_allclose(kernel, expected, rtol=1e-5)
    constant = reference_sgd(cycle=False)
    assert np.max(np.abs(constant - expected)) > 1e-2
    np.testing.assert_allclose(
        train(keras.optimizers.SGD(0.01, momentum=0.9), False), constant, rtol=1e-5
    )


@pytest.mark.parametrize("steps_per_execution", STEPS_PER_EXECUTION)
def test_adam_beta_1_is_cycled_inside_the_step(steps_per_execution):
    optimizer = keras.optimizers.Adam(0.01)
    kernel = train(optimizer, True, steps_per_execution)
    expected = reference_adam(cycle=True)
    np.testing.assert_allclose(kernel, expected, rtol=1e-5)
    # The last applied momentum (step 8: back at max_momentum) stays, a float.
    assert type(optimizer.beta_1) is float
    assert optimizer.beta_1 == pytest.approx(0.95, rel=1e-6)
    constant = reference_adam(cycle=False)
    assert np.max(np.abs(constant - expected)) > 1e-2
    np.testing.assert_allclose(
        train(keras.optimizers.Adam(0.01), False), constant, rtol=1e-5
    )


def test_nadam_beta_1_changes_the_update():
    cycled = train(keras.optimizers.Nadam(0.01), True)
    constant = train(keras.optimizers.Nadam(0.01), False)
    assert np.max(np.abs(cycled - constant)) > 1e-3


@pytest.mark.parametrize(
    ("optimizer", "match"),
    [
        (
            keras.optimizers.SGD(0.01),
            "SGD\\(momentum>0, nesterov=False\\).*momentum=0.0",
        ),
        (keras.optimizers.SGD(0.01, momentum=0.9, nesterov=True), "nesterov=True"),
        (keras.optimizers.RMSprop(0.01), "Received: optimizer=RMSprop"),
    ],
)
def test_unsupported_momentum_is_refused(optimizer, match):
    with pytest.raises(ValueError, match=match):
        train(optimizer, True)
