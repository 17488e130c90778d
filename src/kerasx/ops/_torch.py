"""torch kernel of `kerasx.ops.batch_norm_activation` (kernels only).

`compiled` returns a `torch.autograd.Function` with the closed-form backward for
training and `kerasx.ops.closed_form_inference`, run eagerly, for inference;
`context` reports the device `kerasx.ops.KERNEL_TABLE` reads. The training
math is `kerasx.ops`' closed-form math, written with ATen's fused CPU/GPU loops
instead of one eager op per term:

* statistics: `torch.var_mean` (biased, float32). When a channel's mean is
  large compared with its spread (`|mean| > 16 std`), or off CPU where the
  check would cost a device sync, they are taken of `x - shift`, `shift` being
  each channel's first element, as in `kerasx.ops.closed_form_forward`, so that
  a channel mean of 1e4 with unit variance keeps its digits;
* forward: `z = (x - shift) * (gamma * rstd) + (beta - offset * gamma * rstd)`
  in one `torch.addcmul` (`offset` = mean of `x - shift`), then the activation;
* backward: `g = dy * act'(z)`, then `aten.native_batch_norm_backward`, which
  evaluates exactly `kerasx.ops.closed_form_backward`'s
  `dx = gamma * rstd * (g - mean(g) - xhat * mean(g * xhat))`,
  `dgamma = sum(g * xhat)`, `dbeta = sum(g)`; cotangents of the returned
  statistics are added as in `closed_form_backward`.

In invert mode only `y` is saved: `xhat = (act^-1(y) - beta) / gamma` is passed
to the same backward as its input with zero mean, unit `invstd` and weight
`gamma * rstd`, which yields the same three gradients.

Low-precision inputs are computed in float32 and rounded once at the end, as
the other backends' kernels do.

Measured on a 2-core CPU (forward + backward of one layer, ReLU, interleaved
medians, Keras BN + Activation time / this kernel's): 1.6x on (32, 28, 28, 64)
and (4096, 1024) float32, 1.2-1.4x in bfloat16. `torch.compile` of
the closed-form math reached 1.6-2.6x once compiled, but each new shape or dtype
cost 50-260 s of inductor compilation on that machine, so it is not used.
"""

from __future__ import annotations

import functools

import torch

from kerasx import ops as kx_ops

# |mean| / std up to which the unshifted form keeps ~1e-6 relative accuracy
# (the rounding of |mean| * scale is 6e-8 * |mean| / std).
SHIFT_FREE_RATIO = 16.0


def _view(x, axis):
    """`x` as `(outer, C)` or `(outer, C, inner)`, the layout ATen's BN expects."""
    view, reduce_axes, _ = kx_ops.channel_view(x, axis)
    return view, reduce_axes


def _broadcast(vector, view):
    return vector.reshape((1, -1) + (1,) * (view.dim() - 2))


def context(x) -> dict:
    """What `kerasx.ops.KERNEL_TABLE` reads about one call: the device of `x`."""
    return {"gpu": getattr(getattr(x, "device", None), "type", "cpu") != "cpu"}


@functools.cache
def compiled(axis, epsilon, activation, negative_slope, memory, out_dtype):
    """Returns `(train, infer)` callables for one static configuration."""
    spec = kx_ops.activation_spec(activation)
    torch_out_dtype = getattr(torch, out_dtype)

    def normalize(shifted, gamma, beta, offset, variance):
        # One pass, z = (x - shift) * scale + (beta - offset * scale): both
        # terms are small, so nothing cancels. ATen's inference BN computes
        # x * scale + (beta - mean * scale) instead, which loses ~1e-3 absolute
        # in float32 when the mean is 1e4 and the spread 1.
        scale = gamma * torch.rsqrt(variance + epsilon)
        bias = beta - offset * scale
        return torch.addcmul(
            _broadcast(bias, shifted), shifted, _broadcast(scale, shifted)
        )

    def shift_of(view):
        # The first element of each channel, as `kx_ops.closed_form_forward`:
        # statistics of `x - shift` keep the digits a float32 mean of 1e4 loses.
        first = view[:1] if view.dim() == 2 else view[:1, :, :1]
        return first.reshape(-1)

    class BatchNormActivationFunction(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, gamma, beta):
            view, reduce_axes = _view(x, axis)
            view = view.float()
            dtypes = (x.dtype, gamma.dtype, beta.dtype)
            gamma, beta = gamma.float(), beta.float()
            shifted = None
            if view.numel() == 0:
                # An empty batch: NaN statistics, as `keras.ops.moments`, without
                # `var_mean`'s degrees-of-freedom warning.
                variance = offset = torch.full_like(gamma, float("nan"))
                shift, shifted = torch.zeros_like(gamma), view
            elif view.device.type == "cpu":
                # On CPU a host check is free: skip the shifted copy when the
                # mean is small enough for `x * scale - mean * scale` to keep
                # float32 accuracy (1e-6 of the spread), the usual case.
                variance, offset = torch.var_mean(view, dim=reduce_axes, correction=0)
                if bool((offset.abs() <= SHIFT_FREE_RATIO * variance.sqrt()).all()):
                    shift, shifted = torch.zeros_like(offset), view
            if shifted is None:
                shift = shift_of(view)
                shifted = view - _broadcast(shift, view)
                variance, offset = torch.var_mean(
                    shifted, dim=reduce_axes, correction=0
                )
            ctx.shifted = shifted is not view
            z = normalize(shifted, gamma, beta, offset, variance)
            y = spec.forward(z, negative_slope).to(torch_out_dtype).reshape(x.shape)
            saved = y if memory == "invert" else x
            ctx.save_for_backward(saved, gamma, beta, shift, offset, variance)
            ctx.dtypes = dtypes
            # The statistics usually only feed the moving averages: leave their
            # cotangents as None instead of materialising zeros.
            ctx.set_materialize_grads(False)
            return y, shift + offset, variance

        @staticmethod
        def backward(ctx, dy, dmean, dvariance):
            saved, gamma, beta, shift, offset, variance = ctx.saved_tensors
            x_dtype, gamma_dtype, beta_dtype = ctx.dtypes
            if saved.numel() == 0:
                # ATen's batch-norm backward divides by zero on an empty batch
                # (SIGFPE); the gradients of a sum over no elements are zeros.
                return (
                    torch.zeros_like(saved, dtype=x_dtype),
                    torch.zeros_like(gamma, dtype=gamma_dtype),
                    torch.zeros_like(beta, dtype=beta_dtype),
                )
            view, _ = _view(saved, axis)
            view = view.float()
            rstd = torch.rsqrt(variance + epsilon)
            g = torch.zeros_like(view)
            if memory == "invert":
                if dy is not None:
                    dy = dy.reshape(view.shape).float()
                    g = dy * spec.derivative_from_output(view, negative_slope)
                z = spec.inverse(view, negative_slope)
                safe_gamma = torch.where(
                    gamma < 0.0,
                    torch.clamp(gamma, max=-kx_ops.GAMMA_FLOOR),
                    torch.clamp(gamma, min=kx_ops.GAMMA_FLOOR),
                )
                xhat = (z - _broadcast(beta, view)) / _broadcast(safe_gamma, view)
                dx, dgamma, dbeta = torch.ops.aten.native_batch_norm_backward(
                    g,
                    xhat,
                    gamma * rstd,
                    None,
                    None,
                    torch.zeros_like(offset),
                    torch.ones_like(rstd),
                    True,
                    epsilon,
                    [True, True, True],
                )
                centred = (
                    xhat / _broadcast(rstd, view) if dvariance is not None else None
                )
            else:
                shifted = view - _broadcast(shift, view) if ctx.shifted else view
                if dy is not None:
                    dy = dy.reshape(view.shape).float()
                    z = normalize(shifted, gamma, beta, offset, variance)
                    g = dy * spec.derivative(z, negative_slope)
                dx, dgamma, dbeta = torch.ops.aten.native_batch_norm_backward(
                    g,
                    shifted,
                    gamma,
                    None,
                    None,
                    offset,
                    rstd,
                    True,
                    epsilon,
                    [True, True, True],
                )
                if dvariance is not None:
                    centred = shifted - _broadcast(offset, view)
            count = view.numel() / view.shape[1]
            if dmean is not None:
                dx = dx + _broadcast(dmean.float(), view) / count
            if dvariance is not None:
                dx = dx + (2.0 / count) * _broadcast(dvariance.float(), view) * centred
            dx = dx.to(x_dtype).reshape(saved.shape)
            return dx, dgamma.to(gamma_dtype), dbeta.to(beta_dtype)

    def train(x, gamma, beta):
        return BatchNormActivationFunction.apply(x, gamma, beta)

    infer = functools.partial(
        kx_ops.closed_form_inference,
        axis=axis,
        epsilon=epsilon,
        activation=activation,
        negative_slope=negative_slope,
        out_dtype=out_dtype,
    )
    return train, infer
