"""Argument checks shared by the fused ops and `BatchNormActivation`."""

from __future__ import annotations

from collections.abc import Callable

import keras
from keras import ops

from kerasx import _checks
from kerasx.ops import _activations

MEMORY_MODES = ("recompute", "invert")


def resolve_activation(activation) -> tuple[str | None, Callable]:
    """Returns `(fused_name_or_None, callable)` for a name or callable.

    Keras' own activation functions (`keras.activations.relu`) map to their
    fused kernel; any other callable runs on the unfused `keras.ops` path.
    """
    if isinstance(activation, str):
        spec = _activations.get(activation)
        return spec.name, keras.activations.get(spec.name)
    if callable(activation):
        for name in (*_activations.ACTIVATIONS, *_activations.ALIASES):
            if activation is keras.activations.get(name):
                return _activations.canonical_name(name), activation
        return None, activation
    raise ValueError(
        "Invalid value received for argument `activation`. Expected a string "
        "name or a callable. "
        f"Received: activation={activation!r}"
    )


def check_memory(memory, fused_name: str | None) -> str:
    """`memory` is a mode and, for `"invert"`, the activation is invertible."""
    _checks.choice("memory", memory, MEMORY_MODES)
    if memory == "invert" and fused_name not in _activations.INVERTIBLE:
        raise ValueError(
            "Invalid value received for argument `memory`. Expected "
            "memory='invert' only with an invertible activation, one of "
            f"{list(_activations.INVERTIBLE)}. Received: memory='invert' with "
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


def output_dtype(value, default: str) -> str:
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
