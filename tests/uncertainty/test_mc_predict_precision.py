"""`mc_predict` statistics match float64 statistics of the very same samples."""

from __future__ import annotations

import re

import keras
import numpy as np
import pytest

from kerasx.layers import MCDropout
from kerasx.uncertainty import _predict, _stats, mc_predict

# The statistics are float64 values stored as float32: half an ulp, 6e-8
# relative. 2e-7 also covers JAX without `jax_enable_x64`, whose float32 tree
# reductions measure <= 6e-8 here. A float32 sequential sum over the 2,000
# samples (TensorFlow before the fix) is off by 3e-7 (mean) and 1.1e-6 (std).
RTOL = 2e-7


def test_statistics_equal_float64_statistics_of_the_samples(seed):
    model = keras.Sequential(
        [
            keras.Input((3,)),
            keras.layers.Dense(8, activation="relu"),
            MCDropout(0.5),
            keras.layers.Dense(2, activation="softmax"),
        ]
    )
    x = np.random.default_rng(0).normal(size=(2, 3)).astype("float32")
    result = mc_predict(model, x, n_samples=2000, seed=1, return_samples=True)
    samples = result.samples.astype(np.float64)
    np.testing.assert_allclose(result.mean, samples.mean(axis=0), rtol=RTOL)
    np.testing.assert_allclose(result.std, samples.std(axis=0), rtol=RTOL)
    np.testing.assert_allclose(
        result.expected_entropy, _stats.entropy(samples).mean(axis=0), rtol=RTOL
    )


# Samples and rows are numbered by int32 counters (the MC layers' noise keys):
# past 2**31 they would wrap (or NumPy would raise OverflowError mid-run).
def test_n_samples_beyond_the_int32_counters_is_refused():
    model = keras.Sequential([keras.Input((2,)), MCDropout(0.5)])
    message = (
        "Invalid value received for argument `n_samples`. Expected an integer "
        "in [1, 2147483648]. Received: n_samples=2147483649"
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        mc_predict(model, np.ones((1, 2)), n_samples=2**31 + 1)


def test_rows_beyond_the_int32_counters_are_refused(monkeypatch):
    # The limit lowered to 3 rows stands for 2**31; refused before any call.
    monkeypatch.setattr(_predict, "INDEX_LIMIT", 3)
    model = keras.Sequential([keras.Input((2,)), MCDropout(0.5)])
    message = (
        "Invalid value received for argument `x`. Expected at most 3 rows (rows "
        "are numbered by int32 counters). Received: x=<4 rows or more>"
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        mc_predict(model, np.ones((4, 2)), n_samples=2, task="regression")
