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
        rows, per_call = _mc_sampler.plan_chunks(7, 23, None, 2000, 6_000)
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
    # The tiled samples may take other matmul kernels per row (oneDNN or not):
    # at most one float32 ulp of 0.5 apart.
    np.testing.assert_allclose(
        result.std, np.zeros((2, 3)), atol=np.spacing(np.float32(0.5))
    )
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
    before = [keras.ops.convert_to_numpy(v) for v in model.variables]
    mc_predict(model, x, n_samples=30)
    mc_predict(model, x, n_samples=30, seed=5, batch_size=3)
    after = [keras.ops.convert_to_numpy(v) for v in model.variables]
    assert len(before) == len(after) > 4
    for old, new in zip(before, after, strict=True):
        np.testing.assert_array_equal(old, new)
    # The recipe mc_predict replaces does change them: the check can fail.
    model(x, training=True)
    bn = model.layers[1]
    assert not np.array_equal(keras.ops.convert_to_numpy(bn.moving_mean), before[4])


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
    assert _mc_sampler.plan_chunks(5000, 100, None, 1024, 2**20) == (10, 100)
    assert _mc_sampler.plan_chunks(3, 100, None, 1024, 2**20) == (3, 100)
    assert _mc_sampler.plan_chunks(5000, 100, 64, 1024, 2**20) == (64, 16)
    assert _mc_sampler.plan_chunks(10, 7, None, 2**30, 2**20) == (1, 1)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (
            {"n_samples": 0},
            r"`n_samples`. Expected an integer in \[1, 2147483648\]. "
            r"Received: n_samples=0",
        ),
        ({"n_samples": 2.5}, r"`n_samples`. Expected an integer in \[1, "),
        ({"n_samples": True}, r"`n_samples`. Expected an integer in \[1, "),
        ({"batch_size": 0}, r"`batch_size`. Expected an integer >= 1 or None"),
        ({"seed": "1"}, r"`seed`. Expected an integer in \[0, 4294967295\] or None"),
        (
            {"seed": -1},
            r"`seed`. Expected an integer in \[0, 4294967295\] or None. "
            r"Received: seed=-1",
        ),
        (
            {"task": "ranking"},
            r"`task`. Expected one of \['classification', 'regression'\]",
        ),
        ({"allow_deterministic": 1}, r"`allow_deterministic`. Expected a bool"),
        ({"return_samples": "yes"}, r"`return_samples`. Expected a bool"),
        ({"steps": 2}, r"`steps`. Expected None for array inputs"),
    ],
)
def test_invalid_arguments(kwargs, match):
    with pytest.raises(
        ValueError, match=rf"Invalid value received for argument {match}"
    ):
        mc_predict(_classifier(), np.ones((2, 6)), **kwargs)


def test_numpy_integer_arguments(seed):
    model = _classifier()
    a = mc_predict(
        model,
        np.ones((2, 6)),
        n_samples=np.int64(10),
        seed=np.int64(3),
        batch_size=np.int32(1),
    )
    b = mc_predict(model, np.ones((2, 6)), n_samples=10, seed=3)
    assert a.n_samples == 10 and type(a.n_samples) is int
    np.testing.assert_allclose(a.mean, b.mean, **TOL)


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


def test_non_probability_output_error_names_the_row(seed):
    model = keras.Sequential([keras.Input((6,)), MCDropout(0.5), keras.layers.Dense(3)])
    with pytest.raises(
        ValueError,
        match=r"model '.*' must output finite probabilities .* samples for row 0 of "
        r"`x` have values in .* Add a softmax output or pass task='regression'",
    ):
        mc_predict(model, np.ones((2, 6)), n_samples=4)


def test_nan_weights_raise_naming_the_row(seed):
    # A NaN in the output layer (TensorFlow's relu maps a NaN hidden unit to 0,
    # so a NaN earlier in the network may not reach the output on every backend).
    model = _classifier(batch_norm=False)
    kernel, bias = model.layers[-1].get_weights()
    bias[2] = np.nan
    model.layers[-1].set_weights([kernel, bias])
    with pytest.raises(
        ValueError,
        match=r"must output finite probabilities.*row 0 of `x` have NaN or inf",
    ):
        mc_predict(model, np.ones((4, 6)), n_samples=3)
    with pytest.raises(ValueError, match=r"must output finite values.*row 0 of `x`"):
        mc_predict(model, np.ones((4, 6)), n_samples=3, task="regression")


def test_bad_row_is_named_by_its_index_in_x(seed):
    # Row 5 (second chunk of 3 rows): logits 1e30 * 1e10 overflow, softmax NaN.
    model = keras.Sequential(
        [keras.Input((1,)), MCDropout(0.1), keras.layers.Dense(2, activation="softmax")]
    )
    model.layers[-1].set_weights([np.array([[1e10, -1e10]]), np.zeros(2)])
    x = np.zeros((7, 1), dtype="float32")
    x[5] = 1e30
    with pytest.raises(ValueError, match=r"samples for row 5 of `x` have NaN or inf"):
        mc_predict(model, x, n_samples=2, batch_size=3)


@pytest.mark.parametrize("batch_size", [1, 2, 5, 7])
def test_same_seed_same_samples_whatever_batch_size(seed, rng, batch_size):
    model = _classifier()
    x = rng.normal(size=(7, 6)).astype("float32")
    reference = mc_predict(model, x, n_samples=13, seed=11, return_samples=True)
    result = mc_predict(
        model, x, n_samples=13, seed=11, batch_size=batch_size, return_samples=True
    )
    # Same masks; the Dense layers' float32 sums may round differently with
    # another batch shape (a few ulps).
    np.testing.assert_allclose(result.samples, reference.samples, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        result.mutual_information, reference.mutual_information, rtol=1e-4, atol=1e-6
    )


def test_same_seed_same_masks_exactly(seed):
    # Output = the dropout mask itself: exact equality across chunkings.
    model = keras.Sequential([keras.Input((20,)), MCDropout(0.5)])
    x = np.ones((6, 20), dtype="float32")
    kwargs = dict(n_samples=9, seed=2**32 - 1, task="regression", return_samples=True)
    a = mc_predict(model, x, **kwargs).samples
    b = mc_predict(model, x, batch_size=4, **kwargs).samples
    np.testing.assert_array_equal(a, b)
    assert set(np.unique(a)) == {0.0, 2.0}
    # Rows and samples get different masks; about half of the units are kept.
    assert len({row.tobytes() for row in a.reshape(-1, 20)}) == 54
    assert abs(np.mean(a == 2.0) - 0.5) < 4 * math.sqrt(0.25 / a.size)


class _Rows(keras.utils.PyDataset):
    def __init__(self, x, batch, **kwargs):
        super().__init__(**kwargs)
        self.x, self.batch = x, batch

    def __len__(self):
        return math.ceil(len(self.x) / self.batch)

    def __getitem__(self, index):
        rows = self.x[index * self.batch : (index + 1) * self.batch]
        return rows, np.zeros(len(rows))  # (x, y): the targets are ignored.


def test_dataset_inputs_match_the_array_path(seed, rng):
    model = _classifier()
    x = rng.normal(size=(10, 6)).astype("float32")
    reference = mc_predict(model, x, n_samples=8, seed=5)

    def generator():
        while True:  # Never ends: `steps` stops it.
            for start in range(0, 10, 4):
                yield (x[start : start + 4],)  # The format Model.predict reads.

    inputs = {
        "PyDataset": (_Rows(x, 3), {}),
        "generator": (generator(), {"steps": 3}),
        "finite_generator": ((batch for batch in [(x[:6],), (x[6:],)]), {}),
    }
    for name, (data, kwargs) in inputs.items():
        result = mc_predict(model, data, n_samples=8, seed=5, **kwargs)
        np.testing.assert_allclose(result.mean, reference.mean, **TOL, err_msg=name)
        np.testing.assert_allclose(
            result.mutual_information,
            reference.mutual_information,
            rtol=1e-4,
            atol=1e-6,
            err_msg=name,
        )


def test_tf_data_input(seed, rng):
    tf = pytest.importorskip("tensorflow")
    model = _classifier()
    x = rng.normal(size=(10, 6)).astype("float32")
    reference = mc_predict(model, x, n_samples=8, seed=5)
    dataset = tf.data.Dataset.from_tensor_slices((x, np.zeros(10))).batch(4)
    result = mc_predict(model, dataset, n_samples=8, seed=5)
    np.testing.assert_allclose(result.mean, reference.mean, **TOL)


def test_torch_dataloader_input(seed, rng):
    torch = pytest.importorskip("torch")
    model = _classifier()
    x = rng.normal(size=(10, 6)).astype("float32")
    reference = mc_predict(model, x, n_samples=8, seed=5)
    dataset = torch.utils.data.TensorDataset(torch.from_numpy(x))
    loader = torch.utils.data.DataLoader(dataset, batch_size=4)
    result = mc_predict(model, loader, n_samples=8, seed=5)
    np.testing.assert_allclose(result.mean, reference.mean, **TOL)


def test_dict_inputs_and_multi_output_model(seed, rng):
    a, b = keras.Input((3,), name="a"), keras.Input((2,), name="b")
    hidden = MCDropout(0.4)(keras.layers.Concatenate()([a, b]))
    outputs = {
        "label": keras.layers.Dense(3, activation="softmax", name="label")(hidden),
        "flag": keras.layers.Dense(1, activation="sigmoid", name="flag")(hidden),
    }
    model = keras.Model({"a": a, "b": b}, outputs)
    x = {"a": rng.normal(size=(5, 3)), "b": rng.normal(size=(5, 2))}
    results = mc_predict(model, x, n_samples=11, seed=1, return_samples=True)
    assert sorted(results) == ["flag", "label"]
    assert results["label"].mean.shape == (5, 3) and results["flag"].mean.shape == (
        5,
        1,
    )
    for name, result in results.items():
        expected = _reference(
            result.samples
            if name == "label"
            else np.concatenate([1 - result.samples, result.samples], -1)
        )
        np.testing.assert_allclose(
            result.expected_entropy, expected["expected_entropy"], **TOL
        )
    # Both heads see the same dropout mask in each sample: dropped inputs
    # shift both. The list form of the same model gives the same numbers.
    as_list = keras.Model([a, b], [outputs["label"], outputs["flag"]])
    listed = mc_predict(as_list, [x["a"], x["b"]], n_samples=11, seed=1)
    np.testing.assert_allclose(listed[0].mean, results["label"].mean, **TOL)
    np.testing.assert_allclose(listed[1].mean, results["flag"].mean, **TOL)


@pytest.mark.parametrize(
    "layer",
    [
        lambda: keras.layers.AlphaDropout(0.3),
        lambda: keras.layers.GaussianDropout(0.3),
        lambda: keras.layers.GaussianNoise(0.5),
    ],
    ids=["alpha", "gaussian_dropout", "gaussian_noise"],
)
def test_every_mc_layer_draws_row_keyed_noise(seed, rng, layer):
    model = to_mc(keras.Sequential([keras.Input((4,)), layer()]))
    x = rng.normal(size=(400, 4)).astype("float32")
    kwargs = dict(n_samples=25, seed=9, task="regression", return_samples=True)
    a = mc_predict(model, x, **kwargs).samples
    b = mc_predict(model, x, batch_size=7, **kwargs).samples
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
    # The Keras layer's own training-mode moments, over 40 000 draws per column.
    reference = np.stack(
        [keras.ops.convert_to_numpy(model.layers[0](x)) for _ in range(25)]
    )
    np.testing.assert_allclose(
        a.mean(axis=(0, 1)), reference.mean(axis=(0, 1)), atol=0.05
    )
    np.testing.assert_allclose(
        a.std(axis=(0, 1)), reference.std(axis=(0, 1)), rtol=0.05
    )
