"""Tests for `kerasx.uncertainty.to_mc` / `from_mc`."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from kerasx import layers as kx_layers
from kerasx.uncertainty import from_mc, to_mc

KERAS_DROPOUTS = [
    ("dropout", lambda: keras.layers.Dropout(0.2, seed=1), "MCDropout"),
    ("alpha", lambda: keras.layers.AlphaDropout(0.2, seed=1), "MCAlphaDropout"),
    (
        "gaussian_dropout",
        lambda: keras.layers.GaussianDropout(0.2, seed=1),
        "MCGaussianDropout",
    ),
    (
        "gaussian_noise",
        lambda: keras.layers.GaussianNoise(0.2, seed=1),
        "MCGaussianNoise",
    ),
]


def _numpy(tensor):
    # Works for torch tensors that require grad, unlike `np.asarray`.
    return keras.ops.convert_to_numpy(tensor)


def _all_types_model():
    """Functional model using all seven dropout-family layers and a BN."""
    inputs = keras.Input((4, 4, 3))
    h = keras.layers.Conv2D(4, 3, padding="same", name="conv")(inputs)
    h = keras.layers.BatchNormalization(name="bn")(h)
    h = keras.layers.SpatialDropout2D(0.2, seed=1, name="sd2")(h)
    h = keras.layers.Reshape((16, 4))(h)
    h = keras.layers.SpatialDropout1D(0.2, seed=1, name="sd1")(h)
    v = keras.layers.Reshape((2, 2, 4, 4))(h)
    v = keras.layers.SpatialDropout3D(0.2, seed=1, name="sd3")(v)
    h = keras.layers.Flatten()(v)
    for name, make, _ in KERAS_DROPOUTS:
        layer = make()
        layer.name = name
        h = layer(h)
    outputs = keras.layers.Dense(3, activation="softmax", name="head")(h)
    return keras.Model(inputs, outputs, name="all_types")


EXPECTED_TYPES = {
    "sd1": "MCSpatialDropout1D",
    "sd2": "MCSpatialDropout2D",
    "sd3": "MCSpatialDropout3D",
    **{name: mc for name, _, mc in KERAS_DROPOUTS},
}


def _layers_by_name(model):
    return {layer.name: layer for layer in model._flatten_layers(include_self=False)}


def test_to_mc_maps_every_dropout_type_and_keeps_the_rest(seed):
    model = _all_types_model()
    mc_model = to_mc(model)
    old, new = _layers_by_name(model), _layers_by_name(mc_model)
    for name, expected in EXPECTED_TYPES.items():
        assert type(new[name]).__name__ == expected, name
        assert type(new[name]) is getattr(kx_layers, expected)
        assert new[name].get_config() == old[name].get_config()
        # The original model is not modified.
        assert type(old[name]).__module__.startswith("keras.")
    for name in ("conv", "bn", "head"):
        assert new[name] is old[name]
    assert len(mc_model.weights) == len(model.weights)
    x = np.ones((2, 4, 4, 3), "float32")
    np.testing.assert_array_equal(model.predict(x, verbose=0), _numpy(model(x)))
    assert not np.array_equal(
        mc_model.predict(x, verbose=0), mc_model.predict(x, verbose=0)
    )


def test_to_mc_shares_weights(seed):
    model = keras.Sequential(
        [
            keras.Input((3,)),
            keras.layers.Dense(4, name="dense"),
            keras.layers.Dropout(0.0),
            keras.layers.Dense(2, name="out"),
        ]
    )
    mc_model = to_mc(model)
    x = np.array([[1.0, 2.0, 3.0]], "float32")
    kernel = np.arange(12, dtype="float32").reshape(3, 4) / 10
    model.get_layer("dense").kernel.assign(kernel)
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(mc_model.get_layer("dense").kernel), kernel
    )
    mc_model.get_layer("out").bias.assign(np.array([5.0, -5.0], "float32"))
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(model.get_layer("out").bias), [5.0, -5.0]
    )
    # Rate 0: both models compute the same function of the shared weights.
    np.testing.assert_allclose(_numpy(mc_model(x)), _numpy(model(x)), rtol=1e-6)


def test_to_mc_exact_type_leaves_dropout_subclasses_alone():
    class MyDropout(keras.layers.Dropout):
        pass

    model = keras.Sequential([keras.Input((3,)), MyDropout(0.5)])
    assert type(to_mc(model).layers[0]) is MyDropout


def test_to_mc_nested_models_and_from_mc_inverts(seed):
    block = keras.Sequential(
        [keras.Input((6,)), keras.layers.Dense(6), keras.layers.Dropout(0.3)],
        name="block",
    )
    inputs = keras.Input((6,))
    h = block(inputs)
    h = keras.layers.AlphaDropout(0.1, name="alpha")(h)
    model = keras.Model(inputs, keras.layers.Dense(2)(h))

    mc_model = to_mc(model)
    new = _layers_by_name(mc_model)
    assert type(new["alpha"]) is kx_layers.MCAlphaDropout
    inner_types = [type(layer) for layer in mc_model.get_layer("block").layers]
    assert inner_types == [keras.layers.Dense, kx_layers.MCDropout]

    back = from_mc(mc_model)
    assert [type(layer) for layer in back.get_layer("block").layers] == [
        keras.layers.Dense,
        keras.layers.Dropout,
    ]
    assert type(_layers_by_name(back)["alpha"]) is keras.layers.AlphaDropout
    x = np.ones((3, 6), "float32")
    np.testing.assert_array_equal(back.predict(x, verbose=0), _numpy(model(x)))


def test_to_mc_round_trips_through_keras_file(seed, tmp_path):
    model = keras.Sequential(
        [keras.Input((5,)), keras.layers.Dense(5), keras.layers.Dropout(0.5)]
    )
    path = tmp_path / "mc.keras"
    to_mc(model).save(path)
    reloaded = keras.saving.load_model(path)
    assert type(reloaded.layers[1]) is kx_layers.MCDropout
    x = np.ones((4, 5), "float32")
    assert not np.array_equal(
        reloaded.predict(x, verbose=0), reloaded.predict(x, verbose=0)
    )


def test_to_mc_rejects_subclassed_model():
    class Net(keras.Model):
        def __init__(self):
            super().__init__(name="my_net")
            self.drop = keras.layers.Dropout(0.5)

        def call(self, x):
            return self.drop(x)

    with pytest.raises(ValueError, match=r"Model 'my_net' of type Net cannot be"):
        to_mc(Net())


def test_to_mc_rejects_custom_layer_hiding_dropout():
    class Block(keras.layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.drop = keras.layers.Dropout(0.5, name="hidden_drop")

        def call(self, x):
            return self.drop(x)

    model = keras.Sequential([keras.Input((3,)), Block(name="my_block")])
    with pytest.raises(
        ValueError, match=r"'my_block' \(Block\) contains layers \['hidden_drop'\]"
    ):
        to_mc(model)


def test_to_mc_invalid_model():
    with pytest.raises(
        ValueError, match=r"Invalid value received for argument `model`"
    ):
        to_mc(keras.layers.Dropout(0.5))


def test_from_mc_invalid_model():
    with pytest.raises(
        ValueError, match=r"Invalid value received for argument `model`"
    ):
        from_mc("model")
