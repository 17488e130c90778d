"""ExponentialLearningRate: float32 refusals, recorded rates are the applied ones."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from kerasx.callbacks import ExponentialLearningRate

RANGE = r"\[1\.1754944e-38, 3\.4028235e\+38\]"


def make_model(rate):
    model = keras.Sequential(
        [keras.Input((2,)), keras.layers.Dense(1, kernel_initializer="zeros")]
    )
    model.compile(keras.optimizers.SGD(rate), "mse")
    return model


def fit(model, callbacks, batches=3):
    x = np.ones((4 * batches, 2), "float32")
    y = np.ones((4 * batches, 1), "float32")
    model.fit(x, y, batch_size=4, shuffle=False, callbacks=callbacks, verbose=0)


class RecordAppliedRate(keras.callbacks.Callback):
    """Reads the optimizer's learning rate after every batch (after the sweep)."""

    def __init__(self):
        super().__init__()
        self.rates = []

    def on_train_batch_end(self, batch, logs=None):
        self.rates.append(
            float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        )


@pytest.mark.parametrize(
    ("factor", "shown"), [(1e39, r"1e\+39"), (1e-39, "1e-39"), (1e-46, "1e-46")]
)
def test_factor_outside_normal_float32_is_refused(factor, shown):
    with pytest.raises(
        ValueError,
        match=rf"`factor`\. Expected a float in {RANGE} \(a positive normal "
        rf"float32: .*\)\. Received: factor={shown}$",
    ):
        ExponentialLearningRate(factor)


def test_recorded_rates_are_the_float32_rates_applied():
    sweep, reader = ExponentialLearningRate(1.1), RecordAppliedRate()
    model = make_model(0.01)
    fit(model, [sweep, reader])
    # The optimizer's variable after each batch, bit for bit (float32 values).
    assert sweep.rates == reader.rates
    assert all(float(np.float32(rate)) == rate for rate in sweep.rates)
    np.testing.assert_allclose(sweep.rates, [0.01, 0.011, 0.0121], rtol=1.2e-7)


def test_overflow_stops_training_before_inf_is_applied():
    model, sweep = make_model(1e-3), ExponentialLearningRate(1e30)
    with pytest.warns(
        UserWarning,
        match=r"^ExponentialLearningRate: stopping training after 2 batch\(es\): the "
        r"next learning rate 0\.001 \* factor \*\* 2 = 1e\+57 would overflow "
        r"float32 \(max 3\.4028235e\+38\)\. Use a factor closer to 1 or fewer "
        r"steps\.$",
    ):
        fit(model, [sweep])
    assert len(sweep.rates) == len(sweep.losses) == 2
    assert sweep.rates[0] == float(np.float32(1e-3))
    np.testing.assert_allclose(sweep.rates[1], 1e27, rtol=1.2e-7)
    # The optimizer holds the last applied (finite) rate; the weights are finite.
    assert float(model.optimizer.learning_rate) == sweep.rates[1]
    assert all(np.isfinite(weight).all() for weight in model.get_weights())


def test_overflow_of_the_power_on_the_way_stops_training():
    # 1e-3 * 1e20 ** 2 = 1e37 fits float32, but 1e20 ** 2 = 1e40 does not.
    model, sweep = make_model(1e-3), ExponentialLearningRate(1e20)
    with pytest.warns(
        UserWarning,
        match=r"after 2 batch\(es\): factor \*\* 2, on the way to the next learning "
        r"rate = 1e\+40 would overflow float32",
    ):
        fit(model, [sweep])
    assert len(sweep.rates) == 2


def test_underflow_stops_training():
    model, sweep = make_model(1e-3), ExponentialLearningRate(1e-30)
    with pytest.warns(
        UserWarning,
        match=r"after 2 batch\(es\): the next learning rate 0\.001 \* factor \*\* 2 "
        r"= 1e-63 would underflow float32 \(smallest normal 1\.1754944e-38\)",
    ):
        fit(model, [sweep])
    np.testing.assert_allclose(sweep.rates, [1e-3, 1e-33], rtol=1.2e-7)


def test_a_zero_starting_rate_is_refused():
    with pytest.raises(
        ValueError,
        match=r"`optimizer\.learning_rate`\. Expected a positive normal float32 to "
        rf"start the sweep from, in {RANGE}\. Received: optimizer\.learning_rate=0\.0$",
    ):
        fit(make_model(0.0), [ExponentialLearningRate(10.0)])
