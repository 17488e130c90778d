"""Numerical tests of the fused kernels against a float64 NumPy reference.

Each training test forces the kernel it tests with `kerasx.ops._use_kernel`
and asserts that this kernel ran: every kernel of the backend (`"compiled"`,
`"composed"`, and TensorFlow's `"fused_batch_norm"`), whatever the decision
table would pick for these small inputs. Planted bug: epsilon 1e-2 instead of
1e-3 in one kernel (forward or backward) moves `y` and the gradients by
~2e-3 relative here; `bna_reference.assert_close_and_sharp` and
`_assert_grads_close(..., planted=...)` check that this lies outside the
tolerance, so such a bug fails these tests.

Tolerances: float32 kernels vs float64 finite differences agree to a few
float32 ulps times the reduction length; we use ``rtol=2e-4`` on values of
order one plus ``atol=2e-5 * max|grad|`` for entries that cancel to ~0
(finite differences themselves are accurate to ~1e-9 here).
"""

from __future__ import annotations

import bna_reference as ref
import keras
import numpy as np
import pytest
from keras import ops

from kerasx.ops import (
    OUTPUT_GRADIENT_ACTIVATIONS,
    _use_kernel,
    batch_norm_activation,
    batch_norm_activation_inference,
)

ALL_ACTIVATIONS = sorted(ref.ACTIVATIONS)
PATHS = ref.training_paths()


def _assert_grads_close(actual, expected, planted=None):
    """Each gradient within tolerance; `planted` (a planted bug's) outside it."""
    for got, want in zip(actual, expected, strict=True):
        got = keras.ops.convert_to_numpy(got).astype(np.float64)
        scale = np.abs(want).max()
        np.testing.assert_allclose(got, want, rtol=2e-4, atol=2e-5 * scale)
    if planted is not None:
        # dx and dgamma depend on epsilon (dbeta = sum(g) hardly does).
        for want, bug in zip(expected[:2], planted[:2], strict=True):
            scale = np.abs(want).max()
            assert not np.allclose(bug, want, rtol=2e-4, atol=2e-5 * scale)


def _fused_grads(x, gamma, beta, dy, **kwargs):
    def loss(x, gamma, beta):
        y = batch_norm_activation(x, gamma, beta, **kwargs)[0]
        # dy as a tensor: ndarray * torch tensor would ask torch for numpy().
        return ops.sum(ops.cast(y, "float32") * ops.convert_to_tensor(dy))

    return ref.autodiff(loss, x, gamma, beta)[1]


def _inputs(rng, shape=(6, 3), axis=-1):
    channels = shape[axis]
    x = rng.normal(0.5, 2.0, size=shape).astype("float32")
    gamma = rng.uniform(0.5, 1.5, size=channels).astype("float32")
    beta = rng.uniform(-0.5, 0.5, size=channels).astype("float32")
    dy = rng.normal(size=shape).astype("float32")
    return x, gamma, beta, dy


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("activation", ALL_ACTIVATIONS)
def test_forward_and_statistics_match_float64(rng, activation, path):
    x, gamma, beta, _ = _inputs(rng, (32, 5))
    with _use_kernel(path) as chosen:
        y, mean, variance = batch_norm_activation(
            x, gamma, beta, activation=activation, differentiable_statistics=False
        )
    assert chosen == [path]
    y_ref, mean_ref, var_ref = ref.forward(x, gamma, beta, activation=activation)
    planted = ref.forward(x, gamma, beta, activation=activation, epsilon=1e-2)[0]
    ref.assert_close_and_sharp(y, y_ref, planted, rtol=1e-5, atol=1e-6)
    # float32 sums of N=32 terms: error bound ~N * 6e-8 = 2e-6 relative.
    np.testing.assert_allclose(ops.convert_to_numpy(mean), mean_ref, rtol=1e-5)
    np.testing.assert_allclose(ops.convert_to_numpy(variance), var_ref, rtol=1e-5)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("activation", ALL_ACTIVATIONS)
def test_gradients_match_finite_differences(rng, activation, path):
    x, gamma, beta, dy = _inputs(rng)
    expected = ref.finite_difference_grads(x, gamma, beta, dy, activation=activation)
    planted = ref.finite_difference_grads(
        x, gamma, beta, dy, activation=activation, epsilon=1e-2
    )
    with _use_kernel(path) as chosen:
        grads = _fused_grads(
            x, gamma, beta, dy, activation=activation, differentiable_statistics=False
        )
    assert set(chosen) == {path}
    _assert_grads_close(grads, expected, planted)


@pytest.mark.parametrize("activation", ["leaky_relu", "elu", "linear"])
def test_invert_mode_gradients_match_finite_differences(rng, activation):
    x, gamma, beta, dy = _inputs(rng)
    gamma[1] = -gamma[1]  # the inversion must handle a negative scale
    expected = ref.finite_difference_grads(x, gamma, beta, dy, activation=activation)
    with _use_kernel() as chosen:
        grads = _fused_grads(x, gamma, beta, dy, activation=activation, memory="invert")
    # Only the compiled kernels save just the output.
    assert set(chosen) == {"compiled"}
    _assert_grads_close(grads, expected)


@pytest.mark.parametrize(("shape", "axis"), [((4, 3, 5), 1), ((2, 3, 2, 2), 1)])
def test_channels_first_gradients(rng, shape, axis):
    x, gamma, beta, dy = _inputs(rng, shape, axis)
    kwargs = dict(axis=axis, activation="gelu")
    expected = ref.finite_difference_grads(x, gamma, beta, dy, **kwargs)
    _assert_grads_close(_fused_grads(x, gamma, beta, dy, **kwargs), expected)


def test_statistics_cotangents_match_finite_differences(rng):
    """Gradients flowing into the returned mean/variance are propagated too."""
    x, gamma, beta, dy = _inputs(rng)
    mean_weight = np.array([0.3, -1.0, 2.0])
    var_weight = np.array([1.5, 0.2, -0.7])

    def loss(x):
        y, mean, variance = batch_norm_activation(x, gamma, beta, activation="tanh")
        weights = [
            ops.convert_to_tensor(w, "float32") for w in (mean_weight, var_weight)
        ]
        return (
            ops.sum(y * ops.convert_to_tensor(dy))
            + ops.sum(mean * weights[0])
            + ops.sum(variance * weights[1])
        )

    def loss64(x64):
        y, mean, variance = ref.forward(x64, gamma, beta, activation="tanh")
        return np.sum(y * dy) + mean @ mean_weight + variance @ var_weight

    x64 = x.astype(np.float64)
    expected = np.zeros_like(x64)
    for index in np.ndindex(x.shape):
        bump = np.zeros_like(x64)
        bump[index] = 1e-6
        expected[index] = (loss64(x64 + bump) - loss64(x64 - bump)) / 2e-6
    _assert_grads_close(ref.autodiff(loss, x)[1], [expected])


def test_large_mean_offset_is_stable(rng):
    """Offset 1e4 with unit variance: one-pass shifted stats stay exact."""
    x = (1e4 + rng.normal(size=(256, 4))).astype("float32")
    gamma, beta = np.ones(4, "float32"), np.zeros(4, "float32")
    y, _, variance = batch_norm_activation(x, gamma, beta, activation="linear")
    y_ref, _, var_ref = ref.forward(x, gamma, beta, activation="linear")
    # The float32 input itself is exact; errors come only from the kernel.
    np.testing.assert_allclose(ops.convert_to_numpy(variance), var_ref, rtol=1e-5)
    np.testing.assert_allclose(ops.convert_to_numpy(y), y_ref, atol=2e-5)
    dy = rng.normal(size=x.shape).astype("float32")
    # Closed-form float64 gradient of sum(y * dy) for the linear activation.
    xhat = y_ref
    expected_dx = (dy - dy.mean(0) - xhat * (dy * xhat).mean(0)) / np.sqrt(
        var_ref + 1e-3
    )
    dx = _fused_grads(x, gamma, beta, dy, activation="linear")[0]
    np.testing.assert_allclose(
        ops.convert_to_numpy(dx), expected_dx, atol=1e-4 * np.abs(expected_dx).max()
    )


def test_constant_channel_and_single_element(rng):
    x, gamma, beta, dy = _inputs(rng)
    x[:, 1] = 3.25
    expected = ref.finite_difference_grads(x, gamma, beta, dy, activation="elu")
    y, _, variance = batch_norm_activation(x, gamma, beta, activation="elu")
    assert float(ops.convert_to_numpy(variance)[1]) == 0.0
    np.testing.assert_allclose(
        ops.convert_to_numpy(y)[:, 1], ref.ACTIVATIONS["elu"](beta[1]), rtol=1e-6
    )
    _assert_grads_close(_fused_grads(x, gamma, beta, dy, activation="elu"), expected)
    # One element per channel: xhat = 0, y = act(beta), dx = 0 exactly.
    dx, dgamma, dbeta = _fused_grads(x[:1], gamma, beta, dy[:1], activation="elu")
    np.testing.assert_array_equal(ops.convert_to_numpy(dx), np.zeros((1, 3)))
    np.testing.assert_array_equal(ops.convert_to_numpy(dgamma), np.zeros(3))
    elu_slope = np.where(beta > 0, 1.0, np.exp(beta))
    np.testing.assert_allclose(
        ops.convert_to_numpy(dbeta), dy[0] * elu_slope, rtol=1e-6
    )


def test_all_negative_relu_input_has_zero_output_and_gradient(rng):
    x, gamma, _, dy = _inputs(rng)
    beta = np.full(3, -10.0, "float32")  # every z < 0 since |xhat| < sqrt(N)
    y, _, _ = batch_norm_activation(x, gamma, beta, activation="relu")
    np.testing.assert_array_equal(ops.convert_to_numpy(y), np.zeros_like(x))
    for grad in _fused_grads(x, gamma, beta, dy, activation="relu"):
        np.testing.assert_array_equal(ops.convert_to_numpy(grad), 0.0)


def test_inference_matches_float64(rng):
    x, gamma, beta, _ = _inputs(rng, (5, 2, 3))
    mean = np.array([0.1, -0.2, 0.3], "float32")
    variance = np.array([0.5, 2.0, 1.0], "float32")
    y = batch_norm_activation_inference(
        x, mean, variance, gamma, beta, activation="silu"
    )
    z = gamma * (x.astype(np.float64) - mean) / np.sqrt(variance + 1e-3) + beta
    np.testing.assert_allclose(
        ops.convert_to_numpy(y), ref.ACTIVATIONS["silu"](z), rtol=1e-5, atol=1e-6
    )


def test_ops_reject_callables_and_integer_inputs():
    ones = np.ones(2, "float32")
    with pytest.raises(ValueError, match="Expected the name of a fused activation"):
        batch_norm_activation(np.ones((2, 2), "float32"), ones, ones, activation=abs)
    with pytest.raises(ValueError, match="Expected a floating tensor"):
        batch_norm_activation(np.ones((2, 2), "int32"), ones, ones)
    with pytest.raises(ValueError, match="Received: axis=2"):
        batch_norm_activation(np.ones((2, 2), "float32"), ones, ones, axis=2)


@pytest.mark.backend("tensorflow")
@pytest.mark.parametrize("activation", sorted(OUTPUT_GRADIENT_ACTIVATIONS))
def test_graph_kernel_matches_float64_forward_and_finite_differences(rng, activation):
    """The plain-op closed form (`graph`), forced, eagerly.

    Control: the references at epsilon 1e-2 fall outside the tolerance, so a
    kernel with a wrong epsilon (or a wrong activation gradient) fails here.
    """
    x, gamma, beta, dy = _inputs(rng, (32, 5))
    with _use_kernel("graph") as chosen:
        y, mean, variance = batch_norm_activation(
            x, gamma, beta, activation=activation, differentiable_statistics=False
        )
        grads = _fused_grads(
            x, gamma, beta, dy, activation=activation, differentiable_statistics=False
        )
    assert set(chosen) == {"graph"}
    y_ref, mean_ref, var_ref = ref.forward(x, gamma, beta, activation=activation)
    planted = ref.forward(x, gamma, beta, activation=activation, epsilon=1e-2)[0]
    ref.assert_close_and_sharp(y, y_ref, planted, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ops.convert_to_numpy(mean), mean_ref, rtol=1e-5)
    np.testing.assert_allclose(ops.convert_to_numpy(variance), var_ref, rtol=1e-5)
    expected = ref.finite_difference_grads(x, gamma, beta, dy, activation=activation)
    planted = ref.finite_difference_grads(
        x, gamma, beta, dy, activation=activation, epsilon=1e-2
    )
    _assert_grads_close(grads, expected, planted)


@pytest.mark.backend("tensorflow")
@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"activation": "gelu"}, "no gradient from the output"),
        ({"x_shape": (4, 3, 5)}, "not 2-D"),
        ({"differentiable_statistics": True}, "statistics need gradients"),
        ({"dtype": "float64"}, "not float32, bfloat16 or float16"),
    ],
)
def test_graph_kernel_refuses_what_it_cannot_compute(rng, change, why):
    shape = change.get("x_shape", (8, 5))
    x = rng.normal(size=shape).astype(change.get("dtype", "float32"))
    kwargs = dict(
        activation=change.get("activation", "relu"),
        differentiable_statistics=change.get("differentiable_statistics", False),
    )
    with _use_kernel("graph"), pytest.raises(ValueError, match="path='graph'"):
        batch_norm_activation(x, np.ones(5), np.zeros(5), **kwargs)


@pytest.mark.backend("tensorflow")
@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_graph_kernel_computes_low_precision_inputs_in_float32(rng, dtype):
    """A bfloat16/float16 input (mixed precision) is computed in float32.

    Output and `dx` come back in the input's dtype (a kernel returning its
    float32 values fails the dtype asserts); each is within one rounding of
    that dtype of the float64 result for the rounded input and gradient.
    """
    import tensorflow as tf

    x, gamma, beta, dy = _inputs(rng, (64, 5))
    x_low = tf.cast(tf.cast(x, dtype), "float32").numpy()  # the rounded input
    xt = tf.cast(tf.constant(x_low), dtype)
    with _use_kernel("graph") as chosen, tf.GradientTape() as tape:
        tape.watch(xt)
        y, mean, variance = batch_norm_activation(
            xt, gamma, beta, activation="elu", differentiable_statistics=False
        )
        loss = tf.reduce_sum(tf.cast(y, "float32") * dy)
    dx = tape.gradient(loss, xt)
    assert chosen == ["graph"]
    assert y.dtype == dx.dtype == tf.as_dtype(dtype)
    assert mean.dtype == variance.dtype == tf.float32
    y_ref, mean_ref, var_ref = ref.forward(x_low, gamma, beta, activation="elu")
    # One rounding of the output's dtype (8 bits of mantissa for bfloat16).
    ulp = 2.0**-8 if dtype == "bfloat16" else 2.0**-11
    np.testing.assert_allclose(
        y.numpy().astype(np.float64), y_ref, rtol=ulp, atol=ulp * 1e-2
    )
    np.testing.assert_allclose(mean.numpy(), mean_ref, rtol=1e-5)
    np.testing.assert_allclose(variance.numpy(), var_ref, rtol=1e-5)
    # The cast of `y` to float32 in the loss rounds the incoming gradient to
    # `dtype` on its way back (as in any mixed-precision model).
    dy_low = tf.cast(tf.cast(dy, dtype), "float32").numpy()
    dx_ref = ref.finite_difference_grads(x_low, gamma, beta, dy_low, activation="elu")[
        0
    ]
    scale = np.abs(dx_ref).max()
    np.testing.assert_allclose(
        dx.numpy().astype(np.float64), dx_ref, rtol=ulp, atol=ulp * 1e-2 * scale
    )


@pytest.mark.backend("tensorflow")
def test_graph_kernel_has_an_output_gradient_for_each_listed_activation():
    """`KERNEL_TABLE` routes `OUTPUT_GRADIENT_ACTIVATIONS` to the kernel whose
    `_OUTPUT_GRADIENTS` must cover them: the two lists live in two files."""
    from kerasx.ops import _tensorflow

    assert set(_tensorflow._OUTPUT_GRADIENTS) == set(OUTPUT_GRADIENT_ACTIVATIONS)
