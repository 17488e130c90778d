"""Argument checks shared by the fused ops and `BatchNormActivation`."""

from __future__ import annotations

from collections.abc import Callable

import keras

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
