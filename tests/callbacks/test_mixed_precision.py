"""The LR callbacks under mixed precision: rates applied by the inner optimizer.

Every test reads the applied rate twice: from the optimizer's variable (what
the callbacks record) and from the weight update itself. The probe is a
bias-free linear model with the loss `mean(y_pred) + 100`, trained by plain SGD
without momentum: the kernel's gradient is the batch mean of `x` (NumPy), so
`delta_kernel = -rate * mean(x_batch)`. Inputs are multiples of 0.5 and batches
of 4, so the gradient is exact in float16 and bfloat16 and the loss scale
(a power of two) cancels exactly: the rates agree to float32 rounding.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
from keras import ops

from kerasx.callbacks import ExponentialLearningRate, OneCycleScheduler
from linear_probe import fit_recording_kernels, half_integer_data

BATCH = 4
POLICIES = ["mixed_float16", "mixed_bfloat16"]
# A rate read from the difference of two float32 kernels is off by at most 2
# ulps of the kernel over the gradient (>= 0.5): an absolute bound, with margin.
DELTA_RTOL = 1e-5


def rate_atol(kernels):
    largest = np.float32(np.max(np.abs(kernels)))
    return 4 * float(np.spacing(largest)) / 0.5


@pytest.fixture(params=POLICIES)
def policy(request):
    keras.mixed_precision.set_global_policy(request.param)
    yield request.param
    keras.mixed_precision.set_global_policy("float32")


def offset_mean_prediction(y_true, y_pred):
    return ops.mean(y_pred) + 100.0


def probe_model(optimizer, width=2):
    model = keras.Sequential(
        [
            keras.Input((width,)),
            keras.layers.Dense(1, use_bias=False, kernel_initializer="zeros"),
        ]
    )
    model.compile(optimizer, loss=offset_mean_prediction)
    return model


def probe_data(batches, width=2, seed=5):
    return half_integer_data(batches, BATCH, width, seed)


def applied_rates(kernels, x, skipped=()):
    """Rate of every update from the kernel deltas: `delta = -rate * mean(x_b)`."""
    rates = []
    for b in range(len(kernels) - 1):
        delta = kernels[b + 1][:, 0] - kernels[b][:, 0]
        if b in skipped:
            np.testing.assert_array_equal(delta, 0.0)
            continue
        grad = x[BATCH * b : BATCH * (b + 1)].astype("float64").mean(axis=0)
        per_weight = -delta / grad
        np.testing.assert_allclose(
            per_weight, per_weight[0], rtol=DELTA_RTOL, atol=rate_atol(kernels)
        )
        rates.append(per_weight[0])
    return np.array(rates)


def fit(model, callback, x, y, epochs=1):
    return fit_recording_kernels(model, callback, x, y, BATCH, epochs)


def lso_sgd(rate, **kwargs):
    return keras.optimizers.LossScaleOptimizer(
        keras.optimizers.SGD(rate, **kwargs), initial_scale=4.0
    )


def test_compile_wraps_float16_only(policy):
    model = probe_model(keras.optimizers.SGD(0.01))
    wrapped = isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    assert wrapped == (policy == "mixed_float16")


def test_exponential_rate_is_applied_by_the_inner_optimizer(policy):
    """Plant: hook the LossScaleOptimizer's own `apply` (JAX never calls it).

    The kernel then moves by the compile rate 0.01 at every step while a Python
    rate would say 0.01 * 2**k: the weight-delta assert fails (it did on JAX
    before the fix, with `rates` stuck at 0.01).
    """
    model = probe_model(keras.optimizers.SGD(0.01))
    x, y = probe_data(5)
    sweep = ExponentialLearningRate(2.0)
    kernels = fit(model, sweep, x, y)
    expected = [0.01 * 2.0**k for k in range(5)]
    np.testing.assert_allclose(sweep.rates, expected, rtol=1.2e-7)
    np.testing.assert_allclose(
        applied_rates(kernels, x), expected, rtol=DELTA_RTOL, atol=rate_atol(kernels)
    )
    assert float(model.optimizer.learning_rate) == pytest.approx(0.16, rel=1e-7)


# iterations=10, max_rate=1: start 0.1, last 1e-4, last_iterations 2, half 4.
HANDS_ON_ML_10 = [0.1, 0.325, 0.55, 0.775, 1.0, 0.775, 0.55, 0.325, 0.1, 1e-4]


@pytest.mark.parametrize(
    "make_optimizer", [keras.optimizers.SGD, lso_sgd], ids=["compiled", "explicit"]
)
def test_one_cycle_rates_are_applied(policy, make_optimizer):
    """Plant: leave the rate on the outer optimizer: deltas show the compile rate."""
    model = probe_model(make_optimizer(0.5))
    x, y = probe_data(10)
    kernels = fit(model, OneCycleScheduler(max_rate=1.0), x, y)
    np.testing.assert_allclose(
        applied_rates(kernels, x),
        HANDS_ON_ML_10,
        rtol=DELTA_RTOL,
        atol=rate_atol(kernels),
    )
    assert float(model.optimizer.learning_rate) == pytest.approx(1e-4, rel=1e-6)


def beta_1_of(model):
    optimizer = model.optimizer
    return getattr(optimizer, "inner_optimizer", optimizer).beta_1


def test_one_cycle_cycles_adam_beta_1_inside_the_loss_scale_optimizer(policy):
    """Adam's first step moves each weight by `-rate * sign(g)` whatever beta_1;
    the second step's size depends on beta_1 (checked in float64 below)."""
    model = probe_model(keras.optimizers.Adam(0.01))
    x, y = probe_data(10)
    callback = OneCycleScheduler(max_rate=1.0, cycle_momentum=True)
    kernels = fit(model, callback, x, y)
    # The cycle's momentum at the last step (max_momentum), held as a float.
    assert beta_1_of(model) == pytest.approx(0.95)
    # Adam in float64 with the cycled rate and beta_1 (Keras' epsilon 1e-7).
    beta_2, epsilon = 0.999, 1e-7
    momenta = np.interp(np.arange(10), [0, 4, 8, 9], [0.95, 0.85, 0.95, 0.95])
    m = v = np.zeros(2)
    kernel = np.zeros(2)
    for step in range(10):
        g = x[BATCH * step : BATCH * (step + 1)].astype("float64").mean(axis=0)
        beta_1 = momenta[step]
        m = m + (g - m) * (1 - beta_1)
        v = v + (g**2 - v) * (1 - beta_2)
        t = step + 1
        alpha = HANDS_ON_ML_10[step] * np.sqrt(1 - beta_2**t) / (1 - beta_1**t)
        kernel = kernel - alpha * m / (np.sqrt(v) + epsilon)
        np.testing.assert_allclose(kernels[step + 1][:, 0], kernel, rtol=1e-5)


def test_one_cycle_cycles_sgd_momentum_of_an_explicit_loss_scale_optimizer(policy):
    model = probe_model(lso_sgd(0.5, momentum=0.9))
    x, y = probe_data(10)
    callback = OneCycleScheduler(max_rate=1.0, cycle_momentum=True)
    kernels = fit(model, callback, x, y)
    momenta = np.interp(np.arange(10), [0, 4, 8, 9], [0.95, 0.85, 0.95, 0.95])
    velocity, kernel = np.zeros(2), np.zeros(2)
    for step in range(10):
        g = x[BATCH * step : BATCH * (step + 1)].astype("float64").mean(axis=0)
        velocity = momenta[step] * velocity - HANDS_ON_ML_10[step] * g
        kernel = kernel + velocity
        np.testing.assert_allclose(kernels[step + 1][:, 0], kernel, rtol=1e-5)
    assert model.optimizer.inner_optimizer.momentum == pytest.approx(0.95)


def overflow_data(batches, at):
    """`probe_data` with batch `at` so large that its scaled float16 gradient
    overflows (4 rows of 60000 at loss scale 4: 240000 > 65504) while the loss
    stays finite: the loss-scale optimizer skips that step."""
    x, y = probe_data(batches)
    x[BATCH * at : BATCH * (at + 1)] = 60000.0
    return x, y


def test_skipped_float16_steps_apply_nothing_and_do_not_advance():
    """A skipped step keeps the rate; the next update gets the skipped one's.

    Plant: count batches instead of `iterations` (the schedule would jump a
    step at the skip): the rates after the skip would be 2x too large.
    """
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = probe_model(lso_sgd(0.01))
        x, y = overflow_data(5, at=2)
        sweep = ExponentialLearningRate(2.0)
        kernels = fit(model, sweep, x, y)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    expected = [0.01 * 2.0**k for k in range(4)]
    np.testing.assert_allclose(sweep.rates, expected, rtol=1.2e-7)
    rates = applied_rates(kernels, x, skipped={2})
    np.testing.assert_allclose(
        rates, expected, rtol=DELTA_RTOL, atol=rate_atol(kernels[:3])
    )
    assert len(sweep.losses) == 4
    # The skip halved the loss scale.
    scale = float(keras.ops.convert_to_numpy(model.optimizer.dynamic_scale))
    assert scale == 2.0
