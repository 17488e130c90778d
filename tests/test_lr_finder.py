"""find_learning_rate: sweep, early stop, bit-exact restore, inputs, suggestions, plot.

Reference values: NumPy float64 SGD for the sweep's losses (rtol 1e-4: each batch
loss is recovered from Keras' float32 running mean, `k * mean_k - (k - 1) *
mean_{k-1}`, which multiplies float32 rounding by up to 2k), the closed form for
the rates (rtol 1e-6: float32 learning-rate variable), and fastai's recorded
suggestions (`tests/fixtures/lr_find_fastai.json`, rtol 1e-6: fastai returns
float32-rounded rates).
"""

from __future__ import annotations

import json
import math
import pathlib
import random

import keras
import numpy as np
import pytest

from kerasx.lr_finder import (
    LRFinderResult,
    find_learning_rate,
    minimum,
    plot_lr_vs_loss,
    smooth,
    steep,
    suggest,
    valley,
)

FIXTURE = pathlib.Path(__file__).parent / "fixtures" / "lr_find_fastai.json"
CURVES = json.loads(FIXTURE.read_text())["curves"]


def make_model(optimizer=None):
    model = keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(8, activation="relu"),
            keras.layers.Dropout(0.3),
            keras.layers.Dense(1),
        ]
    )
    model.compile(optimizer or keras.optimizers.Adam(1e-3), "mse")
    return model


def data(samples=64):
    rng = np.random.default_rng(7)
    x = rng.normal(size=(samples, 4)).astype("float32")
    return x, (x @ np.arange(1.0, 5.0)[:, None]).astype("float32")


def state(model):
    values = [v.numpy().copy() for v in model.variables + model.optimizer.variables]
    return values, np.random.get_state()[1].copy(), random.getstate()  # noqa: NPY002


def assert_same_state(before, after):
    assert len(before[0]) == len(after[0])
    for a, b in zip(before[0], after[0], strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(before[1], after[1])
    assert before[2] == after[2]


def test_sweep_rates_and_bit_exact_restore(seed):
    model = make_model()
    x, y = data()
    model.fit(x, y, batch_size=16, verbose=0)  # slots and iterations are non-trivial
    before = state(model)
    result = find_learning_rate(
        model,
        x,
        y,
        batch_size=8,
        min_rate=1e-4,
        max_rate=1e-1,
        divergence_threshold=1e9,
        shuffle=False,
    )
    # One epoch of 8 batches, geometric from 1e-4 to 1e-1: ratio 10 ** (3 / 7).
    np.testing.assert_allclose(
        result.rates, 1e-4 * 10 ** (3 * np.arange(8) / 7), rtol=1e-6
    )
    assert result.losses.shape == result.smoothed_losses.shape == (8,)
    assert set(result.suggestions) == {"valley", "steep", "minimum", "slide"}
    assert result.stop_reason == "completed" and result.num_steps == 8
    assert result.suggestion == result.suggestions["valley"]
    rates, losses = result
    assert rates is result.rates and losses is result.losses
    assert_same_state(before, state(model))
    assert int(model.optimizer.iterations) == 4
    # The optimizer trains as before (the hook is gone).
    model.fit(x, y, batch_size=16, verbose=0)
    assert int(model.optimizer.iterations) == 8


class Interrupt(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        if batch == 2:
            raise KeyboardInterrupt


def test_restore_after_interruption(seed):
    model = make_model(keras.optimizers.SGD(0.01, momentum=0.9))
    x, y = data()
    model.fit(x, y, batch_size=16, verbose=0)
    before = state(model)
    with pytest.raises(KeyboardInterrupt):
        find_learning_rate(model, x, y, batch_size=8, callbacks=[Interrupt()])
    assert_same_state(before, state(model))
    assert float(model.optimizer.learning_rate) == pytest.approx(0.01)
    assert "apply" not in model.optimizer.__dict__


def test_num_steps_and_divergence_stop(seed):
    model = make_model(keras.optimizers.SGD(0.01))
    x, y = data(256)
    result = find_learning_rate(model, x, y, batch_size=8, num_steps=5, max_rate=1e-2)
    assert len(result.rates) == 5 and result.stop_reason == "completed"
    np.testing.assert_allclose(result.rates[-1], 1e-2, rtol=1e-6)
    # With rates up to 1e6 SGD on MSE blows up long before the last of 64 steps.
    result = find_learning_rate(model, x, y, batch_size=4, max_rate=1e6)
    assert 2 <= len(result.rates) < 64
    last = result.smoothed_losses[-1]
    if np.isfinite(last):
        assert result.stop_reason == "diverged"
        assert last > 4.0 * np.min(result.smoothed_losses)
    else:
        assert result.stop_reason == "non-finite loss"


# The reference sweep: Dense(1) from zeros, plain SGD on MSE, 8 batches of 4.
BATCH, BATCHES, MIN_RATE, MAX_RATE = 4, 8, 1e-3, 1e-1


def linear_data():
    rng = np.random.default_rng(11)
    x = rng.normal(size=(BATCH * BATCHES, 2)).astype("float32")
    y = (x @ np.array([[0.7], [-1.3]]) + 0.5).astype("float32")
    return x, y


def reference_sweep(steps=BATCHES):
    """Float64 SGD with `rate_k = MIN_RATE * (MAX_RATE / MIN_RATE) ** (k / 7)`."""
    x, y = (a.astype("float64") for a in linear_data())
    kernel, bias, rates, losses = np.zeros((2, 1)), 0.0, [], []
    for k in range(steps):
        xb, yb = x[BATCH * k : BATCH * (k + 1)], y[BATCH * k : BATCH * (k + 1)]
        error = xb @ kernel + bias - yb
        rate = MIN_RATE * (MAX_RATE / MIN_RATE) ** (k / (BATCHES - 1))
        rates.append(rate)
        losses.append(float(np.mean(error**2)))
        kernel = kernel - rate * 2.0 * xb.T @ error / BATCH
        bias = bias - rate * 2.0 * float(np.mean(error))
    return np.array(rates), np.array(losses)


def linear_model(input_name=None):
    inputs = keras.Input((2,), name=input_name)
    outputs = keras.layers.Dense(1, kernel_initializer="zeros")(inputs)
    model = keras.Model(inputs, outputs)
    model.compile(keras.optimizers.SGD(0.5), "mse")
    return model


class Batches(keras.utils.PyDataset):
    def __init__(self, x, y):
        super().__init__()
        self.x, self.y = x, y

    def __len__(self):
        return len(self.x) // BATCH

    def __getitem__(self, index):
        part = slice(BATCH * index, BATCH * (index + 1))
        return self.x[part], self.y[part]


def batch_generator(x, y, batches, nan_at=None):
    for index in range(batches):
        xb = x[BATCH * index : BATCH * (index + 1)].copy()
        if index == nan_at:
            xb[0, 0] = np.nan
        yield xb, y[BATCH * index : BATCH * (index + 1)]


def tf_dataset(x, y):
    tf = pytest.importorskip("tensorflow")
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(BATCH)


def torch_loader(x, y):
    torch = pytest.importorskip("torch")
    dataset = torch.utils.data.TensorDataset(torch.from_numpy(x), torch.from_numpy(y))
    return torch.utils.data.DataLoader(dataset, batch_size=BATCH, shuffle=False)


INPUTS = {
    "arrays": lambda x, y: ((x, y), {"batch_size": BATCH, "shuffle": False}),
    "dict": lambda x, y: (
        ({"features": x}, y),
        {"batch_size": BATCH, "shuffle": False},
    ),
    "py_dataset": lambda x, y: ((Batches(x, y),), {"shuffle": False}),
    "tf_data": lambda x, y: ((tf_dataset(x, y),), {}),
    "torch_data_loader": lambda x, y: ((torch_loader(x, y),), {}),
    "generator": lambda x, y: ((batch_generator(x, y, BATCHES),), {"num_steps": 8}),
}


@pytest.mark.parametrize("kind", sorted(INPUTS))
def test_every_fit_input_gives_the_float64_sweep(kind):
    x, y = linear_data()
    model = linear_model("features")
    arguments, options = INPUTS[kind](x, y)
    result = find_learning_rate(
        model,
        *arguments,
        min_rate=MIN_RATE,
        max_rate=MAX_RATE,
        divergence_threshold=1e9,
        **options,
    )
    rates, losses = reference_sweep()
    # num_steps defaults to one epoch wherever the input has a length.
    assert result.num_steps == BATCHES and result.stop_reason == "completed"
    np.testing.assert_allclose(result.rates, rates, rtol=1e-6)
    np.testing.assert_allclose(result.losses, losses, rtol=1e-4)
    assert float(model.optimizer.learning_rate) == 0.5


def test_data_running_out_warns_with_the_step_counts():
    x, y = linear_data()
    with pytest.warns(UserWarning, match="the data ran out after 6 of 8 steps"):
        result = find_learning_rate(
            linear_model(),
            batch_generator(x, y, 6),
            num_steps=8,
            min_rate=MIN_RATE,
            max_rate=MAX_RATE,
        )
    assert result.stop_reason == "data exhausted" and len(result.rates) == 6
    np.testing.assert_allclose(result.losses, reference_sweep(6)[1], rtol=1e-4)


def test_non_finite_loss_stops_the_sweep_and_says_so():
    x, y = linear_data()
    result = find_learning_rate(
        linear_model(),
        batch_generator(x, y, BATCHES, nan_at=3),
        num_steps=8,
        min_rate=MIN_RATE,
        max_rate=MAX_RATE,
    )
    assert result.stop_reason == "non-finite loss"
    assert len(result.losses) == 4 and np.isnan(result.losses[3])
    np.testing.assert_allclose(result.losses[:3], reference_sweep(3)[1], rtol=1e-4)
    # 4 points minus fastai's last 5: nothing is left to suggest from.
    assert all(math.isnan(value) for value in result.suggestions.values())


def test_shuffle_is_drawn_from_the_keras_seed_and_restored():
    x, y = linear_data()
    keras.utils.set_random_seed(5)
    untouched = keras.ops.convert_to_numpy(keras.random.uniform((3,)))
    runs = []
    for _ in range(2):
        keras.utils.set_random_seed(5)
        runs.append(
            find_learning_rate(
                linear_model(), x, y, batch_size=BATCH, min_rate=MIN_RATE
            ).losses
        )
        after = keras.ops.convert_to_numpy(keras.random.uniform((3,)))
        # The shuffle's draw is undone: the next unseeded draw is unchanged.
        np.testing.assert_array_equal(after, untouched)
    np.testing.assert_array_equal(runs[0], runs[1])
    # Shuffled: the first batch is not the first 4 rows (whose loss is known).
    assert abs(runs[0][0] - reference_sweep(1)[1][0]) > 1e-3


def test_suggestions_on_a_synthetic_curve():
    rates = 10.0 ** np.linspace(-5, 1, 61)  # 0.1 decade per step
    log_rate = np.log10(rates)
    # Flat at 2 until 1e-4, falling (steepest at 1e-3), minimum at 1e-1, then up.
    losses = np.where(log_rate < -4, 2.0, 1.0 + np.cos(np.pi * (log_rate + 4) / 3))
    losses = np.where(log_rate > -1, (log_rate + 1) ** 2, losses)
    result = LRFinderResult.from_losses(rates, losses, smoothing=0.0)
    np.testing.assert_array_equal(result.smoothed_losses, losses)
    # fastai's trimming: points [61 // 10, 61 - 5) = [6, 56).
    assert result.suggestion_range == (6, 56)
    assert result.suggestions["minimum"] == pytest.approx(1e-2)
    # Steepest forward difference of 1 + cos(pi (t + 4) / 3): centred at t = -2.5.
    assert result.suggestions["steep"] == pytest.approx(10**-2.6)
    # Longest decreasing run: the last flat point, then indices 11 .. 40: lds =
    # 31, start = 40 - 31 = 9 and idx = 9 + int(31 / 3) + int(31 / 6) = 24.
    assert result.suggestion == pytest.approx(rates[24])
    # The untrimmed rules, as functions, on the whole curve.
    assert valley(rates, losses) == pytest.approx(rates[24])
    assert steep(rates, losses) == pytest.approx(10**-2.6)
    assert minimum(rates, losses) == pytest.approx(1e-2)


def test_trimming_moves_steep_off_the_first_step():
    # A sweep whose first steps fall fastest (a loss that starts too high):
    # untrimmed, steep is the very first rate; fastai skips the first tenth.
    rates = 10.0 ** np.linspace(-5, 0, 50)
    losses = 1.0 + (np.log10(rates) + 2.0) ** 2
    losses[:3] = [9.0, 6.0, 4.0]
    assert steep(rates, losses) == rates[0]
    assert suggest(rates, losses)["steep"] == pytest.approx(rates[5])


def test_suggestion_range_truncates_at_the_first_non_finite():
    losses = [3.0, 2.0, 1.5, 1.0, np.inf, np.nan, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]
    result = LRFinderResult.from_losses(10.0 ** -np.arange(12.0)[::-1], losses, 0.0)
    assert result.suggestion_range == (1, 4)
    assert result.suggestions["minimum"] == pytest.approx(1e-8 / 10)


@pytest.mark.parametrize("curve", CURVES, ids=[curve["name"] for curve in CURVES])
def test_suggestions_agree_with_fastai(curve):
    rates = np.array(curve["rates"], dtype="float64")
    smoothed = np.array([float(v) for v in curve["smoothed_losses"]])
    raw = np.array([float(v) for v in curve["raw_losses"]])
    ours = suggest(rates, smoothed, curve["num_it"])
    for name, value in curve["suggestions"].items():
        np.testing.assert_allclose(ours[name], value, rtol=1e-6, err_msg=name)
    finite = np.isfinite(smoothed)
    for name, rule in (("valley", valley), ("steep", steep), ("minimum", minimum)):
        np.testing.assert_allclose(
            rule(rates[finite], smoothed[finite]),
            curve["untrimmed"][name],
            rtol=1e-6,
            err_msg=name,
        )
    # The same EMA: fastai smooths the real sweep in float32 (~1e-6 after 83
    # steps), the synthetic curves in float64.
    tolerance = 2e-6 if curve["name"] == "real_sweep" else 1e-12
    ema = smooth(raw, curve["beta"])
    np.testing.assert_allclose(ema[finite], smoothed[finite], rtol=tolerance)
    np.testing.assert_array_equal(np.isnan(ema), np.isnan(smoothed))
    result = LRFinderResult.from_losses(
        rates, raw, curve["beta"], num_steps=curve["num_it"]
    )
    for name, value in curve["suggestions"].items():
        np.testing.assert_allclose(result.suggestions[name], value, rtol=1e-6)


def test_smoothing_is_bias_corrected():
    result = LRFinderResult.from_losses(
        [1e-3, 1e-2, 1e-1], [4.0, 2.0, 1.0], smoothing=0.5
    )
    # a = [2, 2, 1.5]; corrections 1 - 0.5 ** k = [0.5, 0.75, 0.875].
    np.testing.assert_allclose(result.smoothed_losses, [4.0, 8.0 / 3.0, 1.5 / 0.875])


def test_plot_lr_vs_loss_shades_the_skipped_points():
    import matplotlib

    matplotlib.use("Agg")
    rates = 10.0 ** np.linspace(-4, 0, 20)
    result = LRFinderResult.from_losses(
        rates, (np.log10(rates) + 2) ** 2, smoothing=0.5
    )
    ax = plot_lr_vs_loss(result)
    assert ax.get_xscale() == "log"
    assert len(ax.lines) == 5  # raw, smoothed, three suggestions
    np.testing.assert_allclose(ax.lines[1].get_ydata(), result.smoothed_losses)
    # Skipped: the first 20 // 10 = 2 points and the last 5 (used: [2, 15)).
    first, last = ax.patches
    assert (first.get_x(), first.get_x() + first.get_width()) == pytest.approx(
        (rates[0], rates[2])
    )
    assert (last.get_x(), last.get_x() + last.get_width()) == pytest.approx(
        (rates[14], rates[19])
    )


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(min_rate=0.0), r"`min_rate`\. Expected a float > 0\. Received"),
        (
            dict(min_rate=1.0, max_rate=0.1),
            r"`max_rate`\. Expected a float > min_rate=1\.0",
        ),
        (
            dict(max_rate=float("inf")),
            r"`max_rate`\. Expected a float > min_rate=1e-05\. Received: max_rate=inf",
        ),
        (dict(min_rate="1e-5"), r"`min_rate`\. Expected a float > 0"),
        (dict(num_steps=1), r"`num_steps`\. Expected an integer >= 2 or None"),
        (dict(smoothing=1.0), r"`smoothing`\. Expected a float in \[0, 1\)"),
        (
            dict(divergence_threshold=1.0),
            r"`divergence_threshold`\. Expected a float > 1",
        ),
        (dict(batch_size=0), r"`batch_size`\. Expected an integer >= 1"),
        (dict(batch_size=True), r"`batch_size`\. Expected an integer >= 1"),
        (dict(epochs=0), r"`epochs`\. Expected an integer >= 1"),
        (dict(shuffle="False"), r"`shuffle`\. Expected a bool"),
    ],
)
def test_argument_errors(kwargs, match):
    x, y = data(16)
    with pytest.raises(ValueError, match=match):
        find_learning_rate(make_model(), x, y, **kwargs)


def test_numpy_scalar_arguments_are_accepted():
    x, y = linear_data()
    result = find_learning_rate(
        linear_model(),
        x,
        y,
        batch_size=np.int64(4),
        num_steps=np.int32(5),
        min_rate=np.float32(1e-3),
        max_rate=np.float64(1e-1),
        shuffle=np.bool_(False),
    )
    np.testing.assert_allclose(
        result.rates, 1e-3 * 10.0 ** (np.arange(5) / 2), rtol=1e-6
    )


@pytest.mark.parametrize(
    ("inputs", "match"),
    [
        (
            lambda x, y: (x[:64], np.concatenate([y, y])[:128]),
            r"`y`\. Expected as many samples as `x` \(64\)\. "
            r"Received: y=<\[128\] samples>",
        ),
        (
            lambda x, y: (np.where(np.arange(64)[:, None] == 9, np.nan, x), y),
            r"`x`\. Expected finite values.*Received: x=<4 non-finite value",
        ),
        (lambda x, y: (x[:0], y[:0]), r"`x`\. Expected at least one sample"),
        (
            lambda x, y: (x[:8], y[:8]),
            r"`num_steps`\. Expected a sweep of at least 2 steps",
        ),
    ],
)
def test_data_errors(inputs, match):
    x, y = data(64)
    x, y = inputs(x, y)
    model = make_model()
    python_state, numpy_state = random.getstate(), np.random.get_state()[1].copy()  # noqa: NPY002
    with pytest.raises(ValueError, match=match):
        find_learning_rate(model, x, y, batch_size=8)
    # Refused before anything ran: no RNG was touched.
    assert random.getstate() == python_state
    np.testing.assert_array_equal(np.random.get_state()[1], numpy_state)  # noqa: NPY002


def test_generator_without_num_steps_is_refused():
    x, y = linear_data()
    with pytest.raises(
        ValueError, match=r"`num_steps`\. Expected an integer >= 2 when"
    ):
        find_learning_rate(linear_model(), batch_generator(x, y, 8))


def test_model_errors():
    x, y = data(16)
    uncompiled = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    with pytest.raises(ValueError, match="Expected a compiled model"):
        find_learning_rate(uncompiled, x, y)
    unbuilt = keras.Sequential([keras.layers.Dense(1)])
    unbuilt.compile("sgd", "mse")
    with pytest.raises(ValueError, match="Expected a built model"):
        find_learning_rate(unbuilt, x, y)
    scheduled = make_model(
        keras.optimizers.SGD(keras.optimizers.schedules.ExponentialDecay(0.1, 10, 0.5))
    )
    with pytest.raises(ValueError, match="Expected a float learning rate"):
        find_learning_rate(scheduled, x, y)


def test_a_second_kerasx_schedule_in_the_sweep_is_refused():
    from kerasx.callbacks import OneCycleScheduler

    x, y = data(64)
    model = make_model(keras.optimizers.SGD(0.01))
    before = state(model)
    with pytest.raises(ValueError, match="ExponentialLearningRate and OneCycleSch"):
        find_learning_rate(
            model, x, y, batch_size=8, callbacks=[OneCycleScheduler(max_rate=1.0)]
        )
    assert_same_state(before, state(model))
