"""Argument checks of `BatchNormActivation` and `kerasx.ops`, via `kerasx._checks`.

NumPy scalars are accepted where Python numbers are, bools are not numbers,
and inf / NaN are refused, as everywhere in kerasx.
"""

from __future__ import annotations

import numpy as np
import pytest

from kerasx.layers import BatchNormActivation
from kerasx.ops import batch_norm_activation


def test_numpy_scalars_are_accepted():
    layer = BatchNormActivation(
        "leaky_relu",
        axis=np.int64(-1),
        momentum=np.float32(0.9),
        epsilon=np.float64(1e-3),
        negative_slope=np.float32(0.1),
        center=np.bool_(True),
    )
    assert layer.axis == -1 and type(layer.axis) is int
    assert type(layer.momentum) is float and layer.momentum == pytest.approx(0.9)
    assert type(layer.negative_slope) is float
    assert layer.get_config()["epsilon"] == 1e-3


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"epsilon": float("inf")}, r"Expected a float > 0. Received: epsilon=inf"),
        ({"epsilon": float("nan")}, r"Received: epsilon=nan"),
        ({"epsilon": True}, r"Received: epsilon=True"),
        ({"momentum": True}, r"Expected a float in \[0, 1\). Received: momentum=True"),
        ({"momentum": "0.9"}, r"Received: momentum='0.9'"),
        ({"axis": True}, r"Expected an integer. Received: axis=True"),
        ({"negative_slope": float("inf")}, r"Received: negative_slope=inf"),
        (
            {"center": "yes"},
            r"Expected a bool \(True or False\). Received: center='yes'",
        ),
        ({"scale": 1}, r"argument `scale`.*Received: scale=1"),
        ({"synchronized": "False"}, r"Received: synchronized='False'"),
        ({"memory": True}, r"argument `memory`.*Received: memory=True"),
    ],
)
def test_layer_argument_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        BatchNormActivation(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"epsilon": float("inf")}, r"Received: epsilon=inf"),
        ({"epsilon": 0.0}, r"Expected a float > 0. Received: epsilon=0.0"),
        ({"axis": True}, r"argument `axis`.*Received: axis=True"),
        ({"axis": -3}, r"Expected an integer in \[-2, 1\]. Received: axis=-3"),
        ({"negative_slope": -0.5}, r"Expected a float >= 0.*negative_slope=-0.5"),
        ({"memory": "inplace"}, r"Expected one of \['recompute', 'invert'\]"),
    ],
)
def test_op_argument_errors(kwargs, match):
    ones = np.ones(3, "float32")
    with pytest.raises(ValueError, match=match):
        batch_norm_activation(np.ones((2, 3), "float32"), ones, ones, **kwargs)
