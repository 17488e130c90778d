"""Backend-neutral math of the fused BatchNorm + activation kernel.

Written with `keras.ops`. The TensorFlow and JAX modules trace
`forward_with_residuals`, `backward` and `inference` once per configuration
into XLA-compiled functions tied by a custom gradient (the `"compiled"` path
of `kerasx.ops.KERNEL_TABLE`). torch's training kernel re-expresses the same
math with ATen ops and uses only `channel_view`, `GAMMA_FLOOR` and, eagerly,
`inference`; on a backend without a kernel module `forward` and `inference`
run op by op under its autodiff (the `"keras_ops"` path).

Per channel, with `N` elements `x_i`:

* statistics, one pass, shifted by the first element `k` of the channel:

      d_i = x_i - k,  mean = k + sum(d)/N,  var = sum(d^2)/N - (sum(d)/N)^2

* forward: `xhat = (x - mean) * rstd`, `rstd = 1/sqrt(var + eps)`,
  `z = gamma * xhat + beta`, `y = act(z)`;
* backward, with `g = dy * act'(z)`:

      dbeta = sum(g),  dgamma = sum(g * xhat)
      dx = gamma * rstd * (g - mean(g) - xhat * mean(g * xhat))
           + dmean / N + 2 * dvar * (x - mean) / N

  The last line carries cotangents of the returned statistics (zero when only
  the moving averages consume them).
"""

from __future__ import annotations

import math

from keras import ops

from kerasx.ops import _activations

# Invert mode divides by gamma to recover xhat; this floor keeps a zero
# gamma finite (see docs/batch_norm_activation.md, "Memory modes").
GAMMA_FLOOR = 1e-5


def channel_view(x, axis: int):
    """Reshapes `x` to `(outer, C)` or `(outer, C, inner)`.

    A 2-D view makes the channels-last reduction a single-axis reduction,
    which XLA on CPU handles much better than a multi-axis one.

    Returns:
        `(view, reduce_axes, stat_shape)`.
    """
    rank = len(x.shape)
    axis = axis % rank
    channels = x.shape[axis]
    trailing = x.shape[axis + 1 :]
    inner = None if None in trailing else math.prod(trailing)
    if inner is not None and channels * inner > 0:
        # The usual case: `-1` infers `outer`, even for an empty batch.
        outer = -1
    else:
        # A reshape cannot infer `-1` with a zero-size channel or inner extent,
        # and `inner` is unknown while tracing with dynamic trailing sizes:
        # spell the extents out from the runtime shape.
        shape = ops.shape(x)
        outer = math.prod(shape[:axis])
        inner = math.prod(shape[axis + 1 :])
    if all(size == 1 for size in trailing):
        return ops.reshape(x, (outer, channels)), (0,), (1, channels)
    return ops.reshape(x, (outer, channels, inner)), (0, 2), (1, channels, 1)


def _first_element(view):
    """Each channel's first element, of shape `stat_shape`; 0 for an empty batch.

    A sum over the (at most one) leading element keeps the statistics'
    shape `(C,)` when the batch is empty, where a slice would be empty.
    """
    if len(view.shape) == 2:
        return ops.sum(view[:1], axis=0, keepdims=True)
    return ops.sum(view[:1, :, :1], axis=(0, 2), keepdims=True)


def forward_with_residuals(
    x, gamma, beta, *, axis, epsilon, activation, negative_slope, out_dtype
):
    """Training forward: `(y, mean, variance, shift, offset)`.

    `mean = shift + offset` is rounded to float32; the backward pass uses
    `(x - shift) - offset` instead, which stays exact when `|mean|` is
    large compared with the spread (e.g. mean 1e4, unit variance).
    """
    spec = _activations.get(activation)
    view, reduce_axes, stat_shape = channel_view(x, axis)
    xf = ops.cast(view, "float32")
    shift = ops.stop_gradient(_first_element(xf))
    shifted = xf - shift
    offset = ops.mean(shifted, axis=reduce_axes, keepdims=True)
    s2 = ops.mean(ops.square(shifted), axis=reduce_axes, keepdims=True)
    variance = ops.maximum(s2 - ops.square(offset), 0.0)
    rstd = ops.rsqrt(variance + epsilon)
    scale = ops.reshape(gamma, stat_shape) * rstd
    z = (shifted - offset) * scale + ops.reshape(beta, stat_shape)
    y = ops.cast(spec.forward(z, negative_slope), out_dtype)
    y = ops.reshape(y, ops.shape(x))
    mean = ops.reshape(shift + offset, (-1,))
    flat = [ops.reshape(t, (-1,)) for t in (variance, shift, offset)]
    return y, mean, *flat


def forward(x, gamma, beta, **kwargs):
    """Training forward: `(y, mean, variance)`; statistics are float32."""
    return forward_with_residuals(x, gamma, beta, **kwargs)[:3]


def backward(
    saved,
    gamma,
    beta,
    shift,
    offset,
    variance,
    dy,
    dmean,
    dvariance,
    *,
    axis,
    epsilon,
    activation,
    negative_slope,
    memory,
):
    """Closed-form backward; `saved` is `x` (recompute) or `y` (invert).

    `shift` and `offset` come from `forward_with_residuals`.

    Returns `(dx, dgamma, dbeta)` with `dx` in `saved.dtype`.
    """
    spec = _activations.get(activation)
    view, reduce_axes, stat_shape = channel_view(saved, axis)
    dy_view = ops.cast(channel_view(dy, axis)[0], "float32")
    gamma_b = ops.reshape(ops.cast(gamma, "float32"), stat_shape)
    beta_b = ops.reshape(ops.cast(beta, "float32"), stat_shape)
    rstd = ops.rsqrt(ops.reshape(variance, stat_shape) + epsilon)
    saved_f = ops.cast(view, "float32")
    if memory == "invert":
        z = spec.inverse(saved_f, negative_slope)
        g = dy_view * spec.derivative_from_output(saved_f, negative_slope)
        safe_gamma = ops.where(
            gamma_b < 0.0,
            ops.minimum(gamma_b, -GAMMA_FLOOR),
            ops.maximum(gamma_b, GAMMA_FLOOR),
        )
        xhat = (z - beta_b) / safe_gamma
    else:
        shift_b = ops.reshape(shift, stat_shape)
        xhat = ((saved_f - shift_b) - ops.reshape(offset, stat_shape)) * rstd
        z = gamma_b * xhat + beta_b
        g = dy_view * spec.derivative(z, negative_slope)
    # Sums, not means times the count: an empty batch gets zero parameter
    # gradients (those of a sum over no elements), not 0 * NaN.
    sum_g = ops.sum(g, axis=reduce_axes, keepdims=True)
    sum_gx = ops.sum(g * xhat, axis=reduce_axes, keepdims=True)
    count = ops.cast(ops.size(g), "float32") / float(gamma.shape[0])
    mean_g, mean_gx = sum_g / count, sum_gx / count
    dx = gamma_b * rstd * (g - mean_g - xhat * mean_gx)
    if dmean is not None or dvariance is not None:
        if dmean is not None:
            dx = dx + ops.reshape(ops.cast(dmean, "float32"), stat_shape) / count
        if dvariance is not None:
            centred = xhat / rstd
            dvar_b = ops.reshape(ops.cast(dvariance, "float32"), stat_shape)
            dx = dx + 2.0 * dvar_b * centred / count
    dgamma = ops.reshape(sum_gx, (-1,))
    dbeta = ops.reshape(sum_g, (-1,))
    dx = ops.reshape(ops.cast(dx, saved.dtype), ops.shape(saved))
    return dx, ops.cast(dgamma, gamma.dtype), ops.cast(dbeta, beta.dtype)


def inference(
    x,
    mean,
    variance,
    gamma,
    beta,
    *,
    axis,
    epsilon,
    activation,
    negative_slope,
    out_dtype,
):
    """Inference: `act(x * a + b)` with per-channel `a`, `b` (as Keras)."""
    spec = _activations.get(activation)
    view, _, stat_shape = channel_view(x, axis)
    inv = ops.rsqrt(ops.cast(variance, "float32") + epsilon) * ops.cast(
        gamma, "float32"
    )
    offset = ops.cast(beta, "float32") - ops.cast(mean, "float32") * inv
    z = ops.cast(view, "float32") * ops.reshape(inv, stat_shape) + ops.reshape(
        offset, stat_shape
    )
    y = ops.cast(spec.forward(z, negative_slope), out_dtype)
    return ops.reshape(y, ops.shape(x))
