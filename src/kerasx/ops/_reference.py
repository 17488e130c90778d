"""The Keras composition: the same ops Keras BN + Activation run.

`keras.ops.moments`, then `keras.ops.batch_normalization`, then the activation,
differentiated by the backend's autodiff. `BatchNormActivation` runs it for
callable activations, masks, `synchronized=True` and inference with a callable;
`kerasx.ops` runs it as the `"composed"` path of `KERNEL_TABLE`, where XLA
fuses it with the neighbouring ops or the kernels' fixed cost does not pay.
"""

from __future__ import annotations

from keras import backend, ops


def reduction_axes(rank: int, axis: int) -> list[int]:
    axes = list(range(rank))
    del axes[axis % rank]
    return axes


def moments(x, axis: int, mask=None, synchronized: bool = False):
    """Batch mean and biased variance per channel, exactly as Keras BN."""
    axes = reduction_axes(len(x.shape), axis)
    if mask is None:
        if synchronized and backend.backend() == "tensorflow":
            # Two centred passes over the global batch: Keras' synchronized
            # moments use E[x^2] - E[x]^2 in float32, which cancels badly when
            # |mean| >> std.
            from kerasx.ops._distribute_tf import cross_replica_moments

            return cross_replica_moments(x, axes)
        return ops.moments(x, axes=axes, synchronized=synchronized)
    weights = ops.broadcast_to(ops.expand_dims(mask, axis=-1), ops.shape(x))
    weights = ops.cast(weights, "bool")
    count = ops.sum(ops.cast(weights, x.dtype), axes, keepdims=True)
    total = ops.sum(ops.where(weights, x, 0), axes, keepdims=True)
    mean = total / (count + backend.epsilon())
    squared = ops.square(ops.where(weights, x - mean, 0))
    variance = ops.sum(squared, axes, keepdims=True) / (count + backend.epsilon())
    # Only the reduced axes: a bare squeeze would also drop a single channel.
    return ops.squeeze(mean, axes), ops.squeeze(variance, axes)


def normalize_activate(
    x, mean, variance, gamma, beta, *, axis, epsilon, activation_fn, out_dtype
):
    """`activation_fn(batch_normalization(x))` in float32, cast at the end."""
    outputs = ops.batch_normalization(
        x=x,
        mean=mean,
        variance=variance,
        axis=axis,
        offset=beta,
        scale=gamma,
        epsilon=epsilon,
    )
    return ops.cast(activation_fn(outputs), out_dtype)


def batch_norm_activation(
    x,
    gamma,
    beta,
    *,
    axis,
    epsilon,
    activation_fn,
    out_dtype,
    mask=None,
    synchronized=False,
):
    """Training mode: returns `(y, mean, variance)` with float32 stats."""
    x = ops.cast(x, "float32")
    mean, variance = moments(x, axis, mask=mask, synchronized=synchronized)
    y = normalize_activate(
        x,
        mean,
        variance,
        gamma,
        beta,
        axis=axis,
        epsilon=epsilon,
        activation_fn=activation_fn,
        out_dtype=out_dtype,
    )
    return y, mean, variance
