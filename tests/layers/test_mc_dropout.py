"""Tests for the Monte Carlo dropout-family layers."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest
from keras import ops

from kerasx.layers import (
    MCAlphaDropout,
    MCDropout,
    MCGaussianDropout,
    MCGaussianNoise,
    MCSpatialDropout1D,
    MCSpatialDropout2D,
    MCSpatialDropout3D,
)
from kerasx.layers.mc_dropout import KERAS_TO_MC, MC_TO_KERAS

SELU_ALPHA_P = -1.6732632423543772848170429916717 * 1.0507009873554804934193349852946

# (layer factory, input shape) pairs covering every MC class.
LAYER_CASES = [
    (lambda seed=None: MCDropout(0.3, seed=seed), (4, 6)),
    (lambda seed=None: MCAlphaDropout(0.3, seed=seed), (4, 6)),
    (lambda seed=None: MCGaussianDropout(0.3, seed=seed), (4, 6)),
    (lambda seed=None: MCGaussianNoise(0.3, seed=seed), (4, 6)),
    (lambda seed=None: MCSpatialDropout1D(0.3, seed=seed), (4, 5, 6)),
    (lambda seed=None: MCSpatialDropout2D(0.3, seed=seed), (4, 3, 3, 6)),
    (lambda seed=None: MCSpatialDropout3D(0.3, seed=seed), (4, 2, 2, 2, 6)),
]
CASE_IDS = [
    "dropout",
    "alpha",
    "gaussian_dropout",
    "gaussian_noise",
    "spatial1d",
    "spatial2d",
    "spatial3d",
]


def _np(x):
    return np.asarray(ops.convert_to_numpy(x))


def _within_4_sigma(observed, expected, sigma):
    assert abs(observed - expected) < 4 * sigma, (observed, expected, sigma)


def test_twins_map_by_exact_type():
    assert len(KERAS_TO_MC) == 7
    for keras_cls, mc_cls in KERAS_TO_MC.items():
        assert mc_cls.__bases__[-1] is keras_cls
        assert MC_TO_KERAS[mc_cls] is keras_cls
    assert KERAS_TO_MC[keras.layers.SpatialDropout2D] is MCSpatialDropout2D


@pytest.mark.parametrize(("make", "shape"), LAYER_CASES, ids=CASE_IDS)
def test_config_round_trip_and_same_state_as_keras(make, shape):
    layer = make(seed=7)
    config = layer.get_config()
    clone = type(layer).from_config(config)
    assert clone.get_config() == config
    keras_layer = MC_TO_KERAS[type(layer)].from_config(config)
    assert keras_layer.get_config() == config
    layer.build(shape)
    keras_layer.build(shape)
    assert [v.shape for v in layer.variables] == [
        v.shape for v in keras_layer.variables
    ]
    assert layer.trainable_weights == []
    assert keras.saving.get_registered_name(type(layer)).startswith("kerasx>MC")


@pytest.mark.parametrize(("make", "shape"), LAYER_CASES, ids=CASE_IDS)
def test_stochastic_in_inference_call(make, shape, seed):
    layer = make()
    x = np.ones(shape, "float32")
    first = _np(layer(x, training=False))
    second = _np(layer(x))
    assert not np.array_equal(first, second)
    assert not np.array_equal(first, x)


@pytest.mark.parametrize(("make", "shape"), LAYER_CASES, ids=CASE_IDS)
def test_same_seed_same_masks_on_fresh_layers(make, shape):
    x = np.ones(shape, "float32")
    a, b, other = make(seed=11), make(seed=11), make(seed=12)
    first_a, first_b = _np(a(x)), _np(b(x))
    np.testing.assert_array_equal(first_a, first_b)
    np.testing.assert_array_equal(_np(a(x)), _np(b(x)))
    assert not np.array_equal(first_a, _np(other(x)))


@pytest.mark.parametrize(("make", "shape"), LAYER_CASES, ids=CASE_IDS)
def test_stochastic_in_predict_and_after_keras_reload(make, shape, seed, tmp_path):
    model = keras.Sequential([keras.Input(shape[1:]), make()])
    x = np.ones((8, *shape[1:]), "float32")
    first = model.predict(x, verbose=0)
    second = model.predict(x, verbose=0)
    assert not np.array_equal(first, second)
    # Identical input rows get different noise within one predict call.
    assert not np.array_equal(first[0], first[1])

    path = tmp_path / "mc.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path)
    assert type(reloaded.layers[0]) is type(model.layers[0])
    assert reloaded.layers[0].get_config() == model.layers[0].get_config()
    again = reloaded.predict(x, verbose=0)
    assert not np.array_equal(again, reloaded.predict(x, verbose=0))


def test_dropout_mask_statistics():
    rate, n = 0.3, 200 * 100
    y = _np(MCDropout(rate, seed=3)(np.ones((200, 100), "float32")))
    np.testing.assert_allclose(np.unique(y), [0.0, 1.0 / (1.0 - rate)], rtol=1e-6)
    _within_4_sigma(np.mean(y == 0), rate, math.sqrt(rate * (1 - rate) / n))


def test_dropout_noise_shape_shares_the_mask():
    y = _np(MCDropout(0.5, noise_shape=(None, 1, 4), seed=3)(np.ones((3, 5, 4))))
    np.testing.assert_array_equal(y, np.broadcast_to(y[:, :1, :], y.shape))


def test_alpha_dropout_statistics():
    rate, n = 0.2, 200 * 100
    y = _np(MCAlphaDropout(rate, seed=3)(np.zeros((200, 100), "float32")))
    a = ((1 - rate) * (1 + rate * SELU_ALPHA_P**2)) ** -0.5
    b = -a * SELU_ALPHA_P * rate
    dropped = np.isclose(y, a * SELU_ALPHA_P + b, rtol=1e-5)
    kept = np.isclose(y, b, rtol=1e-5)
    assert np.all(dropped | kept)
    _within_4_sigma(dropped.mean(), rate, math.sqrt(rate * (1 - rate) / n))


def test_gaussian_dropout_statistics():
    rate, n = 0.3, 200 * 100
    y = _np(MCGaussianDropout(rate, seed=3)(np.ones((200, 100), "float32")))
    std = math.sqrt(rate / (1 - rate))
    _within_4_sigma(y.mean(), 1.0, std / math.sqrt(n))
    # For a normal sample, std(sample std) ~= sigma / sqrt(2 n).
    _within_4_sigma(y.std(), std, std / math.sqrt(2 * n))


def test_gaussian_noise_statistics():
    stddev, n = 0.5, 200 * 100
    y = _np(MCGaussianNoise(stddev, seed=3)(np.full((200, 100), 2.0, "float32")))
    _within_4_sigma(y.mean(), 2.0, stddev / math.sqrt(n))
    _within_4_sigma(y.std(), stddev, stddev / math.sqrt(2 * n))


@pytest.mark.parametrize(
    ("layer", "shape"),
    [
        (MCSpatialDropout1D(0.4, seed=3), (100, 3, 20)),
        (MCSpatialDropout2D(0.4, seed=3), (100, 2, 3, 20)),
        (MCSpatialDropout3D(0.4, seed=3), (100, 2, 2, 2, 20)),
    ],
    ids=["1d", "2d", "3d"],
)
def test_spatial_dropout_drops_whole_channels(layer, shape):
    rate = 0.4
    y = _np(layer(np.ones(shape, "float32")))
    per_channel = y.reshape(shape[0], -1, shape[-1])
    # Every feature map is either entirely dropped or entirely kept.
    np.testing.assert_array_equal(per_channel.min(axis=1), per_channel.max(axis=1))
    maps = per_channel[:, 0, :]
    n = maps.size
    _within_4_sigma(np.mean(maps == 0), rate, math.sqrt(rate * (1 - rate) / n))


def test_spatial_dropout_channels_first():
    y = _np(
        MCSpatialDropout2D(0.5, data_format="channels_first", seed=3)(
            np.ones((4, 6, 3, 3), "float32")
        )
    )
    np.testing.assert_array_equal(y, np.broadcast_to(y[:, :, :1, :1], y.shape))


def test_rate_zero_is_identity():
    x = np.arange(12, dtype="float32").reshape(3, 4)
    np.testing.assert_array_equal(_np(MCDropout(0.0)(x)), x)
    np.testing.assert_array_equal(_np(MCGaussianNoise(0.0)(x)), x)


def test_invalid_rate():
    with pytest.raises(ValueError, match=r"Invalid value received for argument `rate`"):
        MCDropout(1.5)


def test_invalid_stddev():
    with pytest.raises(
        ValueError, match=r"Invalid value received for argument `stddev`"
    ):
        MCGaussianNoise(-0.1)


def test_invalid_noise_shape():
    with pytest.raises(
        ValueError, match=r"Invalid value received for argument `noise_shape`"
    ):
        MCDropout(0.5, noise_shape="batch")


@pytest.mark.backend("tensorflow")
def test_stochastic_under_xla_tf_function():
    import tensorflow as tf

    layer = MCDropout(0.5, seed=5)
    fn = tf.function(lambda x: layer(x, training=False), jit_compile=True)
    x = tf.ones((4, 16))
    first, second = fn(x).numpy(), fn(x).numpy()
    assert not np.array_equal(first, second)
    assert set(np.unique(first)) <= {0.0, 2.0}


@pytest.mark.backend("jax")
def test_stochastic_under_jax_jit():
    import jax

    layer = MCDropout(0.5, seed=5)
    layer.build((4, 16))
    x = np.ones((4, 16), "float32")

    @jax.jit
    def step(non_trainable, x):
        return layer.stateless_call([], non_trainable, x, training=False)

    state = [v.value for v in layer.non_trainable_variables]
    first, state = step(state, x)
    second, state = step(state, x)
    assert not np.array_equal(np.asarray(first), np.asarray(second))
    assert set(np.unique(np.asarray(first))) <= {0.0, 2.0}


def _lowbias32(x):
    """NumPy uint32 reference of the hash (C. Wellons' lowbias32)."""
    x = np.asarray(x, dtype=np.uint64) & 0xFFFFFFFF
    x ^= x >> 16
    x = (x * 0x7FEB352D) & 0xFFFFFFFF
    x ^= x >> 15
    x = (x * 0x846CA68B) & 0xFFFFFFFF
    x ^= x >> 16
    return x


def _reference_uniform(seed, row, sample, stream, size):
    golden, m1 = 0x9E3779B9, 0x7FEB352D
    seed_key = _lowbias32(_lowbias32(seed) + golden)
    key = _lowbias32(seed_key ^ _lowbias32(row + m1))
    key = _lowbias32(key ^ _lowbias32(sample + golden))
    salt = _lowbias32(np.arange(size) + stream * golden)
    bits = _lowbias32(_lowbias32(key ^ salt) + golden)
    return (bits >> 8).astype(np.float64) * 2.0**-24


def test_row_noise_matches_numpy_uint32_reference():
    from kerasx.layers.mc_dropout import RowNoise

    seed = 2**32 - 5  # Above 2**31: exercises the int32 wrap-around.
    counters = np.array([[np.uint32(seed).view(np.int32), row, 3] for row in (0, 7)])
    noise = RowNoise(counters.astype(np.int32), samples_per_call=2)
    first = keras.ops.convert_to_numpy(noise.uniform((2, 3)))
    second = keras.ops.convert_to_numpy(noise.uniform((4,)))
    assert first.shape == (4, 2, 3) and second.shape == (4, 4)
    # Tiled batch, sample-major: sample 3 of rows 0 and 7, then sample 4.
    for position, (sample, row) in enumerate([(3, 0), (3, 7), (4, 0), (4, 7)]):
        expected = _reference_uniform(seed, row, sample, 1, 6).reshape(2, 3)
        np.testing.assert_array_equal(first[position], expected)
        np.testing.assert_array_equal(
            second[position], _reference_uniform(seed, row, sample, 2, 4)
        )


def test_layers_use_row_noise_only_inside_the_scope():
    from kerasx.layers.mc_dropout import row_noise

    layer = MCDropout(0.5, seed=1)
    x = np.ones((2, 64), dtype="float32")
    counters = np.array([[9, 0, 0], [9, 1, 0]], dtype=np.int32)
    with row_noise(counters, samples_per_call=1):
        a = keras.ops.convert_to_numpy(layer(x))
    with row_noise(counters, samples_per_call=1):
        b = keras.ops.convert_to_numpy(layer(x))
    np.testing.assert_array_equal(a, b)  # Keyed by the counters, not the state.
    assert not np.array_equal(a[0], a[1])  # Rows differ.
    assert set(np.unique(a)) == {0.0, 2.0}
    outside = [keras.ops.convert_to_numpy(layer(x)) for _ in range(2)]
    assert not np.array_equal(outside[0], outside[1])  # SeedGenerator noise again.
