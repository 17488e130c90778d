"""BatchNormActivation and mc_predict under mixed_float16 / mixed_bfloat16.

Reference values are NumPy float64 computed from the low-precision-rounded
inputs. Tolerances are derived from the compute dtype's unit roundoff `u`
(float16 2**-11, bfloat16 2**-8): the layer computes its statistics in float32
(as Keras' BatchNormalization, which casts float16 inputs up) and rounds its
output once to the compute dtype, so `|y - y64| <= u * |y|` plus float32 noise
and, where the output passes through the activation in low precision, one more
rounding: `2 u (|y| + 1)` bounds it. A planted bug (normalising with the moving
statistics in training, or skipping `gamma`) moves outputs by O(1), far above
it; an error ratio against Keras' own BatchNormalization + Activation checks
the layer is as accurate as Keras under the same policy.
"""

from __future__ import annotations

import keras
import ml_dtypes
import numpy as np
import pytest

from kerasx.layers import BatchNormActivation, MCDropout
from kerasx.uncertainty import mc_predict

UNIT_ROUNDOFF = {"mixed_float16": 2.0**-11, "mixed_bfloat16": 2.0**-8}
LOW_DTYPE = {"mixed_float16": np.float16, "mixed_bfloat16": ml_dtypes.bfloat16}
EPSILON = 1e-3


@pytest.fixture(params=["mixed_float16", "mixed_bfloat16"])
def policy(request):
    keras.mixed_precision.set_global_policy(request.param)
    yield request.param
    keras.mixed_precision.set_global_policy("float32")


def inputs(policy):
    rng = np.random.default_rng(2)
    x = rng.normal(1.5, 2.0, size=(16, 3)).astype("float32")
    # What the layer sees: the input cast to the compute dtype.
    return x, x.astype(LOW_DTYPE[policy]).astype("float64")


def reference(x64, gamma, beta, mean, variance):
    z = gamma * (x64 - mean) / np.sqrt(variance + EPSILON) + beta
    return np.maximum(z, 0.0)


def build(layer):
    model = keras.Sequential([keras.Input((3,)), layer])
    return model


def as_float64(tensor):
    return np.asarray(keras.ops.convert_to_numpy(keras.ops.cast(tensor, "float32")))


def test_batch_norm_activation_train_and_inference(policy):
    u = UNIT_ROUNDOFF[policy]
    x, x64 = inputs(policy)
    gamma, beta = np.array([0.5, 1.5, -1.0]), np.array([0.25, -0.5, 1.0])
    layer = BatchNormActivation("relu", epsilon=EPSILON)
    keras_bn = keras.layers.BatchNormalization(epsilon=EPSILON)
    ours, theirs = build(layer), build(keras_bn)
    weights = [gamma, beta, np.zeros(3), np.ones(3)]
    ours.set_weights(weights)
    theirs.set_weights(weights)
    assert layer.compute_dtype == policy.split("_")[1]
    assert layer.gamma.dtype == "float32"

    train = ours(x, training=True)
    assert keras.backend.standardize_dtype(train.dtype) == layer.compute_dtype
    expected = reference(x64, gamma, beta, x64.mean(0), x64.var(0))
    bound = 2 * u * (np.abs(expected) + 1)
    error = np.abs(as_float64(train) - expected)
    assert (error <= bound).all(), float((error / bound).max())
    keras_train = keras.ops.relu(theirs(x, training=True))
    keras_error = np.abs(as_float64(keras_train) - expected).max()
    assert error.max() <= 2 * keras_error + u * 1e-3
    # Moving statistics: float32 variables, momentum 0.99 from (0, 1).
    np.testing.assert_allclose(
        as_float64(layer.moving_mean), 0.01 * x64.mean(0), rtol=1e-5, atol=1e-7
    )
    np.testing.assert_allclose(
        as_float64(layer.moving_variance),
        0.99 + 0.01 * x64.var(0),
        rtol=1e-5,
    )

    mean, variance = np.array([1.0, 2.0, -0.5]), np.array([4.0, 0.25, 1.0])
    ours.set_weights([gamma, beta, mean, variance])
    inference = as_float64(ours(x, training=False))
    expected = reference(x64, gamma, beta, mean, variance)
    error = np.abs(inference - expected)
    assert (error <= 2 * u * (np.abs(expected) + 1)).all()


def test_mc_predict_under_the_policy(policy):
    """Dropout(0.5) then a sum: every sample is `2 * (kept ones)`, exact in
    float16 and bfloat16, in {0, 2, 4, 6, 8}; mean 4, std 2 per pass.

    Plant: drop the dropout scale (values {0, 1, 2, 3, 4}) or run the passes
    deterministically (one value): the set asserts fail.
    """
    model = keras.Sequential(
        [
            keras.Input((4,)),
            MCDropout(0.5),
            keras.layers.Dense(1, use_bias=False, kernel_initializer="ones"),
        ]
    )
    before = [np.array(w) for w in model.get_weights()]
    x = np.ones((3, 4), "float32")
    result = mc_predict(
        model, x, n_samples=100, seed=3, task="regression", return_samples=True
    )
    samples = np.asarray(result.samples, "float64")
    assert samples.shape == (100, 3, 1)
    assert set(np.unique(samples)) <= {0.0, 2.0, 4.0, 6.0, 8.0}
    assert len(np.unique(samples)) >= 4  # stochastic, not a constant pass
    np.testing.assert_allclose(result.mean, samples.mean(0), rtol=1e-6)
    np.testing.assert_allclose(result.std, samples.std(0), rtol=1e-5)
    # 5 sigma of the mean of 100 passes: 5 * 2 / 10 = 1.
    assert np.abs(samples.mean(0) - 4.0).max() < 1.0
    for weight, value in zip(model.get_weights(), before, strict=True):
        np.testing.assert_array_equal(weight, value)
