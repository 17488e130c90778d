"""JAX kernel: `jax.custom_vjp` around the shared math, under `jax.jit`.

The residuals are the saved tensor (`x` for recompute, the output `y` in
its own dtype for invert) plus per-channel vectors, so invert mode does not
keep a float32 copy of a bfloat16 activation alive. `kerasx.ops.KERNEL_TABLE`
decides when it runs, from what `context` reports.
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


def context(x) -> dict:
    """What `kerasx.ops.KERNEL_TABLE` reads about one call: traced, accelerator."""
    return {
        "xla": isinstance(x, jax.core.Tracer),
        "gpu": jax.default_backend() != "cpu",
    }
