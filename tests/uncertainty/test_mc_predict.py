"""Tests for `kerasx.uncertainty.mc_predict` and `MCResult`."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest

from kerasx.layers import MCDropout
from kerasx.uncertainty import _sampler as _mc_sampler
from kerasx.uncertainty import mc_predict, to_mc

# fp32 statistics compared with a float64 NumPy reference over <= 100 samples:
# summation error is a few ulps of values <= 1, hence 1e-5.
TOL = {"rtol": 1e-5, "atol": 1e-6}


def _classifier(rate=0.3, batch_norm=True, seed=None):
    layers = [keras.Input((6,)), keras.layers.Dense(16, activation="relu")]
    if batch_norm:
        layers.append(keras.layers.BatchNormalization())
    layers += [MCDropout(rate, seed=seed), keras.layers.Dense(4, activation="softmax")]
    return keras.Sequential(layers)


def _reference(samples):
    """Uncertainty measures from stacked samples (T, n, C), in float64."""
    p = samples.astype(np.float64)
    mean = p.mean(axis=0)
    entropy = lambda q: -np.sum(q * np.log(np.maximum(q, 1e-30)), axis=-1)  # noqa: E731
    predictive = entropy(mean)
    expected = entropy(p).mean(axis=0)
    votes = np.stack([np.bincount(r, minlength=p.shape[-1]) for r in p.argmax(-1).T])
    return {
        "mean": mean,
        "std": p.std(axis=0),
        "predictive_entropy": predictive,
        "expected_entropy": expected,
        "mutual_information": predictive - expected,
        "variation_ratio": 1 - votes.max(axis=1) / p.shape[0],
    }


@pytest.mark.parametrize("budget", [None, 6_000], ids=["one_call", "many_chunks"])
def test_statistics_match_numpy_reference(seed, rng, budget, monkeypatch):
    if budget is not None:  # Force several row chunks and uneven sample groups.
        monkeypatch.setattr(_mc_sampler, "DEFAULT_MEMORY_BUDGET", budget)
    model = _classifier()
    x = rng.normal(size=(7, 6)).astype("float32")
    result = mc_predict(model, x, n_samples=23, seed=3, return_samples=True)
    assert result.samples.shape == (23, 7, 4)
    assert result.n_samples == 23 and result.task == "classification"
    # Samples differ between tiles and between rows of one tile.
    assert not np.allclose(result.samples[0], result.samples[1])
    for name, expected in _reference(result.samples).items():
        np.testing.assert_allclose(getattr(result, name), expected, **TOL, err_msg=name)
    if budget is not None:
        rows, per_call = _mc_sampler.plan_chunks(7, 23, None, 2000, 6_000, False)
        assert (rows, per_call) == (1, 3)


def test_closed_form_two_outcome_classifier(seed):
    # h = x * mask / (1 - rate) with x = 1: kept -> h = 2, logits (199, -199)
    # -> p = (1, 0); dropped -> h = 0, logits (-1, 1) -> p = softmax(-1, 1).
    model = keras.Sequential(
        [
            keras.Input((1,)),
            MCDropout(0.5),
            keras.layers.Dense(2, activation="softmax"),
        ]
    )
    model.layers[-1].set_weights([np.array([[100.0, -100.0]]), np.array([-1.0, 1.0])])
    result = mc_predict(model, np.ones((1, 1)), n_samples=200, return_samples=True)
    kept = float(np.mean(result.samples[:, 0, 0] > 0.99))
    dropped = 1 - kept
    q = 1 / (1 + math.exp(2))  # softmax(-1, 1)[0] = sigmoid(-2)
    h_dropped = -(q * math.log(q) + (1 - q) * math.log(1 - q))
    mean0 = kept + dropped * q
    np.testing.assert_allclose(result.mean[0], [mean0, 1 - mean0], rtol=1e-5)
    np.testing.assert_allclose(
        result.std[0, 0], math.sqrt(kept * dropped) * (1 - q), rtol=1e-4
    )
    expected_entropy = dropped * h_dropped
    predictive = -(mean0 * math.log(mean0) + (1 - mean0) * math.log(1 - mean0))
    np.testing.assert_allclose(result.expected_entropy[0], expected_entropy, rtol=1e-5)
    np.testing.assert_allclose(result.predictive_entropy[0], predictive, rtol=1e-5)
    np.testing.assert_allclose(
        result.mutual_information[0], predictive - expected_entropy, rtol=1e-4
    )
    np.testing.assert_allclose(result.variation_ratio[0], min(kept, dropped))
    # The number of kept masks is Binomial(200, 0.5): within 4 sigma of 100.
    assert abs(kept * 200 - 100) < 4 * math.sqrt(200 * 0.25)


def test_deterministic_model_literal_values():
    # Logits log(0.5), log(0.25), log(0.25) -> p = (0.5, 0.25, 0.25).
    model = keras.Sequential(
        [keras.Input((1,)), keras.layers.Dense(3, activation="softmax")]
    )
    model.layers[0].set_weights([np.zeros((1, 3)), np.log([0.5, 0.25, 0.25])])
    result = mc_predict(model, np.zeros((2, 1)), n_samples=5, allow_deterministic=True)
    np.testing.assert_allclose(result.mean, [[0.5, 0.25, 0.25]] * 2, rtol=1e-6)
    np.testing.assert_array_equal(result.std, np.zeros((2, 3)))
    entropy = 1.5 * math.log(2)  # 0.5 ln 2 + 2 * 0.25 ln 4
    np.testing.assert_allclose(result.predictive_entropy, [entropy] * 2, rtol=1e-6)
    np.testing.assert_allclose(result.expected_entropy, [entropy] * 2, rtol=1e-6)
    np.testing.assert_allclose(result.mutual_information, [0, 0], atol=1e-6)
    np.testing.assert_array_equal(result.variation_ratio, [0, 0])


def test_rate_zero_mean_equals_predict_and_std_is_zero(seed, rng):
    model = _classifier(rate=0.0)
    x = rng.normal(size=(5, 6)).astype("float32")
    result = mc_predict(model, x, n_samples=10, allow_deterministic=True)
    # The tiled batch may take other matmul kernels than predict: fp32 ulps.
    np.testing.assert_allclose(result.mean, model.predict(x, verbose=0), **TOL)
    np.testing.assert_allclose(result.std, 0.0, atol=1e-7)


def test_model_state_is_bit_identical_after_mc_predict(seed, rng):
    base = _classifier(rate=0.0)
    base.compile("sgd", "sparse_categorical_crossentropy")
    x = rng.normal(size=(16, 6)).astype("float32")
    base.fit(x, np.arange(16) % 4, epochs=1, verbose=0)  # Non-trivial BN stats.
    model = to_mc(
        keras.Sequential(
            [*base.layers[:-2], keras.layers.Dropout(0.4), base.layers[-1]]
        )
    )
    before = [np.array(v.numpy()) for v in model.variables]
    mc_predict(model, x, n_samples=30)
    mc_predict(model, x, n_samples=30, seed=5, batch_size=3)
    after = [np.array(v.numpy()) for v in model.variables]
    assert len(before) == len(after) > 4
    for old, new in zip(before, after, strict=True):
        np.testing.assert_array_equal(old, new)
    # The recipe mc_predict replaces does change them: the check can fail.
    model(x, training=True)
    bn = model.layers[1]
    assert not np.array_equal(bn.moving_mean.numpy(), before[4])


def test_seed_reproducibility(seed, rng):
    model = _classifier()
    x = rng.normal(size=(3, 6)).astype("float32")
    a = mc_predict(model, x, n_samples=20, seed=7)
    b = mc_predict(model, x, n_samples=20, seed=7)
    c = mc_predict(model, x, n_samples=20, seed=8)
    np.testing.assert_array_equal(a.mean, b.mean)
    assert not np.array_equal(a.mean, c.mean)
    keras.utils.set_random_seed(1)
    d = mc_predict(model, x, n_samples=20)
    keras.utils.set_random_seed(1)
    np.testing.assert_array_equal(d.mean, mc_predict(model, x, n_samples=20).mean)


def test_batch_shared_noise_shape_still_gives_independent_samples(seed):
    model = keras.Sequential(
        [keras.Input((8,)), MCDropout(0.5, noise_shape=(1, 8)), keras.layers.Dense(1)]
    )
    result = mc_predict(
        model, np.ones((2, 8)), n_samples=10, task="regression", return_samples=True
    )
    assert len({tuple(s.ravel()) for s in result.samples}) > 1
    # One mask for the whole batch, as in a plain call.
    np.testing.assert_array_equal(result.samples[:, 0], result.samples[:, 1])


def test_regression_and_binary_outputs(seed, rng):
    x = rng.normal(size=(4, 6)).astype("float32")
    reg = keras.Sequential([keras.Input((6,)), MCDropout(0.5), keras.layers.Dense(2)])
    result = mc_predict(reg, x, n_samples=9, task="regression", return_samples=True)
    assert result.predictive_entropy is None and result.variation_ratio is None
    np.testing.assert_allclose(result.mean, result.samples.mean(0), **TOL)
    np.testing.assert_allclose(result.std, result.samples.std(0), **TOL)

    binary = keras.Sequential(
        [keras.Input((6,)), MCDropout(0.5), keras.layers.Dense(1, activation="sigmoid")]
    )
    result = mc_predict(binary, x, n_samples=9, return_samples=True)
    assert result.mean.shape == (4, 1)
    two_class = np.concatenate([1 - result.samples, result.samples], axis=-1)
    expected = _reference(two_class)
    for name in ("predictive_entropy", "expected_entropy", "variation_ratio"):
        np.testing.assert_allclose(getattr(result, name), expected[name], **TOL)


def test_plan_chunks_literal_values():
    # 1 MiB budget / 1 KiB per row = 1024 rows per call.
    assert _mc_sampler.plan_chunks(5000, 100, None, 1024, 2**20, False) == (10, 100)
    assert _mc_sampler.plan_chunks(3, 100, None, 1024, 2**20, False) == (3, 100)
    assert _mc_sampler.plan_chunks(5000, 100, 64, 1024, 2**20, False) == (64, 16)
    assert _mc_sampler.plan_chunks(5000, 100, None, 1024, 2**20, True) == (1024, 1)
    assert _mc_sampler.plan_chunks(10, 7, None, 2**30, 2**20, False) == (1, 1)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_samples": 0}, "argument `n_samples`"),
        ({"n_samples": 2.5}, "argument `n_samples`"),
        ({"batch_size": 0}, "argument `batch_size`"),
        ({"seed": "1"}, "argument `seed`"),
        ({"task": "ranking"}, "argument `task`"),
        ({"allow_deterministic": 1}, "argument `allow_deterministic`"),
        ({"return_samples": "yes"}, "argument `return_samples`"),
    ],
)
def test_invalid_arguments(kwargs, match):
    with pytest.raises(ValueError, match=rf"Invalid value received for {match}"):
        mc_predict(_classifier(), np.ones((2, 6)), **kwargs)


def test_invalid_model():
    with pytest.raises(ValueError, match=r"argument `model`. Expected a keras.Model"):
        mc_predict(MCDropout(0.5), np.ones((2, 6)))


def test_nan_input():
    x = np.ones((2, 6))
    x[1, 2] = np.nan
    with pytest.raises(ValueError, match=r"argument `x`. Expected finite values"):
        mc_predict(_classifier(), x)


def test_mismatched_input_rows():
    a, b = keras.Input((2,)), keras.Input((3,))
    out = MCDropout(0.5)(keras.layers.Concatenate()([a, b]))
    model = keras.Model([a, b], out)
    with pytest.raises(
        ValueError, match=r"argument `x`. Expected arrays with the same"
    ):
        mc_predict(model, [np.ones((4, 2)), np.ones((5, 3))], task="regression")


def test_deterministic_model_error():
    model = keras.Sequential(
        [keras.Input((6,)), keras.layers.Dropout(0.5), keras.layers.Dense(2)]
    )
    with pytest.raises(ValueError, match=r"has no stochastic layer.*to_mc"):
        mc_predict(model, np.ones((2, 6)), task="regression")


def test_non_probability_output_error(seed):
    model = keras.Sequential([keras.Input((6,)), MCDropout(0.5), keras.layers.Dense(3)])
    with pytest.raises(ValueError, match=r"must output probabilities"):
        mc_predict(model, np.ones((2, 6)), n_samples=4)
