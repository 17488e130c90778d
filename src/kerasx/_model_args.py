"""Argument validation shared by the model builders in `kerasx.models`.

Every check raises the project's standard message::

    Invalid value received for argument `x`. Expected <...>. Received: x=<...>
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Sequence
from typing import Any

import keras


def invalid(name: str, expected: str, value: Any) -> ValueError:
    """Returns the standard `ValueError` for argument `name`."""
    return ValueError(
        f"Invalid value received for argument `{name}`. Expected {expected}. "
        f"Received: {name}={value!r}"
    )


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def positive_int(name: str, value: Any, minimum: int = 1) -> int:
    if not _is_int(value) or value < minimum:
        raise invalid(name, f"an integer >= {minimum}", value)
    return int(value)


def positive_ints(name: str, value: Any, allow_empty: bool = False) -> tuple:
    """A non-empty (unless `allow_empty`) sequence of positive integers."""
    expected = "a sequence of positive integers"
    if not allow_empty:
        expected = "a non-empty sequence of positive integers"
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise invalid(name, expected, value)
    if (not value and not allow_empty) or not all(_is_int(v) and v > 0 for v in value):
        raise invalid(name, expected, value)
    return tuple(int(v) for v in value)


def input_shape(value: Any, rank: int | None = None, allow_none: bool = False):
    """A shape tuple without the batch axis, optionally of a given rank."""
    expected = "a tuple of positive integers"
    if allow_none:
        expected = "a tuple of positive integers or None"
    if rank is not None:
        expected += f" of length {rank}"
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise invalid("input_shape", expected, value)
    dims_ok = all((d is None and allow_none) or (_is_int(d) and d > 0) for d in value)
    rank_ok = len(value) == rank if rank is not None else len(value) >= 1
    if not dims_ok or not rank_ok:
        raise invalid("input_shape", expected, value)
    return tuple(None if d is None else int(d) for d in value)


def rate(name: str, value: Any) -> float:
    if (
        not isinstance(value, numbers.Real)
        or isinstance(value, bool)
        or not 0.0 <= value < 1.0
    ):
        raise invalid(name, "a float in [0, 1)", value)
    return float(value)


def choice(name: str, value: Any, options: Sequence) -> Any:
    if isinstance(value, bool) or value not in list(options):
        raise invalid(name, f"one of {list(options)}", value)
    return value


def activation(name: str, value: Any, allow_none: bool = False) -> Callable:
    """A Keras activation name or callable; returns the resolved function."""
    if value is None and allow_none:
        return keras.activations.get(None)
    expected = "a Keras activation name (e.g. 'relu', 'elu', 'selu') or a callable"
    if allow_none:
        expected += " or None"
    if not isinstance(value, str) and not callable(value):
        raise invalid(name, expected, value)
    try:
        return keras.activations.get(value)
    except (ValueError, TypeError):
        raise invalid(name, expected, value) from None


def activation_name(value: str | Callable) -> str:
    """The short name used in layer names (`block1_elu`)."""
    if isinstance(value, str):
        return value
    return getattr(value, "__name__", "activation")


def initializer(name: str, value: Any) -> Any:
    expected = "a Keras initializer name (e.g. 'he_normal'), config or instance"
    if value is None:
        raise invalid(name, expected, value)
    try:
        keras.initializers.get(value)
    except (ValueError, TypeError):
        raise invalid(name, expected, value) from None
    return value


def regularizer(name: str, value: Any) -> Any:
    if value is None:
        return None
    expected = "None or a Keras regularizer name (e.g. 'l2'), config or instance"
    try:
        resolved = keras.regularizers.get(value)
    except (ValueError, TypeError):
        raise invalid(name, expected, value) from None
    if not callable(resolved):
        raise invalid(name, expected, value)
    return value


def optional_layer(name: str, value: Any) -> keras.layers.Layer | None:
    if value is not None and not isinstance(value, keras.layers.Layer):
        raise invalid(name, "None or a keras.layers.Layer instance", value)
    return value


def optional_name(value: Any) -> str | None:
    if value is not None and (not isinstance(value, str) or not value):
        raise invalid("name", "None or a non-empty string", value)
    return value
