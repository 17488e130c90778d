"""`kerasx.transforms` and the rewrite behind `to_mc` on unbuilt models.

Folding reads the weights of the BatchNorms and of the layers before them, so
an unbuilt Sequential (no `keras.Input`, never built or called) is refused
with the standard message; it used to fail with a raw
`'NoneType' object is not subscriptable`. The other rewrites need no weights:
they return an unbuilt model of the same kind whose layers build on first use.
"""

from __future__ import annotations

import re

import keras
import numpy as np
import pytest

from kerasx.transforms import fold_batchnorm, fuse_batchnorm_activation, rewrite_model
from kerasx.uncertainty import from_mc, to_mc

layers = keras.layers


def _unbuilt(name="unbuilt"):
    return keras.Sequential(
        [layers.Dense(4), layers.BatchNormalization(), layers.ReLU()], name=name
    )


def test_fold_refuses_an_unbuilt_sequential():
    message = (
        "Invalid value received for argument `model`. Expected a built model "
        "(folding reads its weights: start a Sequential with keras.Input, or "
        "build or call it first). Received: model=<unbuilt Sequential 'unbuilt'>"
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        fold_batchnorm(_unbuilt())


def test_fold_accepts_a_sequential_built_without_input():
    model = _unbuilt()
    model.build((None, 3))
    folded = fold_batchnorm(model)
    assert [type(layer).__name__ for layer in folded.layers] == ["Dense", "ReLU"]
    x = np.linspace(-1, 1, 6, dtype="float32").reshape(2, 3)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(folded(x)),
        keras.ops.convert_to_numpy(model(x, training=False)),
        rtol=1e-5,
        atol=1e-6,
    )


@pytest.mark.parametrize(
    ("transform", "types"),
    [
        (fuse_batchnorm_activation, ["Dense", "BatchNormActivation"]),
        (to_mc, ["Dense", "BatchNormalization", "ReLU"]),
        (from_mc, ["Dense", "BatchNormalization", "ReLU"]),
        (
            lambda model: rewrite_model(model, lambda layer, context: None),
            ["Dense", "BatchNormalization", "ReLU"],
        ),
    ],
    ids=["fuse", "to_mc", "from_mc", "rewrite_model"],
)
def test_weightless_rewrites_of_an_unbuilt_sequential_build_on_first_call(
    transform, types
):
    rewritten = transform(_unbuilt())
    assert not rewritten.built
    assert [type(layer).__name__ for layer in rewritten.layers] == types
    y = rewritten(np.ones((2, 3), "float32"), training=False)
    assert tuple(y.shape) == (2, 4)
