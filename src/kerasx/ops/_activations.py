"""Activation tables for the fused BatchNorm + activation kernel.

Each entry gives the forward function, its derivative as a function of the
pre-activation `z` and, for invertible activations, the inverse `z(y)` and
the derivative as a function of the output `y`. Everything is written with
`keras.ops` so that one definition serves every backend; the backend modules
only add a custom gradient and compilation around it.

Conventions at the kinks follow TensorFlow's kernels (`relu'(0) = 0`,
`leaky_relu'(0) = negative_slope`, `elu'(0) = 1`); they only matter on a
set of measure zero.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from keras import ops

_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946
_INV_SQRT_2 = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)

Fn = Callable[..., object]


@dataclass(frozen=True)
class ActivationSpec:
    """Forward, derivative and (optional) inverse of one activation.

    All callables take `(tensor, negative_slope)`; `negative_slope` is
    only read by `leaky_relu`.
    """

    name: str
    forward: Fn
    derivative: Fn
    inverse: Fn | None = None
    derivative_from_output: Fn | None = None

    @property
    def invertible(self) -> bool:
        return self.inverse is not None


def _step(condition, true_value, false_value):
    return ops.where(condition, true_value, false_value)


def _gelu_derivative(z, _):
    cdf = 0.5 * (1.0 + ops.erf(z * _INV_SQRT_2))
    pdf = ops.exp(-0.5 * z * z) * _INV_SQRT_2PI
    return cdf + z * pdf


def _silu_derivative(z, _):
    s = ops.sigmoid(z)
    return s * (1.0 + z * (1.0 - s))


def _sigmoid_derivative(z, _):
    s = ops.sigmoid(z)
    return s * (1.0 - s)


def _tanh_derivative(z, _):
    t = ops.tanh(z)
    return 1.0 - t * t


def _elu_inverse(y, _):
    # y = -1 only where exp(z) underflowed; clamp so log1p stays finite. Those
    # elements have zero derivative, so only their xhat (not g) is affected.
    return _step(y > 0.0, y, ops.log1p(ops.maximum(y, -1.0 + 1e-7)))


_SPECS = (
    ActivationSpec(
        "relu",
        forward=lambda z, _: ops.relu(z),
        derivative=lambda z, _: ops.cast(z > 0.0, z.dtype),
    ),
    ActivationSpec(
        "relu6",
        forward=lambda z, _: ops.relu6(z),
        derivative=lambda z, _: ops.cast(ops.logical_and(z > 0.0, z < 6.0), z.dtype),
    ),
    ActivationSpec(
        "leaky_relu",
        forward=lambda z, slope: ops.leaky_relu(z, negative_slope=slope),
        derivative=lambda z, slope: _step(z > 0.0, 1.0, slope),
        inverse=lambda y, slope: _step(y > 0.0, y, y / slope),
        derivative_from_output=lambda y, slope: _step(y > 0.0, 1.0, slope),
    ),
    ActivationSpec(
        "elu",
        forward=lambda z, _: ops.elu(z),
        derivative=lambda z, _: _step(z > 0.0, 1.0, ops.exp(z)),
        inverse=_elu_inverse,
        derivative_from_output=lambda y, _: _step(y > 0.0, 1.0, y + 1.0),
    ),
    ActivationSpec(
        "selu",
        forward=lambda z, _: ops.selu(z),
        derivative=lambda z, _: _step(
            z > 0.0, _SELU_SCALE, _SELU_SCALE * _SELU_ALPHA * ops.exp(z)
        ),
    ),
    ActivationSpec(
        "gelu",
        forward=lambda z, _: ops.gelu(z, approximate=False),
        derivative=_gelu_derivative,
    ),
    ActivationSpec(
        "silu", forward=lambda z, _: ops.silu(z), derivative=_silu_derivative
    ),
    ActivationSpec(
        "sigmoid",
        forward=lambda z, _: ops.sigmoid(z),
        derivative=_sigmoid_derivative,
    ),
    ActivationSpec(
        "tanh", forward=lambda z, _: ops.tanh(z), derivative=_tanh_derivative
    ),
    ActivationSpec(
        "softplus",
        forward=lambda z, _: ops.softplus(z),
        derivative=lambda z, _: ops.sigmoid(z),
    ),
    ActivationSpec(
        "linear",
        forward=lambda z, _: z,
        derivative=lambda z, _: ops.ones_like(z),
        inverse=lambda y, _: y,
        derivative_from_output=lambda y, _: ops.ones_like(y),
    ),
)

ACTIVATIONS: dict[str, ActivationSpec] = {spec.name: spec for spec in _SPECS}
ALIASES = {"swish": "silu"}
INVERTIBLE = tuple(name for name, spec in ACTIVATIONS.items() if spec.invertible)


def canonical_name(name: str) -> str | None:
    """Returns the table key for `name` (resolving aliases) or `None`."""
    name = ALIASES.get(name, name)
    return name if name in ACTIVATIONS else None


def get(name: str) -> ActivationSpec:
    """Returns the spec of a supported activation name or alias."""
    key = canonical_name(name)
    if key is None:
        raise ValueError(
            "Invalid value received for argument `activation`. Expected one of "
            f"{sorted([*ACTIVATIONS, *ALIASES])} or a callable. "
            f"Received: activation={name!r}"
        )
    return ACTIVATIONS[key]
