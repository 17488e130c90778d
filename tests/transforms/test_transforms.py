"""Tests for `kerasx.transforms`: BatchNorm folding and BN + activation fusion.

Tolerance: folded and unfolded models compute the same function in float32
with a different rounding order, so outputs agree to 1e-5 relative to the
largest output magnitude.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

from kerasx.layers import BatchNormActivation
from kerasx.transforms import fold_batchnorm, fuse_batchnorm_activation

layers = keras.layers
NORMS = (layers.BatchNormalization, BatchNormActivation)


def randomize_norms(model, rng):
    """Gives every BatchNorm non-trivial statistics and affine parameters."""
    for layer in model._flatten_layers():
        if isinstance(layer, NORMS):
            size = layer.moving_mean.shape[0]
            layer.gamma.assign(rng.uniform(-1.5, 1.5, size).astype("float32"))
            layer.beta.assign(rng.normal(size=size).astype("float32"))
            layer.moving_mean.assign(rng.normal(size=size).astype("float32"))
            layer.moving_variance.assign(rng.uniform(0.1, 3, size).astype("float32"))


def assert_close(actual, expected, rtol=1e-5):
    # convert_to_numpy, not np.asarray: an eager torch output requires grad.
    actual, expected = (keras.ops.convert_to_numpy(t) for t in (actual, expected))
    assert actual.shape == expected.shape
    error = np.max(np.abs(actual - expected)) / np.max(np.abs(expected))
    assert error <= rtol, f"relative error {error:.3g} > {rtol}"


def type_names(model):
    return [type(layer).__name__ for layer in model.layers]


def cnn():
    """A functional CNN: Conv2D/Depthwise blocks with BN before ReLU, a
    residual Add followed by BN (not foldable), Dense + BN head."""
    inputs = keras.Input((6, 6, 3))
    x = layers.Conv2D(4, 3, padding="same", use_bias=False, name="c1")(inputs)
    x = layers.ReLU()(layers.BatchNormalization(name="bn1")(x))
    y = layers.Conv2D(4, 3, padding="same", name="c2")(x)
    y = layers.ReLU()(layers.BatchNormalization(name="bn2")(y))
    y = layers.DepthwiseConv2D(3, padding="same", depth_multiplier=2, name="dw")(y)
    y = layers.BatchNormalization(name="bn3")(y)
    x = layers.Add()([layers.Concatenate()([x, x]), y])
    x = layers.BatchNormalization(name="bn_add")(x)
    x = layers.Dense(5, name="dense")(layers.GlobalAveragePooling2D()(x))
    return keras.Model(inputs, layers.BatchNormalization(name="bn4")(x))


def test_fold_functional_cnn(rng):
    model = cnn()
    randomize_norms(model, rng)
    folded = fold_batchnorm(model)
    names = [layer.name for layer in folded.layers]
    assert "bn_add" in names
    assert not {"bn1", "bn2", "bn3", "bn4"} & set(names)
    assert folded.get_layer("c1").use_bias
    x = rng.normal(size=(4, 6, 6, 3)).astype("float32")
    assert_close(folded(x), model(x, training=False))
    assert "bn1" in [layer.name for layer in model.layers]  # original unchanged


def test_fold_kernel_and_bias_values(rng):
    model = cnn()
    randomize_norms(model, rng)
    folded = fold_batchnorm(model)
    to64 = lambda v: keras.ops.convert_to_numpy(v).astype("float64")  # noqa: E731
    bn, dw = model.get_layer("bn3"), model.get_layer("dw")
    scale = to64(bn.gamma) / np.sqrt(to64(bn.moving_variance) + 1e-3)
    kernel = to64(dw.kernel)  # (3, 3, in=4, depth_multiplier=2)
    expected_kernel = np.empty_like(kernel)
    for channel in range(4):
        for multiplier in range(2):
            out = channel * 2 + multiplier
            expected_kernel[..., channel, multiplier] = (
                kernel[..., channel, multiplier] * scale[out]
            )
    expected_bias = (to64(dw.bias) - to64(bn.moving_mean)) * scale + to64(bn.beta)
    new_dw = folded.get_layer("dw")
    np.testing.assert_allclose(to64(new_dw.kernel), expected_kernel, rtol=1e-6)
    np.testing.assert_allclose(to64(new_dw.bias), expected_bias, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize(
    "linear, input_shape",
    [
        (lambda: layers.Conv1D(3, 2, name="lin"), (5, 2)),
        (lambda: layers.Conv3D(3, 2, use_bias=False, name="lin"), (3, 3, 3, 2)),
        (lambda: layers.Dense(3, name="lin"), (4, 2)),
    ],
    ids=["conv1d", "conv3d", "dense_rank3"],
)
def test_fold_sequential_layers(linear, input_shape, rng):
    model = keras.Sequential(
        [keras.Input(input_shape), linear(), layers.BatchNormalization()]
    )
    randomize_norms(model, rng)
    folded = fold_batchnorm(model)
    assert isinstance(folded, keras.Sequential)
    assert [layer.name for layer in folded.layers] == ["lin"]
    x = rng.normal(size=(3, *input_shape)).astype("float32")
    assert_close(folded(x), model(x, training=False))


def test_fold_channels_first(rng):
    # Spatial sizes differ from channel counts: Keras 3.15's TF `ops.add`
    # adds a (1, C, 1, 1) bias on the last axis when that axis also has size C.
    inputs = keras.Input((2, 7, 6))
    x = layers.Conv2D(3, 3, data_format="channels_first", name="conv")(inputs)
    x = layers.BatchNormalization(axis=1)(x)
    x = layers.DepthwiseConv2D(
        2, depth_multiplier=2, data_format="channels_first", name="dw"
    )(x)
    model = keras.Model(inputs, layers.BatchNormalization(axis=-3)(x))
    randomize_norms(model, rng)
    folded = fold_batchnorm(model)
    assert type_names(folded) == ["InputLayer", "Conv2D", "DepthwiseConv2D"]
    x = rng.normal(size=(2, 2, 7, 6)).astype("float32")
    try:
        expected = model(x, training=False)
    except Exception as error:  # TF's own CPU kernels (no oneDNN) lack NCHW.
        if "only supports the NHWC tensor format" not in str(error):
            raise
        pytest.skip("this TensorFlow build's CPU Conv2D has no NCHW kernel")
    assert_close(folded(x), expected)


def test_fold_leaves_unfoldable_pairs(rng):
    inputs = keras.Input((4, 3))
    a = layers.Dense(3, activation="relu", name="act_dense")(inputs)
    a = layers.BatchNormalization(name="after_activation")(a)
    b = layers.Dense(3, name="two_consumers")(inputs)
    c = layers.BatchNormalization(name="after_shared_output")(b)
    d = layers.BatchNormalization(axis=1, name="wrong_axis")(layers.Dense(3)(inputs))
    e = layers.Dense(3, name="model_output")(inputs)
    f = layers.BatchNormalization(name="after_model_output")(e)
    model = keras.Model(inputs, [layers.Add()([a, b, c, d, f]), e])
    randomize_norms(model, rng)
    folded = fold_batchnorm(model)
    assert type_names(folded) == type_names(model)
    assert all(
        new is old for new, old in zip(folded.layers[1:], model.layers[1:], strict=True)
    )


def test_fold_nested_and_batch_norm_activation(rng):
    inner = keras.Sequential(
        [
            keras.Input((4,)),
            layers.Dense(3, name="d1"),
            BatchNormActivation("relu", name="bna_relu"),
            layers.Dense(3, name="d2"),
            BatchNormActivation("leaky_relu", negative_slope=0.1, name="bna_leaky"),
            layers.Dense(3, name="d3"),
            BatchNormActivation("linear", name="bna_linear"),
        ],
        name="inner",
    )
    inputs = keras.Input((4,))
    model = keras.Model(inputs, inner(inputs))
    randomize_norms(model, rng)
    folded = fold_batchnorm(model)
    assert type_names(folded.get_layer("inner")) == [
        "Dense",
        "Activation",
        "Dense",
        "LeakyReLU",
        "Dense",
    ]
    x = rng.normal(size=(5, 4)).astype("float32")
    assert_close(folded(x), model(x, training=False))


def build_fusable(rng):
    inputs = keras.Input((6,))
    outputs = []
    for index, activation in enumerate(
        [
            layers.ReLU(),
            layers.ReLU(max_value=6.0),
            layers.ReLU(negative_slope=0.3),
            layers.LeakyReLU(negative_slope=0.1),
            layers.ELU(),
            layers.Activation("gelu"),
            layers.Activation("swish"),
            layers.Activation("tanh"),
        ]
    ):
        hidden = layers.Dense(4, name=f"dense{index}")(inputs)
        normalized = layers.BatchNormalization(momentum=0.8, name=f"bn{index}")(hidden)
        outputs.append(activation(normalized))
    model = keras.Model(inputs, layers.Concatenate()(outputs))
    randomize_norms(model, rng)
    return model


def test_fuse_replaces_pairs_and_matches(rng):
    model = build_fusable(rng)
    fused = fuse_batchnorm_activation(model)
    norms = [layer for layer in fused.layers if "bn" in layer.name]
    assert all(isinstance(layer, BatchNormActivation) for layer in norms)
    assert [layer.activation for layer in norms] == [
        "relu",
        "relu6",
        "leaky_relu",
        "leaky_relu",
        "elu",
        "gelu",
        "silu",
        "tanh",
    ]
    assert [layer.negative_slope for layer in norms[2:4]] == [0.3, 0.1]
    assert len(fused.trainable_weights) == len(model.trainable_weights)
    x = rng.normal(size=(8, 6)).astype("float32")
    assert_close(fused(x), model(x, training=False))
    assert_close(fused(x, training=True), model(x, training=True))
    for layer in norms:  # one update each, from the same batch statistics
        for name in ("moving_mean", "moving_variance"):
            expected = getattr(model.get_layer(layer.name), name)
            assert_close(getattr(layer, name), keras.ops.convert_to_numpy(expected))


def test_fuse_literal_values_and_copied_weights(rng):
    model = keras.Sequential(
        [keras.Input((2,)), layers.BatchNormalization(epsilon=0.5), layers.ReLU()]
    )
    bn = model.layers[0]
    bn.set_weights(
        [np.array(w, "float32") for w in ([2, -1], [0.5, 1], [1, -2], [1.5, 3.5])]
    )
    fused = fuse_batchnorm_activation(model)
    assert type_names(fused) == ["BatchNormActivation"]
    x = np.array([[3.0, 0.0], [-1.0, -4.0]], "float32")
    # relu(gamma * (x - mean) / sqrt(var + eps) + beta), float64 by hand.
    expected = np.maximum(
        [[2 * 2 / 2**0.5 + 0.5, -2 / 2 + 1], [-2 * 2 / 2**0.5 + 0.5, 2 / 2 + 1]], 0
    )
    assert_close(fused(x), expected)
    bn.gamma.assign(np.zeros(2, "float32"))  # the fused layer holds copies
    assert_close(fused(x), expected)


def test_fuse_leaves_unfusable_pairs(rng):
    inputs = keras.Input((3,))
    a = layers.BatchNormalization(name="bn_softmax")(inputs)
    b = layers.BatchNormalization(name="bn_elu_alpha")(inputs)
    c = layers.BatchNormalization(name="bn_threshold")(inputs)
    d = layers.BatchNormalization(renorm=True, name="bn_renorm")(inputs)
    e = layers.BatchNormalization(name="bn_output")(inputs)
    outputs = [
        layers.Softmax()(a),
        layers.ELU(alpha=0.5)(b),
        layers.ReLU(threshold=0.5)(c),
        layers.ReLU()(d),
        layers.ReLU()(e),
        e,
    ]
    model = keras.Model(inputs, outputs)
    fused = fuse_batchnorm_activation(model)
    assert all(
        new is old for new, old in zip(fused.layers[1:], model.layers[1:], strict=True)
    )


@pytest.mark.parametrize("transform", [fold_batchnorm, fuse_batchnorm_activation])
def test_invalid_model(transform):
    with pytest.raises(ValueError, match="Invalid value received for argument `model`"):
        transform(layers.Dense(2))


def test_fold_after_fuse_matches_fold(rng):
    model = cnn()
    randomize_norms(model, rng)
    both = fold_batchnorm(fuse_batchnorm_activation(model))
    assert "BatchNormActivation" not in type_names(both)
    x = rng.normal(size=(2, 6, 6, 3)).astype("float32")
    assert_close(both(x), fold_batchnorm(model)(x))


@pytest.mark.parametrize("fused_bn", [False, True])
def test_build_cnn_fold_and_fuse(fused_bn, rng):
    from kerasx.models import build_cnn

    model = build_cnn(
        (8, 8, 3),
        4,
        filters=(4, 6),
        convs_per_block=1,
        dense_units=(5,),
        fused_bn=fused_bn,
    )
    randomize_norms(model, rng)
    x = rng.normal(size=(3, 8, 8, 3)).astype("float32")
    folded = fold_batchnorm(model)
    assert not any(isinstance(layer, NORMS) for layer in folded._flatten_layers())
    assert_close(folded(x), model(x, training=False))
    fused = fuse_batchnorm_activation(model)
    assert not any(
        type(layer) is layers.BatchNormalization for layer in fused._flatten_layers()
    )
    assert_close(fused(x), model(x, training=False))
