"""find_learning_rate under mixed precision and gradient accumulation.

The probe: a bias-free linear model, loss `mean(y_pred) + 10`, plain SGD, inputs
multiples of 0.5 in batches of 4, so each update moves the kernel by
`-rate * mean(x)` exactly (also in float16 / bfloat16, loss scale included),
and a callback passed to the sweep reads the applied rates from the weights.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
from keras import ops

from kerasx.lr_finder import find_learning_rate
from linear_probe import KernelRecorder, half_integer_data

BATCH = 4
DELTA_RTOL = 1e-5


@pytest.fixture(params=["mixed_float16", "mixed_bfloat16"])
def policy(request):
    keras.mixed_precision.set_global_policy(request.param)
    yield request.param
    keras.mixed_precision.set_global_policy("float32")


def offset_mean_prediction(y_true, y_pred):
    return ops.mean(y_pred) + 10.0


def probe_model(optimizer):
    model = keras.Sequential(
        [
            keras.Input((2,)),
            keras.layers.Dense(1, use_bias=False, kernel_initializer="zeros"),
        ]
    )
    model.compile(optimizer, loss=offset_mean_prediction)
    return model


def probe_data(batches, seed=11):
    return half_integer_data(batches, BATCH, seed=seed)


def weight_rates(kernels, x, accumulation=1, skipped=()):
    """The rate of every applied update, from the kernel deltas."""
    batches = len(x) // BATCH
    largest = np.float32(np.max(np.abs(kernels)))
    atol = 4 * float(np.spacing(largest)) / 0.5
    rates, pending, consumed = [], [], 0
    for b in range(len(kernels) - 1):
        delta = kernels[b + 1][:, 0] - kernels[b][:, 0]
        if b in skipped:
            np.testing.assert_array_equal(delta, 0.0)
            continue
        i = b % batches
        pending.append(x[BATCH * i : BATCH * (i + 1)].astype("float64").mean(axis=0))
        consumed += 1
        if consumed % accumulation:
            np.testing.assert_array_equal(delta, 0.0)
            continue
        per_weight = -delta / np.mean(pending, axis=0)
        np.testing.assert_allclose(per_weight, per_weight[0], rtol=1e-5, atol=atol)
        rates.append(per_weight[0])
        pending = []
    return np.array(rates), atol


def state(model):
    """Every model and optimizer variable (the optimizer built first, as the
    finder builds it)."""
    if not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    variables = [*model.variables, *model.optimizer.variables]
    return {v.path: np.array(keras.ops.convert_to_numpy(v)) for v in variables}


def assert_same_state(before, after):
    assert before.keys() == after.keys()
    for path, value in before.items():
        np.testing.assert_array_equal(after[path], value, err_msg=path)


def sweep(model, x, y, num_steps, min_rate=0.01, max_rate=1.0):
    recorder = KernelRecorder()
    result = find_learning_rate(
        model,
        x,
        y,
        batch_size=BATCH,
        min_rate=min_rate,
        max_rate=max_rate,
        num_steps=num_steps,
        shuffle=False,
        callbacks=[recorder],
    )
    return result, recorder.kernels


def geometric(num_steps, min_rate=0.01, max_rate=1.0):
    factor = np.float32((max_rate / min_rate) ** (1 / (num_steps - 1)))
    return min_rate * np.float64(factor) ** np.arange(num_steps)


def test_sweep_applies_its_rates_and_restores_everything(policy):
    """Plant: leave the rate on the LossScaleOptimizer (JAX never applies it).

    The weights then move at the constant 0.01 while `rates` claims the sweep:
    the weight-delta assert fails (on JAX before the fix it did, with the
    recorded rates constant too).
    """
    model = probe_model(keras.optimizers.SGD(0.05))
    x, y = probe_data(6)
    before = state(model)
    result, kernels = sweep(model, x, y, num_steps=6)
    expected = geometric(6)
    np.testing.assert_allclose(result.rates, expected, rtol=1e-6)
    assert result.rates[-1] == pytest.approx(1.0, rel=1e-6)
    rates, atol = weight_rates(kernels, x)
    np.testing.assert_allclose(rates, expected, rtol=DELTA_RTOL, atol=atol)
    assert result.stop_reason == "completed"
    assert_same_state(before, state(model))
    assert float(model.optimizer.learning_rate) == pytest.approx(0.05, rel=1e-7)


def test_skipped_float16_steps_do_not_advance_and_loss_scale_is_restored():
    """A batch whose scaled float16 gradient overflows is skipped by the
    loss-scale optimizer: no point, no divergence, the sweep still ends at
    `max_rate` after `num_steps` applied updates, and the halved loss scale and
    reset step counter are put back.

    Plant: count batches (the sweep would end one update early, at 0.316) or
    record the skipped batch (7 points, one with a rate never applied).
    """
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        optimizer = keras.optimizers.LossScaleOptimizer(
            keras.optimizers.SGD(0.05), initial_scale=4.0
        )
        model = probe_model(optimizer)
        model.optimizer.build(model.trainable_variables)
        model.optimizer.step_counter.assign(3)
        x, y = probe_data(6)
        # 4 rows of 60000 at scale 4: a float16 gradient of 240000 > 65504.
        x[BATCH : 2 * BATCH] = 60000.0
        before = state(model)
        assert {"step_counter", "dynamic_scale"} <= {
            path.rsplit("/", 1)[-1] for path in before
        }
        result, kernels = sweep(model, x, y, num_steps=6, min_rate=1e-4, max_rate=0.01)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    expected = geometric(6, 1e-4, 0.01)
    np.testing.assert_allclose(result.rates, expected, rtol=1e-6)
    assert len(result.losses) == 6 and result.stop_reason == "completed"
    rates, atol = weight_rates(kernels, x, skipped={1})
    np.testing.assert_allclose(rates, expected, rtol=DELTA_RTOL, atol=atol)
    assert_same_state(before, state(model))


def test_sweep_counts_updates_under_gradient_accumulation():
    """Plant: count batches (the issue's bug): with accumulation 4 the sweep
    ends at 1e-2 * 100**(1/5) = 0.025 after 6 batches, 1 update, not at 1.0."""
    optimizer = keras.optimizers.SGD(0.05, gradient_accumulation_steps=4)
    model = probe_model(optimizer)
    x, y = probe_data(8)
    before = state(model)
    result, kernels = sweep(model, x, y, num_steps=6)
    expected = geometric(6)
    np.testing.assert_allclose(result.rates, expected, rtol=1e-6)
    assert result.rates[-1] == pytest.approx(1.0, rel=1e-6)
    rates, atol = weight_rates(kernels, x, accumulation=4)
    np.testing.assert_allclose(rates, expected, rtol=DELTA_RTOL, atol=atol)
    assert len(kernels) == 1 + 6 * 4
    assert_same_state(before, state(model))


def test_default_length_is_one_epoch_of_updates():
    model = probe_model(keras.optimizers.SGD(0.05, gradient_accumulation_steps=2))
    x, y = probe_data(8)
    result = find_learning_rate(
        model, x, y, batch_size=BATCH, min_rate=0.01, max_rate=1.0, shuffle=False
    )
    # 8 batches, 2 per update: a sweep of 4 updates.
    np.testing.assert_allclose(result.rates, geometric(4), rtol=1e-6)


def test_a_non_finite_loss_ends_the_sweep_even_when_its_step_is_skipped():
    """The float16 forward pass overflows (x = 60000, kernel 1: 120000 > 65504):
    the loss is inf, the step is skipped, and the sweep stops there as a
    non-finite loss instead of running on at the skipped batches.

    Plant: drop every skipped batch (the sweep would run 6 more updates and
    report "completed").
    """
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        optimizer = keras.optimizers.LossScaleOptimizer(
            keras.optimizers.SGD(0.05), initial_scale=4.0
        )
        model = probe_model(optimizer)
        model.layers[0].kernel.assign(np.ones((2, 1), "float32"))
        x, y = probe_data(6)
        x[BATCH : 2 * BATCH] = 60000.0
        result, _ = sweep(model, x, y, num_steps=6, min_rate=1e-4, max_rate=0.01)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert result.stop_reason == "non-finite loss"
    assert len(result.losses) == 2 and np.isinf(result.losses[-1])
    # The skipped step assigned no rate: the variable still holds the last one.
    np.testing.assert_allclose(result.rates, [1e-4, 1e-4], rtol=1e-7)
