"""Per-context kernel choice of the fused BatchNorm + activation, and its numerics.

On TensorFlow the layer runs `FusedBatchNormV3` (4-D channels-last float32,
large 2-D) or the composed Keras ops (small 2-D) in a graph without XLA, and
the XLA kernel inside `jit_compile=True`. Every path must give Keras' results:
the forward, the gradients, and moving statistics updated with the *biased*
batch variance (the fused op's own variance output is Bessel-corrected).
Tolerances: float32 against a float64 reference, rtol 1e-5 on values of order
one (forward, statistics) and 1e-4 on gradients, which sum over the batch.
"""

from __future__ import annotations

import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from kerasx.layers import BatchNormActivation
from kerasx.ops import _kernel_choice

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bna_reference

SMALL_2D = (16, 7)
LARGE_2D = (1024, 64)
CONV = (4, 5, 5, 6)


def _choice(shape, *, dtype="float32", epsilon=1e-3, axis=None, stats=False):
    x = keras.ops.zeros(shape, dtype)
    return _kernel_choice(
        x,
        axis=len(shape) - 1 if axis is None else axis,
        epsilon=epsilon,
        output_dtype=dtype,
        differentiable_statistics=stats,
    )


def _traced(fn, jit_compile):
    """Runs `fn` while TensorFlow traces a function and returns its result."""
    import tensorflow as tf

    found = []

    def body():
        found.append(fn())
        return tf.constant(0.0)

    tf.function(body, jit_compile=jit_compile)()
    return found[0]


@pytest.mark.backend("tensorflow")
@pytest.mark.parametrize(
    ("shape", "kwargs", "graph", "xla"),
    [
        (CONV, {}, "fused_batch_norm", "compiled"),
        (LARGE_2D, {}, "fused_batch_norm", "composed"),
        (SMALL_2D, {}, "composed", "composed"),
        (CONV, {"stats": True}, "compiled", "compiled"),
        (CONV, {"dtype": "bfloat16"}, "compiled", "compiled"),
        (CONV, {"epsilon": 1e-6}, "compiled", "compiled"),
        (CONV, {"axis": 1}, "compiled", "compiled"),
        ((4, 3, 5, 5, 6), {}, "compiled", "compiled"),
    ],
)
def test_tensorflow_choice_by_context(shape, kwargs, graph, xla):
    assert _traced(lambda: _choice(shape, **kwargs), jit_compile=False) == graph
    assert _traced(lambda: _choice(shape, **kwargs), jit_compile=True) == xla


@pytest.mark.backend("tensorflow")
def test_tensorflow_eager_choice():
    assert _choice(CONV) == "fused_batch_norm"
    # Eagerly, one compiled call beats a dozen small eager ops.
    assert _choice(SMALL_2D) == "compiled"


@pytest.mark.backend("jax")
def test_compiled_kernel_elsewhere():
    assert _choice(CONV) == "compiled"
    assert _choice(SMALL_2D) == "compiled"


@pytest.mark.backend("torch")
def test_torch_small_dense_inputs_take_the_keras_composition_on_cpu():
    # (256, 100) = 25 600 elements is the BN-MLP train step where the autograd
    # Function measured 0.54x; the bound is 65 536 elements, 2-D only.
    assert _choice(CONV) == "compiled"
    assert _choice(SMALL_2D) == "composed"
    assert _choice((256, 100)) == "composed"
    assert _choice((256, 256)) == "compiled"
    assert _choice(LARGE_2D) == "compiled"


def _train_step(layer, x, dy, jit_compile):
    """One training call of `layer` in a `tf.function`: `(y, dx, dgamma, dbeta)`."""
    import tensorflow as tf

    @tf.function(jit_compile=jit_compile)
    def step(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=True)
            loss = tf.reduce_sum(y * dy)
        return (y, *tape.gradient(loss, [x, layer.gamma, layer.beta]))

    return [t.numpy() for t in step(tf.constant(x))]


@pytest.mark.backend("tensorflow")
@pytest.mark.parametrize("jit_compile", [False, True], ids=["graph", "xla"])
@pytest.mark.parametrize("shape", [CONV, LARGE_2D, SMALL_2D, (1, 1, 1, 3)])
@pytest.mark.parametrize("activation", ["relu", "elu"])
def test_every_path_matches_float64_reference(rng, shape, activation, jit_compile):
    x = rng.normal(2.0, 3.0, size=shape).astype("float32")
    dy = rng.normal(size=shape).astype("float32")
    channels = shape[-1]
    gamma = rng.uniform(0.5, 1.5, channels).astype("float32")
    beta = rng.normal(size=channels).astype("float32")
    layer = BatchNormActivation(activation, momentum=0.9)
    layer.build(shape)
    layer.gamma.assign(gamma)
    layer.beta.assign(beta)
    y, dx, dgamma, dbeta = _train_step(layer, x, dy, jit_compile)

    expected, mean, variance = bna_reference.forward(
        x, gamma, beta, activation=activation
    )
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)
    # Keras: moving = moving * momentum + batch * (1 - momentum), with the
    # biased variance sum((x - mean)^2) / n (0 for a single element).
    np.testing.assert_allclose(
        layer.moving_mean.numpy(), 0.1 * mean, rtol=1e-5, atol=1e-7
    )
    np.testing.assert_allclose(
        layer.moving_variance.numpy(), 0.9 + 0.1 * variance, rtol=1e-5
    )
    grads = _float64_grads(x, gamma, beta, dy, activation)
    for got, want in zip((dx, dgamma, dbeta), grads, strict=True):
        scale = max(np.abs(want).max(), 1.0)
        # A float32 pre-activation within rounding of a kink (relu at 0) may
        # take the other side from float64; allow that for a single element.
        mismatches = np.abs(got - want) > 1e-4 * scale
        assert mismatches.sum() <= 1, (np.abs(got - want).max(), scale)


def _float64_grads(x, gamma, beta, dy, activation):
    """Closed-form gradients of `sum(y * dy)` through the batch statistics."""
    shape = x.shape
    x = x.astype(np.float64).reshape(-1, shape[-1])
    dy = dy.astype(np.float64).reshape(x.shape)
    mean, variance = x.mean(0), x.var(0)
    rstd = 1.0 / np.sqrt(variance + 1e-3)
    xhat = (x - mean) * rstd
    z = gamma * xhat + beta
    slope = {"relu": (z > 0).astype(np.float64), "elu": np.where(z > 0, 1.0, np.exp(z))}
    g = dy * slope[activation]
    dx = gamma * rstd * (g - g.mean(0) - xhat * (g * xhat).mean(0))
    return dx.reshape(shape), (g * xhat).sum(0), g.sum(0)


@pytest.mark.backend("tensorflow")
def test_fused_path_same_moving_statistics_as_keras(rng):
    """`fit` in the default TF mode (graph, no XLA) tracks Keras BN exactly."""
    x = rng.normal(1.0, 2.0, size=(8, 6, 6, 4)).astype("float32")
    y = rng.integers(0, 3, size=(8,))
    models = []
    for fused in (False, True):
        keras.utils.set_random_seed(0)
        inputs = keras.Input((6, 6, 4))
        if fused:
            h = BatchNormActivation("relu")(inputs)
        else:
            h = keras.layers.BatchNormalization()(inputs)
            h = keras.layers.Activation("relu")(h)
        h = keras.layers.GlobalAveragePooling2D()(h)
        model = keras.Model(inputs, keras.layers.Dense(3)(h))
        model.compile("sgd", "sparse_categorical_crossentropy", jit_compile=False)
        model.fit(x, y, batch_size=4, epochs=2, verbose=0, shuffle=False)
        models.append(model)
    keras_bn, fused_bn = (m.layers[1] for m in models)
    np.testing.assert_allclose(
        fused_bn.moving_variance.numpy(), keras_bn.moving_variance.numpy(), rtol=1e-5
    )
    np.testing.assert_allclose(
        fused_bn.moving_mean.numpy(), keras_bn.moving_mean.numpy(), rtol=1e-5, atol=1e-7
    )
    np.testing.assert_allclose(
        fused_bn.gamma.numpy(), keras_bn.gamma.numpy(), rtol=1e-5
    )
