"""TensorFlow kernels: the XLA kernel and TensorFlow's fused op.

`compiled`: forward and backward are separate `tf.function(jit_compile=True)`
programs tied by `tf.custom_gradient`, so that both are compiled even when the
caller runs eagerly; inside an outer `jit_compile=True` function they are
inlined into its cluster. `fused_batch_norm_activation`: `FusedBatchNormV3`
then the activation. `kerasx.ops.KERNEL_TABLE` decides which one runs, from
what `context` reports.
"""

from __future__ import annotations

import functools

import tensorflow as tf
from tensorflow.python.ops import control_flow_util

from kerasx.ops import _activations, _kernel


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


def context(x) -> dict:
    """What `kerasx.ops.KERNEL_TABLE` reads about the call building ops now."""
    del x  # the context is the graph being built, not the tensor
    return {"xla": in_xla_context(), "eager": tf.executing_eagerly(), "gpu": _has_gpu()}


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
