"""Fused BatchNorm + activation: the ops, their math and the kernel choice.

`batch_norm_activation` (training) and `batch_norm_activation_inference` are
the public ops; `kerasx.layers.BatchNormActivation` calls them. Everything they
run that is not backend-specific is in this module, in this order:

* the activation table: each fused activation's forward, derivative and, for
  the invertible ones, inverse, written with `keras.ops`;
* the argument checks the ops and the layer share;
* the closed-form math (`closed_form_forward`, `closed_form_backward`,
  `closed_form_inference`): one-pass shifted statistics, the forward, and the
  gradient through the batch statistics, written with `keras.ops`;
* the Keras composition (`composed_batch_norm_activation`):
  `keras.ops.moments`, then `keras.ops.batch_normalization`, then the
  activation, differentiated by the backend's autodiff;
* `KERNEL_TABLE`, the only place that decides which of these a training call
  runs (each row names the benchmark that justified it), and the dispatch.

The kernels themselves are in one module per backend, imported lazily on the
first call (so importing kerasx on JAX never imports TensorFlow); each imports
nothing from kerasx but this module:

* `_tensorflow`: `closed_form_forward`, `closed_form_backward` and
  `closed_form_inference` as `tf.function(jit_compile=True)` programs, the
  first two tied by `tf.custom_gradient`; `FusedBatchNormV3` followed by the
  activation; `graph_batch_norm_activation`, the closed form in plain TF ops
  for graphs without XLA; cross-replica moments for `synchronized=True`;
* `_jax`: the forward and backward tied by `jax.custom_vjp`, and the
  inference, under `jax.jit`;
* `_torch`: a `torch.autograd.Function` re-expressing the closed-form math with
  ATen's fused loops; inference runs `closed_form_inference` eagerly.

On a backend without a kernel module the closed-form forward and inference run
op by op under that backend's autodiff (the `"keras_ops"` path).
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import importlib
import math
from collections.abc import Callable, Iterator

import keras
from keras import ops

from kerasx import _checks

__all__ = ["batch_norm_activation", "batch_norm_activation_inference"]

# ----------------------------------------------------------------- activations
#
# Each entry gives the forward function, its derivative as a function of the
# pre-activation `z` and, for invertible activations, the inverse `z(y)` and
# the derivative as a function of the output `y`. One `keras.ops` definition
# serves every backend; the kernels only add a custom gradient and compilation
# around it. Conventions at the kinks follow TensorFlow's kernels
# (`relu'(0) = 0`, `leaky_relu'(0) = negative_slope`, `elu'(0) = 1`); they only
# matter on a set of measure zero.

_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946
_INV_SQRT_2 = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)

_ActivationFn = Callable[..., object]


@dataclasses.dataclass(frozen=True)
class ActivationSpec:
    """Forward, derivative and (optional) inverse of one activation.

    All callables take `(tensor, negative_slope)`; `negative_slope` is
    only read by `leaky_relu`.
    """

    name: str
    forward: _ActivationFn
    derivative: _ActivationFn
    inverse: _ActivationFn | None = None
    derivative_from_output: _ActivationFn | None = None

    @property
    def invertible(self) -> bool:
        return self.inverse is not None


def _step(condition, true_value, false_value):
    return ops.where(condition, true_value, false_value)


def _gelu_derivative(z, _):
    cdf = 0.5 * (1.0 + ops.erf(z * _INV_SQRT_2))
    pdf = ops.exp(-0.5 * z * z) * _INV_SQRT_2PI
    return cdf + z * pdf


def _silu_derivative(z, _):
    s = ops.sigmoid(z)
    return s * (1.0 + z * (1.0 - s))


def _sigmoid_derivative(z, _):
    s = ops.sigmoid(z)
    return s * (1.0 - s)


def _tanh_derivative(z, _):
    t = ops.tanh(z)
    return 1.0 - t * t


def _elu_inverse(y, _):
    # y = -1 only where exp(z) underflowed; clamp so log1p stays finite. Those
    # elements have zero derivative, so only their xhat (not g) is affected.
    return _step(y > 0.0, y, ops.log1p(ops.maximum(y, -1.0 + 1e-7)))


_SPECS = (
    ActivationSpec(
        "relu",
        forward=lambda z, _: ops.relu(z),
        derivative=lambda z, _: ops.cast(z > 0.0, z.dtype),
    ),
    ActivationSpec(
        "relu6",
        forward=lambda z, _: ops.relu6(z),
        derivative=lambda z, _: ops.cast(ops.logical_and(z > 0.0, z < 6.0), z.dtype),
    ),
    ActivationSpec(
        "leaky_relu",
        forward=lambda z, slope: ops.leaky_relu(z, negative_slope=slope),
        derivative=lambda z, slope: _step(z > 0.0, 1.0, slope),
        inverse=lambda y, slope: _step(y > 0.0, y, y / slope),
        derivative_from_output=lambda y, slope: _step(y > 0.0, 1.0, slope),
    ),
    ActivationSpec(
        "elu",
        forward=lambda z, _: ops.elu(z),
        derivative=lambda z, _: _step(z > 0.0, 1.0, ops.exp(z)),
        inverse=_elu_inverse,
        derivative_from_output=lambda y, _: _step(y > 0.0, 1.0, y + 1.0),
    ),
    ActivationSpec(
        "selu",
        forward=lambda z, _: ops.selu(z),
        derivative=lambda z, _: _step(
            z > 0.0, _SELU_SCALE, _SELU_SCALE * _SELU_ALPHA * ops.exp(z)
        ),
    ),
    ActivationSpec(
        "gelu",
        forward=lambda z, _: ops.gelu(z, approximate=False),
        derivative=_gelu_derivative,
    ),
    ActivationSpec(
        "silu", forward=lambda z, _: ops.silu(z), derivative=_silu_derivative
    ),
    ActivationSpec(
        "sigmoid",
        forward=lambda z, _: ops.sigmoid(z),
        derivative=_sigmoid_derivative,
    ),
    ActivationSpec(
        "tanh", forward=lambda z, _: ops.tanh(z), derivative=_tanh_derivative
    ),
    ActivationSpec(
        "softplus",
        forward=lambda z, _: ops.softplus(z),
        derivative=lambda z, _: ops.sigmoid(z),
    ),
    ActivationSpec(
        "linear",
        forward=lambda z, _: z,
        derivative=lambda z, _: ops.ones_like(z),
        inverse=lambda y, _: y,
        derivative_from_output=lambda y, _: ops.ones_like(y),
    ),
)

#: The fused activations by name.
ACTIVATIONS: dict[str, ActivationSpec] = {spec.name: spec for spec in _SPECS}
ACTIVATION_ALIASES = {"swish": "silu"}
INVERTIBLE_ACTIVATIONS = tuple(
    name for name, spec in ACTIVATIONS.items() if spec.invertible
)


def canonical_activation(name: str) -> str | None:
    """Returns the table key for `name` (resolving aliases) or `None`."""
    name = ACTIVATION_ALIASES.get(name, name)
    return name if name in ACTIVATIONS else None


def activation_spec(name: str) -> ActivationSpec:
    """Returns the spec of a supported activation name or alias."""
    key = canonical_activation(name)
    if key is None:
        raise ValueError(
            "Invalid value received for argument `activation`. Expected one of "
            f"{sorted([*ACTIVATIONS, *ACTIVATION_ALIASES])} or a callable. "
            f"Received: activation={name!r}"
        )
    return ACTIVATIONS[key]


# ------------------------------------------------------------- argument checks
#
# Shared by the ops below and `BatchNormActivation` (and `resolve_activation` by
# `kerasx.transforms.fuse_batchnorm_activation`).

MEMORY_MODES = ("recompute", "invert")


def resolve_activation(activation) -> tuple[str | None, Callable]:
    """Returns `(fused_name_or_None, callable)` for a name or callable.

    Keras' own activation functions (`keras.activations.relu`) map to their
    fused kernel; any other callable runs on the unfused `keras.ops` path.
    """
    if isinstance(activation, str):
        spec = activation_spec(activation)
        return spec.name, keras.activations.get(spec.name)
    if callable(activation):
        for name in (*ACTIVATIONS, *ACTIVATION_ALIASES):
            if activation is keras.activations.get(name):
                return canonical_activation(name), activation
        return None, activation
    raise ValueError(
        "Invalid value received for argument `activation`. Expected a string "
        "name or a callable. "
        f"Received: activation={activation!r}"
    )


def check_memory(memory, fused_name: str | None) -> str:
    """`memory` is a mode and, for `"invert"`, the activation is invertible."""
    _checks.choice("memory", memory, MEMORY_MODES)
    if memory == "invert" and fused_name not in INVERTIBLE_ACTIVATIONS:
        raise ValueError(
            "Invalid value received for argument `memory`. Expected "
            "memory='invert' only with an invertible activation, one of "
            f"{list(INVERTIBLE_ACTIVATIONS)}. Received: memory='invert' with "
            f"activation={fused_name or 'a custom callable'!r}"
        )
    return memory


def check_negative_slope(negative_slope, fused_name: str | None, memory) -> float:
    """A finite slope >= 0 (> 0 to invert `leaky_relu`), as a float."""
    negative_slope = _checks.number("negative_slope", negative_slope, low=0)
    if memory == "invert" and fused_name == "leaky_relu" and negative_slope == 0:
        raise ValueError(
            "Invalid value received for argument `negative_slope`. Expected a "
            "float > 0 with memory='invert' (leaky_relu with slope 0 is relu, "
            f"which cannot be inverted). Received: negative_slope={negative_slope}"
        )
    return negative_slope


# Per-channel parameters of these dtypes are cast to float32, the dtype every
# kernel computes in, as JAX's and torch's type promotion does in Keras'
# `batch_normalization` (TensorFlow's refuses mixed dtypes with a raw error).
_REAL_DTYPE_PREFIXES = ("float", "bfloat", "int", "uint")


def _tensor(name: str, value):
    """`value` as a tensor, or the standard refusal for what does not convert."""
    if isinstance(value, keras.KerasTensor):
        # `convert_to_tensor` passes symbolic tensors through, and the kernels
        # then fail deep inside the backend.
        raise _checks.invalid_described(
            name,
            "a concrete tensor (in a functional model, use "
            "kerasx.layers.BatchNormActivation)",
            f"symbolic KerasTensor of shape {tuple(value.shape)}",
        )
    try:
        return ops.convert_to_tensor(value)
    except (TypeError, ValueError):
        raise _checks.invalid_described(
            name,
            "a tensor or an array-like of numbers",
            f"{type(value).__name__}, not convertible to a tensor",
        ) from None


def floating_input(x, axis) -> tuple:
    """`x` as a floating tensor of rank >= 2 with a static channel size.

    Returns `(x, axis, channels)` with `axis` non-negative. Only the static
    shape is read, so the check costs nothing in a compiled step.
    """
    x = _tensor("x", x)
    dtype = keras.backend.standardize_dtype(x.dtype)
    if "float" not in dtype:
        raise _checks.invalid_described("x", "a floating tensor", f"tensor of {dtype}")
    shape = tuple(x.shape)
    if len(shape) < 2:
        raise _checks.invalid_described(
            "x", "a floating tensor of rank >= 2", f"tensor of shape {shape}"
        )
    axis = _checks.integer("axis", axis, minimum=-len(shape), maximum=len(shape) - 1)
    axis %= len(shape)
    if shape[axis] is None:
        raise _checks.invalid_described(
            "x",
            f"a tensor with a static size on the channel axis (axis={axis})",
            f"tensor of shape {shape}",
        )
    return x, axis, shape[axis]


def channel_vector(name: str, value, channels: int):
    """A per-channel parameter of shape `(channels,)`, as a float32 tensor.

    Float and integer dtypes are accepted and cast to float32; the length is
    checked on the static shape (a dimension unknown while tracing passes).
    """
    vector = _tensor(name, value)
    dtype = keras.backend.standardize_dtype(vector.dtype)
    if not dtype.startswith(_REAL_DTYPE_PREFIXES):
        raise _checks.invalid_described(
            name,
            "a real-valued tensor (float or int, computed in float32)",
            f"tensor of {dtype}",
        )
    shape = tuple(vector.shape)
    if len(shape) != 1 or shape[0] not in (channels, None):
        raise _checks.invalid_described(
            name,
            f"a 1-D tensor of length C={channels} (x.shape[axis])",
            f"tensor of shape {shape}",
        )
    return vector if dtype == "float32" else ops.cast(vector, "float32")


def check_output_dtype(value, default: str) -> str:
    """None (meaning `default`) or a floating dtype, as its standard name."""
    if value is None:
        return default
    expected = "None or a floating dtype (e.g. 'float32', 'bfloat16')"
    try:
        dtype = keras.backend.standardize_dtype(value)
    except (TypeError, ValueError, AttributeError):
        raise _checks.invalid("output_dtype", expected, value) from None
    if "float" not in dtype:
        raise _checks.invalid("output_dtype", expected, value)
    return dtype


# ------------------------------------------------------------ closed-form math
#
# Written with `keras.ops`. The TensorFlow and JAX kernel modules trace
# `closed_form_forward`, `closed_form_backward` and `closed_form_inference`
# once per configuration into XLA-compiled functions, the forward and the
# backward tied by a custom gradient (the `"compiled"` path of
# `KERNEL_TABLE`). torch's training kernel re-expresses the same math with ATen
# ops and uses only `channel_view`, `GAMMA_FLOOR` and, eagerly,
# `closed_form_inference`; on a backend without a kernel module the forward and
# the inference run op by op under its autodiff (the `"keras_ops"` path).
#
# Per channel, with `N` elements `x_i`:
#
# * statistics, one pass, shifted by the first element `k` of the channel:
#
#       d_i = x_i - k,  mean = k + sum(d)/N,  var = sum(d^2)/N - (sum(d)/N)^2
#
# * forward: `xhat = (x - mean) * rstd`, `rstd = 1/sqrt(var + eps)`,
#   `z = gamma * xhat + beta`, `y = act(z)`;
# * backward, with `g = dy * act'(z)`:
#
#       dbeta = sum(g),  dgamma = sum(g * xhat)
#       dx = gamma * rstd * (g - mean(g) - xhat * mean(g * xhat))
#            + dmean / N + 2 * dvar * (x - mean) / N
#
#   The last line carries cotangents of the returned statistics (zero when only
#   the moving averages consume them).

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


def closed_form_forward(
    x, gamma, beta, *, axis, epsilon, activation, negative_slope, out_dtype
):
    """Training forward: `(y, mean, variance, shift, offset)`.

    `mean = shift + offset` is rounded to float32; the backward pass uses
    `(x - shift) - offset` instead, which stays exact when `|mean|` is
    large compared with the spread (e.g. mean 1e4, unit variance).
    """
    spec = activation_spec(activation)
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


def closed_form_backward(
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

    `shift` and `offset` come from `closed_form_forward`.

    Returns `(dx, dgamma, dbeta)` with `dx` in `saved.dtype`.
    """
    spec = activation_spec(activation)
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


def closed_form_inference(
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
    spec = activation_spec(activation)
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


# ----------------------------------------------------------- Keras composition
#
# The same ops Keras BN + Activation run, differentiated by the backend's
# autodiff. `BatchNormActivation` runs them for callable activations, masks,
# `synchronized=True` and inference with a callable; `batch_norm_activation`
# runs them as the `"composed"` path of `KERNEL_TABLE`, where XLA fuses them
# with the neighbouring ops or the kernels' fixed cost does not pay.


def _reduction_axes(rank: int, axis: int) -> list[int]:
    axes = list(range(rank))
    del axes[axis % rank]
    return axes


def composed_moments(x, axis: int, mask=None, synchronized: bool = False):
    """Batch mean and biased variance per channel, exactly as Keras BN."""
    axes = _reduction_axes(len(x.shape), axis)
    if mask is None:
        if synchronized and keras.backend.backend() == "tensorflow":
            # Two centred passes over the global batch: Keras' synchronized
            # moments use E[x^2] - E[x]^2 in float32, which cancels badly when
            # |mean| >> std.
            return _backend_module().cross_replica_moments(x, axes)
        return ops.moments(x, axes=axes, synchronized=synchronized)
    weights = ops.broadcast_to(ops.expand_dims(mask, axis=-1), ops.shape(x))
    weights = ops.cast(weights, "bool")
    count = ops.sum(ops.cast(weights, x.dtype), axes, keepdims=True)
    total = ops.sum(ops.where(weights, x, 0), axes, keepdims=True)
    mean = total / (count + keras.backend.epsilon())
    squared = ops.square(ops.where(weights, x - mean, 0))
    variance = ops.sum(squared, axes, keepdims=True) / (count + keras.backend.epsilon())
    # Only the reduced axes: a bare squeeze would also drop a single channel.
    return ops.squeeze(mean, axes), ops.squeeze(variance, axes)


def composed_normalize_activate(
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


def composed_batch_norm_activation(
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
    mean, variance = composed_moments(x, axis, mask=mask, synchronized=synchronized)
    y = composed_normalize_activate(
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


# --------------------------------------------------------------- kernel choice

_COMPILED_BACKENDS = {"tensorflow": "_tensorflow", "jax": "_jax", "torch": "_torch"}

#: The training kernels (`path` in `KERNEL_TABLE`).
PATHS = ("compiled", "fused_batch_norm", "graph", "composed", "keras_ops")

#: Activations whose derivative TensorFlow computes from the output alone
#: (`ReluGrad`, `EluGrad`, `SigmoidGrad`, ...): the `graph` kernel saves only
#: `y` for them, so its backward needs no extra pass over the input.
OUTPUT_GRADIENT_ACTIVATIONS = (
    "relu",
    "relu6",
    "leaky_relu",
    "elu",
    "selu",
    "sigmoid",
    "tanh",
    "linear",
)

#: Input and output dtypes the `graph` kernel takes (computed in float32).
FLOAT_DTYPES = ("float32", "bfloat16", "float16")
#: `FusedBatchNormV3` raises smaller epsilons to this value (cuDNN's floor), so
#: a smaller one would silently change the result.
FUSED_OP_MIN_EPSILON = 1.001e-5
#: Element count of a 2-D input from which the backend kernel beats the Keras
#: composition on a CPU (TensorFlow graph: the fused op; torch: the autograd
#: Function); see the rows of `KERNEL_TABLE` that use it.
LARGE_2D_ELEMENTS = 2**16


@dataclasses.dataclass(frozen=True)
class Call:
    """What the decision reads about one training call (all static or host-side).

    `xla`: TensorFlow ops built inside `jit_compile=True`, or a JAX tracer;
    `eager`: TensorFlow executing eagerly (always True off TensorFlow);
    `gpu`: an accelerator runs the step (TensorFlow: a GPU is visible; JAX: the
    default backend is not the CPU; torch: `x` is not on the CPU).
    """

    backend: str
    shape: tuple
    axis: int
    dtype: str
    out_dtype: str
    epsilon: float
    memory: str
    differentiable_statistics: bool
    xla: bool
    eager: bool
    gpu: bool
    activation: str

    @property
    def dense(self) -> bool:
        """A channels-last 2-D input (the output of a `Dense` layer)."""
        return len(self.shape) == 2 and self.axis == 1

    @property
    def elements(self) -> int | None:
        """Static element count, or None while a size is unknown."""
        if None in self.shape:
            return None
        size = 1
        for extent in self.shape:
            size *= extent
        return size

    @property
    def fusable(self) -> bool:
        """Whether `FusedBatchNormV3` computes exactly this call's result."""
        return (
            self.backend == "tensorflow"
            and self.dtype == "float32"
            and self.out_dtype == "float32"
            and self.epsilon >= FUSED_OP_MIN_EPSILON
            and self.axis == len(self.shape) - 1
            and len(self.shape) in (2, 4)
            # Zero channels: the op's count per channel would divide by zero.
            and self.shape[-1] != 0
            # The op's gradient ignores cotangents of the statistics.
            and not self.differentiable_statistics
            and self.memory == "recompute"
        )


@dataclasses.dataclass(frozen=True)
class Case:
    """One row of `KERNEL_TABLE`: where `applies`, run `path`, because `measured`."""

    backend: str  # "tensorflow", "jax", "torch", "other" or "any"
    case: str
    applies: Callable[[Call], bool]
    path: str
    measured: str


def _large(call: Call) -> bool:
    return call.elements is not None and call.elements >= LARGE_2D_ELEMENTS


def _graph_computes(call: Call) -> bool:
    """Whether the `graph` kernel (TensorFlow plain ops) computes this call."""
    return (
        call.backend == "tensorflow"
        and call.dense
        and call.dtype in FLOAT_DTYPES
        and call.out_dtype in FLOAT_DTYPES
        and call.memory == "recompute"
        and not call.differentiable_statistics
        and call.activation in OUTPUT_GRADIENT_ACTIVATIONS
    )


#: The kernel of a training call: the first row whose `backend` and `applies`
#: match. Ratios are Keras BN + Activation time / the path's time, forward +
#: backward, 2-CPU machine unless stated (benchmarks/batch_norm_activation.py,
#: benchmarks/train_step.py; docs/batch_norm_activation.md and
#: /work/shared/ANCHORS.md keep the tables).
KERNEL_TABLE: tuple[Case, ...] = (
    Case(
        "other",
        "a backend without a kernel module",
        lambda call: True,
        "keras_ops",
        "no kernel to measure: the closed-form math op by op, autodiff",
    ),
    Case(
        "any",
        "gradients must flow through the returned statistics",
        lambda call: call.differentiable_statistics,
        "compiled",
        "contract, not speed: the closed-form backward carries their cotangents",
    ),
    Case(
        "any",
        'memory="invert"',
        lambda call: call.memory == "invert",
        "compiled",
        "contract, not speed: only the kernels save just the output",
    ),
    Case(
        "tensorflow",
        "inside XLA on a CPU, 2-D channels-last",
        lambda call: call.xla and call.dense and not call.gpu,
        "composed",
        "(4096, 1024) under XLA: compiled kernel 0.75-0.91x, XLA fuses Keras' ops",
    ),
    Case(
        "tensorflow",
        "inside XLA, otherwise",
        lambda call: call.xla,
        "compiled",
        "(64, 32, 32, 64) jit, 2-D reduction view: 1.7-2.0x",
    ),
    Case(
        "tensorflow",
        "fusable 4-D, eagerly or in a graph without XLA",
        lambda call: call.fusable and len(call.shape) == 4,
        "fused_batch_norm",
        "graph (128, 28, 28, 32): fused op 5.3x vs compiled 3.1x; "
        "(128, 14, 14, 64): 1.9x vs 1.2x",
    ),
    Case(
        "tensorflow",
        "fusable 2-D of >= LARGE_2D_ELEMENTS elements, no XLA",
        lambda call: call.fusable and _large(call),
        "fused_batch_norm",
        "graph (4096, 1024) as (N, 1, 1, C): 2.8x vs 1.6x; (1024, 256): 1.5x vs 1.5x",
    ),
    Case(
        "tensorflow",
        "2-D below LARGE_2D_ELEMENTS (or of unknown batch size), graph without "
        "XLA, float32/bfloat16/float16, an activation differentiated from its output",
        lambda call: not call.eager and not _large(call) and _graph_computes(call),
        "graph",
        "train step of the 20 x Dense(100) + BN + ELU MLP, default fit, batch "
        "256: float32 1.08-1.11x (20-32 % of BN's cost removed; 113 -> 91 graph "
        "ops per BN); mixed_bfloat16 1.12x (the compiled kernel: 0.85x)",
    ),
    Case(
        "tensorflow",
        "fusable 2-D below that (or of unknown batch size), graph without XLA",
        lambda call: call.fusable and not call.eager,
        "composed",
        "graph (256, 100): fused op 0.6-0.8x, compiled 0.7-1.0x, composed 1.0x",
    ),
    Case(
        "tensorflow",
        "otherwise (eager small 2-D, bfloat16/float16, small epsilon, "
        "channels-first, rank 3 or 5)",
        lambda call: True,
        "compiled",
        "eager: one compiled call instead of a dozen eager ops",
    ),
    Case(
        "jax",
        "inside `jax.jit` on a CPU",
        lambda call: call.xla and not call.gpu,
        "composed",
        "train step of build_cnn((28, 28, 1), 10): custom VJP 0.94x, "
        "XLA temp bytes 175 -> 197 MB",
    ),
    Case(
        "jax",
        "otherwise (eager, or an accelerator)",
        lambda call: True,
        "compiled",
        "H100 (128, 112, 112, 64): custom VJP 1.40x float32, 1.25x bfloat16",
    ),
    Case(
        "torch",
        "2-D below LARGE_2D_ELEMENTS on a CPU",
        lambda call: len(call.shape) == 2 and not _large(call) and not call.gpu,
        "composed",
        "train step of the 20 x Dense(100) MLP, batch 256: autograd Function 0.54x",
    ),
    Case(
        "torch",
        "bfloat16/float16 on a CPU",
        lambda call: call.dtype in ("bfloat16", "float16") and not call.gpu,
        "composed",
        "train step of build_cnn((28, 28, 1), 10), mixed_bfloat16, 15 "
        "alternations: autograd Function 0.87x, composition 0.94x",
    ),
    Case(
        "torch",
        "otherwise",
        lambda call: True,
        "compiled",
        "(32, 28, 28, 64) and (4096, 1024) float32: 1.6x",
    ),
)


def decide(call: Call) -> Case:
    """The first row of `KERNEL_TABLE` that applies to `call`."""
    for case in KERNEL_TABLE:
        if case.backend in (call.backend, "any") and case.applies(call):
            return case
    raise AssertionError(f"KERNEL_TABLE has no row for {call}")


def _backend_module():
    module_name = _COMPILED_BACKENDS.get(keras.backend.backend())
    if module_name is None:
        return None
    return importlib.import_module(f"kerasx.ops.{module_name}")


def _describe(
    x, *, axis, epsilon, output_dtype, memory, differentiable_statistics, activation
) -> Call:
    """The `Call` `KERNEL_TABLE` decides on for `x` (`axis` non-negative)."""
    module = _backend_module()
    backend = keras.backend.backend() if module is not None else "other"
    context = module.context(x) if module is not None else {}
    return Call(
        backend=backend,
        shape=tuple(x.shape),
        axis=axis,
        dtype=keras.backend.standardize_dtype(x.dtype),
        out_dtype=output_dtype,
        epsilon=float(epsilon),
        memory=memory,
        differentiable_statistics=differentiable_statistics,
        xla=context.get("xla", False),
        eager=context.get("eager", True),
        gpu=context.get("gpu", False),
        activation=activation,
    )


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
            outputs = closed_form_forward(x, gamma, beta, out_dtype=out_dtype, **common)
            return outputs[:3]

        def infer(*args):
            return closed_form_inference(*args, out_dtype=out_dtype, **common)

        return train, infer
    static = (axis, float(epsilon), activation, float(negative_slope))
    return module.compiled(*static, memory, out_dtype)


# (forced path or None, list the chosen paths are appended to) of the innermost
# `_use_kernel`; a context variable, so threads and tasks do not share it.
_OVERRIDE: contextvars.ContextVar = contextvars.ContextVar("kerasx_kernel")


@contextlib.contextmanager
def _use_kernel(path: str | None = None) -> Iterator[list[str]]:
    """Package-private (tests, benchmarks): force and record the training kernel.

    Inside the block every `batch_norm_activation` call runs `path` instead of
    the table's choice (None: the table's choice), and the list it yields gets
    the path of each call, appended when the call is traced or run. A forced
    path that cannot compute the call (`fused_batch_norm` off TensorFlow or for
    a bfloat16 input, `compiled` on a backend without a kernel module,
    `composed` with `memory="invert"`) raises a `ValueError` at the call.
    """
    if path is not None:
        _checks.choice("path", path, PATHS)
    chosen: list[str] = []
    token = _OVERRIDE.set((path, chosen))
    try:
        yield chosen
    finally:
        _OVERRIDE.reset(token)


def _can_run(path: str, call: Call) -> bool:
    if path == "fused_batch_norm":
        return call.fusable
    if path == "graph":
        return _graph_computes(call)
    if path == "composed":
        return call.memory == "recompute"
    return (path == "keras_ops") == (call.backend == "other")


def _kernel_choice(call: Call) -> str:
    """The training kernel `batch_norm_activation` runs for `call`.

    `KERNEL_TABLE`'s choice, or the path forced by `_use_kernel`; recorded in
    the list `_use_kernel` yields.
    """
    forced, chosen = _OVERRIDE.get((None, None))
    path = decide(call).path if forced is None else forced
    if not _can_run(path, call):
        raise ValueError(
            f"Invalid value received for argument `path`. Expected a kernel that "
            f"can compute this call ({call}). Received: path={path!r}"
        )
    if chosen is not None:
        chosen.append(path)
    return path


# ------------------------------------------------------------------ public ops


def _prepare(x, axis, epsilon, activation, negative_slope, memory, output_dtype):
    """Checks the shared arguments; returns `(x, name, axis, channels, out_dtype)`."""
    name, _ = resolve_activation(activation)
    if name is None:
        raise ValueError(
            "Invalid value received for argument `activation`. Expected the "
            "name of a fused activation; callables run on the unfused path "
            f"of `BatchNormActivation`. Received: activation={activation!r}"
        )
    check_memory(memory, name)
    check_negative_slope(negative_slope, name, memory)
    _checks.number("epsilon", epsilon, low=0, low_open=True)
    x, axis, channels = floating_input(x, axis)
    dtype = keras.backend.standardize_dtype(x.dtype)
    out_dtype = check_output_dtype(output_dtype, dtype)
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
    the biased batch mean and variance over every axis except `axis`, the
    statistics of `keras.layers.BatchNormalization` in training, and returns
    them with `y`. The kernel that runs is the first row of
    `kerasx.ops.KERNEL_TABLE` that matches the call (backend, shape, dtype,
    inside XLA or not, accelerator or not): a compiled kernel with the
    closed-form gradient through the batch statistics, TensorFlow's
    `FusedBatchNormV3` then the activation, or Keras' own composition
    differentiated by autodiff. Every path computes the statistics in float32
    and gives the same values up to float32 rounding. An empty batch gives an
    empty `y` and NaN statistics, as `keras.ops.moments`.

    Args:
        x: Floating tensor (or array-like) of rank >= 2 with a static size `C`
            on `axis`.
        gamma: Per-channel scale, shape `(C,)`; float or int, cast to float32.
        beta: Per-channel offset, shape `(C,)`; float or int, cast to float32.
        axis: Channel axis, in `[-rank, rank)`.
        epsilon: Positive float added to the variance.
        activation: Name of a fused activation (`"relu"`, `"relu6"`,
            `"leaky_relu"`, `"elu"`, `"selu"`, `"gelu"` (exact erf),
            `"silu"`/`"swish"`, `"sigmoid"`, `"tanh"`, `"softplus"`,
            `"linear"`) or the matching `keras.activations` function.
        negative_slope: Slope of `leaky_relu` for negative inputs, a
            non-negative float (positive with `memory="invert"`).
        memory: `"recompute"` saves `x` for the backward pass;
            `"invert"` saves only `y` and inverts the activation (only
            `"leaky_relu"`, `"elu"` and `"linear"`).
        output_dtype: Floating dtype of `y`; defaults to `x.dtype`.
        differentiable_statistics: Whether gradients flow through the
            returned statistics. `False` (what `BatchNormActivation` passes: it
            only feeds them to the moving averages) lets `KERNEL_TABLE` pick
            TensorFlow's fused op or the Keras composition where they measured
            faster.

    Returns:
        A tuple `(y, mean, variance)`: `y` has the shape of `x` and dtype
        `output_dtype`; `mean` and `variance` (biased) are float32 tensors of
        shape `(C,)`.

    Raises:
        ValueError: If `activation` is not the name of a fused activation
            (a callable other than Keras' own activation functions included);
            if `memory` is not `"recompute"` or `"invert"`, or is `"invert"`
            with an activation that cannot be inverted; if `negative_slope`
            is negative, not finite, or 0 for an inverted `leaky_relu`; if
            `epsilon` is not a positive finite number; if `x` is symbolic, not
            convertible to a tensor, not floating, of rank < 2 or without a
            static size on `axis`; if `axis` is out of range; if `gamma` or
            `beta` is symbolic, not real-valued or not of shape `(C,)`; if
            `output_dtype` is neither None nor a floating dtype; or if
            `differentiable_statistics` is not a bool.

    Example:

    ```python
    >>> import keras
    >>> import numpy as np
    >>> from kerasx.ops import batch_norm_activation
    >>> x = np.array([[0.0, 1.0], [2.0, 5.0]], "float32")
    >>> y, mean, variance = batch_norm_activation(
    ...     x, np.ones(2, "float32"), np.zeros(2, "float32"), epsilon=1e-8
    ... )
    >>> np.round(keras.ops.convert_to_numpy(y), 4).tolist()
    [[0.0, 0.0], [1.0, 1.0]]
    >>> keras.ops.convert_to_numpy(mean).tolist()
    [1.0, 3.0]
    >>> keras.ops.convert_to_numpy(variance).tolist()
    [1.0, 4.0]

    ```

    Reference:
        Ioffe & Szegedy, "Batch Normalization", 2015; Rota Bulò et al.,
        "In-Place Activated BatchNorm", 2018 (invert mode).
    """
    x, name, axis, channels, out_dtype = _prepare(
        x, axis, epsilon, activation, negative_slope, memory, output_dtype
    )
    _checks.boolean("differentiable_statistics", differentiable_statistics)
    gamma = channel_vector("gamma", gamma, channels)
    beta = channel_vector("beta", beta, channels)
    choice = _kernel_choice(
        _describe(
            x,
            axis=axis,
            epsilon=epsilon,
            output_dtype=out_dtype,
            memory=memory,
            differentiable_statistics=differentiable_statistics,
            activation=name,
        )
    )
    if choice == "graph":
        return _backend_module().graph_batch_norm_activation(
            x,
            gamma,
            beta,
            epsilon=float(epsilon),
            activation=name,
            negative_slope=float(negative_slope),
            out_dtype=out_dtype,
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
        spec = activation_spec(name)
        # Keras' backends reshape the statistics for any axis but -1.
        last = axis == len(x.shape) - 1
        return composed_batch_norm_activation(
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

    Uses the given (moving) statistics, as `keras.layers.BatchNormalization`
    in inference followed by the activation: computed as `act(x * a + b)`
    with `a = gamma * rsqrt(variance + epsilon)` and `b = beta - mean * a`,
    the expression Keras uses, in float32, and differentiated by autodiff.
    On TensorFlow and JAX it runs XLA-compiled, on torch (and on a backend
    without a kernel module) op by op.

    Args:
        x: Floating tensor (or array-like) of rank >= 2 with a static size `C`
            on `axis`.
        mean: Per-channel mean, shape `(C,)`; float or int, cast to float32.
        variance: Per-channel variance, shape `(C,)`; float or int, cast to
            float32.
        gamma: Per-channel scale, shape `(C,)`; float or int, cast to float32.
        beta: Per-channel offset, shape `(C,)`; float or int, cast to float32.
        axis: Channel axis, in `[-rank, rank)`.
        epsilon: Positive float added to the variance.
        activation: Name of a fused activation (see `batch_norm_activation`)
            or the matching `keras.activations` function.
        negative_slope: Slope of `leaky_relu` for negative inputs, a
            non-negative float.
        output_dtype: Floating dtype of the result; defaults to `x.dtype`.

    Returns:
        The activated, normalised tensor: the shape of `x`, dtype
        `output_dtype`.

    Raises:
        ValueError: If `activation` is not the name of a fused activation;
            if `negative_slope` is negative or not finite; if `epsilon` is not
            a positive finite number; if `x` is symbolic, not convertible to a
            tensor, not floating, of rank < 2 or without a static size on
            `axis`; if `axis` is out of range; if `mean`, `variance`, `gamma`
            or `beta` is symbolic, not real-valued or not of shape `(C,)`; or
            if `output_dtype` is neither None nor a floating dtype.

    Example:

    ```python
    >>> import keras
    >>> import numpy as np
    >>> from kerasx.ops import batch_norm_activation_inference
    >>> y = batch_norm_activation_inference(
    ...     np.array([[3.0], [-1.0]], "float32"),
    ...     mean=np.ones(1, "float32"),
    ...     variance=np.full(1, 4.0, "float32"),
    ...     gamma=np.ones(1, "float32"),
    ...     beta=np.zeros(1, "float32"),
    ...     epsilon=1e-8,
    ... )
    >>> np.round(keras.ops.convert_to_numpy(y), 4).tolist()
    [[1.0], [0.0]]

    ```

    Reference:
        Ioffe & Szegedy, "Batch Normalization", 2015.
    """
    x, name, axis, channels, out_dtype = _prepare(
        x, axis, epsilon, activation, negative_slope, "recompute", output_dtype
    )
    vectors = {"mean": mean, "variance": variance, "gamma": gamma, "beta": beta}
    tensors = [channel_vector(key, value, channels) for key, value in vectors.items()]
    _, infer = _kernels(axis, epsilon, name, negative_slope, "recompute", out_dtype)
    return infer(x, *tensors)
