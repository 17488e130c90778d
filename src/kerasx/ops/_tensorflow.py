"""TensorFlow kernel: XLA-compiled forward and backward, tied by custom_gradient.

Forward and backward are separate `tf.function(jit_compile=True)` programs so
that both are compiled even when the caller runs eagerly; inside an outer
`jit_compile=True` function they are inlined into its cluster.
"""

from __future__ import annotations

import functools

import tensorflow as tf

from kerasx.ops import _kernel


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
