"""`kerasx.layers.Temperature`: values, serialization round trips, refusals."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from keras import ops

from kerasx import saving
from kerasx.layers import Temperature
from kerasx.uncertainty import apply_temperature

PROBS = np.array([[0.7, 0.2, 0.1], [0.05, 0.05, 0.9], [1.0, 0.0, 0.0]], "float32")
LOGITS = np.array([[1.0, -2.0, 0.5], [3.0, 0.0, -1.0]], "float32")


def _numpy(x):
    return ops.convert_to_numpy(x)


@pytest.mark.parametrize("temperature", [0.5, 1.0, 2.5])
def test_matches_apply_temperature(temperature):
    # float32 against the float64 reference: 1e-5 relative (+ 1e-7 for the
    # probability floored at 2.2e-16).
    expected = apply_temperature(PROBS.astype(np.float64), temperature)
    np.testing.assert_allclose(
        _numpy(Temperature(temperature)(PROBS)), expected, rtol=1e-5, atol=1e-7
    )
    expected = apply_temperature(
        LOGITS.astype(np.float64), temperature, from_logits=True
    )
    out = Temperature(temperature, from_logits=True)(LOGITS)
    np.testing.assert_allclose(_numpy(out), expected, rtol=1e-5, atol=1e-7)


def test_binary_single_column():
    p = np.array([[0.8], [0.5], [0.1]], "float32")
    expected = apply_temperature(p.astype(np.float64), 2.0)
    np.testing.assert_allclose(_numpy(Temperature(2.0)(p)), expected, rtol=1e-5)
    z = np.array([[2.0], [-1.0]], "float32")
    out = _numpy(Temperature(2.0, from_logits=True)(z))
    np.testing.assert_allclose(out, 1 / (1 + np.exp(-z / 2.0)), rtol=1e-5)


def test_config_round_trip():
    layer = Temperature(1.7, from_logits=True, name="scale")
    config = layer.get_config()
    assert config["temperature"] == 1.7 and config["from_logits"] is True
    clone = Temperature.from_config(config)
    assert (clone.temperature, clone.from_logits, clone.name) == (1.7, True, "scale")
    assert layer.weights == []


def _model():
    inputs = keras.Input((3,))
    outputs = Temperature(1.7)(keras.layers.Dense(3, activation="softmax")(inputs))
    return keras.Model(inputs, outputs)


@pytest.mark.parametrize("suffix", [".keras", ".h5", ".json"])
def test_save_load_round_trip(tmp_path, suffix):
    model = _model()
    x = np.random.default_rng(0).normal(size=(4, 3)).astype("float32")
    path = tmp_path / f"model{suffix}"
    saving.save(model, path)
    loaded = saving.load(path)
    assert isinstance(loaded.layers[-1], Temperature)
    assert loaded.layers[-1].temperature == 1.7
    np.testing.assert_allclose(
        loaded.predict(x, verbose=0), model.predict(x, verbose=0)
    )


@pytest.mark.parametrize("temperature", [0.0, -2.0, float("nan"), "2", True])
def test_refuses_a_non_positive_temperature(temperature):
    with pytest.raises(ValueError, match=r"`temperature`.*a float > 0"):
        Temperature(temperature)


def test_refuses_a_non_bool_from_logits():
    with pytest.raises(ValueError, match=r"`from_logits`.*a bool"):
        Temperature(1.0, from_logits="no")
