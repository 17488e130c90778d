"""TensorFlow kernels of `kerasx.ops.batch_norm_activation` (kernels only).

* `compiled`: `kerasx.ops.closed_form_forward` and `closed_form_backward` as
  separate `tf.function(jit_compile=True)` programs tied by
  `tf.custom_gradient`, so that both are compiled even when the caller runs
  eagerly (inside an outer `jit_compile=True` function they are inlined into
  its cluster), and `closed_form_inference` as a third one;
* `fused_batch_norm_activation`: `FusedBatchNormV3` in training mode, then the
  activation;
* `graph_batch_norm_activation`: the closed form in plain TensorFlow ops (no
  XLA) for 2-D float32 inputs, with the activation's derivative taken from the
  output by TensorFlow's own gradient ops;
* `cross_replica_moments`: the batch statistics of `synchronized=True` under a
  `tf.distribute` strategy, in two centred passes;
* `context`: what `kerasx.ops.KERNEL_TABLE` reads about the graph being built.

Which kernel runs is decided in `kerasx.ops`, by `KERNEL_TABLE` alone.
"""

from __future__ import annotations

import functools

import tensorflow as tf
from tensorflow.python.ops import control_flow_util

from kerasx import ops as kx_ops


@functools.cache
def compiled(axis, epsilon, activation, negative_slope, memory, out_dtype):
    """Returns `(train, infer)` callables for one static configuration."""
    static = dict(
        axis=axis, epsilon=epsilon, activation=activation, negative_slope=negative_slope
    )
    forward = tf.function(
        functools.partial(kx_ops.closed_form_forward, out_dtype=out_dtype, **static),
        jit_compile=True,
        autograph=False,
    )
    backward = tf.function(
        functools.partial(kx_ops.closed_form_backward, memory=memory, **static),
        jit_compile=True,
        autograph=False,
    )
    infer = tf.function(
        functools.partial(kx_ops.closed_form_inference, out_dtype=out_dtype, **static),
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
    spec = kx_ops.activation_spec(activation)
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


# The activation's gradient from its output `y`: TensorFlow's registered
# gradient kernels, each one pass over the tensor. `features=y` is exact for
# ReLU, ReLU6 and leaky ReLU: `y > 0` exactly where the input is (and `y` is in
# (0, 6) exactly where the input is, for ReLU6).
_OUTPUT_GRADIENTS = {
    "relu": lambda dy, y, slope: tf.raw_ops.ReluGrad(gradients=dy, features=y),
    "relu6": lambda dy, y, slope: tf.raw_ops.Relu6Grad(gradients=dy, features=y),
    "leaky_relu": lambda dy, y, slope: tf.raw_ops.LeakyReluGrad(
        gradients=dy, features=y, alpha=slope
    ),
    "elu": lambda dy, y, slope: tf.raw_ops.EluGrad(gradients=dy, outputs=y),
    "selu": lambda dy, y, slope: tf.raw_ops.SeluGrad(gradients=dy, outputs=y),
    "sigmoid": lambda dy, y, slope: tf.raw_ops.SigmoidGrad(y=y, dy=dy),
    "tanh": lambda dy, y, slope: tf.raw_ops.TanhGrad(y=y, dy=dy),
    "linear": lambda dy, y, slope: dy,
}


def graph_batch_norm_activation(
    x, gamma, beta, *, epsilon, activation, negative_slope, out_dtype="float32"
):
    """BatchNorm + activation of a 2-D `(N, C)` input in plain TF ops.

    For a graph without XLA (the default `fit` on a CPU), where each op is a
    kernel launch and each full-tensor pass costs: forward in 10 ops (two
    centred passes for the statistics, as Keras, then one scale/shift and the
    activation), backward in 10 (the activation's gradient from `y`, two
    sums, one expression for `dx`):

        g = act'(y) * dy;  dbeta = sum(g);  dgamma = sum(g * xhat)
        dx = (g - (xhat * dgamma + dbeta) / N) * gamma / sqrt(var + eps)

    A float16/bfloat16 `x` is computed in float32 (one cast in, `y` cast to
    `out_dtype`, `dx` cast back to `x`'s dtype), as Keras' BatchNormalization
    computes low-precision inputs; the activation's gradient reads the float32
    output. The statistics leave the function by closure, not as outputs, so
    the tape adds no zero cotangents for them; they carry no gradient. Returns
    `(y, mean, variance)` with the biased float32 batch variance.
    """
    output_gradient = _OUTPUT_GRADIENTS[activation]
    forward = kx_ops.activation_spec(activation).forward
    statistics = []

    @tf.custom_gradient
    def train(x, gamma, beta):
        in_dtype = x.dtype
        if in_dtype != tf.float32:
            x = tf.cast(x, tf.float32)
        mean = tf.reduce_mean(x, 0)
        centred = x - mean
        variance = tf.reduce_mean(tf.square(centred), 0)
        inv_std = tf.math.rsqrt(variance + epsilon)
        normalized = centred * inv_std
        y = forward(normalized * gamma + beta, negative_slope)
        statistics.extend((mean, variance))

        def grad(dy):
            if dy.dtype != tf.float32:
                dy = tf.cast(dy, tf.float32)
            g = output_gradient(dy, y, negative_slope)
            dbeta = tf.reduce_sum(g, 0)
            dgamma = tf.reduce_sum(g * normalized, 0)
            count = x.shape[0]
            if count is None:  # a batch size known only when the step runs
                count = tf.cast(tf.shape(x)[0], tf.float32)
            dx = (g - (normalized * dgamma + dbeta) / count) * (gamma * inv_std)
            if in_dtype != tf.float32:
                dx = tf.cast(dx, in_dtype)
            return dx, dgamma, dbeta

        return (y if out_dtype == "float32" else tf.cast(y, out_dtype)), grad

    y = train(*map(_read, (x, gamma, beta)))
    mean, variance = statistics
    return y, tf.stop_gradient(mean), tf.stop_gradient(variance)


def cross_replica_moments(x, axes, keepdims: bool = False):
    """Mean and biased variance of `x` over `axes` and over all replicas.

    In a replica context of a `tf.distribute` strategy with more than one
    replica, the statistics are those of the global batch (the concatenation of
    every replica's `x` along the reduced axes), computed in two centred passes:

        mean = allreduce(sum(x)) / allreduce(count)
        variance = allreduce(sum((x - mean) ** 2)) / allreduce(count)

    Gradients flow through both all-reduces (TensorFlow all-reduces the
    upstream gradients), so `d(global loss)/dx` is exact on every replica.
    Elsewhere (one replica, no strategy, cross-replica context) it is
    `tf.nn.moments`. float16/bfloat16 inputs are reduced in float32 and the
    statistics are returned in float32.

    Keras' `ops.moments(..., synchronized=True)` all-reduces the sum and the
    sum of squares and returns `E[x^2] - E[x]^2`, which loses every
    significant digit of the variance when `|mean| >> std` in float32 (a mean
    of 100 and a standard deviation of 1 leave about 3 correct digits). The
    second, centred pass has the float32 accuracy of `tf.nn.moments` on the
    concatenated global batch, for one more all-reduce of `channels` floats.

    Args:
        x: Input tensor.
        axes: Axes to reduce (a list of ints).
        keepdims: Whether to keep the reduced axes with length 1.

    Returns:
        `(mean, variance)`, float32.

    Reference:
        Chan, Golub & LeVeque, "Algorithms for computing the sample variance"
        (two-pass algorithm); `tf.keras.layers.BatchNormalization(synchronized=True)`.
    """
    x = tf.cast(x, tf.float32)
    axes = list(axes)
    replica_context = tf.distribute.get_replica_context()
    if replica_context is None or replica_context.num_replicas_in_sync == 1:
        return tf.nn.moments(x, axes, keepdims=keepdims)
    local_sum = tf.reduce_sum(x, axis=axes, keepdims=True)
    local_count = tf.reduce_sum(tf.ones_like(x), axis=axes, keepdims=True)
    total, count = replica_context.all_reduce(
        tf.distribute.ReduceOp.SUM, [local_sum, local_count]
    )
    mean = tf.math.divide_no_nan(total, count)
    local_squares = tf.reduce_sum(tf.square(x - mean), axis=axes, keepdims=True)
    squares = replica_context.all_reduce(tf.distribute.ReduceOp.SUM, local_squares)
    variance = tf.math.divide_no_nan(squares, count)
    if not keepdims:
        mean = tf.squeeze(mean, axes)
        variance = tf.squeeze(variance, axes)
    return mean, variance
