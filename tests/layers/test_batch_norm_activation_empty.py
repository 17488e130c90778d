"""`BatchNormActivation` on empty and single-channel inputs, against Keras.

The reference is `keras.layers.BatchNormalization` followed by
`keras.layers.Activation` on the same input: an empty batch gives an empty
output of the input's shape and the layer's dtype; in training Keras updates
the moving statistics with the statistics of no elements, NaN, and in
inference leaves them at their initial zeros and ones. Each kernel path is
reached: the compiled kernel, TensorFlow's fused op and the Keras composition
(eagerly and in compiled functions, by backend), the unfused path of callables
and masks, and both inference paths.
"""

from __future__ import annotations

import re

import keras
import numpy as np
import pytest

from kerasx.layers import BatchNormActivation
from kerasx.ops import _use_kernel

SHAPES = [(0, 3), (0, 2, 2, 3)]
NAN = np.full(3, np.nan, "float32")


def _keras_reference(x, training, mask=None):
    norm = keras.layers.BatchNormalization()
    y = keras.layers.Activation("relu")(norm(x, training=training, mask=mask))
    return y, norm


def _expected_statistics(training):
    if training:
        return NAN, NAN
    return np.zeros(3, "float32"), np.ones(3, "float32")


def _assert_matches_keras(layer, y, x, training, mask=None):
    expected_y, norm = _keras_reference(x, training, mask)
    assert tuple(y.shape) == tuple(expected_y.shape) == x.shape
    assert keras.backend.standardize_dtype(y.dtype) == "float32"
    expected_mean, expected_variance = _expected_statistics(training)
    for ours, theirs, literal in [
        (layer.moving_mean, norm.moving_mean, expected_mean),
        (layer.moving_variance, norm.moving_variance, expected_variance),
    ]:
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(theirs), literal)
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(ours), literal)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize(
    "activation",
    ["relu", keras.activations.relu, abs],
    ids=["name", "keras_function", "callable"],
)
def test_empty_batch_matches_keras(shape, training, activation):
    # "relu" and `keras.activations.relu` take the fused kernels, any other
    # callable (`abs`) the unfused path; an empty output has no values in
    # which abs and Keras' relu could differ.
    x = np.zeros(shape, "float32")
    layer = BatchNormActivation(activation)
    y = layer(x, training=training)
    _assert_matches_keras(layer, y, x, training)


@pytest.mark.parametrize("shape", SHAPES)
def test_empty_batch_with_mask_matches_keras(shape):
    # A masked batch of no elements: Keras' masked moments divide by
    # `count + epsilon`, so the moving statistics move towards 0.
    x = np.zeros(shape, "float32")
    mask = np.ones(shape[:-1], "bool")
    layer = BatchNormActivation("relu")
    y = layer(x, training=True, mask=mask)
    expected_y, norm = _keras_reference(x, True, mask)
    assert tuple(y.shape) == tuple(expected_y.shape) == shape
    np.testing.assert_allclose(layer.moving_mean.numpy(), norm.moving_mean.numpy())
    np.testing.assert_allclose(layer.moving_mean.numpy(), np.zeros(3))
    np.testing.assert_allclose(layer.moving_variance.numpy(), np.full(3, 0.99))
    np.testing.assert_allclose(
        layer.moving_variance.numpy(), norm.moving_variance.numpy()
    )


def test_empty_batch_in_mixed_precision_keeps_the_compute_dtype():
    x = np.zeros((0, 2, 2, 3), "float32")
    layer = BatchNormActivation("elu", dtype="mixed_bfloat16")
    y = layer(x, training=True)
    assert tuple(y.shape) == x.shape
    assert keras.backend.standardize_dtype(y.dtype) == "bfloat16"
    np.testing.assert_array_equal(layer.moving_mean.numpy(), NAN)


@pytest.mark.backend("tensorflow")
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("jit_compile", [False, True])
def test_empty_batch_in_tensorflow_graphs(shape, jit_compile):
    # Without XLA: the plain-op closed form (2-D) and FusedBatchNormV3 (4-D);
    # with XLA: the composed ops (2-D) and the compiled kernel (4-D). The batch
    # size is unknown while tracing, as in `fit`.
    import tensorflow as tf

    layer = BatchNormActivation("relu")
    layer.build(shape)
    step = tf.function(
        lambda x: layer(x, training=True),
        input_signature=[tf.TensorSpec((None, *shape[1:]), tf.float32)],
        jit_compile=jit_compile,
        autograph=False,
    )
    x = np.zeros(shape, "float32")
    with _use_kernel() as chosen:
        y = step(x)
    # The paths the comment above names, by (rank, jit_compile).
    claimed = {
        (2, False): "graph",
        (4, False): "fused_batch_norm",
        (2, True): "composed",
        (4, True): "compiled",
    }
    assert chosen == [claimed[len(shape), jit_compile]]
    _assert_matches_keras(layer, y, x, training=True)


@pytest.mark.backend("jax")
@pytest.mark.parametrize("shape", SHAPES)
def test_empty_batch_under_jax_jit(shape):
    # Inside `jax.jit` on a CPU the layer runs the Keras composition.
    import jax

    layer = BatchNormActivation("relu")
    layer.build(shape)
    x = np.zeros(shape, "float32")

    @jax.jit
    def step(trainable, non_trainable, x):
        return layer.stateless_call(trainable, non_trainable, x, training=True)

    with _use_kernel() as chosen:
        y, non_trainable = step(
            [v.value for v in layer.trainable_variables],
            [v.value for v in layer.non_trainable_variables],
            x,
        )
    assert chosen == ["composed"]
    for variable, value in zip(
        layer.non_trainable_variables, non_trainable, strict=True
    ):
        variable.assign(value)
    _assert_matches_keras(layer, y, x, training=True)


def test_single_channel_mask_keeps_the_statistics_shape():
    # The masked moments squeezed every size-1 axis, the channel one too,
    # which broke `batch_normalization` on JAX and torch (IndexError).
    # Channel values [1, 3 | 5, 100], the last two masked: mean 2, variance 1.
    x = np.array([1.0, 3.0, 5.0, 100.0], "float32").reshape(1, 4, 1)
    mask = np.array([[True, True, False, False]])
    layer = BatchNormActivation("linear", epsilon=1e-8)
    y = keras.ops.convert_to_numpy(layer(x, training=True, mask=mask))
    np.testing.assert_allclose(y.ravel()[:2], [-1.0, 1.0], rtol=1e-5)
    np.testing.assert_allclose(layer.moving_mean.numpy(), [0.02], rtol=1e-5)
    np.testing.assert_allclose(layer.moving_variance.numpy(), [1.0], rtol=1e-6)


def test_unknown_channel_size_is_refused_at_build():
    message = (
        "Invalid value received for argument `inputs`. Expected a known size on "
        "the channel axis (axis=-1). Received: inputs=<shape (None, None)>"
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        BatchNormActivation()(keras.Input((None,)))
