"""GradientStats and ActivationStats refuse each invalid argument, in Keras' words."""

from __future__ import annotations

import re

import keras
import numpy as np
import pytest

from kerasx.callbacks import ActivationStats, GradientStats

X, Y = np.ones((4, 3), "float32"), np.zeros((4, 1), "float32")
PROBE = "a probe batch `(x, y)` or `(x, y, sample_weight)` of arrays with the same "
PROBE += "number of samples"
INPUTS = "a probe batch of inputs `x`, or a tuple `(x, y[, sample_weight])` whose "
INPUTS += "targets are ignored, of arrays with the same number of samples"


def _message(name, expected, received):
    return re.escape(
        f"Invalid value received for argument `{name}`. Expected {expected}. "
        f"Received: {name}={received}"
    )


def _model(name="hidden"):
    model = keras.Sequential(
        [keras.Input((3,)), keras.layers.Dense(2, name=name), keras.layers.Dense(1)]
    )
    return model


GRADIENT_CASES = [
    ({"data": X}, "data", PROBE, "<a ndarray>"),
    ({"data": (X,)}, "data", PROBE, "<a tuple of 1>"),
    ({"data": (X, Y, Y, Y)}, "data", PROBE, "<a tuple of 4>"),
    ({"data": (X, Y[:2])}, "data", PROBE, "<sample counts [2, 4]>"),
    ({"data": (X, None)}, "data", PROBE, "<y=None>"),
    ({"data": (X, [0, 1, 0, 1])}, "data", PROBE, "<a int in y>"),
    ({"every": 0}, "every", "an integer >= 1", "0"),
    ({"every": True}, "every", "an integer >= 1", "True"),
    ({"per": "step"}, "per", "one of ['epoch', 'batch']", "'step'"),
    (
        {"layers": "hidden"},
        "layers",
        "None or a non-empty list of layer names",
        "'hidden'",
    ),
    ({"layers": []}, "layers", "None or a non-empty list of layer names", "[]"),
    ({"layers": [1]}, "layers", "None or a non-empty list of layer names", "[1]"),
    ({"training": "yes"}, "training", "a bool (True or False)", "'yes'"),
    ({"norms": "all"}, "norms", "one of ['variable', 'layer', 'global']", "'all'"),
    ({"vanishing_ratio": 1.0}, "vanishing_ratio", "a float in (0, 1) or None", "1.0"),
    ({"exploding_ratio": 1}, "exploding_ratio", "a float > 1 or None", "1"),
]


@pytest.mark.parametrize(("kwargs", "name", "expected", "received"), GRADIENT_CASES)
def test_gradient_stats_refuses(kwargs, name, expected, received):
    kwargs = {"data": (X, Y), **kwargs}
    with pytest.raises(ValueError, match=f"^{_message(name, expected, received)}$"):
        GradientStats(**kwargs)


def _begin(callback, model):
    callback.set_model(model)
    callback.on_train_begin()


def test_gradient_stats_refuses_unknown_layers_when_training_begins():
    model = _model()
    model.compile("sgd", "mse")
    expected = (
        "names of layers with trainable weights of the model (['dense', 'hidden']); "
        "not found: ['nope']"
    )
    with pytest.raises(ValueError, match=_message("layers", expected, "['nope']")):
        _begin(GradientStats((X, Y), layers=["nope"]), model)


def test_gradient_stats_refuses_a_model_without_loss():
    model = _model()
    model.compile("sgd")
    expected = "a model compiled with a loss (GradientStats differentiates it)"
    received = "<a model compiled without a loss>"
    with pytest.raises(ValueError, match=_message("model", expected, received)):
        _begin(GradientStats((X, Y)), model)


def test_gradient_stats_refuses_a_model_without_trainable_weights():
    model = _model()
    model.trainable = False
    model.compile("sgd", "mse")
    expected = "a model with trainable weights"
    with pytest.raises(
        ValueError, match=_message("model", expected, "<no trainable weights>")
    ):
        _begin(GradientStats((X, Y)), model)


def test_gradient_stats_refuses_a_layer_named_global():
    model = _model(name="global")
    model.compile("sgd", "mse")
    expected = "no layer named 'global' (the key of the global norm)"
    with pytest.raises(
        ValueError, match=_message("model", expected, "<a layer named 'global'>")
    ):
        _begin(GradientStats((X, Y)), model)


@pytest.mark.parametrize("cls", [GradientStats, ActivationStats])
def test_from_config_needs_the_probe_batch(cls):
    config = cls((X, Y)).get_config()
    expected = (
        f"a `{cls.__name__}.get_config()` dict with a `data` entry added (the probe "
        f'batch is not serialised: `{cls.__name__}.from_config({{**config, "data": '
        "probe_batch})`)"
    )
    received = f"<keys {sorted(config)}>"
    with pytest.raises(ValueError, match=f"^{_message('config', expected, received)}$"):
        cls.from_config(config)


RANGE = "a pair of finite floats (low, high) with 0 <= low < high"
ACTIVATION_CASES = [
    ({"data": None}, "data", INPUTS, "<x=None>"),
    ({"data": (X, Y[:1])}, "data", INPUTS, "<sample counts [1, 4]>"),
    ({"data": ()}, "data", INPUTS, "<a tuple of 0>"),
    ({"every": 1.5}, "every", "an integer >= 1", "1.5"),
    ({"bins": 0}, "bins", "an integer >= 1", "0"),
    ({"per": "epochs"}, "per", "one of ['epoch', 'batch']", "'epochs'"),
    (
        {"layers": ("a", 2)},
        "layers",
        "None or a non-empty list of layer names",
        "('a', 2)",
    ),
    ({"training": 1}, "training", "a bool (True or False)", "1"),
    ({"hist_range": (1.0, 0.0)}, "hist_range", RANGE, "(1.0, 0.0)"),
    ({"hist_range": (-1.0, 1.0)}, "hist_range", RANGE, "(-1.0, 1.0)"),
    ({"hist_range": (0.0, np.inf)}, "hist_range", RANGE, "(0.0, inf)"),
    ({"hist_range": (0.0,)}, "hist_range", RANGE, "(0.0,)"),
    ({"hist_range": "0,1"}, "hist_range", RANGE, "'0,1'"),
    ({"near_zero": -0.1}, "near_zero", "a float >= 0", "-0.1"),
    ({"saturation": 1.0}, "saturation", "a float in (0, 1)", "1.0"),
]


@pytest.mark.parametrize(("kwargs", "name", "expected", "received"), ACTIVATION_CASES)
def test_activation_stats_refuses(kwargs, name, expected, received):
    kwargs = {"data": X, **kwargs}
    with pytest.raises(ValueError, match=f"^{_message(name, expected, received)}$"):
        ActivationStats(**kwargs)


def test_activation_stats_refuses_unknown_layers_when_training_begins():
    expected = (
        "names of layers with weights or activation layers, called once, of the "
        "model (['dense', 'hidden']); not found: ['dropout']"
    )
    with pytest.raises(ValueError, match=_message("layers", expected, "['dropout']")):
        _begin(ActivationStats(X, layers=["dropout"]), _model())


def test_activation_stats_refuses_a_subclassed_model():
    class Subclassed(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(1)

        def call(self, x):
            return self.dense(x)

    model = Subclassed()
    model(X)
    expected = (
        "a Functional or Sequential model with known inputs (ActivationStats reads "
        "its layers' symbolic outputs)"
    )
    received = "<a Subclassed without symbolic inputs>"
    with pytest.raises(ValueError, match=_message("model", expected, received)):
        _begin(ActivationStats(X), model)
