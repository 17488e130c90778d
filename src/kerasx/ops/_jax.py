"""JAX kernel of `kerasx.ops.batch_norm_activation` (kernels only).

`compiled`: `kerasx.ops.closed_form_forward` and `closed_form_backward` tied by
`jax.custom_vjp` under `jax.jit`, and `closed_form_inference` jitted. The
residuals are the saved tensor (`x` for recompute, the output `y` in its own
dtype for invert) plus per-channel vectors, so invert mode does not keep a
float32 copy of a bfloat16 activation alive. `context` reports what
`kerasx.ops.KERNEL_TABLE` reads (traced or not, accelerator or not); the table
decides when the kernel runs.
"""

from __future__ import annotations

import functools

import jax

from kerasx import ops as kx_ops


@functools.cache
def compiled(axis, epsilon, activation, negative_slope, memory, out_dtype):
    """Returns `(train, infer)` jitted callables for one static configuration."""
    static = dict(
        axis=axis, epsilon=epsilon, activation=activation, negative_slope=negative_slope
    )
    forward = functools.partial(
        kx_ops.closed_form_forward, out_dtype=out_dtype, **static
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
        return kx_ops.closed_form_backward(
            *residuals,
            dy,
            dmean,
            dvariance,
            memory=memory,
            **static,
        )

    train.defvjp(train_fwd, train_bwd)
    infer = functools.partial(
        kx_ops.closed_form_inference, out_dtype=out_dtype, **static
    )
    return jax.jit(train), jax.jit(infer)


def context(x) -> dict:
    """What `kerasx.ops.KERNEL_TABLE` reads about one call: traced, accelerator."""
    return {
        "xla": isinstance(x, jax.core.Tracer),
        "gpu": jax.default_backend() != "cpu",
    }
