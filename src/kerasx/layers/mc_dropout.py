"""Monte Carlo twins of the Keras dropout-family layers.

Each ``MC*`` layer subclasses the Keras layer of the same name, takes exactly
the same constructor arguments, owns exactly the same state (one
``SeedGenerator`` when the rate is positive) and serializes to the same config.
The only difference is that it ignores the ``training`` flag: the noise is
applied in ``fit``, ``predict``, ``__call__``, inside ``jit``/``tf.function``
and after a ``.keras`` save/load round trip. This is what Monte Carlo dropout
needs, without the usual ``model(x, training=True)`` trick that also switches
``BatchNormalization`` to training mode and overwrites its moving statistics.
"""

from __future__ import annotations

from typing import Any

import keras

__all__ = [
    "MCAlphaDropout",
    "MCDropout",
    "MCGaussianDropout",
    "MCGaussianNoise",
    "MCSpatialDropout1D",
    "MCSpatialDropout2D",
    "MCSpatialDropout3D",
]


class _AlwaysStochastic:
    """Mixin that runs the parent layer's training-mode ``call`` in every mode."""

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        # `training` is accepted for signature compatibility and deliberately
        # ignored: the whole point of the MC twin is noise at inference time.
        del training
        return super().call(inputs, training=True)


@keras.saving.register_keras_serializable(package="kerasx")
class MCDropout(_AlwaysStochastic, keras.layers.Dropout):
    """Dropout that stays active at inference time (Monte Carlo dropout).

    Each element is set to 0 with probability `rate` and the kept elements are
    scaled by `1 / (1 - rate)`, so that `E[y] = x`, whatever the value of
    `training`. Averaging `T` stochastic forward passes approximates the
    predictive distribution of a Bayesian network (Gal & Ghahramani, 2016).

    Args:
        rate: Float in `[0, 1]`, fraction of the input units to drop.
        noise_shape: Shape of the binary mask (`None` entries take the input
            size), e.g. `(batch_size, 1, features)` to share the mask over
            time steps.
        seed: Integer seed; two fresh layers with the same seed draw the same
            sequence of masks.
        **kwargs: Base layer keyword arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: Input tensor of any rank.
        training: Ignored; dropout is always applied.

    Example:

    ```python
    >>> import numpy as np
    >>> layer = MCDropout(0.5, seed=1)
    >>> y = keras.ops.convert_to_numpy(layer(np.ones((2, 8)), training=False))
    >>> sorted(set(y.ravel().tolist())) in ([0.0, 2.0], [0.0], [2.0])
    True

    ```

    Reference:
        Gal & Ghahramani, "Dropout as a Bayesian Approximation: Representing
        Model Uncertainty in Deep Learning", ICML 2016.
    """


@keras.saving.register_keras_serializable(package="kerasx")
class MCAlphaDropout(_AlwaysStochastic, keras.layers.AlphaDropout):
    """Alpha dropout that stays active at inference time.

    Dropped units are set to the SELU negative saturation value
    `alpha' = -scale * alpha` and the result is affinely rescaled with
    `a = ((1 - rate) * (1 + rate * alpha'^2)) ** -0.5`, `b = -a * alpha' * rate`
    so that zero-mean unit-variance inputs keep their mean and variance. Use it
    with self-normalizing (SELU) networks.

    Args:
        rate: Float in `[0, 1]`, fraction of the input units to drop.
        noise_shape: Shape of the binary mask (`None` entries take the input
            size).
        seed: Integer seed for reproducible masks.
        **kwargs: Base layer keyword arguments.

    Call arguments:
        inputs: Input tensor of any rank.
        training: Ignored; alpha dropout is always applied.

    Example:

    ```python
    >>> layer = MCAlphaDropout(0.1, seed=1)
    >>> tuple(layer(keras.ops.zeros((2, 4))).shape)
    (2, 4)

    ```

    Reference:
        Klambauer et al., "Self-Normalizing Neural Networks", NeurIPS 2017.
    """


@keras.saving.register_keras_serializable(package="kerasx")
class MCGaussianDropout(_AlwaysStochastic, keras.layers.GaussianDropout):
    """Multiplicative Gaussian noise that stays active at inference time.

    `y = x * eps` with `eps ~ N(1, rate / (1 - rate))`, the Gaussian
    approximation of dropout with the same rate.

    Args:
        rate: Float in `[0, 1)`, the equivalent dropout rate.
        seed: Integer seed for reproducible noise.
        **kwargs: Base layer keyword arguments.

    Call arguments:
        inputs: Input tensor of any rank.
        training: Ignored; the noise is always applied.

    Example:

    ```python
    >>> layer = MCGaussianDropout(0.2, seed=1)
    >>> tuple(layer(keras.ops.ones((2, 4))).shape)
    (2, 4)

    ```

    Reference:
        Srivastava et al., "Dropout: A Simple Way to Prevent Neural Networks
        from Overfitting", JMLR 2014, section 10.
    """


@keras.saving.register_keras_serializable(package="kerasx")
class MCGaussianNoise(_AlwaysStochastic, keras.layers.GaussianNoise):
    """Additive zero-centred Gaussian noise that stays active at inference time.

    `y = x + eps` with `eps ~ N(0, stddev^2)`.

    Args:
        stddev: Float in `[0, 1]`, standard deviation of the noise.
        seed: Integer seed for reproducible noise.
        **kwargs: Base layer keyword arguments.

    Call arguments:
        inputs: Input tensor of any rank.
        training: Ignored; the noise is always applied.

    Example:

    ```python
    >>> layer = MCGaussianNoise(0.1, seed=1)
    >>> tuple(layer(keras.ops.ones((2, 4))).shape)
    (2, 4)

    ```

    Reference:
        Keras `keras.layers.GaussianNoise`, with the training switch removed.
    """


@keras.saving.register_keras_serializable(package="kerasx")
class MCSpatialDropout1D(_AlwaysStochastic, keras.layers.SpatialDropout1D):
    """Spatial 1D dropout (whole channels) that stays active at inference time.

    For inputs `(batch, steps, channels)` one Bernoulli variable per
    `(sample, channel)` decides whether the whole feature map is zeroed;
    kept maps are scaled by `1 / (1 - rate)`.

    Args:
        rate: Float in `[0, 1]`, fraction of the channels to drop.
        seed: Integer seed for reproducible masks.
        name: Layer name.
        dtype: Layer dtype policy.

    Call arguments:
        inputs: A 3D tensor.
        training: Ignored; dropout is always applied.

    Example:

    ```python
    >>> layer = MCSpatialDropout1D(0.5, seed=1)
    >>> tuple(layer(keras.ops.ones((2, 5, 3))).shape)
    (2, 5, 3)

    ```

    Reference:
        Tompson et al., "Efficient Object Localization Using Convolutional
        Networks", CVPR 2015.
    """


@keras.saving.register_keras_serializable(package="kerasx")
class MCSpatialDropout2D(_AlwaysStochastic, keras.layers.SpatialDropout2D):
    """Spatial 2D dropout (whole feature maps) that stays active at inference.

    One Bernoulli variable per `(sample, channel)` zeroes the whole 2D map;
    kept maps are scaled by `1 / (1 - rate)`.

    Args:
        rate: Float in `[0, 1]`, fraction of the channels to drop.
        data_format: `"channels_last"` or `"channels_first"` (default: the
            Keras `image_data_format`).
        seed: Integer seed for reproducible masks.
        name: Layer name.
        dtype: Layer dtype policy.

    Call arguments:
        inputs: A 4D tensor.
        training: Ignored; dropout is always applied.

    Example:

    ```python
    >>> layer = MCSpatialDropout2D(0.5, seed=1)
    >>> tuple(layer(keras.ops.ones((2, 4, 4, 3))).shape)
    (2, 4, 4, 3)

    ```

    Reference:
        Tompson et al., "Efficient Object Localization Using Convolutional
        Networks", CVPR 2015.
    """


@keras.saving.register_keras_serializable(package="kerasx")
class MCSpatialDropout3D(_AlwaysStochastic, keras.layers.SpatialDropout3D):
    """Spatial 3D dropout (whole feature volumes) that stays active at inference.

    One Bernoulli variable per `(sample, channel)` zeroes the whole 3D volume;
    kept volumes are scaled by `1 / (1 - rate)`.

    Args:
        rate: Float in `[0, 1]`, fraction of the channels to drop.
        data_format: `"channels_last"` or `"channels_first"` (default: the
            Keras `image_data_format`).
        seed: Integer seed for reproducible masks.
        name: Layer name.
        dtype: Layer dtype policy.

    Call arguments:
        inputs: A 5D tensor.
        training: Ignored; dropout is always applied.

    Example:

    ```python
    >>> layer = MCSpatialDropout3D(0.5, seed=1)
    >>> tuple(layer(keras.ops.ones((1, 2, 2, 2, 3))).shape)
    (1, 2, 2, 2, 3)

    ```

    Reference:
        Tompson et al., "Efficient Object Localization Using Convolutional
        Networks", CVPR 2015.
    """


#: Keras layer class -> MC twin, matched by exact type (``SpatialDropout*``
#: subclasses ``Dropout``, so ``isinstance`` would pick the wrong twin).
KERAS_TO_MC: dict[type, type] = {
    keras.layers.Dropout: MCDropout,
    keras.layers.AlphaDropout: MCAlphaDropout,
    keras.layers.GaussianDropout: MCGaussianDropout,
    keras.layers.GaussianNoise: MCGaussianNoise,
    keras.layers.SpatialDropout1D: MCSpatialDropout1D,
    keras.layers.SpatialDropout2D: MCSpatialDropout2D,
    keras.layers.SpatialDropout3D: MCSpatialDropout3D,
}

#: MC twin -> Keras layer class (the inverse of `KERAS_TO_MC`).
MC_TO_KERAS: dict[type, type] = {mc: base for base, mc in KERAS_TO_MC.items()}
