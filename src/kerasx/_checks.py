"""The one argument-checking module of kerasx.

Every public argument goes through these functions, in the spirit of Keras'
`keras/src/utils/argument_validation.py`, so that every refusal reads the same:

    Invalid value received for argument `x`. Expected <...>. Received: x=<...>

The rules, the same everywhere:

- NumPy integer and floating scalars are accepted wherever Python ints and
  floats are (`np.int64(100)` is an integer, `np.float32(0.1)` a float), and the
  functions return plain Python values.
- `bool` is not a number (`True` is refused where an integer or float is
  expected), and only real booleans are booleans (`"False"` is refused).
- Floats are finite: inf and NaN are refused for rates, factors, epsilons and
  slopes alike.
- Strings where numbers are expected get the message above, never a raw
  `TypeError` from a comparison.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from typing import Any

import keras
import numpy as np


def invalid(name: str, expected: str, value: Any) -> ValueError:
    """Returns the standard `ValueError` for argument `name`."""
    return ValueError(
        f"Invalid value received for argument `{name}`. Expected {expected}. "
        f"Received: {name}={value!r}"
    )


class _Described(str):
    """A received value described in words: shown as is, without quotes."""

    def __repr__(self) -> str:
        return str(self)


def invalid_described(name: str, expected: str, description: str) -> ValueError:
    """The standard `ValueError` for a value described rather than printed.

    For values whose `repr` would be unreadable (a large array, a model):
    `invalid_described("y", "as many samples as `x` (64)", "128 samples")` reads
    "... Received: y=<128 samples>".
    """
    return invalid(name, expected, _Described(f"<{description}>"))


def is_integer(value: Any) -> bool:
    """Python or NumPy integer, not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_real(value: Any) -> bool:
    """Python or NumPy real number (integers included), not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _bounds(kind: str, low, high, low_open: bool, high_open: bool) -> str:
    if low is not None and high is not None:
        left, right = "(" if low_open else "[", ")" if high_open else "]"
        return f"{kind} in {left}{low}, {high}{right}"
    if low is not None:
        return f"{kind} {'>' if low_open else '>='} {low}"
    if high is not None:
        return f"{kind} {'<' if high_open else '<='} {high}"
    return kind


def _within(value, low, high, low_open: bool, high_open: bool) -> bool:
    if low is not None and (value <= low if low_open else value < low):
        return False
    return not (high is not None and (value >= high if high_open else value > high))


def integer(
    name: str,
    value: Any,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
    allow_none: bool = False,
) -> int | None:
    """An integer in `[minimum, maximum]` (either bound optional), as an `int`."""
    if value is None and allow_none:
        return None
    expected = _bounds("an integer", minimum, maximum, False, False)
    if allow_none:
        expected += " or None"
    if not is_integer(value) or not _within(value, minimum, maximum, False, False):
        raise invalid(name, expected, value)
    return int(value)


def number(
    name: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    expected: str | None = None,
    allow_none: bool = False,
) -> float | None:
    """A finite real number within the bounds, as a Python `float`.

    `low_open` / `high_open` exclude the bound itself (`low=0, low_open=True`
    reads "a float > 0"). `expected` replaces the generated description, for
    bounds that depend on another argument.
    """
    if value is None and allow_none:
        return None
    if expected is None:
        expected = _bounds("a float", low, high, low_open, high_open)
        if allow_none:
            expected += " or None"
    if (
        not is_real(value)
        or not math.isfinite(value)
        or not _within(value, low, high, low_open, high_open)
    ):
        raise invalid(name, expected, value)
    return float(value)


def boolean(name: str, value: Any) -> bool:
    """A real boolean (Python `bool` or `numpy.bool_`), as a `bool`."""
    if not isinstance(value, (bool, np.bool_)):
        raise invalid(name, "a bool (True or False)", value)
    return bool(value)


def choice(name: str, value: Any, options: Sequence) -> Any:
    """One of `options` (compared by equality; a bool never matches)."""
    # Scalars only: an array's `==` is elementwise, and a bool equals 0 / 1.
    scalar = isinstance(value, (str, numbers.Number, type(None)))
    found = scalar and not isinstance(value, bool) and value in list(options)
    if not found:
        raise invalid(name, f"one of {list(options)}", value)
    return value


def seed(name: str, value: Any) -> int | None:
    """None or an integer seed in `[0, 2**32 - 1]`, as NumPy and Keras accept."""
    return integer(name, value, minimum=0, maximum=2**32 - 1, allow_none=True)


def model(
    value: Any, name: str = "model", expected: str = "a keras.Model"
) -> keras.Model:
    """A `keras.Model` instance."""
    if not isinstance(value, keras.Model):
        raise invalid(name, expected, value)
    return value


def optional_mapping(name: str, value: Any) -> dict | None:
    """None or a dict (e.g. `custom_objects`)."""
    if value is not None and not isinstance(value, dict):
        raise invalid(name, "None or a dict", value)
    return value


def positive_ints(name: str, value: Any, allow_empty: bool = False) -> tuple:
    """A non-empty (unless `allow_empty`) sequence of positive integers."""
    expected = "a sequence of positive integers"
    if not allow_empty:
        expected = "a non-empty sequence of positive integers"
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise invalid(name, expected, value)
    if (not value and not allow_empty) or not all(
        is_integer(v) and v > 0 for v in value
    ):
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
    dims_ok = all(
        (d is None and allow_none) or (is_integer(d) and d > 0) for d in value
    )
    rank_ok = len(value) == rank if rank is not None else len(value) >= 1
    if not dims_ok or not rank_ok:
        raise invalid("input_shape", expected, value)
    return tuple(None if d is None else int(d) for d in value)


# Learning rates live in float32 variables: a rate outside the positive normal
# float32 range is applied as inf, 0 or a subnormal that has lost its precision.
FLOAT32_TINY = float(np.finfo(np.float32).tiny)
FLOAT32_MAX = float(np.finfo(np.float32).max)
FLOAT32_RANGE = f"[{FLOAT32_TINY:.8g}, {FLOAT32_MAX:.8g}]"


def is_normal_float32(value: float) -> bool:
    """Whether `value` is a positive normal float32 (finite, no underflow)."""
    return FLOAT32_TINY <= value <= FLOAT32_MAX


def learning_rate(name: str, value: Any) -> float:
    """A float > 0 that is a positive normal float32, as a Python `float`."""
    value = number(name, value, low=0, low_open=True)
    if not is_normal_float32(value):
        raise invalid(
            name,
            f"a float in {FLOAT32_RANGE} (a positive normal float32: learning "
            "rates are computed and applied in float32)",
            value,
        )
    return value


def derived_learning_rate(name: str, value: Any, formula: str, derived: float) -> None:
    """Raises for `name` unless the rate `formula` (= `derived`) is normal float32."""
    if not is_normal_float32(derived):
        raise invalid(
            name,
            f"a value that makes {formula} a positive normal float32, in "
            f"{FLOAT32_RANGE} (it is {derived:.6g})",
            value,
        )


def rate(name: str, value: Any) -> float:
    """A dropout-style rate in `[0, 1)`."""
    return number(name, value, low=0.0, high=1.0, high_open=True)


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
    """A Keras initializer name, config or instance."""
    expected = "a Keras initializer name (e.g. 'he_normal'), config or instance"
    if value is None:
        raise invalid(name, expected, value)
    try:
        keras.initializers.get(value)
    except (ValueError, TypeError):
        raise invalid(name, expected, value) from None
    return value


def regularizer(name: str, value: Any) -> Any:
    """None or a Keras regularizer name, config or instance."""
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
    """None or a `keras.layers.Layer` instance."""
    if value is not None and not isinstance(value, keras.layers.Layer):
        raise invalid(name, "None or a keras.layers.Layer instance", value)
    return value


def optional_name(value: Any, name: str = "name") -> str | None:
    """None or a non-empty string."""
    if value is not None and (not isinstance(value, str) or not value):
        raise invalid(name, "None or a non-empty string", value)
    return value
