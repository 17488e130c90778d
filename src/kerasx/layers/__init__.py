"""Keras layers: Monte Carlo dropout twins and the fused BatchNormActivation.

Names resolve lazily so that importing one layer family does not compile or
import the other's backend kernels.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "MCDropout": "mc_dropout",
    "MCAlphaDropout": "mc_dropout",
    "MCGaussianDropout": "mc_dropout",
    "MCGaussianNoise": "mc_dropout",
    "MCSpatialDropout1D": "mc_dropout",
    "MCSpatialDropout2D": "mc_dropout",
    "MCSpatialDropout3D": "mc_dropout",
    "BatchNormActivation": "batch_norm_activation",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        module = importlib.import_module(f"kerasx.layers.{_EXPORTS[name]}")
        value = getattr(module, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'kerasx.layers' has no attribute '{name}'")


def __dir__() -> list[str]:
    return __all__
