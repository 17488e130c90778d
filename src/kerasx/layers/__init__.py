"""Keras layers: MC dropout twins, the fused BatchNormActivation, Temperature.

Importing this package registers every layer with Keras serialization; the
backend kernels of `BatchNormActivation` are compiled lazily on first use.
"""

from kerasx.layers.batch_norm_activation import BatchNormActivation
from kerasx.layers.mc_dropout import (
    MCAlphaDropout,
    MCDropout,
    MCGaussianDropout,
    MCGaussianNoise,
    MCSpatialDropout1D,
    MCSpatialDropout2D,
    MCSpatialDropout3D,
)
from kerasx.layers.temperature import Temperature

__all__ = [
    "BatchNormActivation",
    "MCAlphaDropout",
    "MCDropout",
    "MCGaussianDropout",
    "MCGaussianNoise",
    "MCSpatialDropout1D",
    "MCSpatialDropout2D",
    "MCSpatialDropout3D",
    "Temperature",
]
