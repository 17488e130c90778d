"""Backend kernels: fused BatchNorm + activation.

The backend is picked by `keras.backend.backend()` at call time and its
module is imported lazily, so importing kerasx on JAX never imports
TensorFlow:

* `tensorflow`: `tf.function(jit_compile=True)` forward and backward tied
  by `tf.custom_gradient`;
* `jax`: `jax.custom_vjp` under `jax.jit`;
* `torch`: a `torch.autograd.Function` with the same closed-form backward;
* any other backend: the same math composed from `keras.ops` and
  differentiated by the backend's autodiff.

When the statistics need no gradient (`differentiable_statistics=False`, as in
`BatchNormActivation`), TensorFlow outside XLA runs its own `FusedBatchNormV3`
or the Keras composition instead, and so does JAX inside `jax.jit` on a CPU,
where those measured faster (`_kernel_choice`).
"""

from __future__ import annotations

import importlib

import keras

from kerasx import _checks
from kerasx.ops import _activations, _kernel, _reference, _validation

__all__ = ["batch_norm_activation", "batch_norm_activation_inference"]

_COMPILED_BACKENDS = {"tensorflow": "_tensorflow", "jax": "_jax", "torch": "_torch"}


def _backend_module():
    module_name = _COMPILED_BACKENDS.get(keras.backend.backend())
    if module_name is None:
        return None
    return importlib.import_module(f"kerasx.ops.{module_name}")


def _kernels(axis, epsilon, activation, negative_slope, memory, out_dtype):
    module = _backend_module()
    if module is None:
        common = dict(
            axis=axis,
            epsilon=float(epsilon),
            activation=activation,
            negative_slope=float(negative_slope),
        )

        def train(x, gamma, beta):
            return _kernel.forward(x, gamma, beta, out_dtype=out_dtype, **common)

        def infer(*args):
            return _kernel.inference(*args, out_dtype=out_dtype, **common)

        return train, infer
    static = (axis, float(epsilon), activation, float(negative_slope))
    return module.compiled(*static, memory, out_dtype)


def _kernel_choice(
    x,
    *,
    axis: int,
    epsilon: float,
    output_dtype: str,
    memory: str = "recompute",
    differentiable_statistics: bool = True,
) -> str:
    """Which training kernel `batch_norm_activation` runs for `x` here and now.

    * `"compiled"`: the backend module's kernel (XLA-compiled with a custom
      gradient on TensorFlow and JAX, an autograd Function on torch);
    * `"fused_batch_norm"`: TensorFlow's `FusedBatchNormV3` (oneDNN on CPU,
      cuDNN on GPU) followed by the activation, for channels-last float32
      inputs in a TensorFlow graph without XLA or eagerly;
    * `"composed"`: the Keras composition (`keras.ops.moments`, then
      `batch_normalization`, then the activation, differentiated by autodiff),
      where it measured fastest: small 2-D inputs in a TensorFlow graph without
      XLA, and inside `jax.jit` on a CPU;
    * `"keras_ops"`: the shared math on a backend without a kernel module.

    Only `differentiable_statistics=False` (the fused op's gradient ignores
    cotangents of the returned statistics) and `memory="recompute"` (the
    others save the input) leave the choice to the backend module.
    `axis` must be non-negative.
    """
    module = _backend_module()
    if module is None:
        return "keras_ops"
    if (
        differentiable_statistics
        or memory != "recompute"
        or not hasattr(module, "choose")
    ):
        return "compiled"
    dtype = keras.backend.standardize_dtype(x.dtype)
    return module.choose(x, axis, dtype, float(epsilon), output_dtype)


def _prepare(x, axis, epsilon, activation, negative_slope, memory, output_dtype):
    """Checks the shared arguments; returns `(x, name, axis, channels, out_dtype)`."""
    name, _ = _validation.resolve_activation(activation)
    if name is None:
        raise ValueError(
            "Invalid value received for argument `activation`. Expected the "
            "name of a fused activation; callables run on the unfused path "
            f"of `BatchNormActivation`. Received: activation={activation!r}"
        )
    _validation.check_memory(memory, name)
    _validation.check_negative_slope(negative_slope, name, memory)
    _checks.number("epsilon", epsilon, low=0, low_open=True)
    x, axis, channels = _validation.floating_input(x, axis)
    dtype = keras.backend.standardize_dtype(x.dtype)
    out_dtype = _validation.output_dtype(output_dtype, dtype)
    return x, name, axis, channels, out_dtype


def batch_norm_activation(
    x,
    gamma,
    beta,
    *,
    axis: int = -1,
    epsilon: float = 1e-3,
    activation: str = "relu",
    negative_slope: float = 0.2,
    memory: str = "recompute",
    output_dtype: str | None = None,
    differentiable_statistics: bool = True,
):
    """Training-mode fused batch normalisation followed by an activation.

    Computes `y = act(gamma * (x - mean) / sqrt(var + epsilon) + beta)` with
    the biased batch mean and variance over every axis except `axis`
    (one-pass, shifted, in float32) and differentiates it with the closed-form
    gradient through the batch statistics. An empty batch gives an empty `y`
    and NaN statistics, as `keras.ops.moments`.

    Args:
        x: Floating tensor of rank >= 2 with a static size `C` on `axis`.
        gamma: Per-channel scale, shape `(C,)`; float or int, cast to float32.
        beta: Per-channel offset, shape `(C,)`; float or int, cast to float32.
        axis: Channel axis.
        epsilon: Added to the variance.
        activation: Name of a fused activation (`relu`, `relu6`,
            `leaky_relu`, `elu`, `selu`, `gelu`, `silu`/`swish`,
            `sigmoid`, `tanh`, `softplus`, `linear`).
        negative_slope: Slope of `leaky_relu` for negative inputs.
        memory: `"recompute"` saves `x` for the backward pass;
            `"invert"` saves only `y` and inverts the activation.
        output_dtype: Floating dtype of `y`; defaults to `x.dtype`.
        differentiable_statistics: Whether gradients flow through the
            returned statistics. `False` (what `BatchNormActivation` passes: it
            only feeds them to the moving averages) lets TensorFlow outside
            XLA run its own fused op or the composed ops where they measured
            faster.

    Returns:
        `(y, mean, variance)`; the statistics are float32 of shape `(C,)`.

    Example:

    ```python
    >>> import numpy as np
    >>> x = np.array([[0.0], [2.0]], "float32")
    >>> y, mean, variance = batch_norm_activation(
    ...     x, np.ones(1, "float32"), np.zeros(1, "float32"), epsilon=1e-8)
    >>> np.round(np.asarray(y).ravel(), 4).tolist(), float(mean[0])
    ([0.0, 1.0], 1.0)

    ```

    Reference:
        Ioffe & Szegedy, "Batch Normalization", 2015; Rota Bulò et al.,
        "In-Place Activated BatchNorm", 2018 (invert mode).
    """
    x, name, axis, channels, out_dtype = _prepare(
        x, axis, epsilon, activation, negative_slope, memory, output_dtype
    )
    _checks.boolean("differentiable_statistics", differentiable_statistics)
    gamma = _validation.channel_vector("gamma", gamma, channels)
    beta = _validation.channel_vector("beta", beta, channels)
    choice = _kernel_choice(
        x,
        axis=axis,
        epsilon=epsilon,
        output_dtype=out_dtype,
        memory=memory,
        differentiable_statistics=differentiable_statistics,
    )
    if choice == "fused_batch_norm":
        return _backend_module().fused_batch_norm_activation(
            x,
            gamma,
            beta,
            epsilon=float(epsilon),
            activation=name,
            negative_slope=float(negative_slope),
        )
    if choice == "composed":
        spec = _activations.get(name)
        # Keras' backends reshape the statistics for any axis but -1.
        last = axis == len(x.shape) - 1
        return _reference.batch_norm_activation(
            x,
            gamma,
            beta,
            axis=-1 if last else axis,
            epsilon=float(epsilon),
            activation_fn=lambda z: spec.forward(z, float(negative_slope)),
            out_dtype=out_dtype,
        )
    train, _ = _kernels(axis, epsilon, name, negative_slope, memory, out_dtype)
    return train(x, gamma, beta)


def batch_norm_activation_inference(
    x,
    mean,
    variance,
    gamma,
    beta,
    *,
    axis: int = -1,
    epsilon: float = 1e-3,
    activation: str = "relu",
    negative_slope: float = 0.2,
    output_dtype: str | None = None,
):
    """Inference-mode fused `act(gamma * (x - mean) * rsqrt(var + eps) + beta)`.

    Uses the given (moving) statistics; computed as `act(x * a + b)` with
    `a = gamma * rsqrt(variance + epsilon)` and `b = beta - mean * a`,
    the same expression Keras uses, and differentiated by autodiff.

    The four per-channel vectors may be float or int; they are cast to
    float32.

    Args:
        x: Floating tensor of rank >= 2 with a static size `C` on `axis`.
        mean: Per-channel mean, shape `(C,)`.
        variance: Per-channel variance, shape `(C,)`.
        gamma: Per-channel scale, shape `(C,)`.
        beta: Per-channel offset, shape `(C,)`.
        axis: Channel axis.
        epsilon: Added to the variance.
        activation: Name of a fused activation.
        negative_slope: Slope of `leaky_relu` for negative inputs.
        output_dtype: Floating dtype of the result; defaults to `x.dtype`.

    Returns:
        The activated, normalised tensor.

    Example:

    ```python
    >>> import numpy as np
    >>> y = batch_norm_activation_inference(
    ...     np.array([[3.0]], "float32"), np.ones(1, "float32"),
    ...     np.full(1, 4.0, "float32"), np.ones(1, "float32"),
    ...     np.zeros(1, "float32"), epsilon=1e-8, activation="linear")
    >>> round(float(y[0, 0]), 4)
    1.0

    ```

    Reference:
        Ioffe & Szegedy, "Batch Normalization", 2015.
    """
    x, name, axis, channels, out_dtype = _prepare(
        x, axis, epsilon, activation, negative_slope, "recompute", output_dtype
    )
    vectors = {"mean": mean, "variance": variance, "gamma": gamma, "beta": beta}
    tensors = [
        _validation.channel_vector(key, value, channels)
        for key, value in vectors.items()
    ]
    _, infer = _kernels(axis, epsilon, name, negative_slope, "recompute", out_dtype)
    return infer(x, *tensors)
