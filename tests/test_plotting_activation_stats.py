"""plot_activation_stats and plot_gradient_norms draw the recorded numbers."""

from __future__ import annotations

import re

import keras
import matplotlib
import numpy as np
import pytest

from kerasx.callbacks import ActivationStats, GradientStats
from kerasx.plotting import plot_activation_stats, plot_gradient_norms

matplotlib.use("Agg")


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


def _model():
    keras.utils.set_random_seed(2)
    model = keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(5, activation="relu", name="first"),
            keras.layers.Dense(5, activation="tanh", name="second"),
            keras.layers.Dense(1, name="out"),
        ]
    )
    model.compile(keras.optimizers.SGD(0.1), "mse")
    return model


def _drive(callback, model, epochs):
    callback.set_model(model)
    callback.on_train_begin()
    for epoch in range(epochs):
        callback.on_epoch_begin(epoch)
        callback.on_epoch_end(epoch, {})


def _recorded_activations(epochs=3):
    x = np.random.default_rng(3).normal(size=(16, 4)).astype("float32")
    stats = ActivationStats(x, bins=8, hist_range=(0.0, 2.0))
    _drive(stats, _model(), epochs)
    return stats


def test_colorful_dimension_images_are_log1p_histograms():
    stats = _recorded_activations()
    figure = plot_activation_stats(stats, ncols=2)
    images = [ax.get_images()[0] for ax in figure.axes if ax.get_images()]
    assert [ax.get_title() for ax in figure.axes[:3]] == ["first", "second", "out"]
    assert not figure.axes[3].axison  # the unused fourth cell of the 2 x 2 grid
    for image, name in zip(images, stats.layer_names, strict=True):
        expected = np.log1p(np.stack(stats.histograms[name]).T.astype(float))
        np.testing.assert_array_equal(image.get_array(), expected)
        assert image.get_array().shape == (8, 3)  # bins x steps
        assert image.origin == "lower"
        assert image.get_extent() == [0.0, 2.0, 0.0, 2.0]  # steps 0..2, |a| in [0, 2]


def test_statistic_curves_and_layer_selection():
    stats = _recorded_activations()
    figure = plot_activation_stats(stats, kind="stats", layers=["second"])
    mean_ax = figure.axes[0]
    assert mean_ax.get_title() == "mean"
    (line,) = mean_ax.get_lines()
    np.testing.assert_array_equal(line.get_xdata(), [0, 1, 2])
    np.testing.assert_array_equal(line.get_ydata(), stats.history["act_mean/second"])
    assert [ax.get_title() for ax in figure.axes] == [
        "mean",
        "std",
        "fraction near zero",
    ]


def test_gradient_norm_curves_from_the_callback_and_from_a_history():
    x = np.random.default_rng(4).normal(size=(8, 4)).astype("float32")
    stats = GradientStats((x, np.zeros((8, 1), "float32")), every=2)
    _drive(stats, _model(), 5)
    ax = plot_gradient_norms(stats)
    labels = [line.get_label() for line in ax.get_lines()]
    assert labels == ["first", "second", "out", "global"]
    first = ax.get_lines()[0]
    np.testing.assert_array_equal(first.get_xdata(), [0, 2, 4])
    np.testing.assert_array_equal(first.get_ydata(), stats.history["grad_norm/first"])
    assert ax.get_yscale() == "log" and ax.get_xlabel() == "epoch"
    history = {
        "grad_norm/a": [1.0, 2.0],
        "grad_norm/a/kernel": [1.0, 2.0],
        "loss": [0, 0],
    }
    ax = plot_gradient_norms(history, layers=["a"], global_norm=False)
    (line,) = ax.get_lines()
    np.testing.assert_array_equal(line.get_xdata(), [1, 2])  # epochs from 1


def test_many_layers_get_a_colour_bar():
    history = {f"grad_norm/layer_{i}": [1.0 + i] for i in range(12)}
    ax = plot_gradient_norms(history)
    assert ax.get_legend() is None
    assert len(ax.figure.axes) == 2  # the colour bar's axes


def _message(name, expected, received):
    return re.escape(
        f"Invalid value received for argument `{name}`. Expected {expected}. "
        f"Received: {name}={received}"
    )


def test_refusals():
    stats = _recorded_activations(epochs=1)
    with pytest.raises(
        ValueError,
        match=_message("stats", "a kerasx.callbacks.ActivationStats", "<a dict>"),
    ):
        plot_activation_stats({})
    with pytest.raises(
        ValueError, match=_message("kind", "one of ['hist', 'stats']", "'x'")
    ):
        plot_activation_stats(stats, kind="x")
    expected = (
        "a non-empty list of watched layers (['first', 'second', 'out']); "
        "not found: ['nope']"
    )
    with pytest.raises(ValueError, match=_message("layers", expected, "['nope']")):
        plot_activation_stats(stats, layers=["nope"])
    unused = ActivationStats(np.ones((2, 4), "float32"))
    expected = "an ActivationStats that has recorded (used in a `fit`)"
    with pytest.raises(
        ValueError, match=_message("stats", expected, "<no recorded step>")
    ):
        plot_activation_stats(unused)
    expected = (
        "a kerasx.callbacks.GradientStats, or the keras.callbacks.History (or its "
        "`.history` dict) of a `fit` it ran in"
    )
    with pytest.raises(
        ValueError, match=_message("history_or_callback", expected, "<a list>")
    ):
        plot_gradient_norms([1.0])
    expected = "a history with `grad_norm/<layer>` keys (from GradientStats)"
    with pytest.raises(
        ValueError, match=_message("history_or_callback", expected, "<keys ['loss']>")
    ):
        plot_gradient_norms({"loss": [1.0]})
    expected = "names of logged layers (['a']); not found: ['b']"
    with pytest.raises(ValueError, match=_message("layers", expected, "['b']")):
        plot_gradient_norms({"grad_norm/a": [1.0]}, layers=["b"])
