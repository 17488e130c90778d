"""Bad and degenerate inputs of `kerasx.ops`: refusals, casts and empty batches.

Every refusal is the standard `kerasx._checks` message, raised from the static
shape and dtype before any backend op runs. Reference values are computed by
hand: `x = [[0], [2]]` per channel has mean 1 and biased variance 1, so with
`epsilon=1e-8` the normalised values are `[-1, 1]` to float32 precision.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from keras import ops

from kerasx.ops import batch_norm_activation, batch_norm_activation_inference

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bna_reference as ref

ONES = np.ones(3, "float32")
ZEROS = np.zeros(3, "float32")
X = np.zeros((2, 3), "float32")


def _length_message(name, shape):
    return re.escape(
        f"Invalid value received for argument `{name}`. Expected a 1-D tensor "
        f"of length C=3 (x.shape[axis]). Received: {name}=<tensor of shape {shape}>"
    )


@pytest.mark.parametrize(
    ("gamma", "beta", "name", "shape"),
    [
        (np.ones(2, "float32"), ZEROS, "gamma", (2,)),
        (ONES, np.zeros(4, "float32"), "beta", (4,)),
        (np.ones((1, 3), "float32"), ZEROS, "gamma", (1, 3)),
        (np.float32(1.0), ZEROS, "gamma", ()),
    ],
)
@pytest.mark.parametrize("differentiable_statistics", [True, False])
def test_training_refuses_wrong_length_parameters(
    gamma, beta, name, shape, differentiable_statistics
):
    with pytest.raises(ValueError, match=_length_message(name, shape)):
        batch_norm_activation(
            X, gamma, beta, differentiable_statistics=differentiable_statistics
        )


def test_channel_length_is_read_on_the_channel_axis():
    x = np.zeros((2, 3, 2, 2), "float32")  # channels first: C = 3, not 2
    two = np.ones(2, "float32")
    with pytest.raises(ValueError, match=_length_message("gamma", (2,))):
        batch_norm_activation(x, two, two, axis=1)
    with pytest.raises(ValueError, match=_length_message("gamma", (2,))):
        batch_norm_activation(np.zeros((2, 2, 2, 3), "float32"), two, two)


@pytest.mark.parametrize("name", ["mean", "variance", "gamma", "beta"])
def test_inference_refuses_wrong_length_vectors(name):
    vectors = {"mean": ZEROS, "variance": ONES, "gamma": ONES, "beta": ZEROS}
    vectors[name] = np.ones(2, "float32")
    with pytest.raises(ValueError, match=_length_message(name, (2,))):
        batch_norm_activation_inference(X, **vectors)


@pytest.mark.parametrize("dtype", ["float64", "float16", "int32"])
def test_float_and_int_parameters_are_cast_to_float32(dtype):
    # On TensorFlow a float64 gamma met float32 math in a raw `Mul` TypeError
    # (and FusedBatchNormV3's attr check); JAX and torch promoted silently.
    x = np.array([[0.0, 0.0], [2.0, 2.0]], "float32")
    gamma = np.array([1, 2], dtype)
    beta = np.array([0, 1], dtype)
    for stats in (True, False):
        y, mean, variance = batch_norm_activation(
            x,
            gamma,
            beta,
            epsilon=1e-8,
            activation="linear",
            differentiable_statistics=stats,
        )
        assert keras.backend.standardize_dtype(y.dtype) == "float32"
        np.testing.assert_allclose(
            ops.convert_to_numpy(y), [[-1.0, -1.0], [1.0, 3.0]], rtol=1e-6
        )
        np.testing.assert_allclose(ops.convert_to_numpy(mean), [1.0, 1.0])
        np.testing.assert_allclose(ops.convert_to_numpy(variance), [1.0, 1.0])
    y = batch_norm_activation_inference(
        x,
        np.array([1, 1], dtype),
        np.array([1, 1], dtype),
        gamma,
        beta,
        epsilon=1e-8,
        activation="linear",
    )
    np.testing.assert_allclose(
        ops.convert_to_numpy(y), [[-1.0, -1.0], [1.0, 3.0]], rtol=1e-6
    )


def test_float64_gamma_gradient_keeps_its_dtype():
    x = np.array([[0.0], [2.0]], "float32")

    def loss(x, gamma, beta):
        y = batch_norm_activation(x, gamma, beta, epsilon=1e-8, activation="linear")
        return ops.sum(y[0] * ops.convert_to_tensor([[1.0], [0.0]]))

    _, (_, dgamma, dbeta) = ref.autodiff(
        loss, x, np.ones(1, "float64"), np.zeros(1, "float64")
    )
    # d y[0] / d gamma = xhat[0] = -1, d y[0] / d beta = 1.
    np.testing.assert_allclose(ops.convert_to_numpy(dgamma), [-1.0], rtol=1e-6)
    np.testing.assert_allclose(ops.convert_to_numpy(dbeta), [1.0])


def test_non_numeric_parameters_are_refused():
    message = (
        "Invalid value received for argument `beta`. Expected a real-valued "
        "tensor (float or int, computed in float32). Received: beta=<tensor of bool>"
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        batch_norm_activation(X, ONES, np.zeros(3, "bool"))
    message = (
        "Invalid value received for argument `gamma`. Expected a tensor or an "
        "array-like of numbers. Received: gamma=<NoneType, not convertible to a "
        "tensor>"
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        batch_norm_activation(X, None, ZEROS)


@pytest.mark.parametrize(
    ("x", "received"),
    [
        (np.zeros(3, "float32"), "x=<tensor of shape (3,)>"),
        (np.float32(1.0), "x=<tensor of shape ()>"),
    ],
)
def test_inputs_of_rank_below_two_are_refused(x, received):
    message = (
        "Invalid value received for argument `x`. Expected a floating tensor of "
        f"rank >= 2. Received: {received}"
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        batch_norm_activation(x, ONES, ZEROS)
    with pytest.raises(ValueError, match=re.escape(message)):
        batch_norm_activation_inference(x, ZEROS, ONES, ONES, ZEROS)


def test_integer_inputs_are_refused_with_the_standard_form():
    message = (
        "Invalid value received for argument `x`. Expected a floating tensor. "
        "Received: x=<tensor of int32>"
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        batch_norm_activation(np.zeros((2, 3), "int32"), ONES, ZEROS)


def test_symbolic_inputs_are_refused():
    message = (
        "Invalid value received for argument `x`. Expected a concrete tensor (in "
        "a functional model, use kerasx.layers.BatchNormActivation). Received: "
        "x=<symbolic KerasTensor of shape (None, 3)>"
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        batch_norm_activation(keras.Input((3,)), ONES, ZEROS)


@pytest.mark.parametrize("output_dtype", ["int32", "foo", 5])
def test_non_floating_output_dtypes_are_refused(output_dtype):
    message = (
        "Invalid value received for argument `output_dtype`. Expected None or a "
        "floating dtype (e.g. 'float32', 'bfloat16'). "
        f"Received: output_dtype={output_dtype!r}"
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        batch_norm_activation(X, ONES, ZEROS, output_dtype=output_dtype)
    with pytest.raises(ValueError, match=re.escape(message)):
        batch_norm_activation_inference(
            X, ZEROS, ONES, ONES, ZEROS, output_dtype=output_dtype
        )


def test_differentiable_statistics_must_be_a_bool():
    message = (
        "Invalid value received for argument `differentiable_statistics`. "
        "Expected a bool (True or False). Received: differentiable_statistics='no'"
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        batch_norm_activation(X, ONES, ZEROS, differentiable_statistics="no")


@pytest.mark.parametrize(("shape", "axis"), [((0, 3), -1), ((0, 3, 2, 2), 1)])
@pytest.mark.parametrize("memory", ["recompute", "invert"])
def test_empty_batch_gives_empty_output_nan_statistics_zero_gradients(
    shape, axis, memory
):
    # NaN statistics as `keras.ops.moments` of no elements; the gradients of
    # a sum over no elements are zeros.
    kwargs = dict(axis=axis, activation="elu", memory=memory)
    x = np.zeros(shape, "float32")
    y, mean, variance = batch_norm_activation(x, ONES, ZEROS, **kwargs)
    assert tuple(y.shape) == shape
    assert keras.backend.standardize_dtype(y.dtype) == "float32"
    nan = np.full(3, np.nan, "float32")
    np.testing.assert_array_equal(ops.convert_to_numpy(mean), nan)
    np.testing.assert_array_equal(ops.convert_to_numpy(variance), nan)

    def loss(x, gamma, beta):
        return ops.sum(batch_norm_activation(x, gamma, beta, **kwargs)[0])

    _, (dx, dgamma, dbeta) = ref.autodiff(loss, x, ONES, ZEROS)
    assert tuple(dx.shape) == shape
    np.testing.assert_array_equal(ops.convert_to_numpy(dgamma), np.zeros(3))
    np.testing.assert_array_equal(ops.convert_to_numpy(dbeta), np.zeros(3))


@pytest.mark.parametrize(("shape", "axis"), [((0, 2, 2, 3), -1), ((2, 3, 0, 0), 1)])
@pytest.mark.parametrize("differentiable_statistics", [True, False])
def test_empty_inputs_on_every_training_path(shape, axis, differentiable_statistics):
    y, mean, variance = batch_norm_activation(
        np.zeros(shape, "float32"),
        ONES,
        ZEROS,
        axis=axis,
        differentiable_statistics=differentiable_statistics,
    )
    assert tuple(y.shape) == shape
    nan = np.full(3, np.nan, "float32")
    np.testing.assert_array_equal(ops.convert_to_numpy(mean), nan)
    np.testing.assert_array_equal(ops.convert_to_numpy(variance), nan)
    y = batch_norm_activation_inference(
        np.zeros(shape, "float32"), ZEROS, ONES, ONES, ZEROS, axis=axis
    )
    assert tuple(y.shape) == shape


@pytest.mark.parametrize("shape", [(2, 0), (2, 2, 2, 0)])
@pytest.mark.parametrize("differentiable_statistics", [True, False])
def test_zero_channels_give_empty_results(shape, differentiable_statistics):
    # As Keras' BatchNormalization: no channels, nothing to normalise (JAX
    # divided by zero inferring a reshape, TensorFlow's fused path too).
    empty = np.zeros(0, "float32")
    y, mean, variance = batch_norm_activation(
        np.zeros(shape, "float32"),
        empty,
        empty,
        differentiable_statistics=differentiable_statistics,
    )
    assert tuple(y.shape) == shape
    assert tuple(mean.shape) == (0,) and tuple(variance.shape) == (0,)


@pytest.mark.backend("tensorflow")
def test_unknown_channel_size_is_refused_while_tracing():
    import tensorflow as tf

    message = (
        "Invalid value received for argument `x`. Expected a tensor with a static "
        "size on the channel axis (axis=1). Received: x=<tensor of shape "
        "(None, None)>"
    )
    traced = tf.function(
        lambda x: batch_norm_activation(x, ONES, ZEROS)[0],
        input_signature=[tf.TensorSpec((None, None), tf.float32)],
        autograph=False,
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        traced(X)


@pytest.mark.backend("tensorflow")
def test_dynamic_sizes_after_the_channel_axis_are_supported():
    # Channels first with unknown height and width: the kernel's reshape used
    # to multiply the static `None` sizes (raw TypeError).
    import tensorflow as tf

    x = np.array([0.0, 2.0], "float32").reshape(2, 1, 1, 1) * np.ones((1, 1, 1, 2))
    x = x.astype("float32")
    traced = tf.function(
        lambda x: batch_norm_activation(
            x, np.ones(1, "float32"), np.zeros(1, "float32"), axis=1, epsilon=1e-8
        ),
        input_signature=[tf.TensorSpec((None, 1, None, None), tf.float32)],
        autograph=False,
    )
    y, mean, variance = traced(x)
    np.testing.assert_allclose(y.numpy().ravel(), [0, 0, 1, 1], atol=1e-6)
    np.testing.assert_allclose(mean.numpy(), [1.0])
    np.testing.assert_allclose(variance.numpy(), [1.0])
