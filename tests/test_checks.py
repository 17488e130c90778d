"""The argument rules of `kerasx._checks`, which every public argument goes through."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest

from kerasx import _checks


def _message(name, value):
    return (
        rf"Invalid value received for argument `{name}`\. Expected .*Received: {name}="
    )


@pytest.mark.parametrize(
    "value", [3, np.int8(3), np.int32(3), np.int64(3), np.uint16(3)]
)
def test_integer_accepts_python_and_numpy_integers(value):
    result = _checks.integer("n", value, minimum=1)
    assert result == 3 and type(result) is int


@pytest.mark.parametrize(
    "value", [True, False, np.bool_(True), 3.0, np.float32(3.0), "3", None, [3]]
)
def test_integer_refuses_non_integers(value):
    with pytest.raises(ValueError, match=_message("n", value)):
        _checks.integer("n", value)


def test_integer_bounds_and_none():
    assert _checks.integer("n", None, allow_none=True) is None
    with pytest.raises(ValueError, match=r"Expected an integer >= 2\. Received: n=1"):
        _checks.integer("n", 1, minimum=2)
    with pytest.raises(ValueError, match=r"Expected an integer in \[0, 5\]"):
        _checks.integer("n", 6, minimum=0, maximum=5)
    with pytest.raises(ValueError, match=r"Expected an integer >= 1 or None"):
        _checks.integer("n", 0, minimum=1, allow_none=True)


@pytest.mark.parametrize(
    "value", [0.5, 1, np.float32(0.5), np.float64(0.5), np.int64(1), np.float16(1)]
)
def test_number_accepts_python_and_numpy_reals(value):
    result = _checks.number("x", value, low=0.0, low_open=True)
    assert result == float(value) and type(result) is float


@pytest.mark.parametrize(
    "value",
    [math.inf, -math.inf, math.nan, np.float32("inf"), np.float64("nan")],
)
def test_number_refuses_non_finite(value):
    with pytest.raises(ValueError, match=_message("x", value).replace("=", "=")):
        _checks.number("x", value)


@pytest.mark.parametrize("value", ["0.3", b"1", True, np.bool_(False), None, [1.0]])
def test_number_refuses_strings_and_bools_with_the_keras_message(value):
    # Never a raw TypeError from comparing a string with a number.
    with pytest.raises(ValueError, match=_message("x", value)):
        _checks.number("x", value, low=0.0, high=1.0)


@pytest.mark.parametrize(
    ("bounds", "value", "expected"),
    [
        (dict(low=0.0, low_open=True), 0.0, r"a float > 0\.0"),
        (dict(low=0.0), -1.0, r"a float >= 0\.0"),
        (dict(high=1.0, high_open=True), 1.0, r"a float < 1\.0"),
        (dict(low=0.0, high=1.0, high_open=True), 1.0, r"a float in \[0\.0, 1\.0\)"),
        (dict(low=0.0, high=1.0, low_open=True), 0.0, r"a float in \(0\.0, 1\.0\]"),
        (dict(low=1.0, expected="a float > min_rate"), 0.5, "a float > min_rate"),
    ],
)
def test_number_bounds_in_the_message(bounds, value, expected):
    with pytest.raises(ValueError, match=rf"Expected {expected}\. Received: x={value}"):
        _checks.number("x", value, **bounds)


def test_number_inside_bounds_and_none():
    assert _checks.number("x", 0.0, low=0.0, high=1.0, high_open=True) == 0.0
    assert _checks.number("x", None, allow_none=True) is None


@pytest.mark.parametrize("value", [True, False, np.bool_(True)])
def test_boolean_accepts_real_booleans(value):
    assert _checks.boolean("flag", value) is bool(value)


@pytest.mark.parametrize("value", ["False", "True", 0, 1, None, np.int64(1)])
def test_boolean_refuses_everything_else(value):
    with pytest.raises(ValueError, match=_message("flag", value)):
        _checks.boolean("flag", value)


def test_choice():
    assert _checks.choice("mode", "cos", ("cos", "linear")) == "cos"
    assert _checks.choice("mode", None, (None, "before")) is None
    for value in ("cosine", True, np.array(["cos"]), 1):
        with pytest.raises(ValueError, match=r"Expected one of \['cos', 'linear'\]"):
            _checks.choice("mode", value, ("cos", "linear"))


@pytest.mark.parametrize("value", [0, 7, np.int64(7), 2**32 - 1, None])
def test_seed_accepts(value):
    assert _checks.seed("seed", value) == (None if value is None else int(value))


@pytest.mark.parametrize("value", [-1, 2**32, 1.5, True, "1"])
def test_seed_refuses(value):
    with pytest.raises(ValueError, match=_message("seed", value)):
        _checks.seed("seed", value)


def test_model_and_mapping():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    assert _checks.model(model) is model
    with pytest.raises(ValueError, match=r"`model`\. Expected a keras\.Model\. "):
        _checks.model("model.keras")
    with pytest.raises(ValueError, match=r"`net`\. Expected a Sequential"):
        _checks.model(3, name="net", expected="a Sequential model")
    assert _checks.optional_mapping("custom_objects", None) is None
    with pytest.raises(ValueError, match=_message("custom_objects", [1])):
        _checks.optional_mapping("custom_objects", [1])


def test_the_message_quotes_strings_and_shows_numpy_types():
    with pytest.raises(ValueError) as info:
        _checks.number("pct_start", "0.3", low=0.0, high=1.0)
    assert str(info.value) == (
        "Invalid value received for argument `pct_start`. Expected a float in "
        "[0.0, 1.0]. Received: pct_start='0.3'"
    )
