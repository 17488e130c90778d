"""ActivationStats: statistics and histograms against NumPy on the layer outputs."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest

from kerasx.callbacks import ActivationStats


def _drive(stats, model, epochs=1):
    """Keras' callback protocol for `epochs` epochs, without compiling a `fit`."""
    stats.set_model(model)
    stats.on_train_begin()
    all_logs = []
    for epoch in range(epochs):
        logs = {}
        stats.on_epoch_begin(epoch)
        stats.on_epoch_end(epoch, logs)
        all_logs.append(logs)
    return all_logs


def test_hand_computed_relu_statistics():
    # Dense(2, relu) with identity kernel: the outputs are max(x, 0).
    model = keras.Sequential(
        [keras.Input((2,)), keras.layers.Dense(2, activation="relu", name="relu")]
    )
    model.set_weights([np.eye(2, dtype="float32"), np.zeros(2, "float32")])
    x = np.array([[1.0, -1.0], [3.0, 0.04]], "float32")  # outputs 1, 0, 3, 0.04
    stats = ActivationStats(x, bins=4, hist_range=(0.0, 4.0))
    (logs,) = _drive(stats, model)
    outputs = np.array([1.0, 0.0, 3.0, np.float32(0.04)])
    assert logs["act_mean/relu"] == pytest.approx(outputs.mean(), rel=1e-7)
    assert logs["act_std/relu"] == pytest.approx(outputs.std(), rel=1e-7)
    assert logs["act_near_zero/relu"] == 0.5  # 0 and 0.04 are <= 0.05
    assert "act_saturated/relu" not in logs
    # Bins [0, 1), [1, 2), [2, 3), [3, 4]: {0, 0.04}, {1}, {}, {3}.
    np.testing.assert_array_equal(stats.histograms["relu"][0], [2, 1, 0, 1])
    np.testing.assert_array_equal(stats.bin_edges, [0.0, 1.0, 2.0, 3.0, 4.0])


def test_saturation_of_tanh_and_sigmoid():
    inputs = keras.Input((1,))
    tanh = keras.layers.Dense(1, activation="tanh", name="tanh")(inputs)
    sigmoid = keras.layers.Dense(1, activation="sigmoid", name="sigmoid")(inputs)
    model = keras.Model(inputs, [tanh, sigmoid])
    model.set_weights([np.ones((1, 1), "float32"), np.zeros(1, "float32")] * 2)
    # tanh(3) = 0.99505 >= 0.99; |2 sigmoid(6) - 1| = tanh(3): both saturate at
    # +-3 (tanh) and +-6 (sigmoid); 0.1 and 1 do not.
    x = np.array([[0.1], [3.0], [-3.0], [6.0], [-6.0], [1.0]], "float32")
    (logs,) = _drive(ActivationStats(x), model)
    assert logs["act_saturated/tanh"] == pytest.approx(4 / 6)
    assert logs["act_saturated/sigmoid"] == pytest.approx(2 / 6)


def _deep_model():
    keras.utils.set_random_seed(5)
    inputs = keras.Input((6,))
    h = keras.layers.Dense(8, activation="tanh", name="tanh")(inputs)
    h = keras.layers.Dropout(0.5, name="dropout")(h)
    h = keras.layers.Dense(8, name="linear")(h)
    h = keras.layers.BatchNormalization(name="bn")(h)
    h = keras.layers.Activation("relu", name="relu")(h)
    h = keras.layers.Dense(8, activation="sigmoid", name="sigmoid")(h)
    outputs = keras.layers.Dense(3, activation="softmax", name="out")(h)
    return keras.Model(inputs, outputs)


def _assert_histogram_matches(counts, values, bins=12, hist_range=(0.0, 3.0)):
    """`counts` is NumPy's histogram of `values`, up to values on an edge.

    A value within a few float32 ulps of a bin edge (tanh saturating to 1.0 in
    one compiled program and to 0.99999994 in the other) may land on either
    side: the count below each edge must lie between the counts below
    `edge - tol` and `edge + tol`. A histogram off by one bin fails.
    """
    expected, edges = np.histogram(values, bins=bins, range=hist_range)
    assert np.sum(counts) == np.sum(expected)
    below = np.cumsum(counts)[:-1]
    tol = 4 * np.finfo(np.float32).eps * max(abs(e) for e in hist_range)
    inside = values[(values >= hist_range[0]) & (values <= hist_range[1])]
    for edge, count in zip(edges[1:-1], below, strict=True):
        assert np.sum(inside < edge - tol) <= count <= np.sum(inside < edge + tol)


def test_statistics_equal_numpy_on_the_intermediate_outputs():
    model = _deep_model()
    x = np.random.default_rng(6).normal(size=(32, 6)).astype("float32") * 3
    stats = ActivationStats(x, bins=12, training=False, hist_range=(0.0, 3.0))
    (logs,) = _drive(stats, model)
    assert stats.layer_names == ["tanh", "linear", "bn", "relu", "sigmoid", "out"]
    for name in stats.layer_names:
        probe = keras.Model(model.input, model.get_layer(name).output)
        a = np.asarray(keras.ops.convert_to_numpy(probe(x, training=False)), "f8")
        # The probe model is another compiled program than the callback's, so
        # its float32 outputs may differ in the last bit (XLA fuses each its
        # own way): a few float32 ulps, far below what a wrong layer would give.
        assert logs[f"act_mean/{name}"] == pytest.approx(a.mean(), rel=1e-6, abs=1e-7)
        assert logs[f"act_std/{name}"] == pytest.approx(a.std(), rel=1e-6)
        assert logs[f"act_near_zero/{name}"] == np.mean(np.abs(a) <= 0.05)
        _assert_histogram_matches(stats.histograms[name][0], np.abs(a))
    saturated = {key for key in logs if key.startswith("act_saturated/")}
    assert saturated == {"act_saturated/tanh", "act_saturated/sigmoid"}
    a = keras.ops.convert_to_numpy(
        keras.Model(model.input, model.get_layer("sigmoid").output)(x)
    )
    assert logs["act_saturated/sigmoid"] == np.mean(np.abs(2.0 * a - 1.0) >= 0.99)


def test_training_is_bit_identical_with_and_without_the_callback():
    rng = np.random.default_rng(7)
    x = rng.normal(size=(24, 6)).astype("float32")
    y = rng.integers(0, 3, size=24)
    states = []
    for with_stats in (False, True):
        model = _deep_model()
        model.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy")
        callbacks = [ActivationStats(x[:8], per="batch")] if with_stats else []
        model.fit(
            x, y, batch_size=8, epochs=1, shuffle=False, callbacks=callbacks, verbose=0
        )
        states.append(
            [
                np.array(keras.ops.convert_to_numpy(v))
                for v in (*model.variables, *model.optimizer.variables)
            ]
        )
        if with_stats:
            assert callbacks[0].steps == [0, 1, 2]
            assert len(callbacks[0].histograms["relu"]) == 3
    for plain, probed in zip(*states, strict=True):
        np.testing.assert_array_equal(plain, probed)


def test_every_selected_layers_and_history():
    model = _deep_model()
    x = np.ones((4, 6), "float32")
    stats = ActivationStats((x, None), every=2, layers=["relu", "tanh"])
    logs = _drive(stats, model, epochs=3)
    assert stats.layer_names == ["tanh", "relu"]  # model order
    assert stats.steps == [0, 2]
    assert logs[1] == {}
    assert sorted(logs[0]) == sorted(stats.history)
    assert len(stats.history["act_std/relu"]) == 2
    assert all(math.isfinite(v) for v in stats.history["act_mean/tanh"])


def test_registered_and_config_round_trip():
    x = np.ones((4, 6), "float32")
    stats = ActivationStats(x, 3, 20, per="batch", hist_range=(0, 1), near_zero=0.1)
    config = stats.get_config()
    assert config == {
        "every": 3,
        "bins": 20,
        "per": "batch",
        "layers": None,
        "training": True,
        "hist_range": [0.0, 1.0],
        "near_zero": 0.1,
        "saturation": 0.99,
    }
    registered = keras.saving.get_registered_object("kerasx>ActivationStats")
    assert registered is ActivationStats
    assert ActivationStats.from_config({**config, "data": x}).get_config() == config
