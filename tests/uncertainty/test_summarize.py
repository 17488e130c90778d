"""Tests for `kerasx.uncertainty.summarize` and `ensemble_predict`."""

from __future__ import annotations

import json
import math
import pathlib

import keras
import numpy as np
import pytest

from kerasx.layers import MCDropout
from kerasx.uncertainty import ensemble_predict, mc_predict, summarize

BAAL = json.loads(
    (pathlib.Path(__file__).parents[1] / "fixtures" / "baal_bald.json").read_text()
)


def _numpy_reference(samples):
    """The uncertainty measures of a (T, n, C) stack, in float64 NumPy."""
    p = np.asarray(samples, dtype=np.float64)
    mean = p.mean(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        plogp = np.where(p > 0, p * np.log(p), 0.0)
        mlogm = np.where(mean > 0, mean * np.log(mean), 0.0)
    predictive = -mlogm.sum(-1)
    expected = -plogp.sum(-1).mean(0)
    votes = np.stack([np.bincount(r, minlength=p.shape[-1]) for r in p.argmax(-1).T])
    return {
        "mean": mean,
        "std": p.std(axis=0),
        "predictive_entropy": predictive,
        "expected_entropy": expected,
        "mutual_information": predictive - expected,
        "variation_ratio": 1 - votes.max(axis=1) / p.shape[0],
    }


def test_literal_two_member_values():
    # Members (0.9, 0.1) and (0.1, 0.9): mean (0.5, 0.5), H = ln 2,
    # E[H] = -(0.9 ln 0.9 + 0.1 ln 0.1), one vote each.
    result = summarize(np.array([[[0.9, 0.1]], [[0.1, 0.9]]]))
    h_member = -(0.9 * math.log(0.9) + 0.1 * math.log(0.1))
    np.testing.assert_allclose(result.mean, [[0.5, 0.5]])
    np.testing.assert_allclose(result.std, [[0.4, 0.4]], rtol=1e-6)
    np.testing.assert_allclose(result.predictive_entropy, [math.log(2)], rtol=1e-6)
    np.testing.assert_allclose(result.expected_entropy, [h_member], rtol=1e-6)
    np.testing.assert_allclose(
        result.mutual_information, [math.log(2) - h_member], rtol=1e-6
    )
    np.testing.assert_allclose(result.variation_ratio, [0.5])
    assert result.n_samples == 2 and result.samples.shape == (2, 1, 2)


@pytest.mark.parametrize("case", sorted(BAAL["cases"]))
def test_matches_baal_bald_and_entropy(case):
    data = BAAL["cases"][case]
    result = summarize(np.array(data["samples"]))
    # Statistics in float64, stored as float32: 1e-6 absolute on values <= ln 10.
    np.testing.assert_allclose(result.mutual_information, data["bald"], atol=1e-6)
    np.testing.assert_allclose(result.predictive_entropy, data["entropy"], atol=1e-6)


def test_matches_numpy_float64(rng):
    samples = rng.dirichlet(np.ones(4) * 0.5, size=(17, 9))
    samples[0, 0] = [1.0, 0.0, 0.0, 0.0]  # Exact zeros: 0 log 0 = 0.
    result = summarize(samples)
    for name, expected in _numpy_reference(samples).items():
        np.testing.assert_allclose(
            getattr(result, name), expected, rtol=1e-6, atol=1e-7, err_msg=name
        )


def test_binary_and_regression_stacks(rng):
    p = rng.uniform(size=(6, 5))
    binary = summarize(p)
    assert binary.mean.shape == (5,) and binary.samples.shape == (6, 5)
    two = _numpy_reference(np.stack([1 - p, p], axis=-1))
    np.testing.assert_allclose(
        binary.mutual_information, two["mutual_information"], rtol=1e-6, atol=1e-7
    )
    np.testing.assert_allclose(binary.std, p.std(0), rtol=1e-6)
    values = rng.normal(size=(6, 5, 2)) * 10
    regression = summarize(values, task="regression")
    np.testing.assert_allclose(regression.mean, values.mean(0), rtol=1e-6)
    np.testing.assert_allclose(regression.std, values.std(0), rtol=1e-6)
    assert regression.mutual_information is None


def test_same_statistics_as_mc_predict(seed, rng):
    model = keras.Sequential(
        [
            keras.Input((6,)),
            keras.layers.Dense(8),
            MCDropout(0.5),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    x = rng.normal(size=(4, 6)).astype("float32")
    result = mc_predict(model, x, n_samples=12, seed=0, return_samples=True)
    again = summarize(result.samples)
    # The compiled sampler sums float32 entropies; summarize sums float64 ones.
    for name in (
        "mean",
        "std",
        "predictive_entropy",
        "expected_entropy",
        "mutual_information",
        "variation_ratio",
    ):
        np.testing.assert_allclose(
            getattr(again, name),
            getattr(result, name),
            rtol=1e-5,
            atol=1e-6,
            err_msg=name,
        )


@pytest.mark.parametrize(
    ("samples", "match"),
    [
        (np.ones(3), r"`samples`. Expected a non-empty array of shape \(T, N\)"),
        (np.zeros((2, 0, 3)), r"`samples`. Expected a non-empty array"),
        ("abc", r"`samples`. Expected a numeric array"),
        (
            np.array([[[0.5, 0.6]]]),
            r"`samples`. Expected finite probabilities.*"
            r"<row 0: values in \[0.5, 0.6\] and a sum 0.1 away from 1>",
        ),
        (np.array([[[np.nan, 1.0]]]), r"`samples`. Expected finite.*NaN or inf"),
    ],
)
def test_invalid_samples(samples, match):
    with pytest.raises(
        ValueError, match=rf"Invalid value received for argument {match}"
    ):
        summarize(samples)


def test_invalid_task():
    with pytest.raises(ValueError, match=r"argument `task`. Expected one of"):
        summarize(np.ones((2, 3)), task="ranking")


def test_regression_refuses_nan():
    with pytest.raises(ValueError, match=r"`samples`. Expected finite values"):
        summarize(np.array([[1.0, np.nan]]), task="regression")


def _member(seed_value, n_outputs=1):
    keras.utils.set_random_seed(seed_value)
    inputs = keras.Input((4,))
    hidden = keras.layers.Dense(8, activation="relu")(inputs)
    outputs = [
        keras.layers.Dense(3, activation="softmax")(hidden) for _ in range(n_outputs)
    ]
    return keras.Model(inputs, outputs if n_outputs > 1 else outputs[0])


def test_ensemble_predict_equals_summarize_of_member_predictions(rng):
    members = [_member(s) for s in range(4)]
    x = rng.normal(size=(10, 4)).astype("float32")
    result = ensemble_predict(members, x, batch_size=3)
    stack = np.stack([m.predict(x, verbose=0) for m in members])
    for name, expected in _numpy_reference(stack).items():
        np.testing.assert_allclose(
            getattr(result, name), expected, rtol=1e-5, atol=1e-6, err_msg=name
        )
    assert result.n_samples == 4


def test_ensemble_predict_multi_output_and_dataset(rng):
    members = [_member(s, n_outputs=2) for s in range(3)]
    x = rng.normal(size=(6, 4)).astype("float32")
    results = ensemble_predict(members, x)
    assert isinstance(results, list) and len(results) == 2
    batches = _Batches(x)
    from_dataset = ensemble_predict(members, batches)
    np.testing.assert_allclose(from_dataset[1].mean, results[1].mean, rtol=1e-6)


class _Batches(keras.utils.PyDataset):
    def __init__(self, x):
        super().__init__()
        self.x = x

    def __len__(self):
        return 2

    def __getitem__(self, index):
        return (self.x[index * 3 : (index + 1) * 3],)


@pytest.mark.parametrize(
    ("models", "match"),
    [
        ("not models", r"`models`. Expected a sequence of keras.Model"),
        (None, r"`models`. Expected a sequence of keras.Model"),
        ([1, 2], r"`models`. Expected a sequence of keras.Model"),
    ],
)
def test_ensemble_invalid_models(models, match):
    with pytest.raises(
        ValueError, match=rf"Invalid value received for argument {match}"
    ):
        ensemble_predict(models, np.ones((2, 4)))


def test_ensemble_needs_two_members():
    with pytest.raises(ValueError, match=r"`models`. Expected at least 2 models"):
        ensemble_predict([_member(0)], np.ones((2, 4)))


def test_ensemble_refuses_one_shot_generator():
    members = [_member(0), _member(1)]
    with pytest.raises(ValueError, match=r"`x`. Expected inputs every member can read"):
        ensemble_predict(members, ((np.ones((2, 4)),) for _ in range(1)))


def test_ensemble_mismatched_outputs():
    other = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(2, activation="softmax")]
    )
    with pytest.raises(ValueError, match=r"`models`. Expected models whose outputs"):
        ensemble_predict([_member(0), other], np.ones((2, 4)))


def test_ensemble_invalid_batch_size():
    with pytest.raises(ValueError, match=r"`batch_size`. Expected an integer >= 1"):
        ensemble_predict([_member(0), _member(1)], np.ones((2, 4)), batch_size=0)
