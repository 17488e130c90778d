"""`fit_temperature`, `apply_temperature` and `calibrate`: values and refusals."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from kerasx import saving
from kerasx.layers import MCDropout, Temperature
from kerasx.uncertainty import (
    apply_temperature,
    calibrate,
    fit_temperature,
    mc_predict,
    negative_log_likelihood,
)
from kerasx.uncertainty.temperature import TEMPERATURE_RANGE


def _softmax(logits):
    exp = np.exp(logits - logits.max(-1, keepdims=True))
    return exp / exp.sum(-1, keepdims=True)


def _problem(seed=0, n=400, n_classes=4, scale=3.0, true_temperature=2.0):
    rng = np.random.default_rng(seed)
    logits = scale * rng.normal(size=(n, n_classes))
    truth = _softmax(logits / true_temperature)
    labels = np.array([rng.choice(n_classes, p=row) for row in truth])
    return logits, labels


def _nll(logits, labels, temperature):
    return negative_log_likelihood(labels, _softmax(logits / temperature))


def test_minimises_the_nll_on_a_grid():
    logits, labels = _problem()
    temperature = fit_temperature(logits, labels, from_logits=True)
    best = _nll(logits, labels, temperature)
    for factor in (1 - 1e-4, 1 + 1e-4, 0.5, 2.0):
        assert _nll(logits, labels, temperature * factor) > best
    # Near the true temperature of the sampled labels (2.0).
    assert 1.6 < temperature < 2.4


def test_probabilities_and_logits_give_the_same_temperature():
    logits, labels = _problem(1)
    from_probs = fit_temperature(_softmax(logits), labels)
    from_logits = fit_temperature(logits + 7.0, labels, from_logits=True)
    assert from_probs == pytest.approx(from_logits, rel=1e-9)


def test_slope_is_zero_at_the_fit():
    # d NLL / d(1/T) = mean(E_p[z] - z_y) vanishes at the optimum (1e-6 relative
    # or better in 1/T means a slope ~1e-9 here).
    logits, labels = _problem(2)
    beta = 1.0 / fit_temperature(logits, labels, from_logits=True)
    probs = _softmax(beta * logits)
    slope = np.mean(np.sum(probs * logits, 1) - logits[np.arange(400), labels])
    assert abs(slope) < 1e-9


def test_deterministic():
    logits, labels = _problem(3)
    first = fit_temperature(logits, labels, from_logits=True)
    assert fit_temperature(logits, labels, from_logits=True) == first


def test_binary_layouts_agree():
    rng = np.random.default_rng(4)
    z = 2.0 * rng.normal(size=300)
    y = (rng.uniform(size=300) < 1 / (1 + np.exp(-z / 1.5))).astype(int)
    p = 1 / (1 + np.exp(-z))
    expected = fit_temperature(np.stack([1 - p, p], 1), y)
    assert fit_temperature(p, y) == pytest.approx(expected, rel=1e-9)
    assert fit_temperature(p[:, None], y) == pytest.approx(expected, rel=1e-9)
    assert fit_temperature(z, y, from_logits=True) == pytest.approx(expected, rel=1e-7)
    assert fit_temperature(z[:, None], y[:, None], from_logits=True) == pytest.approx(
        expected, rel=1e-7
    )


def test_one_hot_labels():
    logits, labels = _problem(5)
    one_hot = np.eye(4)[labels]
    assert fit_temperature(logits, one_hot, from_logits=True) == fit_temperature(
        logits, labels, from_logits=True
    )


def test_separable_data_clamps_to_the_smallest_temperature_with_a_warning():
    probs = [[0.9, 0.1], [0.3, 0.7], [0.6, 0.4]]
    with pytest.warns(UserWarning, match="temperature goes to 0"):
        temperature = fit_temperature(probs, [0, 1, 0])
    assert temperature == pytest.approx(TEMPERATURE_RANGE[0])


def test_worse_than_uniform_clamps_to_the_largest_temperature_with_a_warning():
    probs = [[0.9, 0.1], [0.3, 0.7], [0.6, 0.4]]
    with pytest.warns(UserWarning, match="temperature goes to infinity"):
        temperature = fit_temperature(probs, [1, 0, 1])
    assert temperature == pytest.approx(TEMPERATURE_RANGE[1])


def test_apply_temperature_values():
    np.testing.assert_allclose(
        apply_temperature([[0.8, 0.2]], 2.0), [[2 / 3, 1 / 3]], rtol=1e-15
    )
    np.testing.assert_allclose(
        apply_temperature([0.8, 0.5], 2.0), [2 / 3, 0.5], rtol=1e-15
    )
    logits = np.array([[1.0, 2.0, -1.0]])
    np.testing.assert_allclose(
        apply_temperature(logits, 0.5, from_logits=True),
        _softmax(2 * logits),
        rtol=1e-15,
    )
    assert apply_temperature([[0.8], [0.1]], 1.0).shape == (2, 1)
    assert apply_temperature([[0.8, 0.2]], 3.0).dtype == np.float64


def test_temperature_one_is_the_identity():
    probs = _softmax(_problem(6)[0])
    np.testing.assert_allclose(apply_temperature(probs, 1.0), probs, rtol=1e-12)


def test_refuses_non_probabilities():
    with pytest.raises(ValueError, match=r"`probs`.*apply a softmax to logits"):
        fit_temperature([[2.0, -1.0], [0.5, 0.5]], [0, 1])


def test_refuses_labels_out_of_range():
    with pytest.raises(ValueError, match=r"`y_true`.*labels in \[0, 2\)"):
        fit_temperature([[0.7, 0.3], [0.4, 0.6]], [0, 2])


def test_refuses_a_single_row():
    with pytest.raises(ValueError, match=r"`probs`.*at least 2 rows"):
        fit_temperature([[0.7, 0.3]], [0])


def test_refuses_non_finite_logits():
    with pytest.raises(ValueError, match=r"`probs`.*finite logits.*NaN or inf"):
        fit_temperature([[0.0, np.inf], [1.0, 0.0]], [0, 1], from_logits=True)


def test_refuses_logits_of_rank_three():
    with pytest.raises(ValueError, match=r"`probs`.*finite logits.*shape \(1, 2, 2\)"):
        fit_temperature(np.zeros((1, 2, 2)), [0], from_logits=True)


def test_refuses_a_non_bool_from_logits():
    with pytest.raises(ValueError, match=r"`from_logits`.*a bool"):
        fit_temperature([[0.7, 0.3], [0.4, 0.6]], [0, 1], from_logits="yes")


@pytest.mark.parametrize("temperature", [0.0, -1.0, np.inf, True])
def test_refuses_a_non_positive_temperature(temperature):
    with pytest.raises(ValueError, match=r"`temperature`.*a float > 0"):
        apply_temperature([[0.7, 0.3]], temperature)


def _classifier(activation="softmax", seed=0, dropout=False):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((3,))
    x = keras.layers.Dense(8, activation="relu")(inputs)
    if dropout:
        x = MCDropout(0.3)(x)
    outputs = keras.layers.Dense(3, activation=activation)(x)
    return keras.Model(inputs, outputs)


def _data(model=None, seed=0, n=64):
    """Inputs, and labels agreeing with `model`'s argmax on 3 rows in 4."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3)).astype("float32")
    labels = rng.integers(0, 3, size=n)
    if model is not None:
        agree = np.arange(n) % 4 != 0
        labels[agree] = np.argmax(keras.ops.convert_to_numpy(model(x[agree])), -1)
    return x, labels


def test_calibrate_fits_the_predictions_temperature():
    model = _classifier()
    x, y = _data(model)
    calibrated = calibrate(model, x, y, batch_size=16)
    layer = calibrated.layers[-1]
    assert isinstance(layer, Temperature) and layer.from_logits is False
    predictions = keras.ops.convert_to_numpy(model(x)).astype(np.float64)
    assert layer.temperature == pytest.approx(fit_temperature(predictions, y), rel=1e-5)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(calibrated(x)),
        apply_temperature(predictions, layer.temperature),
        rtol=1e-4,
        atol=1e-6,
    )
    assert calibrated.layers[1] is model.layers[1]  # weights shared


@pytest.mark.parametrize("kind", ["sequential", "functional_list_io"])
def test_calibrate_sequential_and_list_io_models(kind):
    """Sequential has no `.input`; one-element lists must not reach `Temperature`."""
    keras.utils.set_random_seed(3)
    sequential = keras.Sequential(
        [keras.Input((3,)), keras.layers.Dense(3, activation="softmax")]
    )
    if kind == "sequential":
        model = sequential
    else:
        model = keras.Model(sequential.inputs, sequential.outputs)
    x, y = _data(model)
    calibrated = calibrate(model, x, y)
    out = calibrated.predict(x, verbose=0)
    assert out.shape == (64, 3)
    predictions = keras.ops.convert_to_numpy(model(x)).astype(np.float64)
    temperature = calibrated.layers[-1].temperature
    np.testing.assert_allclose(
        out, apply_temperature(predictions, temperature), rtol=1e-4, atol=1e-6
    )


def test_calibrate_detects_logits():
    model = _classifier(activation=None)
    x, y = _data(model)
    layer = calibrate(model, x, y).layers[-1]
    assert layer.from_logits is True
    logits = keras.ops.convert_to_numpy(model(x)).astype(np.float64)
    assert layer.temperature == pytest.approx(
        fit_temperature(logits, y, from_logits=True), rel=1e-5
    )


def test_calibrate_mc_model_fits_the_mc_mean():
    model = _classifier(dropout=True)
    x, y = _data(model)
    calibrated = calibrate(model, x, y, n_samples=8, seed=3)
    samples = mc_predict(model, x, n_samples=8, seed=3, return_samples=True).samples
    mean = samples.astype(np.float64).mean(0)
    temperature = calibrated.layers[-1].temperature
    assert temperature == pytest.approx(fit_temperature(mean, y), rel=1e-4)
    result = mc_predict(calibrated, x, n_samples=8, seed=3)
    scaled = [
        apply_temperature(sample.astype(np.float64), temperature) for sample in samples
    ]
    # The calibrated MC model averages the temperature-scaled passes.
    np.testing.assert_allclose(result.mean, np.mean(scaled, 0), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_calibrated_model_saves_and_loads(tmp_path, suffix):
    model = _classifier()
    x, y = _data(model)
    calibrated = calibrate(model, x, y)
    path = tmp_path / f"calibrated{suffix}"
    saving.save(calibrated, path)
    loaded = saving.load(path)
    assert loaded.layers[-1].temperature == calibrated.layers[-1].temperature
    np.testing.assert_allclose(
        loaded.predict(x, verbose=0), calibrated.predict(x, verbose=0), rtol=1e-6
    )


def test_calibrate_refuses_a_non_model():
    with pytest.raises(ValueError, match=r"`model`.*keras.Model"):
        calibrate("model", *_data())


def test_calibrate_refuses_two_outputs():
    inputs = keras.Input((3,))
    model = keras.Model(inputs, [keras.layers.Dense(2)(inputs)] * 2)
    with pytest.raises(ValueError, match=r"`model`.*one output.*2 outputs"):
        calibrate(model, *_data())


def test_calibrate_refuses_logits_for_an_mc_model():
    with pytest.raises(ValueError, match=r"`from_logits`.*MC layers"):
        calibrate(_classifier(dropout=True), *_data(), from_logits=True)


def test_calibrate_refuses_a_non_bool_from_logits():
    with pytest.raises(ValueError, match=r"`from_logits`.*a bool"):
        calibrate(_classifier(), *_data(), from_logits=1)
