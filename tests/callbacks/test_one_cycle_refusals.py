"""OneCycleScheduler: rates outside float32 and uncountable start steps refused."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from kerasx.callbacks import OneCycleScheduler

RANGE = r"\[1\.1754944e-38, 3\.4028235e\+38\]"


@pytest.mark.parametrize(
    ("arguments", "match"),
    [
        (
            dict(max_rate=1e39),
            rf"`max_rate`\. Expected a float in {RANGE} \(a positive normal "
            r"float32: .*\)\. Received: max_rate=1e\+39$",
        ),
        (
            dict(max_rate=0.1, start_rate=1e-39),
            rf"`start_rate`\. Expected a float in {RANGE}.*Received: start_rate=1e-39$",
        ),
        (
            dict(max_rate=0.1, last_rate=1e-45),
            rf"`last_rate`\. Expected a float in {RANGE}.*Received: last_rate=1e-45$",
        ),
        (
            dict(max_rate=1e-37),
            r"`start_rate`\. Expected an explicit start_rate: its default max_rate "
            r"/ 10 = 1e-38 is not a positive normal float32 \(in "
            rf"{RANGE}\)\. Received: start_rate=None$",
        ),
        (
            dict(max_rate=1e-34),
            r"`last_rate`\. Expected an explicit last_rate: its default start_rate "
            r"/ 1000 = 1e-38 is not a positive normal float32 .*"
            r"Received: last_rate=None$",
        ),
    ],
)
def test_rates_outside_normal_float32_are_refused(arguments, match):
    with pytest.raises(ValueError, match=match):
        OneCycleScheduler(10, **arguments)


def test_small_rates_given_explicitly_are_accepted():
    scheduler = OneCycleScheduler(10, max_rate=1e-34, last_rate=1e-37)
    assert scheduler.get_config()["start_rate"] == pytest.approx(1e-35, rel=1e-12)
    assert scheduler.get_config()["last_rate"] == 1e-37


LARGEST_STEP = {
    "tensorflow": ("9223372036854775807", "int64"),
    "jax": ("2147483647", "int32"),
    "torch": ("2147483647", "int32"),
}


def test_a_start_step_the_optimizer_cannot_count_is_refused():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(keras.optimizers.SGD(0.01), "mse")
    largest, dtype = LARGEST_STEP[keras.backend.backend()]
    scheduler = OneCycleScheduler(10, max_rate=0.1, start_step=2**63)
    with pytest.raises(
        ValueError,
        match=rf"`start_step`\. Expected an integer <= {largest} \(this optimizer "
        rf"counts its steps in {dtype}\)\. Received: start_step=9223372036854775808$",
    ):
        model.fit(np.ones((4, 2)), np.ones((4, 1)), callbacks=[scheduler], verbose=0)
