"""One test per argument validation error of the kerasx.models builders."""

from __future__ import annotations

import re

import pytest

from kerasx.models import build_cnn, build_mlp, build_selu_mlp


def _message(argument: str, value: str) -> str:
    return (
        rf"Invalid value received for argument `{argument}`\. Expected .*\. "
        rf"Received: {argument}={re.escape(value)}$"
    )


@pytest.mark.parametrize(
    ("kwargs", "argument", "value"),
    [
        ({"input_shape": ()}, "input_shape", "()"),
        ({"input_shape": (28, 0)}, "input_shape", "(28, 0)"),
        ({"input_shape": (28, None)}, "input_shape", "(28, None)"),
        ({"input_shape": "28"}, "input_shape", "'28'"),
        ({"num_classes": 0}, "num_classes", "0"),
        ({"num_classes": True}, "num_classes", "True"),
        ({"hidden_units": ()}, "hidden_units", "()"),
        ({"hidden_units": (100, 0)}, "hidden_units", "(100, 0)"),
        ({"hidden_units": 100}, "hidden_units", "100"),
        ({"activation": "elux"}, "activation", "'elux'"),
        (
            {"kernel_initializer": "he_normalish"},
            "kernel_initializer",
            "'he_normalish'",
        ),
        ({"kernel_initializer": None}, "kernel_initializer", "None"),
        ({"batch_norm": "middle"}, "batch_norm", "'middle'"),
        ({"batch_norm": True}, "batch_norm", "True"),
        ({"dropout_rate": 1.0}, "dropout_rate", "1.0"),
        ({"dropout_rate": -0.1}, "dropout_rate", "-0.1"),
        ({"dropout": "gaussian"}, "dropout", "'gaussian'"),
        ({"dropout_position": "first"}, "dropout_position", "'first'"),
        ({"dropout_position": None}, "dropout_position", "None"),
        ({"kernel_regularizer": "l3"}, "kernel_regularizer", "'l3'"),
        ({"output_activation": "softmaxx"}, "output_activation", "'softmaxx'"),
        ({"preprocessing": "rescale"}, "preprocessing", "'rescale'"),
        ({"name": 3}, "name", "3"),
    ],
)
def test_build_mlp_validation(kwargs, argument, value):
    arguments = {"input_shape": (28, 28), "num_classes": 10, **kwargs}
    input_shape = arguments.pop("input_shape")
    num_classes = arguments.pop("num_classes")
    with pytest.raises(ValueError, match=_message(argument, value)):
        build_mlp(input_shape, num_classes, **arguments)


@pytest.mark.parametrize(
    ("kwargs", "argument", "value"),
    [
        ({"alpha_dropout_rate": 1.5}, "alpha_dropout_rate", "1.5"),
        ({"mc": "yes"}, "mc", "'yes'"),
        ({"dropout_position": "Last"}, "dropout_position", "'Last'"),
        ({"hidden_units": []}, "hidden_units", "[]"),
    ],
)
def test_build_selu_mlp_validation(kwargs, argument, value):
    with pytest.raises(ValueError, match=_message(argument, value)):
        build_selu_mlp((8,), 2, **kwargs)


@pytest.mark.parametrize(
    ("input_shape", "kwargs", "argument", "value"),
    [
        ((32, 32), {}, "input_shape", "(32, 32)"),
        ((1, 32, 32, 3), {}, "input_shape", "(1, 32, 32, 3)"),
        ((None, None, 3), {"head": "flatten"}, "input_shape", "(None, None, 3)"),
        ((32, 32, None), {}, "input_shape", "(32, 32, None)"),
        ((32, 32, 3), {"num_classes": 0}, "num_classes", "0"),
        ((32, 32, 3), {"filters": ()}, "filters", "()"),
        ((32, 32, 3), {"filters": (32, -64)}, "filters", "(32, -64)"),
        ((8, 8, 1), {"filters": (4,) * 4}, "filters", "(4, 4, 4, 4)"),
        ((32, 32, 3), {"convs_per_block": 0}, "convs_per_block", "0"),
        ((32, 32, 3), {"kernel_size": 0}, "kernel_size", "0"),
        ((32, 32, 3), {"batch_norm": "yes"}, "batch_norm", "'yes'"),
        ((32, 32, 3), {"activation": "relux"}, "activation", "'relux'"),
        ((32, 32, 3), {"downsample": "avgpool"}, "downsample", "'avgpool'"),
        ((32, 32, 3), {"head": "max"}, "head", "'max'"),
        ((32, 32, 3), {"dense_units": (0,)}, "dense_units", "(0,)"),
        ((32, 32, 3), {"dropout_rate": 1}, "dropout_rate", "1"),
        ((32, 32, 3), {"kernel_regularizer": 2}, "kernel_regularizer", "2"),
        (
            (32, 32, 3),
            {"fused_bn": True, "batch_norm": False},
            "fused_bn",
            "True",
        ),
        (
            (32, 32, 3),
            {"kernel_initializer": "glorot"},
            "kernel_initializer",
            "'glorot'",
        ),
        ((32, 32, 3), {"preprocessing": 1 / 255}, "preprocessing", repr(1 / 255)),
        ((32, 32, 3), {"name": ""}, "name", "''"),
    ],
)
def test_build_cnn_validation(input_shape, kwargs, argument, value):
    kwargs = dict(kwargs)
    num_classes = kwargs.pop("num_classes", 10)
    with pytest.raises(ValueError, match=_message(argument, value)):
        build_cnn(input_shape, num_classes, **kwargs)


def test_build_cnn_accepts_unknown_spatial_size_with_gap():
    model = build_cnn((None, None, 3), 4, filters=(4,), convs_per_block=1)
    assert model.input_shape == (None, None, None, 3)
    assert model.output_shape == (None, 4)
