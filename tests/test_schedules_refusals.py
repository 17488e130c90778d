"""OneCycle: rates outside float32 are refused, any total_steps is computed."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest

from kerasx.schedules import OneCycle

RANGE = r"\[1\.1754944e-38, 3\.4028235e\+38\]"


@pytest.mark.parametrize(
    ("arguments", "match"),
    [
        (
            dict(max_learning_rate=1e39),
            rf"`max_learning_rate`\. Expected a float in {RANGE} \(a positive "
            r"normal float32: learning rates are computed and applied in "
            r"float32\)\. Received: max_learning_rate=1e\+39$",
        ),
        (
            dict(max_learning_rate=1e-46),
            rf"`max_learning_rate`\. Expected a float in {RANGE}.*"
            r"Received: max_learning_rate=1e-46$",
        ),
        (
            dict(div_factor=1e-300),
            r"`div_factor`\. Expected a value that makes the initial learning rate "
            rf"max_learning_rate / div_factor a positive normal float32, in {RANGE} "
            r"\(it is 1e\+299\)\. Received: div_factor=1e-300$",
        ),
        (
            dict(max_learning_rate=1e38, div_factor=0.1),
            r"`div_factor`\. .*\(it is 1e\+39\)\. Received: div_factor=0\.1$",
        ),
        (
            dict(div_factor=1e38),
            r"`div_factor`\. .*\(it is 1e-39\)\. Received: div_factor=1e\+38$",
        ),
        (
            dict(final_div_factor=1e40),
            r"`final_div_factor`\. Expected a value that makes the minimum learning "
            r"rate max_learning_rate / div_factor / final_div_factor a positive "
            rf"normal float32, in {RANGE} \(it is 4e-43\)\. "
            r"Received: final_div_factor=1e\+40$",
        ),
    ],
)
def test_rates_outside_normal_float32_are_refused(arguments, match):
    arguments = {"max_learning_rate": 0.1, "total_steps": 100, **arguments}
    max_learning_rate = arguments.pop("max_learning_rate")
    total_steps = arguments.pop("total_steps")
    with pytest.raises(ValueError, match=match):
        OneCycle(max_learning_rate, total_steps, **arguments)


def test_rates_at_the_float32_limits_are_computed():
    # initial = max = 3e38, minimum = 3e38 / 2.5e37 = 12: all finite in float32.
    schedule = OneCycle(3e38, 10, div_factor=1.0, final_div_factor=2.5e37)
    values = [float(schedule(step)) for step in (0, 2, 9)]
    np.testing.assert_allclose(values, [3e38, 3e38, 12.0], rtol=1e-6)


def reference(step, max_rate, total_steps, pct_start=0.3, div=25.0, final_div=1e4):
    """PyTorch's two-phase cosine OneCycleLR in float64."""
    initial = max_rate / div
    minimum = initial / final_div
    first_end = pct_start * total_steps - 1
    if step <= math.floor(first_end):
        start, end, pct = initial, max_rate, step / first_end
    else:
        pct = (step - first_end) / (total_steps - 1 - first_end)
        start, end = max_rate, minimum
    return end + (start - end) / 2 * (1 + math.cos(math.pi * pct))


@pytest.mark.parametrize("step", [5, 2**31 + 7, 2**32, 2**33 - 1])
def test_total_steps_beyond_int32_are_computed(step):
    # Steps are counted in float32: near 2**33 they are 1024 apart, 1.2e-7 of
    # the cycle, which moves the cosine by less than 1e-6 relative.
    schedule = OneCycle(0.1, 2**33)
    np.testing.assert_allclose(
        float(schedule(step)), reference(step, 0.1, 2**33), rtol=1e-6
    )


def test_tensor_steps_with_large_total_steps():
    schedule = OneCycle(0.1, 2**33)
    step = keras.ops.convert_to_tensor(5, dtype="int32")
    np.testing.assert_allclose(
        float(schedule(step)), reference(5, 0.1, 2**33), rtol=1e-6
    )
