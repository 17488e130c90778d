"""torch kernel: a `torch.autograd.Function` around the shared math.

The forward and the closed-form backward are `ops/_kernel.py`'s, run on
torch tensors, so torch's autograd records one node per layer instead of a
node per elementwise op and keeps only the saved tensor (`x` for recompute,
`y` in its own dtype for invert) plus per-channel vectors alive.

`torch.compile` is applied to the forward and backward programs only where
it measured faster (see `benchmarks/batch_norm_activation.py`): not on CPU,
where inductor's generated loops were slower than eager torch on the shapes
the benchmark covers and each new shape costs seconds of compilation.
"""

from __future__ import annotations

import functools

import torch

from kerasx.ops import _kernel


@functools.cache
def compiled(axis, epsilon, activation, negative_slope, memory, out_dtype):
    """Returns `(train, infer)` callables for one static configuration."""
    static = dict(
        axis=axis, epsilon=epsilon, activation=activation, negative_slope=negative_slope
    )
    forward = functools.partial(
        _kernel.forward_with_residuals, out_dtype=out_dtype, **static
    )
    backward = functools.partial(_kernel.backward, memory=memory, **static)

    class BatchNormActivationFunction(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, gamma, beta):
            y, mean, variance, shift, offset = forward(x, gamma, beta)
            saved = y if memory == "invert" else x
            ctx.save_for_backward(saved, gamma, beta, shift, offset, variance)
            # The statistics only feed the moving averages in the layer; keep
            # their cotangents as None instead of materialising zeros.
            ctx.set_materialize_grads(False)
            return y, mean, variance

        @staticmethod
        def backward(ctx, dy, dmean, dvariance):
            saved, gamma, beta, shift, offset, variance = ctx.saved_tensors
            if dy is None:
                dy = torch.zeros_like(saved)
            return backward(
                saved, gamma, beta, shift, offset, variance, dy, dmean, dvariance
            )

    def train(x, gamma, beta):
        return BatchNormActivationFunction.apply(x, gamma, beta)

    infer = functools.partial(_kernel.inference, out_dtype=out_dtype, **static)
    return train, infer
