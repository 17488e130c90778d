"""BatchNormActivation vs keras BatchNormalization + Activation.

Tolerances: float32 forward rtol 1e-5 and moving statistics rtol 1e-6 (the
issue's contract; both sides compute in float32 with the same formulas up to
summation order). Gradients: rtol 1e-4 plus atol 1e-5 * max|grad| because
dx is a difference of O(1) terms that cancel (closed form vs autodiff).
Low precision is judged by the error ratio against a float64 reference.

Every numerics test forces the kernel it claims to test with
`kerasx.ops._use_kernel` and asserts that this kernel ran: left to the
decision table, JAX's traced calls and torch's small 2-D inputs run the Keras
composition, which would compare Keras with itself. The float32 test also
compares with the float64 NumPy reference (forward) and float64 finite
differences (gradients), each with a control assert that a planted epsilon
of 1e-2 instead of 1e-3 falls outside the tolerance.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from keras import ops

from kerasx.layers import BatchNormActivation
from kerasx.ops import _use_kernel

# The independent float64 reference lives next to the kernel tests.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ops"))
import bna_reference as ref


def _keras_pair(activation, **bn_kwargs):
    return keras.Sequential(
        [
            keras.layers.BatchNormalization(**bn_kwargs),
            keras.layers.Activation(activation, dtype=bn_kwargs.get("dtype")),
        ]
    )


def _loss_grads(layer, x, dy, training=True):
    """Output and grads of sum(layer(x) * dy) w.r.t. x and trainable weights."""
    layer(x)  # build (an inference call leaves the moving statistics alone)
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        x = tf.convert_to_tensor(x)
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=training)
            loss = tf.reduce_sum(tf.cast(y, "float32") * dy)
        grads = tape.gradient(loss, [x, *[v.value for v in layer.trainable_weights]])
        return y, grads
    if keras.backend.backend() == "torch":
        import torch

        x = ops.convert_to_tensor(x).detach().requires_grad_(True)
        y = layer(x, training=training)
        loss = (y.float() * ops.convert_to_tensor(dy, "float32")).sum()
        weights = [v.value for v in layer.trainable_weights]
        return y, list(torch.autograd.grad(loss, [x, *weights]))
    import jax

    trainable = [v.value for v in layer.trainable_weights]
    non_trainable = [v.value for v in layer.non_trainable_weights]

    def loss(x, trainable):
        y, _ = layer.stateless_call(trainable, non_trainable, x, training=training)
        return (y.astype("float32") * dy).sum(), y

    (_, y), (dx, dweights) = jax.value_and_grad(loss, (0, 1), has_aux=True)(
        x, trainable
    )
    return y, [dx, *dweights]


def _np(t):
    return np.asarray(ops.convert_to_numpy(ops.cast(t, "float32")), np.float64)


@pytest.mark.parametrize(
    ("activation", "shape", "axis", "memory"),
    [
        ("relu", (8, 4, 4, 3), -1, "recompute"),
        ("elu", (8, 4, 4, 3), -1, "invert"),
        ("gelu", (6, 3, 4, 4), 1, "recompute"),
        ("leaky_relu", (6, 5, 3), 1, "invert"),
        ("swish", (2, 3, 2, 2, 4), -1, "recompute"),
        ("softplus", (16, 5), 0, "recompute"),
        ("elu", (16, 5), -1, "recompute"),
    ],
)
@pytest.mark.parametrize("path", ref.training_paths())
def test_matches_keras_forward_moving_stats_and_gradients(
    rng, activation, shape, axis, memory, path
):
    fusable = memory == "recompute" and axis in (-1, len(shape) - 1)
    if path == "fused_batch_norm" and not (fusable and len(shape) in (2, 4)):
        pytest.skip("FusedBatchNormV3 takes channels-last 2-D or 4-D inputs only")
    if path == "composed" and memory == "invert":
        pytest.skip("the Keras composition has no invert mode")
    x = rng.normal(1.0, 2.0, size=shape).astype("float32")
    dy = rng.normal(size=shape).astype("float32")
    channels = shape[axis]
    gamma = rng.uniform(0.5, 1.5, channels).astype("float32")
    beta = rng.uniform(-0.5, 0.5, channels).astype("float32")
    ours = BatchNormActivation(activation, axis=axis, memory=memory, momentum=0.9)
    theirs = _keras_pair(activation, axis=axis, momentum=0.9)
    ours.build(shape)
    theirs.build(shape)
    initial = [gamma, beta, np.full(channels, 0.3, "float32"), np.full(channels, 2.0)]
    ours.set_weights(initial)
    theirs.set_weights(initial)
    with _use_kernel(path) as chosen:
        y, grads = _loss_grads(ours, x, dy)
    assert set(chosen) == {path}
    y_ref, grads_ref = _loss_grads(theirs, x, dy)
    np.testing.assert_allclose(_np(y), _np(y_ref), rtol=1e-5, atol=1e-6)
    for got, want in zip(grads, grads_ref, strict=True):
        want = _np(want)
        np.testing.assert_allclose(
            _np(got), want, rtol=1e-4, atol=1e-5 * np.abs(want).max()
        )
    # The float64 reference, and a planted epsilon that must fail against it.
    kwargs = dict(axis=axis, activation={"swish": "silu"}.get(activation, activation))
    y64 = ref.forward(x, gamma, beta, **kwargs)[0]
    planted = ref.forward(x, gamma, beta, epsilon=1e-2, **kwargs)[0]
    ref.assert_close_and_sharp(_np(y), y64, planted, rtol=1e-5, atol=1e-6)
    if x.size <= 100:  # finite differences: two forward passes per element
        dx64 = ref.finite_difference_grads(x, gamma, beta, dy, **kwargs)[0]
        dx_planted = ref.finite_difference_grads(
            x, gamma, beta, dy, epsilon=1e-2, **kwargs
        )[0]
        atol = 1e-5 * np.abs(dx64).max()
        ref.assert_close_and_sharp(grads[0], dx64, dx_planted, rtol=1e-4, atol=atol)
    # Moving statistics after one eager training call, as Keras updates them.
    with _use_kernel(path) as chosen:
        ours(x, training=True)
    assert chosen == [path]
    theirs(x, training=True)
    for got, want in zip(ours.weights[2:], theirs.weights[2:], strict=True):
        np.testing.assert_allclose(_np(got), _np(want), rtol=1e-6)
    np.testing.assert_allclose(_np(ours(x)), _np(theirs(x)), rtol=1e-5, atol=1e-6)


def test_moving_statistics_literal_values():
    layer = BatchNormActivation("linear", momentum=0.5, epsilon=1e-8)
    layer(np.array([[1.0], [3.0]], "float32"), training=True)
    # mean 2, biased variance 1: 0.5 * 0 + 0.5 * 2 and 0.5 * 1 + 0.5 * 1.
    np.testing.assert_allclose(layer.moving_mean.numpy(), [1.0])
    np.testing.assert_allclose(layer.moving_variance.numpy(), [1.0])


def test_trainable_false_means_inference_mode():
    layer = BatchNormActivation("linear", epsilon=1e-8, trainable=False)
    x = np.array([[1.0], [3.0]], "float32")
    y = layer(x, training=True)
    np.testing.assert_allclose(_np(y).ravel(), [1.0, 3.0], rtol=1e-6)
    np.testing.assert_allclose(layer.moving_mean.numpy(), [0.0])


def test_mask_matches_keras(rng):
    x = rng.normal(size=(3, 5, 2)).astype("float32")
    mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]], bool)
    ours = BatchNormActivation("tanh")
    theirs = keras.layers.BatchNormalization()
    y = ours(x, training=True, mask=mask)
    y_ref = keras.activations.tanh(theirs(x, training=True, mask=mask))
    np.testing.assert_allclose(_np(y), _np(y_ref), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        ours.moving_variance.numpy(), theirs.moving_variance.numpy(), rtol=1e-6
    )


def test_callable_activation_uses_unfused_path(rng):
    x = rng.normal(size=(8, 3)).astype("float32")
    ours = BatchNormActivation(lambda t: t * ops.sigmoid(2.0 * t))
    y_ref = keras.layers.BatchNormalization()(x, training=True)
    y_ref = y_ref * keras.activations.sigmoid(2.0 * y_ref)
    np.testing.assert_allclose(_np(ours(x, training=True)), _np(y_ref), rtol=1e-5)


@pytest.mark.parametrize(
    ("policy", "activation"),
    [("mixed_bfloat16", "elu"), ("mixed_float16", "gelu"), ("mixed_bfloat16", "relu")],
)
def test_low_precision_error_ratio_vs_float64(rng, policy, activation):
    """The compiled kernel's error vs float64 is at most 2x Keras' own error.

    The kernel is forced: the table would run the Keras composition for this
    (64, 8) input on JAX (traced) and torch (small 2-D), so the bound would
    hold by construction. Control: the float32 kernel's own errors must be far
    below the low-precision ones (a kernel that skipped the float32 upcast
    would not be).
    """
    low = policy.split("_")[1]
    x = rng.normal(0.5, 2.0, size=(64, 8)).astype(low)
    dy = rng.normal(size=(64, 8)).astype(low)
    x64, dy64 = _np(x), _np(dy)
    y64 = ref.forward(x64, np.ones(8), np.zeros(8), activation=activation)[0]
    dx64 = ref.finite_difference_grads(
        x64[:16], np.ones(8), np.zeros(8), dy64[:16], activation=activation
    )[0]
    errors = {}
    for name, layer in {
        "ours": BatchNormActivation(activation, dtype=policy),
        "keras": _keras_pair(activation, dtype=policy),
    }.items():
        with _use_kernel("compiled" if name == "ours" else None) as chosen:
            y, _ = _loss_grads(layer, x, dy)
            _, (dx, *_) = _loss_grads(layer, x[:16], dy[:16])
        assert chosen == (["compiled"] * len(chosen) if name == "ours" else [])
        assert keras.backend.standardize_dtype(y.dtype) == low
        errors[name] = (ref.relative_error(y, y64), ref.relative_error(dx, dx64))
    assert len(errors) == 2 and errors["ours"][0] <= 2 * errors["keras"][0], errors
    assert errors["ours"][1] <= 2 * errors["keras"][1], errors
    # bfloat16 rounds to 2^-9 relative, float16 to 2^-12: the error of a
    # correctly rounded output is of that order, not zero.
    assert min(errors["ours"]) > 1e-5, errors


def test_weight_transfer_both_ways(rng):
    x = rng.normal(size=(4, 6)).astype("float32")
    weights = [rng.normal(size=6).astype("float32") for _ in range(3)]
    weights.append(rng.uniform(0.5, 2.0, 6).astype("float32"))
    keras_bn = keras.layers.BatchNormalization()
    keras_bn.build((None, 6))
    keras_bn.set_weights(weights)
    ours = BatchNormActivation("selu")
    ours.build((None, 6))
    ours.set_weights(keras_bn.get_weights())
    assert [v.name for v in ours.weights] == [v.name for v in keras_bn.weights]
    expected = keras.activations.selu(keras_bn(x))
    np.testing.assert_allclose(_np(ours(x)), _np(expected), rtol=1e-5, atol=1e-6)
    back = keras.layers.BatchNormalization()
    back.build((None, 6))
    back.set_weights(ours.get_weights())
    for got, want in zip(back.get_weights(), weights, strict=True):
        np.testing.assert_array_equal(got, want)


def test_config_and_keras_file_round_trip(rng, tmp_path):
    layer = BatchNormActivation(
        "leaky_relu", momentum=0.9, epsilon=1e-4, memory="invert", negative_slope=0.1
    )
    config = layer.get_config()
    assert BatchNormActivation.from_config(config).get_config() == config
    model = keras.Sequential([keras.Input((4,)), layer])
    x = rng.normal(size=(8, 4)).astype("float32")
    model.compile("sgd", "mse")
    model.fit(x, x, epochs=1, batch_size=8, verbose=0)
    path = os.path.join(tmp_path, "model.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    assert loaded.layers[0].get_config() == model.layers[0].get_config()
    np.testing.assert_array_equal(
        loaded.predict(x, verbose=0), model.predict(x, verbose=0)
    )


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"activation": "relu7"}, "argument `activation`.*relu7"),
        ({"activation": "relu", "memory": "invert"}, "memory='invert' only"),
        ({"memory": "inplace"}, "argument `memory`"),
        ({"momentum": 1.0}, r"Expected a float in \[0, 1\). Received: momentum=1.0"),
        ({"momentum": -0.1}, "Received: momentum=-0.1"),
        ({"epsilon": 0.0}, "Expected a float > 0. Received: epsilon=0.0"),
        ({"negative_slope": -1.0}, "argument `negative_slope`"),
        ({"axis": 1.5}, "argument `axis`"),
    ],
)
def test_constructor_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        BatchNormActivation(**kwargs)


def test_axis_out_of_range_and_integer_inputs():
    with pytest.raises(ValueError, match=r"Received: axis=3"):
        BatchNormActivation(axis=3).build((2, 4, 5))
    with pytest.raises(ValueError, match="Expected a floating tensor"):
        BatchNormActivation()(np.ones((2, 3), "int32"), training=True)


@pytest.mark.backend("tensorflow")
def test_synchronized_runs_unfused_path_with_same_result(rng):
    x = rng.normal(size=(8, 3)).astype("float32")
    synced = BatchNormActivation("elu", synchronized=True)
    plain = BatchNormActivation("elu")
    np.testing.assert_allclose(
        _np(synced(x, training=True)), _np(plain(x, training=True)), rtol=1e-5
    )
    np.testing.assert_allclose(
        synced.moving_variance.numpy(), plain.moving_variance.numpy(), rtol=1e-6
    )


@pytest.mark.backend("jax", "torch")
def test_synchronized_is_rejected_off_tensorflow():
    with pytest.raises(ValueError, match="Received: synchronized=True"):
        BatchNormActivation(synchronized=True)
