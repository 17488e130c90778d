"""The step hook's life: one `fit`, completed or interrupted, then nothing left.

Every test reads the rate each optimizer step applied from weight deltas: a
bias-free `Dense(1)` on the input `1` with the loss `mean(y_pred)` has gradient
1, so under plain SGD each step moves the kernel by exactly `-rate`. Rates are
compared to 1e-6 relative (float32 kernels, differences of values below 10).
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

from kerasx.callbacks import ExponentialLearningRate, OneCycleScheduler

STEPS_PER_EPOCH = 4
RTOL = 1e-6


@keras.saving.register_keras_serializable(package="kerasx_tests")
def mean_prediction(y_true, y_pred):
    """Loss whose gradient w.r.t. a bias-free Dense kernel is the input."""
    return keras.ops.mean(y_pred)


class KernelDeltas(keras.callbacks.Callback):
    """The rate of every step, from the kernel's change (one step per batch)."""

    def __init__(self):
        super().__init__()
        self.rates = []

    def _kernel(self):
        if keras.backend.backend() == "jax":
            self.model.jax_state_sync()
        return float(self.model.layers[0].kernel.numpy()[0, 0])

    def on_train_begin(self, logs=None):
        self.previous = self._kernel()

    def on_train_batch_end(self, batch, logs=None):
        kernel = self._kernel()
        self.rates.append(self.previous - kernel)
        self.previous = kernel


class Interrupt(keras.callbacks.Callback):
    """Raises `error` at the end of batch `batch` of the first epoch, or of it."""

    def __init__(self, error, at):
        super().__init__()
        self.error, self.at = error, at

    def on_train_batch_end(self, batch, logs=None):
        if self.at == "batch" and batch == 2:
            raise self.error

    def on_epoch_end(self, epoch, logs=None):
        if self.at == "epoch":
            raise self.error


def make_model(optimizer=None):
    model = keras.Sequential(
        [
            keras.Input((1,)),
            keras.layers.Dense(1, use_bias=False, kernel_initializer="zeros"),
        ]
    )
    model.compile(optimizer or keras.optimizers.SGD(0.1), loss=mean_prediction)
    return model


def fit(model, callbacks, epochs=1, batches=STEPS_PER_EPOCH, **kwargs):
    deltas = KernelDeltas()
    x, y = np.ones((batches, 1), "float32"), np.zeros((batches, 1), "float32")
    model.fit(
        x,
        y,
        batch_size=1,
        epochs=epochs,
        shuffle=False,
        verbose=0,
        callbacks=[*callbacks, deltas],
        **kwargs,
    )
    return deltas.rates


def assert_nothing_installed(model):
    assert "apply" not in model.optimizer.__dict__
    assert "make_train_function" not in model.__dict__
    assert not hasattr(model.optimizer, "_kerasx_step_hook")


def one_cycle():
    # 3 epochs x 4 steps: iterations 12, last_iterations 2, half 5.
    return OneCycleScheduler(max_rate=1.0)


# Rates of the 12 steps: 0.1 -> 1 over 5 steps, back to 0.1 at step 10, 1e-4 at 11.
ONE_CYCLE_12 = [0.1 + 0.18 * s for s in range(6)] + [
    1.0 - 0.18 * s for s in range(1, 6)
]
ONE_CYCLE_12 = [*ONE_CYCLE_12[:11], 1e-4]


@pytest.mark.parametrize(
    "make_callback", [one_cycle, lambda: ExponentialLearningRate(2.0)]
)
@pytest.mark.parametrize("error", [RuntimeError("stop"), KeyboardInterrupt()])
@pytest.mark.parametrize("at", ["batch", "epoch"])
def test_interrupted_fit_leaves_a_constant_rate(make_callback, error, at):
    model = make_model()
    deltas = KernelDeltas()
    with pytest.raises(type(error)):
        fit(model, [make_callback(), deltas, Interrupt(error, at)], epochs=3)
    # At a batch end of epoch 0 three steps ran, at the epoch end four.
    ran = 3 if at == "batch" else 4
    assert len(deltas.rates) == ran
    held = float(model.optimizer.learning_rate)
    # The optimizer holds the rate of the last applied step.
    np.testing.assert_allclose(held, deltas.rates[-1], rtol=RTOL)
    expected = ONE_CYCLE_12[:ran] if make_callback is one_cycle else None
    if expected is None:
        expected = [0.1 * 2.0**k for k in range(ran)]
    np.testing.assert_allclose(deltas.rates, expected, rtol=RTOL)
    rates = fit(model, [], batches=6)
    np.testing.assert_allclose(rates, [held] * 6, rtol=RTOL)
    assert_nothing_installed(model)
    assert float(model.optimizer.learning_rate) == pytest.approx(held, rel=1e-7)


def test_completed_fit_holds_the_last_rate_and_momentum():
    model = make_model(keras.optimizers.Adam(0.1))
    callback = OneCycleScheduler(max_rate=1.0, cycle_momentum=True, base_momentum=0.8)
    fit(model, [callback], epochs=3)
    assert_nothing_installed(model)
    assert float(model.optimizer.learning_rate) == pytest.approx(1e-4, rel=RTOL)
    # The momentum is back at max_momentum, as a Python float.
    assert type(model.optimizer.beta_1) is float
    assert model.optimizer.beta_1 == pytest.approx(0.95, rel=RTOL)


def test_interrupted_sgd_momentum_holds_the_last_applied_value():
    model = make_model(keras.optimizers.SGD(0.1, momentum=0.9))
    callback = OneCycleScheduler(max_rate=1.0, cycle_momentum=True, base_momentum=0.5)
    with pytest.raises(RuntimeError):
        fit(model, [callback, Interrupt(RuntimeError("stop"), "batch")], epochs=3)
    fit(model, [], batches=1)
    # Step 2 of 12 (half 5): 0.95 - 0.45 * 2 / 5.
    assert type(model.optimizer.momentum) is float
    assert model.optimizer.momentum == pytest.approx(0.95 - 0.45 * 0.4, rel=RTOL)


def test_save_after_an_interruption_stores_a_plain_float_rate(tmp_path):
    model = make_model()
    with pytest.raises(KeyboardInterrupt):
        fit(
            model,
            [ExponentialLearningRate(3.0), Interrupt(KeyboardInterrupt(), "batch")],
        )
    model.save(tmp_path / "model.keras")
    restored = keras.saving.load_model(tmp_path / "model.keras")
    config = restored.optimizer.get_config()
    assert isinstance(config["learning_rate"], float)
    assert config["learning_rate"] == pytest.approx(0.9, rel=RTOL)
    rates = fit(restored, [], batches=2)
    np.testing.assert_allclose(rates, [0.9, 0.9], rtol=RTOL)


def test_a_new_kerasx_fit_after_an_interruption_starts_its_own_schedule():
    model = make_model()
    with pytest.raises(RuntimeError):
        fit(model, [ExponentialLearningRate(2.0), Interrupt(RuntimeError(), "batch")])
    # 0.4 held; the new sweep starts from it.
    rates = fit(model, [ExponentialLearningRate(0.5)], batches=3)
    np.testing.assert_allclose(rates, [0.4, 0.2, 0.1], rtol=RTOL)
    assert_nothing_installed(model)


def test_train_on_batch_after_an_interruption_uses_the_held_rate():
    model = make_model()
    with pytest.raises(RuntimeError):
        fit(model, [ExponentialLearningRate(2.0), Interrupt(RuntimeError(), "batch")])
    model.train_on_batch(np.ones((1, 1), "float32"), np.zeros((1, 1), "float32"))
    before = float(model.layers[0].kernel.numpy()[0, 0])
    model.train_on_batch(np.ones((1, 1), "float32"), np.zeros((1, 1), "float32"))
    after = float(model.layers[0].kernel.numpy()[0, 0])
    assert before - after == pytest.approx(0.4, rel=RTOL)
    assert_nothing_installed(model)


def test_two_kerasx_schedulers_in_one_fit_are_refused_at_train_begin():
    model = make_model()
    callbacks = [OneCycleScheduler(max_rate=1.0), ExponentialLearningRate(2.0)]
    with pytest.raises(
        ValueError, match=r"at most one kerasx.*OneCycleScheduler and ExponentialLearn"
    ):
        fit(model, callbacks, epochs=2)
    assert_nothing_installed(model)
    assert int(model.optimizer.iterations) == 0
    np.testing.assert_allclose(fit(model, [], batches=2), [0.1, 0.1], rtol=RTOL)
