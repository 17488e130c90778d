"""OneCycleScheduler: Géron's curve per optimizer step, resume, momentum, errors."""

from __future__ import annotations

import pathlib
import warnings

import keras
import numpy as np
import pytest

from kerasx.callbacks import OneCycleScheduler
from kerasx.schedules import OneCycle

ROOT = pathlib.Path(__file__).resolve().parents[2]

TORCH_NO_STEPS_PER_EXECUTION = pytest.mark.skipif(
    keras.backend.backend() == "torch",
    reason="Keras does not support steps_per_execution > 1 on the torch backend",
)

# iterations=10, max_rate=1: start 0.1, last 1e-4, last_iterations 2, half 4.
HANDS_ON_ML_10 = [0.1, 0.325, 0.55, 0.775, 1.0, 0.775, 0.55, 0.325, 0.1, 1e-4]


@keras.saving.register_keras_serializable(package="kerasx_tests")
def mean_prediction(y_true, y_pred):
    """Loss whose gradient w.r.t. a bias-free Dense kernel is the input row."""
    return keras.ops.mean(y_pred)


class RateProbe(keras.callbacks.Callback):
    """Reads the rate each step used from a one-hot probe model, then zeroes it.

    Step `i` of an execution sees the input `one_hot(i)`, so after SGD (lr * grad)
    kernel entry `i` is `-lr_i`: the rates of all steps of an execution, even when
    callbacks fire only once per `steps_per_execution`.
    """

    def __init__(self):
        super().__init__()
        self.rates = []

    def on_train_batch_end(self, batch, logs=None):
        if keras.backend.backend() == "jax":
            self.model.jax_state_sync()
        kernel = self.model.layers[0].kernel
        self.rates.extend((-kernel.numpy()[:, 0]).tolist())
        kernel.assign(np.zeros(kernel.shape, "float32"))


def probe_model(width, **optimizer_kwargs):
    model = keras.Sequential(
        [
            keras.Input((width,)),
            keras.layers.Dense(1, use_bias=False, kernel_initializer="zeros"),
        ]
    )
    optimizer = keras.optimizers.SGD(0.5, **optimizer_kwargs)
    model.compile(optimizer, loss=mean_prediction, steps_per_execution=width)
    return model


def probe_data(width, steps):
    x = np.tile(np.eye(width, dtype="float32"), (steps // width, 1))
    return x, np.zeros((steps, 1), "float32")


def fit_probe(model, callback, steps, epochs=1, initial_epoch=0):
    probe = RateProbe()
    x, y = probe_data(model.layers[0].kernel.shape[0], steps)
    model.fit(
        x,
        y,
        batch_size=1,
        epochs=epochs,
        initial_epoch=initial_epoch,
        shuffle=False,
        callbacks=[callback, probe],
        verbose=0,
    )
    return probe.rates


@pytest.mark.parametrize(
    "steps_per_execution", [1, pytest.param(3, marks=TORCH_NO_STEPS_PER_EXECUTION)]
)
def test_hands_on_ml_curve_per_optimizer_step(steps_per_execution):
    model = probe_model(steps_per_execution)
    rates = fit_probe(model, OneCycleScheduler(10, 1.0), steps=12)
    np.testing.assert_allclose(rates, [*HANDS_ON_ML_10, 1e-4, 1e-4], rtol=1e-6)
    # The last applied rate stays, as Keras' LearningRateScheduler leaves it.
    assert float(model.optimizer.learning_rate) == pytest.approx(1e-4, rel=1e-6)


def test_defaults_and_last_rate_is_exact():
    callback = OneCycleScheduler(100, 1.0)
    # start 0.1, last_iterations 11, half 44, last 1e-4 at step 99.
    values = [float(callback.schedule(s)) for s in (0, 22, 44, 88, 98, 99, 100, 500)]
    expected = [0.1, 0.55, 1.0, 0.1, 0.1 + (1e-4 - 0.1) * 10 / 11, 1e-4, 1e-4, 1e-4]
    np.testing.assert_allclose(values, expected, rtol=1e-6)


def test_empty_last_phase_and_tiny_cycle():
    # iterations=9, last_iterations=1: half=4, so step 8 is both 2*half and the end.
    callback = OneCycleScheduler(9, 1.0, last_iterations=1)
    np.testing.assert_allclose(float(callback.schedule(8)), 1e-4, rtol=1e-6)
    callback = OneCycleScheduler(2, 1.0)
    np.testing.assert_allclose(
        [float(callback.schedule(s)) for s in (0, 1, 2)], [0.1, 1e-4, 1e-4], rtol=1e-6
    )


def test_gradient_accumulation_steps_by_optimizer_step():
    model = probe_model(1, gradient_accumulation_steps=2)
    rates = fit_probe(model, OneCycleScheduler(10, 1.0), steps=20)
    # Every second batch applies the mean of two unit gradients: -lr_k * 1.
    np.testing.assert_allclose(rates[1::2], HANDS_ON_ML_10, rtol=1e-6)
    np.testing.assert_array_equal(rates[0::2], 0.0)


@TORCH_NO_STEPS_PER_EXECUTION
def test_from_schedule_drives_one_cycle_with_steps_per_execution():
    schedule = OneCycle(0.2, total_steps=8, pct_start=0.25, anneal_strategy="linear")
    rates = fit_probe(
        probe_model(2), OneCycleScheduler.from_schedule(schedule), steps=10
    )
    expected = [float(schedule(s)) for s in range(10)]
    # initial 0.008 -> 0.2 at step 1, then linear to 8e-7 at step 7, clamped.
    np.testing.assert_allclose(expected[:2], [0.008, 0.2], rtol=1e-6)
    np.testing.assert_allclose(rates, expected, rtol=1e-6)


def test_resume_after_save_and_load_continues_the_cycle(tmp_path):
    uninterrupted = fit_probe(
        probe_model(1), OneCycleScheduler(12, 1.0), steps=3, epochs=4
    )
    model = probe_model(1)
    first = fit_probe(model, OneCycleScheduler(12, 1.0), steps=3, epochs=2)
    path = tmp_path / "model.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    assert int(restored.optimizer.iterations) == 6
    second = fit_probe(
        restored, OneCycleScheduler(12, 1.0), steps=3, epochs=4, initial_epoch=2
    )
    assert len(uninterrupted) == 12
    np.testing.assert_array_equal(first + second, uninterrupted)


def test_start_step_starts_a_new_cycle_and_finished_cycle_warns():
    model = probe_model(1)
    fit_probe(model, OneCycleScheduler(10, 1.0), steps=10)
    with pytest.warns(UserWarning, match="already over"):
        rates = fit_probe(model, OneCycleScheduler(10, 1.0), steps=2)
    np.testing.assert_allclose(rates, [1e-4, 1e-4], rtol=1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        rates = fit_probe(model, OneCycleScheduler(10, 1.0, start_step=12), steps=3)
    np.testing.assert_allclose(rates, HANDS_ON_ML_10[:3], rtol=1e-6)


def test_logs_learning_rate_and_holds_the_last_rate():
    model = probe_model(1)
    x, y = probe_data(1, 5)
    history = model.fit(
        x,
        y,
        batch_size=1,
        epochs=2,
        shuffle=False,
        verbose=0,
        callbacks=[OneCycleScheduler(10, 1.0)],
    )
    np.testing.assert_allclose(history.history["learning_rate"], [1.0, 1e-4], rtol=1e-6)
    assert float(model.optimizer.learning_rate) == pytest.approx(1e-4, rel=1e-6)
    # The hook is gone: a plain fit trains at the held constant rate.
    model.layers[0].kernel.assign(np.zeros((1, 1), "float32"))
    probe = RateProbe()
    model.fit(x[:2], y[:2], batch_size=1, shuffle=False, verbose=0, callbacks=[probe])
    np.testing.assert_allclose(probe.rates, [1e-4, 1e-4], rtol=1e-6)


def test_serialization_round_trip():
    callback = OneCycleScheduler(
        50, 0.3, last_rate=1e-5, start_step=7, cycle_momentum=True
    )
    config = callback.get_config()
    assert config == {
        "iterations": 50,
        "max_rate": 0.3,
        "start_rate": 0.03,
        "last_iterations": 6,
        "last_rate": 1e-5,
        "start_step": 7,
        "cycle_momentum": True,
        "base_momentum": 0.85,
        "max_momentum": 0.95,
    }
    clone = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(callback)
    )
    assert isinstance(clone, OneCycleScheduler) and clone.get_config() == config
    driven = OneCycleScheduler.from_schedule(OneCycle(0.1, 30), start_step=2)
    clone = OneCycleScheduler.from_config(driven.get_config())
    assert (
        clone.start_step == 2
        and clone.schedule.get_config() == driven.schedule.get_config()
    )


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (
            dict(iterations=1, max_rate=1.0),
            r"`iterations`\. Expected an integer >= 2 or None\. Received: iterations=1",
        ),
        (dict(iterations=10.0, max_rate=1.0), r"`iterations`\. Expected an integer"),
        (dict(iterations=True, max_rate=1.0), r"`iterations`\. Expected an integer"),
        (dict(max_rate=0.0), r"`max_rate`\. Expected a float > 0"),
        (dict(), r"`max_rate`\. Expected a float > 0\. Received: max_rate=None"),
        (dict(max_rate=float("inf")), r"`max_rate`\. Expected a float > 0"),
        (dict(max_rate="0.1"), r"`max_rate`\. Expected a float > 0.*'0\.1'"),
        (dict(max_rate=1.0, start_rate=2.0), r"`start_rate`.*<= max_rate \(1\.0\)"),
        (dict(max_rate=1.0, start_rate=-1.0), r"`start_rate`\. Expected a float > 0"),
        (dict(max_rate=1.0, last_rate=0.0), r"`last_rate`\. Expected a float > 0"),
        (
            dict(iterations=10, max_rate=1.0, last_iterations=11),
            r"`last_iterations`\. Expected an integer in \[1, 10\]",
        ),
        (
            dict(max_rate=1.0, last_iterations=0),
            r"`last_iterations`\. Expected an integer >= 1 or None",
        ),
        (
            dict(iterations=10, max_rate=1.0, start_step=-1),
            r"`start_step`\. Expected an integer >= 0",
        ),
        (
            dict(max_rate=1.0, start_step=3),
            r"`start_step`\. Expected 0 when iterations=None",
        ),
        (
            dict(max_rate=1.0, cycle_momentum="False"),
            r"`cycle_momentum`\. Expected a bool",
        ),
        (
            dict(max_rate=1.0, base_momentum=1.0),
            r"`base_momentum`\. Expected a float in \[0, 1\)",
        ),
        (
            dict(max_rate=1.0, max_momentum=0.5),
            r"`max_momentum`\. Expected a float in \[base_momentum, 1\)",
        ),
    ],
)
def test_validation_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        OneCycleScheduler(**kwargs)


def test_numpy_scalars_are_accepted():
    callback = OneCycleScheduler(np.int64(10), np.float32(1.0), start_step=np.int32(2))
    config = callback.get_config()
    assert config["iterations"] == 10 and type(config["iterations"]) is int
    assert config["max_rate"] == 1.0 and type(config["max_rate"]) is float
    assert callback.start_step == 2 and type(callback.start_step) is int


def test_from_schedule_errors():
    with pytest.raises(ValueError, match=r"`schedule`\. Expected a keras\.optimizers"):
        OneCycleScheduler.from_schedule(0.1)
    decay = keras.optimizers.schedules.ExponentialDecay(0.1, 10, 0.5)
    with pytest.raises(
        ValueError, match=r"`cycle_momentum`\. Expected a schedule with"
    ):
        OneCycleScheduler.from_schedule(decay, cycle_momentum=True)


def test_optimizer_with_schedule_learning_rate_is_refused():
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.compile(keras.optimizers.SGD(OneCycle(0.1, 10)), "mse")
    with pytest.raises(
        ValueError, match=r"Expected a float learning rate.*from_schedule"
    ):
        model.fit(
            np.ones((2, 1)),
            np.ones((2, 1)),
            verbose=0,
            callbacks=[OneCycleScheduler(10, 0.1)],
        )


def hands_on_ml(iterations, max_rate=1.0):
    """Géron's curve with the default arguments, by hand (NumPy float64)."""
    last_iterations = iterations // 10 + 1
    half = (iterations - last_iterations) // 2
    knots = [0, half, 2 * half, iterations - 1]
    start = max_rate / 10
    return np.interp(
        np.arange(iterations), knots, [start, max_rate, start, start / 1000]
    )


@pytest.mark.parametrize(
    "steps_per_execution", [1, pytest.param(3, marks=TORCH_NO_STEPS_PER_EXECUTION)]
)
def test_iterations_none_spans_the_whole_fit(steps_per_execution):
    # 3 epochs x 6 steps = 18 optimizer steps, from the callback's params.
    model = probe_model(steps_per_execution)
    callback = OneCycleScheduler(max_rate=1.0)
    rates = fit_probe(model, callback, steps=6, epochs=3)
    np.testing.assert_allclose(rates, hands_on_ml(18), rtol=1e-6)
    assert callback.iterations == 18
    assert float(model.optimizer.learning_rate) == pytest.approx(1e-4, rel=1e-6)


def test_iterations_none_resumes_from_initial_epoch_and_restarts_per_fit(tmp_path):
    uninterrupted = fit_probe(
        probe_model(1), OneCycleScheduler(max_rate=1.0), steps=3, epochs=4
    )
    np.testing.assert_allclose(uninterrupted, hands_on_ml(12), rtol=1e-6)
    model = probe_model(1)
    first = fit_probe_epochs(model, epochs_run=2, total_epochs=4)
    model.save(tmp_path / "model.keras")
    restored = keras.saving.load_model(tmp_path / "model.keras")
    second = fit_probe(
        restored, OneCycleScheduler(max_rate=1.0), steps=3, epochs=4, initial_epoch=2
    )
    np.testing.assert_array_equal(first + second, uninterrupted)
    # A new fit from epoch 0 on the trained optimizer is a new cycle (fastai's
    # `fit_one_cycle`), without any start_step.
    again = fit_probe(restored, OneCycleScheduler(max_rate=1.0), steps=3, epochs=2)
    np.testing.assert_allclose(again, hands_on_ml(6), rtol=1e-6)


class StopAfterEpoch(keras.callbacks.Callback):
    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            self.model.stop_training = True


def fit_probe_epochs(model, epochs_run, total_epochs):
    """The first `epochs_run` epochs of a `total_epochs`-epoch cycle fit."""
    probe = RateProbe()
    x, y = probe_data(1, 3)
    model.fit(
        x,
        y,
        batch_size=1,
        epochs=total_epochs,
        shuffle=False,
        verbose=0,
        callbacks=[
            OneCycleScheduler(max_rate=1.0),
            probe,
            StopAfterEpoch(epochs_run - 1),
        ],
    )
    return probe.rates


def test_iterations_none_counts_optimizer_steps_under_gradient_accumulation():
    model = probe_model(1, gradient_accumulation_steps=2)
    rates = fit_probe(model, OneCycleScheduler(max_rate=1.0), steps=20)
    # 20 batches, 10 updates: the 10-step curve on every second batch.
    np.testing.assert_allclose(rates[1::2], HANDS_ON_ML_10, rtol=1e-6)


def test_iterations_none_needs_a_known_number_of_steps():
    model = probe_model(1)

    def batches():
        while True:
            yield np.ones((1, 1), "float32"), np.zeros((1, 1), "float32")

    with pytest.raises(
        ValueError,
        match=r"`iterations`\. Expected an integer >= 2 when the number of steps",
    ):
        model.fit(
            batches(), epochs=1, verbose=0, callbacks=[OneCycleScheduler(max_rate=1.0)]
        )


def test_iterations_none_last_iterations_longer_than_the_fit():
    model = probe_model(1)
    with pytest.raises(
        ValueError,
        match=r"`last_iterations`\. Expected an integer in \[1, iterations=4\]",
    ):
        fit_probe(model, OneCycleScheduler(max_rate=1.0, last_iterations=5), steps=4)
