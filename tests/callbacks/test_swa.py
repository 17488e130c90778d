"""StochasticWeightAveraging: torch AveragedModel, update_bn, SWALR; fits; errors."""

from __future__ import annotations

import json
import pathlib
import warnings

import keras
import numpy as np
import pytest

from kerasx.callbacks import OneCycleScheduler, StochasticWeightAveraging
from kerasx.callbacks.swa import swa_learning_rate
from kerasx.layers import BatchNormActivation

ROOT = pathlib.Path(__file__).resolve().parents[2]
FIXTURE = json.loads((ROOT / "tests/fixtures/swa_peers.json").read_text())


def fixture_model(fused: bool) -> keras.Model:
    sizes, epsilon = FIXTURE["sizes"], FIXTURE["epsilon"]
    layers = [keras.Input((sizes[0],))]
    for units in sizes[1:-1]:
        layers.append(keras.layers.Dense(units))
        if fused:
            layers.append(BatchNormActivation("relu", epsilon=epsilon))
        else:
            layers.append(keras.layers.BatchNormalization(epsilon=epsilon))
            layers.append(keras.layers.ReLU())
    layers.append(keras.layers.Dense(sizes[-1]))
    return keras.Sequential(layers)


def parameters(model):
    return [w for w in model.weights if w.trainable]


@pytest.mark.parametrize("fused", [False, True], ids=["bn", "bn_activation"])
def test_average_and_bn_update_equal_torch_on_the_fixture_sequence(fused):
    model = fixture_model(fused)
    data = np.asarray(FIXTURE["data"], "float32")
    swa = StochasticWeightAveraging(
        start_epoch=0, update_bn_data=data, update_bn_batch_size=FIXTURE["batch_size"]
    )
    swa.set_model(model)
    swa.on_train_begin()
    for epoch, arrays in enumerate(FIXTURE["weights"]):
        for variable, array in zip(parameters(model), arrays, strict=True):
            variable.assign(np.asarray(array, "float32"))
        swa.on_epoch_begin(epoch)
        swa.on_epoch_end(epoch, {})
    assert swa.n_averaged == len(FIXTURE["weights"])
    swa.on_train_end()
    # Float32 running averages of 5 values of size ~1 (torch's lerp vs ours).
    for variable, expected in zip(parameters(model), FIXTURE["average"], strict=True):
        np.testing.assert_allclose(variable.numpy(), expected, rtol=1e-6, atol=1e-6)
    outputs = model.predict(data, verbose=0)
    np.testing.assert_allclose(
        outputs, FIXTURE["update_bn"]["outputs_with_biased_variance"], atol=1e-6
    )


@pytest.mark.parametrize("config", FIXTURE["swalr"], ids=lambda c: c["anneal_strategy"])
def test_swa_learning_rate_equals_torch_swalr(config):
    rates = [
        swa_learning_rate(
            config["lr"],
            config["swa_lr"],
            step,
            config["anneal_epochs"],
            config["anneal_strategy"],
        )
        for step in range(len(config["rates"]))
    ]
    # torch recovers the initial rate by inverting its previous step (float64).
    np.testing.assert_allclose(rates, config["rates"], rtol=1e-12)


def regression_data(n=16):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(n, 3)).astype("float32")
    y = (x @ np.array([[1.0], [-2.0], [0.5]]) + 0.3).astype("float32")
    return x, y


def small_model(learning_rate=0.05, batch_norm=False):
    layers = [keras.Input((3,)), keras.layers.Dense(4)]
    if batch_norm:
        layers.append(BatchNormActivation("relu"))
    layers.append(keras.layers.Dense(1))
    model = keras.Sequential(layers)
    model.compile(keras.optimizers.SGD(learning_rate), "mse")
    return model


class WeightRecorder(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.weights = []

    def on_epoch_end(self, epoch, logs=None):
        self.weights.append(
            [w.numpy().astype("float64") for w in parameters(self.model)]
        )


@pytest.mark.parametrize("swap", [True, False])
def test_real_fit_average_equals_numpy_average_of_epoch_weights(swap, seed):
    x, y = regression_data()
    model = small_model()
    recorder = WeightRecorder()
    swa = StochasticWeightAveraging(start_epoch=2, swap=swap)
    model.fit(x, y, batch_size=4, epochs=5, callbacks=[recorder, swa], verbose=0)
    assert swa.n_averaged == 3
    expected = [
        np.mean(arrays, axis=0) for arrays in zip(*recorder.weights[2:], strict=True)
    ]
    for average, reference in zip(swa.averaged_weights, expected, strict=True):
        np.testing.assert_allclose(average, reference, rtol=1e-6, atol=1e-7)
    held = expected if swap else recorder.weights[-1]
    for variable, reference in zip(parameters(model), held, strict=True):
        np.testing.assert_allclose(variable.numpy(), reference, rtol=1e-6, atol=1e-7)
    if not swap:
        swa.apply_average()
        for variable, reference in zip(parameters(model), expected, strict=True):
            np.testing.assert_allclose(
                variable.numpy(), reference, rtol=1e-6, atol=1e-7
            )


def test_real_fit_rates_follow_torch_swalr(seed):
    config = FIXTURE["swalr"][0]  # lr 0.1 -> swa_lr 0.01, cos over 3 epochs
    x, y = regression_data()
    model = small_model(config["lr"])
    swa = StochasticWeightAveraging(
        start_epoch=1,
        swa_lr=config["swa_lr"],
        anneal_epochs=config["anneal_epochs"],
        anneal_strategy=config["anneal_strategy"],
    )
    history = model.fit(x, y, batch_size=8, epochs=6, callbacks=[swa], verbose=0)
    expected = [config["lr"], *config["rates"][:5]]
    np.testing.assert_allclose(history.history["learning_rate"], expected, rtol=1e-6)
    np.testing.assert_allclose(
        float(model.optimizer.learning_rate.numpy()), config["rates"][4], rtol=1e-6
    )


def test_with_one_cycle_rates_and_fused_bn_update(seed):
    x, y = regression_data()
    model = small_model(batch_norm=True)
    recorder = WeightRecorder()
    swa = StochasticWeightAveraging(
        start_epoch=1, update_bn_data=x, update_bn_batch_size=8
    )
    cycle = OneCycleScheduler(max_rate=0.05)
    model.fit(x, y, batch_size=4, epochs=3, callbacks=[cycle, recorder, swa], verbose=0)
    expected = [
        np.mean(arrays, axis=0) for arrays in zip(*recorder.weights[1:], strict=True)
    ]
    for variable, reference in zip(parameters(model), expected, strict=True):
        np.testing.assert_allclose(variable.numpy(), reference, rtol=1e-6, atol=1e-7)
    # The BN statistics of the averaged weights: batch means of x @ kernel + bias
    # over the two batches of 8, and their biased variances, averaged.
    kernel, bias = expected[0], expected[1]
    batches = [x[:8].astype("float64") @ kernel + bias, x[8:] @ kernel + bias]
    layer = model.layers[1]
    np.testing.assert_allclose(
        layer.moving_mean.numpy(),
        np.mean([b.mean(axis=0) for b in batches], axis=0),
        rtol=1e-5,
        atol=1e-6,
    )
    np.testing.assert_allclose(
        layer.moving_variance.numpy(),
        np.mean([b.var(axis=0) for b in batches], axis=0),
        rtol=1e-5,
        atol=1e-6,
    )
    assert "apply" not in model.optimizer.__dict__


def test_warns_when_batch_norm_statistics_are_not_updated(seed):
    x, y = regression_data()
    model = small_model(batch_norm=True)
    swa = StochasticWeightAveraging(start_epoch=0)
    with pytest.warns(UserWarning, match=r"BatchNorm moving statistics still belong"):
        model.fit(x, y, batch_size=8, epochs=1, callbacks=[swa], verbose=0)


def test_warns_and_keeps_weights_when_no_epoch_is_averaged(seed):
    x, y = regression_data()
    model = small_model()
    recorder = WeightRecorder()
    swa = StochasticWeightAveraging(start_epoch=5)
    with pytest.warns(UserWarning, match=r"No epoch was averaged"):
        model.fit(x, y, batch_size=8, epochs=2, callbacks=[recorder, swa], verbose=0)
    for variable, reference in zip(
        parameters(model), recorder.weights[-1], strict=True
    ):
        np.testing.assert_allclose(variable.numpy(), reference)


class StopAt(keras.callbacks.Callback):
    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            raise KeyboardInterrupt


def test_interrupted_fit_leaves_the_last_weights(seed):
    x, y = regression_data()
    model = small_model()
    recorder = WeightRecorder()
    swa = StochasticWeightAveraging(start_epoch=0, swa_lr=0.01, anneal_epochs=0)
    callbacks = [recorder, swa, StopAt(1)]
    with pytest.raises(KeyboardInterrupt):
        model.fit(x, y, batch_size=8, epochs=4, callbacks=callbacks, verbose=0)
    assert swa.n_averaged == 2
    for variable, reference in zip(
        parameters(model), recorder.weights[-1], strict=True
    ):
        np.testing.assert_allclose(variable.numpy(), reference)
    # The last rate stays, as LearningRateScheduler leaves it; nothing else.
    assert "apply" not in model.optimizer.__dict__
    history = model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


@pytest.mark.parametrize("swa_first", [True, False])
def test_refuses_swa_lr_with_a_per_step_schedule(swa_first):
    x, y = regression_data()
    model = small_model()
    swa = StochasticWeightAveraging(start_epoch=1, swa_lr=0.01)
    cycle = OneCycleScheduler(max_rate=0.05)
    callbacks = [swa, cycle] if swa_first else [cycle, swa]
    with pytest.raises(ValueError, match=r"OneCycleScheduler does"):
        model.fit(x, y, batch_size=8, epochs=2, callbacks=callbacks, verbose=0)


def test_refuses_swa_lr_with_a_schedule_learning_rate():
    x, y = regression_data()
    model = small_model()
    schedule = keras.optimizers.schedules.ExponentialDecay(0.1, 10, 0.9)
    model.compile(keras.optimizers.SGD(schedule), "mse")
    swa = StochasticWeightAveraging(start_epoch=1, swa_lr=0.01)
    with pytest.raises(ValueError, match=r"learning rate is a schedule"):
        model.fit(x, y, batch_size=8, epochs=2, callbacks=[swa], verbose=0)


def test_get_config_round_trip_and_registration():
    swa = StochasticWeightAveraging(
        3,
        swa_lr=0.02,
        anneal_epochs=2,
        anneal_strategy="linear",
        update_bn_data=np.ones((2, 3)),
        swap=False,
        update_bn_steps=4,
        update_bn_batch_size=16,
    )
    config = swa.get_config()
    assert config == dict(
        start_epoch=3,
        swa_lr=0.02,
        anneal_epochs=2,
        anneal_strategy="linear",
        swap=False,
        update_bn_steps=4,
        update_bn_batch_size=16,
    )
    restored = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(swa)
    )
    assert isinstance(restored, StochasticWeightAveraging)
    assert restored.get_config() == config
    assert restored.update_bn_data is None


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(start_epoch=-1), r"`start_epoch`. Expected an integer >= 0"),
        (dict(start_epoch=1.5), r"`start_epoch`. Expected an integer >= 0"),
        (dict(start_epoch=0, swa_lr=0.0), r"`swa_lr`. Expected a float > 0"),
        (dict(start_epoch=0, swa_lr=1e-50), r"`swa_lr`. Expected a float in"),
        (dict(start_epoch=0, anneal_epochs=-1), r"`anneal_epochs`. Expected an int"),
        (
            dict(start_epoch=0, anneal_strategy="exp"),
            r"`anneal_strategy`. Expected one",
        ),
        (dict(start_epoch=0, swap=1), r"`swap`. Expected a bool"),
        (dict(start_epoch=0, update_bn_steps=0), r"`update_bn_steps`. Expected an"),
        (dict(start_epoch=0, update_bn_batch_size=0), r"`update_bn_batch_size`. Exp"),
    ],
)
def test_refuses_invalid_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        StochasticWeightAveraging(**kwargs)


def test_apply_average_refuses_before_any_epoch_and_a_different_model():
    swa = StochasticWeightAveraging(start_epoch=0)
    with pytest.raises(ValueError, match=r"`n_averaged`. Expected at least one"):
        swa.apply_average()
    x, y = regression_data()
    model = small_model()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.fit(x, y, batch_size=8, epochs=1, callbacks=[swa], verbose=0)
    other = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match=r"`model`. Expected a model with the trained"):
        swa.apply_average(other)
