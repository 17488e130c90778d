"""kerasx.plotting.plot_learning_curves: lines drawn and validation."""

from __future__ import annotations

import keras
import numpy as np
import pytest


def test_plots_train_and_validation_lines():
    import matplotlib

    matplotlib.use("Agg")
    from kerasx.plotting import plot_learning_curves

    history = {
        "loss": [1.0, 0.5, 0.25],
        "val_loss": [1.2, 0.7, 0.6],
        "accuracy": [0.5, 0.7, 0.9],
    }
    ax = plot_learning_curves(history, metrics=("loss", "accuracy"), title="t")
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert list(lines) == ["loss", "val_loss", "accuracy"]
    np.testing.assert_array_equal(lines["val_loss"].get_xdata(), [1, 2, 3])
    np.testing.assert_array_equal(lines["val_loss"].get_ydata(), [1.2, 0.7, 0.6])
    assert lines["loss"].get_color() == lines["val_loss"].get_color()
    assert lines["val_loss"].get_linestyle() == "--"
    assert ax.get_title() == "t"


def test_accepts_history_object():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from kerasx.plotting import plot_learning_curves

    history = keras.callbacks.History()
    history.history = {"loss": [0.3, 0.2]}
    _, ax = plt.subplots()
    assert plot_learning_curves(history, ax=ax, metrics="loss") is ax
    assert [line.get_label() for line in ax.get_lines()] == ["loss"]


def test_errors():
    from kerasx.plotting import plot_learning_curves

    with pytest.raises(ValueError, match="not in the history"):
        plot_learning_curves({"loss": [1.0]}, metrics=("accuracy",))
    with pytest.raises(ValueError, match="at least one metric"):
        plot_learning_curves({"loss": [1.0]}, metrics=())
    with pytest.raises(ValueError, match="history is empty"):
        plot_learning_curves({"loss": []}, metrics=("loss",))
    with pytest.raises(TypeError, match=r"Expected a `keras\.callbacks\.History`"):
        plot_learning_curves([1.0, 2.0])
