"""The kernel decision table of the fused BatchNorm + activation, and its numerics.

`kerasx.ops.KERNEL_TABLE` is the only place that picks a training kernel. The
table tests below read its thresholds (`LARGE_2D_ELEMENTS`,
`FUSED_OP_MIN_EPSILON`) instead of restating them and check that every row is
reachable and matched first where it should be; the context tests check that
what each backend reports (inside XLA / a jit, eager, GPU) is true; the
dispatch tests that the layer runs the table's path. The numerics tests force
each TensorFlow path and compare with a float64 reference: the forward, the
gradients, and moving statistics updated with the *biased* batch variance (the
fused op's own variance output is Bessel-corrected). Tolerances: float32
against float64, rtol 1e-5 on values of order one (forward, statistics) and
1e-4 on gradients, which sum over the batch.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from kerasx import ops as kx_ops
from kerasx.layers import BatchNormActivation
from kerasx.ops import (
    FUSED_OP_MIN_EPSILON,
    KERNEL_TABLE,
    LARGE_2D_ELEMENTS,
    Call,
    _use_kernel,
    decide,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bna_reference

CONV = (4, 5, 5, 6)
SMALL_2D = (16, 7)
LARGE_2D = (LARGE_2D_ELEMENTS // 64, 64)  # exactly at the threshold
BELOW_LARGE_2D = (LARGE_2D_ELEMENTS // 64 - 1, 64)


def _call(shape=CONV, **overrides) -> Call:
    """A channels-last float32 call in a TensorFlow graph without XLA, on a CPU."""
    fields = dict(
        backend="tensorflow",
        shape=shape,
        axis=len(shape) - 1,
        dtype="float32",
        out_dtype="float32",
        epsilon=1e-3,
        memory="recompute",
        differentiable_statistics=False,
        xla=False,
        eager=False,
        gpu=False,
        activation="relu",
    )
    return Call(**{**fields, **overrides})


def _row(call: Call) -> int:
    return KERNEL_TABLE.index(decide(call))


# One call per row, in table order: each must be matched by its own row first.
ROW_EXAMPLES = [
    _call(backend="other"),
    _call(differentiable_statistics=True),
    _call(memory="invert"),
    _call(SMALL_2D, xla=True),
    _call(xla=True),
    _call(),
    _call(LARGE_2D),
    _call(BELOW_LARGE_2D),
    _call(BELOW_LARGE_2D, activation="gelu"),
    _call(BELOW_LARGE_2D, eager=True),
    _call(backend="jax", xla=True, eager=True),
    _call(backend="jax", eager=True),
    _call(BELOW_LARGE_2D, backend="torch", eager=True),
    _call(backend="torch", eager=True, dtype="bfloat16", out_dtype="bfloat16"),
    _call(LARGE_2D, backend="torch", eager=True),
]


def test_every_row_is_reachable_and_matched_first():
    assert [_row(call) for call in ROW_EXAMPLES] == list(range(len(KERNEL_TABLE)))


def test_every_row_names_a_path_and_its_measurement():
    for case in KERNEL_TABLE:
        assert case.path in kx_ops.PATHS
        assert case.backend in ("tensorflow", "jax", "torch", "other", "any")
        assert case.case and case.measured


def test_thresholds_flip_exactly_where_the_table_says():
    # TensorFlow graph: the fused op from LARGE_2D_ELEMENTS on; below, the
    # plain-op closed form where the activation's gradient comes from its
    # output, else Keras' composition.
    assert decide(_call(LARGE_2D)).path == "fused_batch_norm"
    assert decide(_call(BELOW_LARGE_2D)).path == "graph"
    for name in kx_ops.OUTPUT_GRADIENT_ACTIVATIONS:
        assert decide(_call(BELOW_LARGE_2D, activation=name)).path == "graph"
    for name in ("gelu", "silu", "softplus"):
        assert decide(_call(BELOW_LARGE_2D, activation=name)).path == "composed"
    assert decide(_call((None, 100))).path == "graph"  # batch size unknown
    # Mixed precision: small 2-D bfloat16/float16 take the graph kernel too
    # (computed in float32); large ones the compiled kernel.
    for dtype in ("bfloat16", "float16"):
        low = dict(dtype=dtype, out_dtype=dtype)
        assert decide(_call(BELOW_LARGE_2D, **low)).path == "graph"
        assert decide(_call(LARGE_2D, **low)).path == "compiled"
        assert decide(_call(BELOW_LARGE_2D, eager=True, **low)).path == "compiled"
    assert decide(_call(BELOW_LARGE_2D, dtype="float64")).path == "compiled"
    # The fused op's epsilon floor: below it the op would change the result.
    assert decide(_call(epsilon=FUSED_OP_MIN_EPSILON)).path == "fused_batch_norm"
    assert decide(_call(epsilon=FUSED_OP_MIN_EPSILON * 0.99)).path == "compiled"
    # torch on a CPU: the autograd Function from LARGE_2D_ELEMENTS on.
    torch_call = dict(backend="torch", eager=True)
    assert decide(_call(LARGE_2D, **torch_call)).path == "compiled"
    assert decide(_call(BELOW_LARGE_2D, **torch_call)).path == "composed"
    assert decide(_call(BELOW_LARGE_2D, gpu=True, **torch_call)).path == "compiled"
    # torch bfloat16/float16 on a CPU: Keras' composition at every size.
    low = dict(dtype="bfloat16", out_dtype="bfloat16", **torch_call)
    assert decide(_call(**low)).path == "composed"
    assert decide(_call(LARGE_2D, **low)).path == "composed"
    assert decide(_call(gpu=True, **low)).path == "compiled"


@pytest.mark.parametrize(
    "change",
    [
        {"dtype": "bfloat16", "out_dtype": "bfloat16"},
        {"out_dtype": "float16"},
        {"axis": 1},
        {"shape": (4, 3, 5, 5, 6), "axis": 4},
        {"shape": (4, 5, 6), "axis": 2},
        {"shape": (0, 5, 5, 0)},
        {"differentiable_statistics": True},
        {"memory": "invert"},
    ],
)
def test_what_the_fused_op_cannot_compute_takes_the_compiled_kernel(change):
    call = dataclasses.replace(_call(), **change)
    assert not call.fusable
    assert decide(call).path == "compiled"


def _traced(fn, jit_compile):
    """Runs `fn` while TensorFlow traces a function and returns its result."""
    import tensorflow as tf

    found = []

    def body():
        found.append(fn())
        return tf.constant(0.0)

    tf.function(body, jit_compile=jit_compile)()
    return found[0]


def _describe(shape):
    x = keras.ops.zeros(shape)
    return kx_ops._describe(
        x,
        axis=len(shape) - 1,
        epsilon=1e-3,
        output_dtype="float32",
        memory="recompute",
        differentiable_statistics=False,
        activation="relu",
    )


@pytest.mark.backend("tensorflow")
def test_tensorflow_reports_its_context():
    eager = _describe(CONV)
    graph = _traced(lambda: _describe(CONV), jit_compile=False)
    xla = _traced(lambda: _describe(CONV), jit_compile=True)
    assert (eager.eager, eager.xla) == (True, False)
    assert (graph.eager, graph.xla) == (False, False)
    assert (xla.eager, xla.xla) == (False, True)
    assert eager.gpu is False  # these tests run on CPU machines


@pytest.mark.backend("jax")
def test_jax_reports_traced_calls():
    import jax

    assert _describe(CONV).xla is False
    found = []
    jax.jit(
        lambda x: (
            found.append(
                kx_ops._describe(
                    x,
                    axis=3,
                    epsilon=1e-3,
                    output_dtype="float32",
                    memory="recompute",
                    differentiable_statistics=False,
                    activation="relu",
                )
            )
            or x
        )
    )(np.zeros(CONV, "float32"))
    assert found[0].xla is True and found[0].gpu is False


@pytest.mark.backend("torch")
def test_torch_reports_the_device():
    assert _describe(CONV).gpu is False and _describe(CONV).xla is False


@pytest.mark.parametrize("shape", [CONV, SMALL_2D, BELOW_LARGE_2D])
def test_the_layer_runs_the_tables_path(rng, shape):
    """Eagerly here (the TensorFlow graph and XLA cases are below)."""
    layer = BatchNormActivation("relu")
    with _use_kernel() as chosen:
        layer(rng.normal(size=shape).astype("float32"), training=True)
    assert chosen == [decide(_describe(shape)).path]


@pytest.mark.backend("tensorflow")
@pytest.mark.parametrize("jit_compile", [False, True], ids=["graph", "xla"])
@pytest.mark.parametrize("shape", [CONV, LARGE_2D, BELOW_LARGE_2D])
def test_the_layer_runs_the_tables_path_in_tensorflow_graphs(shape, jit_compile):
    import tensorflow as tf

    layer = BatchNormActivation("relu")
    layer.build(shape)
    with _use_kernel() as chosen:
        tf.function(lambda x: layer(x, training=True), jit_compile=jit_compile)(
            tf.zeros(shape)
        )
    expected = _traced(lambda: _describe(shape), jit_compile=jit_compile)
    assert chosen == [decide(expected).path]


def test_forcing_a_path_that_cannot_run_is_refused():
    x = np.ones((4, 3), "float32")
    ones = np.ones(3, "float32")
    with (
        pytest.raises(ValueError, match="Received: path='fused'"),
        _use_kernel("fused"),
    ):
        pass
    unrunnable = "keras_ops"  # only on a backend without a kernel module
    with (
        pytest.raises(ValueError, match=f"Received: path='{unrunnable}'"),
        _use_kernel(unrunnable),
    ):
        kx_ops.batch_norm_activation(x, ones, ones)
    with (
        pytest.raises(ValueError, match="Received: path='composed'"),
        _use_kernel("composed"),
    ):
        kx_ops.batch_norm_activation(x, ones, ones, memory="invert", activation="elu")
    # The fused op ignores statistics cotangents: refused where they are asked for.
    with (
        pytest.raises(ValueError, match="Received: path='fused_batch_norm'"),
        _use_kernel("fused_batch_norm"),
    ):
        kx_ops.batch_norm_activation(x, ones, ones, differentiable_statistics=True)


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
@pytest.mark.parametrize("path", ["fused_batch_norm", "graph", "composed", "compiled"])
@pytest.mark.parametrize("jit_compile", [False, True], ids=["graph", "xla"])
@pytest.mark.parametrize("shape", [CONV, (1024, 64), SMALL_2D, (1, 1, 1, 3)])
@pytest.mark.parametrize("activation", ["relu", "elu"])
def test_every_path_matches_float64_reference(
    rng, shape, activation, jit_compile, path
):
    """Each forced path, in a graph and under XLA, against float64.

    Control: with epsilon 1e-2 instead of 1e-3 the reference output falls
    outside the tolerance, so a kernel with a wrong epsilon fails here.
    """
    if path == "graph" and len(shape) != 2:
        pytest.skip("the graph kernel computes 2-D inputs only")
    x = rng.normal(2.0, 3.0, size=shape).astype("float32")
    dy = rng.normal(size=shape).astype("float32")
    channels = shape[-1]
    gamma = rng.uniform(0.5, 1.5, channels).astype("float32")
    beta = rng.normal(size=channels).astype("float32")
    layer = BatchNormActivation(activation, momentum=0.9)
    layer.build(shape)
    layer.gamma.assign(gamma)
    layer.beta.assign(beta)
    with _use_kernel(path) as chosen:
        y, dx, dgamma, dbeta = _train_step(layer, x, dy, jit_compile)
    assert chosen == [path]

    expected, mean, variance = bna_reference.forward(
        x, gamma, beta, activation=activation
    )
    planted = bna_reference.forward(
        x, gamma, beta, activation=activation, epsilon=1e-2
    )[0]
    if x.size > shape[-1]:  # one element per channel: y = act(beta) for any epsilon
        bna_reference.assert_close_and_sharp(y, expected, planted, rtol=1e-5, atol=1e-5)
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
        with _use_kernel() as chosen:
            model.fit(x, y, batch_size=4, epochs=2, verbose=0, shuffle=False)
        assert set(chosen) == ({"fused_batch_norm"} if fused else set())
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
