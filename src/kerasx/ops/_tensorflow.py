"""TensorFlow kernels: the XLA kernel and, outside XLA, TensorFlow's fused op.

`compiled`: forward and backward are separate `tf.function(jit_compile=True)`
programs tied by `tf.custom_gradient`, so that both are compiled even when the
caller runs eagerly; inside an outer `jit_compile=True` function they are
inlined into its cluster. `choose` picks between it, `FusedBatchNormV3`
(`fused_batch_norm_activation`) and the Keras composition by context.
"""

from __future__ import annotations

import functools

import tensorflow as tf
from tensorflow.python.ops import control_flow_util

from kerasx.ops import _activations, _kernel

# `tf.compat.v1.nn.fused_batch_norm` raises smaller epsilons to this value.
FUSED_MIN_EPSILON = 1.001e-5
# Below this many elements a 2-D input runs faster through the composed ops
# than through the fused op (measured crossover between (256, 100) and
# (1024, 256) in a graph without XLA on a 2-core CPU).
FUSED_2D_MIN_SIZE = 2**16


@functools.cache
def compiled(axis, epsilon, activation, negative_slope, memory, out_dtype):
    """Returns `(train, infer)` callables for one static configuration."""
    static = dict(
        axis=axis, epsilon=epsilon, activation=activation, negative_slope=negative_slope
    )
    forward = tf.function(
        functools.partial(
            _kernel.forward_with_residuals, out_dtype=out_dtype, **static
        ),
        jit_compile=True,
        autograph=False,
    )
    backward = tf.function(
        functools.partial(_kernel.backward, memory=memory, **static),
        jit_compile=True,
        autograph=False,
    )
    infer = tf.function(
        functools.partial(_kernel.inference, out_dtype=out_dtype, **static),
        jit_compile=True,
        autograph=False,
    )

    @tf.custom_gradient
    def train(x, gamma, beta):
        y, mean, variance, shift, offset = forward(x, gamma, beta)
        saved = y if memory == "invert" else x

        def grad(dy, dmean, dvariance):
            if dmean is None:
                dmean = tf.zeros_like(mean)
            if dvariance is None:
                dvariance = tf.zeros_like(variance)
            return backward(
                saved, gamma, beta, shift, offset, variance, dy, dmean, dvariance
            )

        return (y, mean, variance), grad

    def train_on_tensors(x, gamma, beta):
        # Reading variables inside a custom_gradient function would make TF
        # ask for variable gradients separately; pass plain tensors instead.
        return train(*map(_read, (x, gamma, beta)))

    def infer_on_tensors(*args):
        return infer(*map(_read, args))

    return train_on_tensors, infer_on_tensors


def _read(value):
    return tf.identity(tf.convert_to_tensor(value))


def in_xla_context() -> bool:
    """Whether ops built now are compiled by XLA (inside `jit_compile=True`).

    True in the body of a `tf.function(jit_compile=True)` and of any function
    it calls, which is where Keras traces the train step of a model compiled
    with `jit_compile=True`; False eagerly and in a plain `tf.function` graph.
    """
    if tf.executing_eagerly():
        return False
    graph = tf.compat.v1.get_default_graph()
    return control_flow_util.GraphOrParentsInXlaContext(graph)


def choose(x, axis, dtype, epsilon, out_dtype) -> str:
    """The training kernel for one call, when the statistics need no gradient.

    Returns `"compiled"` (the XLA kernel of `compiled`), `"fused_batch_norm"`
    (TensorFlow's `FusedBatchNormV3`, then the activation) or `"composed"`
    (the Keras composition of `kerasx.ops._reference`). Measured in a graph
    without XLA, fwd+bwd of BN + ReLU/ELU, 2-core CPU (ratio to Keras):
    (128, 28, 28, 32) fused op 5.3x, XLA kernel 3.1x; (128, 14, 14, 64) 1.9x vs
    1.2x; (4096, 1024) as `(N, 1, 1, C)` 2.8x vs 1.6x; (1024, 256) 1.5x vs 1.5x;
    (256, 100) fused op 0.6-0.8x, XLA kernel 0.7-1.0x, composed ops 1.0x by
    construction. Inside XLA the compiled kernel is inlined into the caller's
    cluster and used for rank >= 3; 2-D inputs take the composed ops there on
    a CPU.
    """
    shape = tuple(x.shape)
    if in_xla_context():
        # XLA fuses Keras' own composition well for (N, C) on a CPU: the
        # compiled kernel measured 0.75-0.91x Keras on (4096, 1024) there.
        dense = len(shape) == 2 and axis == 1
        return "composed" if dense and not _has_gpu() else "compiled"
    fusable = (
        dtype == "float32"
        and out_dtype == "float32"
        # The op raises epsilon to 1.001e-5 (cuDNN's floor); smaller ones
        # would silently change the result.
        and epsilon >= FUSED_MIN_EPSILON
        and axis == len(shape) - 1
        # Zero channels: the count per channel below would divide by zero.
        and shape[-1] != 0
    )
    if fusable and len(shape) == 4:
        return "fused_batch_norm"
    if fusable and len(shape) == 2:
        rows, channels = shape
        if rows is not None and rows * channels >= FUSED_2D_MIN_SIZE:
            return "fused_batch_norm"
        if not tf.executing_eagerly():
            return "composed"
    return "compiled"


@functools.cache
def _has_gpu() -> bool:
    return bool(tf.config.list_logical_devices("GPU"))


def fused_batch_norm_activation(x, gamma, beta, *, epsilon, activation, negative_slope):
    """`FusedBatchNormV3` in training mode, then the activation.

    Returns `(y, mean, variance)` with the biased batch variance (as Keras):
    the op's own variance output is Bessel-corrected, `n / max(n - 1, 1)`
    times the biased one, for `n` elements per channel. The statistics carry
    no gradient (the op's registered gradient ignores them).
    """
    spec = _activations.get(activation)
    shape = tf.shape(x)
    channels = x.shape[-1]
    view = x if len(x.shape) == 4 else tf.reshape(x, (-1, 1, 1, channels))
    z, mean, bessel_variance = tf.compat.v1.nn.fused_batch_norm(
        view, gamma, beta, epsilon=epsilon, data_format="NHWC", is_training=True
    )
    count = tf.cast(tf.size(x) // channels, tf.float32)
    variance = bessel_variance * (tf.maximum(count - 1.0, 1.0) / count)
    y = tf.reshape(spec.forward(z, negative_slope), shape)
    return y, tf.stop_gradient(mean), tf.stop_gradient(variance)
