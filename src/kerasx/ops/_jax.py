"""JAX kernel: `jax.custom_vjp` around the shared math, under `jax.jit`.

The residuals are the saved tensor (`x` for recompute, the output `y` in
its own dtype for invert) plus per-channel vectors, so invert mode does not
keep a float32 copy of a bfloat16 activation alive.
"""

from __future__ import annotations

import functools

import jax

from kerasx.ops import _kernel


@functools.cache
def compiled(axis, epsilon, activation, negative_slope, memory, out_dtype):
    """Returns `(train, infer)` jitted callables for one static configuration."""
    static = dict(
        axis=axis, epsilon=epsilon, activation=activation, negative_slope=negative_slope
    )
    forward = functools.partial(
        _kernel.forward_with_residuals, out_dtype=out_dtype, **static
    )

    @jax.custom_vjp
    def train(x, gamma, beta):
        return forward(x, gamma, beta)[:3]

    def train_fwd(x, gamma, beta):
        y, mean, variance, shift, offset = forward(x, gamma, beta)
        saved = y if memory == "invert" else x
        residuals = (saved, gamma, beta, shift, offset, variance)
        return (y, mean, variance), residuals

    def train_bwd(residuals, cotangents):
        dy, dmean, dvariance = cotangents
        return _kernel.backward(
            *residuals,
            dy,
            dmean,
            dvariance,
            memory=memory,
            **static,
        )

    train.defvjp(train_fwd, train_bwd)
    infer = functools.partial(_kernel.inference, out_dtype=out_dtype, **static)
    return jax.jit(train), jax.jit(infer)


def choose(x, axis, dtype, epsilon, out_dtype) -> str:
    """The training kernel for one call, when the statistics need no gradient.

    Inside `jax.jit` on a CPU, `"composed"`: the Keras composition under JAX's
    autodiff, which XLA fuses with the neighbouring ops as it does for Keras'
    own layers. On the CPU train step of `build_cnn((28, 28, 1), 10)` the
    custom VJP measured 0.94x Keras and autodiff of the one-pass kernel 0.86x
    (and both raised XLA's temp bytes from 175 MB to 197-200 MB), so the
    custom VJP only pays off as a separately compiled kernel (outside a jit,
    where it runs as one program instead of op by op) and on accelerators,
    where it measured 1.40x (float32) / 1.25x (bfloat16) on an H100.
    """
    if isinstance(x, jax.core.Tracer) and jax.default_backend() == "cpu":
        return "composed"
    return "compiled"
