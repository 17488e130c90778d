"""GradientStats: norms against closed-form NumPy and each backend's own autodiff.

Tolerances: the closed-form reference is float64 while the model runs in
float32, so 1e-5 relative; against the backend's autodiff on the same float32
weights (the same gradients, summed in another order) 1e-6 relative.
"""

from __future__ import annotations

import csv
import math
import warnings

import keras
import numpy as np
import pytest

from kerasx.callbacks import GradientStats


def _tiny_model():
    """Dense(3, tanh) -> Dense(2): two layers, known weights."""
    model = keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(3, activation="tanh", name="hidden"),
            keras.layers.Dense(2, name="out"),
        ]
    )
    rng = np.random.default_rng(0)
    model.set_weights(
        [rng.normal(size=w.shape).astype("float32") for w in model.get_weights()]
    )
    return model


def _tiny_data():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(6, 4)).astype("float32")
    y = rng.normal(size=(6, 2)).astype("float32")
    return x, y


def _closed_form(weights, x, y):
    """MSE gradients of tanh(x W1 + b1) W2 + b2 in float64, by the chain rule."""
    w1, b1, w2, b2 = (np.asarray(w, np.float64) for w in weights)
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    h = np.tanh(x @ w1 + b1)
    residual = h @ w2 + b2 - y
    # Keras' MSE: mean over the outputs, then over the batch.
    d_out = 2.0 * residual / residual.size
    d_pre = (d_out @ w2.T) * (1.0 - h**2)
    return [x.T @ d_pre, d_pre.sum(0), h.T @ d_out, d_out.sum(0)]


def test_norms_equal_the_closed_form_gradients():
    model, (x, y) = _tiny_model(), _tiny_data()
    model.compile(keras.optimizers.SGD(0.05), "mse")
    before = [w.astype(np.float64) for w in model.get_weights()]
    stats = GradientStats((x, y))
    history = model.fit(x, y, batch_size=3, epochs=1, callbacks=[stats], verbose=0)
    after = [w.astype(np.float64) for w in model.get_weights()]
    grads = _closed_form(after, x, y)
    expected = {
        "grad_norm/hidden/kernel": np.linalg.norm(grads[0]),
        "grad_norm/hidden/bias": np.linalg.norm(grads[1]),
        "grad_norm/out/kernel": np.linalg.norm(grads[2]),
        "grad_norm/out/bias": np.linalg.norm(grads[3]),
        "grad_norm/hidden": math.hypot(
            np.linalg.norm(grads[0]), np.linalg.norm(grads[1])
        ),
        "grad_norm/out": math.hypot(np.linalg.norm(grads[2]), np.linalg.norm(grads[3])),
        "grad_norm/global": math.sqrt(sum(np.sum(g**2) for g in grads)),
    }
    for key, value in expected.items():
        assert history.history[key][0] == pytest.approx(value, rel=1e-5), key
        assert stats.history[key] == history.history[key]

    def ratio(indices):
        delta = sum(np.sum((after[i] - before[i]) ** 2) for i in indices)
        return math.sqrt(delta) / math.sqrt(
            sum(np.sum(before[i] ** 2) for i in indices)
        )

    assert stats.history["update_ratio/hidden"][0] == pytest.approx(ratio([0, 1]))
    assert stats.history["update_ratio/out/bias"][0] == pytest.approx(ratio([3]))
    assert stats.history["update_ratio/global"][0] == pytest.approx(ratio(range(4)))
    residual = np.tanh(x @ after[0] + after[1]) @ after[2] + after[3] - y
    assert stats.history["probe_loss"][0] == pytest.approx(np.mean(residual**2), 1e-5)
    assert stats.steps == [0]


def _regularised_model():
    """BatchNorm (batch statistics under training=True) and an L2 penalty."""
    keras.utils.set_random_seed(3)
    model = keras.Sequential(
        [
            keras.Input((5,)),
            keras.layers.Dense(8, activation="elu", kernel_regularizer="l2"),
            keras.layers.BatchNormalization(),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    model.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy")
    rng = np.random.default_rng(4)
    x = rng.normal(size=(16, 5)).astype("float32")
    y = rng.integers(0, 3, size=16)
    weights = rng.uniform(0.5, 2.0, size=16).astype("float32")
    return model, x, y, weights


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


def _stats_at_init():
    model, x, y, weights = _regularised_model()
    model.optimizer.build(model.trainable_variables)
    stats = GradientStats((x, y, weights))
    _drive(stats, model)
    return model, x, y, weights, stats


def _assert_norms(model, stats, grads):
    for variable, grad in zip(model.trainable_variables, grads, strict=True):
        layer, name = variable.path.split("/")[-2:]
        expected = np.linalg.norm(np.asarray(keras.ops.convert_to_numpy(grad), "f8"))
        got = stats.history[f"grad_norm/{layer}/{name}"][-1]
        assert got == pytest.approx(expected, rel=1e-6), variable.path


@pytest.mark.backend("tensorflow")
def test_norms_equal_tf_gradient_tape():
    import tensorflow as tf

    model, x, y, weights, stats = _stats_at_init()
    with tf.GradientTape() as tape:
        y_pred = model(x, training=True)
        loss = model.compute_loss(x, y, y_pred, weights)
    grads = tape.gradient(loss, model.trainable_variables)
    _assert_norms(model, stats, grads)


@pytest.mark.backend("jax")
def test_norms_equal_jax_grad():
    import jax

    model, x, y, weights, stats = _stats_at_init()

    def loss_fn(trainable):
        loss, _ = model.compute_loss_and_updates(
            trainable,
            [v.value for v in model.non_trainable_variables],
            [v.value for v in model.metrics_variables],
            x,
            y,
            weights,
            training=True,
            optimizer_variables=[v.value for v in model.optimizer.variables],
        )
        return loss

    grads = jax.jit(jax.grad(loss_fn))([v.value for v in model.trainable_variables])
    _assert_norms(model, stats, grads)


@pytest.mark.backend("torch")
def test_norms_equal_torch_autograd():
    import torch

    model, x, y, weights, stats = _stats_at_init()
    y_pred = model(x, training=True)
    loss = model.compute_loss(x, y, y_pred, torch.as_tensor(weights))
    grads = torch.autograd.grad(loss, [v.value for v in model.trainable_variables])
    _assert_norms(model, stats, grads)


def _stochastic_model():
    keras.utils.set_random_seed(7)
    model = keras.Sequential(
        [
            keras.Input((6,)),
            keras.layers.Dense(8, activation="relu"),
            keras.layers.GaussianNoise(0.3),
            keras.layers.Dropout(0.5),
            keras.layers.BatchNormalization(),
            keras.layers.Dense(1),
        ]
    )
    model.compile(keras.optimizers.Adam(1e-2), "mse")
    return model


def _state(model):
    return [
        np.array(keras.ops.convert_to_numpy(v))
        for v in (*model.variables, *model.optimizer.variables)
    ]


def test_training_is_bit_identical_with_and_without_the_callback():
    rng = np.random.default_rng(8)
    x = rng.normal(size=(32, 6)).astype("float32")
    y = rng.normal(size=(32, 1)).astype("float32")
    states = []
    for callbacks in ([], [GradientStats((x[:8], y[:8]), per="batch")]):
        model = _stochastic_model()
        model.fit(
            x, y, batch_size=8, epochs=2, shuffle=False, callbacks=callbacks, verbose=0
        )
        states.append(_state(model))
    assert int(states[1][-len(model.optimizer.variables)]) == 8  # iterations
    for plain, probed in zip(*states, strict=True):
        np.testing.assert_array_equal(plain, probed)


def test_a_probe_leaves_weights_optimizer_and_seed_states_bit_equal():
    from kerasx import _keras_internals

    rng = np.random.default_rng(9)
    x = rng.normal(size=(8, 6)).astype("float32")
    y = rng.normal(size=(8, 1)).astype("float32")
    model = _stochastic_model()
    model.optimizer.build(model.trainable_variables)
    keras.random.uniform(())  # creates Keras' global seed generator
    stats = GradientStats((x, y))
    stats.set_model(model)
    stats.on_train_begin()
    generator = _keras_internals.global_seed_generator()
    before = [*_state(model), np.array(keras.ops.convert_to_numpy(generator.state))]
    loss, grads = stats.gradients()
    after = [*_state(model), np.array(keras.ops.convert_to_numpy(generator.state))]
    assert math.isfinite(loss) and len(grads) == len(model.trainable_variables)
    assert any(np.any(g != 0) for g in grads)
    for old, new in zip(before, after, strict=True):
        np.testing.assert_array_equal(old, new)


def test_logs_reach_history_and_csv_logger(tmp_path):
    model, (x, y) = _tiny_model(), _tiny_data()
    model.compile("sgd", "mse")
    path = tmp_path / "log.csv"
    stats = GradientStats((x, y), norms="layer")
    model.fit(
        x,
        y,
        epochs=2,
        callbacks=[stats, keras.callbacks.CSVLogger(str(path))],
        verbose=0,
    )
    with path.open() as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == 2
    expected_keys = {
        "grad_norm/global",
        "grad_norm/hidden",
        "grad_norm/out",
        "update_ratio/global",
        "update_ratio/hidden",
        "update_ratio/out",
    }
    assert expected_keys <= set(rows[0])
    assert not any(key.startswith("grad_norm/hidden/") for key in rows[0])
    assert float(rows[1]["grad_norm/out"]) == pytest.approx(
        stats.history["grad_norm/out"][1], rel=1e-6
    )


def test_global_only_and_selected_layers():
    model, (x, y) = _tiny_model(), _tiny_data()
    model.compile("sgd", "mse")
    only_global = GradientStats((x, y), norms="global")
    selected = GradientStats((x, y), layers=["out"])
    model.fit(x, y, epochs=1, callbacks=[only_global, selected], verbose=0)
    assert sorted(only_global.history) == [
        "grad_norm/global",
        "probe_loss",
        "update_ratio/global",
    ]
    assert selected.layer_names == ["out"]
    assert not any("hidden" in key for key in selected.history)
    assert (
        selected.history["grad_norm/global"] == only_global.history["grad_norm/global"]
    )


def test_every_counts_epochs_and_batches():
    model, (x, y) = _tiny_model(), _tiny_data()
    model.compile("sgd", "mse")
    epochs = GradientStats((x, y), every=2)
    batches = GradientStats((x, y), every=3, per="batch")
    model.fit(x, y, batch_size=2, epochs=3, callbacks=[epochs, batches], verbose=0)
    assert epochs.steps == [0, 2]
    assert batches.steps == [0, 3, 6]  # 3 batches per epoch, counted across epochs
    assert len(batches.history["grad_norm/global"]) == 3


def _three_layer_model(scale):
    """Linear layers; the middle kernel scaled by `scale` to shrink or grow dW1."""
    model = keras.Sequential(
        [keras.Input((3,))]
        + [keras.layers.Dense(3, name=f"dense_{i}") for i in range(3)]
    )
    eye = np.eye(3, dtype="float32")
    zeros = np.zeros(3, "float32")
    model.set_weights([eye, zeros, scale * eye, zeros, eye, zeros])
    model.compile(keras.optimizers.SGD(0.0), "mse")
    return model


def _fit_warnings(model, data, epochs=2, **kwargs):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _drive(GradientStats(data, **kwargs), model, epochs)
    return [str(w.message) for w in caught if "GradientStats" in str(w.message)]


def test_vanishing_gradients_warn_once_naming_the_layers():
    x, y = np.ones((4, 3), "float32"), np.zeros((4, 3), "float32")
    # dW1 = x^T (d W3^T W2^T) is 1e-4 times dW2 = h1^T (d W3^T), with h1 = x.
    messages = _fit_warnings(_three_layer_model(1e-4), (x, y))
    assert len(messages) == 1
    assert "vanishing gradients at epoch 0" in messages[0]
    assert "`dense_0`" in messages[0] and "`dense_1`" in messages[0]
    assert "is 0.0001 times that of" in messages[0]
    assert not _fit_warnings(_three_layer_model(1e-4), (x, y), vanishing_ratio=None)


def test_exploding_and_non_finite_gradients_warn():
    x, y = np.ones((4, 3), "float32"), np.zeros((4, 3), "float32")
    messages = _fit_warnings(_three_layer_model(1e3), (x, y))
    assert len(messages) == 1 and "exploding gradients at epoch 0" in messages[0]
    assert "above exploding_ratio=100" in messages[0]
    assert not _fit_warnings(_three_layer_model(1.0), (x, y))
    bad = x.copy()
    bad[0, 0] = np.inf
    messages = _fit_warnings(_three_layer_model(1.0), (bad, y))
    assert len(messages) == 1 and "non-finite gradients at epoch 0" in messages[0]
    assert "`dense_0`, `dense_1`, `dense_2`" in messages[0]


def test_registered_and_config_round_trip():
    x, y = _tiny_data()
    stats = GradientStats(
        (x, y), 2, "batch", ["out"], False, norms="layer", vanishing_ratio=None
    )
    config = stats.get_config()
    assert config == {
        "every": 2,
        "per": "batch",
        "layers": ["out"],
        "training": False,
        "norms": "layer",
        "vanishing_ratio": None,
        "exploding_ratio": 100.0,
    }
    assert keras.saving.get_registered_object("kerasx>GradientStats") is GradientStats
    rebuilt = GradientStats.from_config({**config, "data": (x, y)})
    assert rebuilt.get_config() == config
    serialized = keras.saving.serialize_keras_object(stats)
    serialized["config"]["data"] = (x, y)
    assert keras.saving.deserialize_keras_object(serialized).get_config() == config
