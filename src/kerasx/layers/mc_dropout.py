"""Monte Carlo twins of the Keras dropout-family layers.

Each `MC*` layer subclasses the Keras layer of the same name, takes exactly
the same constructor arguments, owns exactly the same state (one
`SeedGenerator` when the rate is positive) and serializes to the same config.
The only difference is that it ignores the `training` flag: the noise is
applied in `fit`, `predict`, `__call__`, inside `jit`/`tf.function` and after a
`.keras` save/load round trip. This is what Monte Carlo dropout needs, without
the usual `model(x, training=True)` trick that also switches
`BatchNormalization` to training mode and overwrites its moving statistics.

Inside `kerasx.uncertainty.mc_predict` the layers draw their noise from
`row_noise` instead of their `SeedGenerator`: a counter-based generator keyed
by `(seed, row index, sample index)`, so that a row's samples do not depend on
which other rows share its batch (the batch size then changes nothing).
"""

from __future__ import annotations

import contextlib
import contextvars
import math
from collections.abc import Iterator
from typing import Any

import keras
import numpy as np
from keras import ops

from kerasx import _keras_internals

__all__ = [
    "MCAlphaDropout",
    "MCDropout",
    "MCGaussianDropout",
    "MCGaussianNoise",
    "MCSpatialDropout1D",
    "MCSpatialDropout2D",
    "MCSpatialDropout3D",
]


def _int32(value: int) -> int:
    """The int32 with the same low 32 bits as `value` (two's complement)."""
    return int(np.array(value % 2**32, dtype=np.uint32).view(np.int32))


_MIX_1 = _int32(0x7FEB352D)
_MIX_2 = _int32(0x846CA68B)
_GOLDEN = _int32(0x9E3779B9)
_SHARED_ROW = -1  # Row index of batch-shared masks; real rows are >= 0.


def _shift_right(x, bits):
    # Logical shift on int32: the arithmetic shift, with the sign bits masked.
    return ops.bitwise_and(ops.right_shift(x, bits), (1 << (32 - bits)) - 1)


def _mix(x):
    """`lowbias32` (C. Wellons): a bijective 32-bit integer hash, in int32."""
    x = ops.bitwise_xor(x, _shift_right(x, 16))
    x = ops.multiply(x, ops.convert_to_tensor(_MIX_1, "int32"))
    x = ops.bitwise_xor(x, _shift_right(x, 15))
    x = ops.multiply(x, ops.convert_to_tensor(_MIX_2, "int32"))
    return ops.bitwise_xor(x, _shift_right(x, 16))


class RowNoise:
    """Uniform noise for a batch of `samples_per_call` tiles of `rows` rows.

    `counters` is an int32 `(rows, 3)` tensor: the run's seed, the global index
    of each row in the data and the index of the first sample of this call.
    Element `e` of stream `s` (one stream per noise draw in the model) for
    sample `t` of row `r` is `hash(hash(key(seed, r, t)) ^ hash(e + s * phi))`
    with a 32-bit bijective hash applied twice, so the value depends on those
    five integers only. The tiled batch is sample-major: position
    `j * rows + i` holds sample `first + j` of row `i`.
    """

    def __init__(self, counters: Any, samples_per_call: int) -> None:
        counters = ops.convert_to_tensor(counters, "int32")
        seed_key = _mix(_mix(counters[:, 0]) + _GOLDEN)
        sample = (
            counters[None, :, 2] + ops.arange(samples_per_call, dtype="int32")[:, None]
        )
        sample_key = _mix(sample + _GOLDEN)

        def keys(row):
            key = _mix(ops.bitwise_xor(seed_key, _mix(row + _MIX_1)))
            return ops.reshape(_mix(ops.bitwise_xor(key[None, :], sample_key)), (-1,))

        self.row_keys = keys(counters[:, 1])
        self.shared_keys = keys(ops.full_like(counters[:, 1], _SHARED_ROW))
        self.streams = 0

    def uniform(self, shape: tuple, shared: bool = False) -> Any:
        """Float32 noise in `[0, 1)` of shape `(batch, *shape)`.

        With `shared=True` every row of a sample gets the same values (a mask
        shared over the batch, as `noise_shape=(1, ...)` asks for).
        """
        self.streams += 1
        size = math.prod(shape)
        offset = _int32(self.streams * 0x9E3779B9)
        salt = _mix(ops.arange(size, dtype="int32") + offset)
        keys = self.shared_keys if shared else self.row_keys
        bits = _mix(ops.bitwise_xor(keys[:, None], salt[None, :]))
        bits = _mix(bits + _GOLDEN)
        # The top 24 bits: exactly representable in float32.
        uniform = ops.cast(_shift_right(bits, 8), "float32") * (2.0**-24)
        return ops.reshape(uniform, (-1, *shape))

    def normal(self, shape: tuple) -> Any:
        """Standard normal float32 noise (Box-Muller on two uniform draws)."""
        radius = ops.sqrt(-2.0 * ops.log(1.0 - self.uniform(shape)))
        return radius * ops.cos((2.0 * math.pi) * self.uniform(shape))


_ROW_NOISE: contextvars.ContextVar[RowNoise | None] = contextvars.ContextVar(
    "kerasx_row_noise", default=None
)


@contextlib.contextmanager
def row_noise(counters: Any, samples_per_call: int) -> Iterator[RowNoise]:
    """Makes the MC layers called in this block draw from a `RowNoise`.

    Scoped to the block (a context variable, like Keras' own name scopes), so
    a model called anywhere else keeps its `SeedGenerator` noise.
    """
    noise = RowNoise(counters, samples_per_call)
    token = _ROW_NOISE.set(noise)
    try:
        yield noise
    finally:
        _ROW_NOISE.reset(token)


def _static_row_shape(layer, shape) -> tuple:
    row_shape = tuple(shape[1:])
    if not all(isinstance(d, int) for d in row_shape):
        raise ValueError(
            f"Layer '{layer.name}' received inputs of shape {shape}; Monte Carlo "
            "prediction needs every axis but the batch axis to be known."
        )
    return row_shape


def _dropout_noise_shape(layer, inputs) -> tuple[tuple, bool]:
    """`(per-row noise shape, shared over the batch)` of a dropout layer."""
    shape = tuple(inputs.shape)
    spatial_shape = _keras_internals.spatial_noise_shape(layer, inputs)
    if spatial_shape is not None:  # SpatialDropout*: one value per channel.
        noise_shape = [None] + [
            d if isinstance(d, int) else None for d in spatial_shape[1:]
        ]
        noise_shape = tuple(
            n if n is not None else s for n, s in zip(noise_shape, shape, strict=True)
        )
        return _static_row_shape(layer, noise_shape), False
    if layer.noise_shape is None:
        return _static_row_shape(layer, shape), False
    noise_shape = tuple(
        s if n is None else n for n, s in zip(layer.noise_shape, shape, strict=True)
    )
    return _static_row_shape(layer, noise_shape), layer.noise_shape[0] == 1


class _AlwaysStochastic:
    """Mixin that runs the parent layer's training-mode `call` in every mode."""

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        # `training` is accepted for signature compatibility and deliberately
        # ignored: the whole point of the MC twin is noise at inference time.
        del training
        noise = _ROW_NOISE.get()
        if noise is not None:
            return self.call_with_noise(inputs, noise)
        return super().call(inputs, training=True)

    def call_with_noise(self, inputs: Any, noise: RowNoise) -> Any:
        """The layer's transformation with its randomness taken from `noise`."""
        if self.rate == 0:
            return inputs
        shape, shared = _dropout_noise_shape(self, inputs)
        keep = ops.greater_equal(noise.uniform(shape, shared), self.rate)
        scaled = inputs / ops.cast(1.0 - self.rate, inputs.dtype)
        return ops.where(keep, scaled, ops.zeros_like(inputs))


@keras.saving.register_keras_serializable(package="kerasx")
class MCDropout(_AlwaysStochastic, keras.layers.Dropout):
    """Dropout that stays active at inference time (Monte Carlo dropout).

    Each element is set to 0 with probability `rate` and the kept elements are
    scaled by `1 / (1 - rate)`, so that `E[y] = x`, whatever the value of
    `training`: the layer drops units in `fit`, `predict`, `evaluate` and a
    plain call, inside `jit` / `tf.function` and after a save/load round trip.
    Averaging `T` stochastic forward passes approximates the predictive
    distribution of a Bayesian network (Gal & Ghahramani, 2016); use
    `kerasx.uncertainty.mc_predict` for that average and its uncertainty
    measures, or `kerasx.uncertainty.to_mc` to convert a trained model's
    `keras.layers.Dropout` layers. Same arguments, state and config as
    `keras.layers.Dropout`.

    Args:
        rate: Float in `[0, 1]`, fraction of the input units to drop.
        noise_shape: Shape of the binary mask (`None` entries take the input
            size), e.g. `(batch_size, 1, features)` to share the mask over
            time steps.
        seed: Integer seed; two fresh layers with the same seed draw the same
            sequence of masks.
        **kwargs: Base layer keyword arguments (`name`, `dtype`, ...).

    Call arguments:
        - `inputs`: Input tensor of any rank.
        - `training`: Accepted for compatibility and ignored: dropout is
          always applied.

    Input shape:
        Arbitrary: a tensor of any rank, `(batch_size, ...)`.

    Output shape:
        Same as input.

    Raises:
        ValueError: If `rate` is not a float in [0, 1], or `noise_shape` is
            not a sequence of positive integers and `None`s (the checks of
            `keras.layers.Dropout`).

    Example:

    ```python
    >>> import keras
    >>> import numpy as np
    >>> from kerasx.layers import MCDropout
    >>> layer = MCDropout(0.5, seed=0)
    >>> y = keras.ops.convert_to_numpy(layer(np.ones((2, 1000)), training=False))
    >>> np.unique(y).tolist()  # dropped (0) or scaled by 1 / (1 - 0.5)
    [0.0, 2.0]
    >>> round(float(y.mean()), 1)  # E[y] = x
    1.0
    >>> model = keras.Sequential([keras.Input((1000,)), layer])
    >>> first = model.predict(np.ones((1, 1000)), verbose=0)
    >>> second = model.predict(np.ones((1, 1000)), verbose=0)
    >>> bool(np.any(first != second))  # a new mask at every prediction
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
    with self-normalizing (SELU) networks. Same arguments, state and config
    as `keras.layers.AlphaDropout`, but the noise is applied whatever the
    value of `training`.

    Args:
        rate: Float in `[0, 1]`, fraction of the input units to drop.
        noise_shape: Shape of the binary mask (`None` entries take the input
            size).
        seed: Integer seed for reproducible masks.
        **kwargs: Base layer keyword arguments (`name`, `dtype`, ...).

    Call arguments:
        - `inputs`: Input tensor of any rank.
        - `training`: Accepted for compatibility and ignored: alpha dropout
          is always applied.

    Input shape:
        Arbitrary: a tensor of any rank, `(batch_size, ...)`.

    Output shape:
        Same as input.

    Raises:
        ValueError: If `rate` is not a float in [0, 1], or `noise_shape` is
            not a sequence of positive integers and `None`s (the checks of
            `keras.layers.AlphaDropout`).

    Example:

    ```python
    >>> import keras
    >>> import numpy as np
    >>> from kerasx.layers import MCAlphaDropout
    >>> layer = MCAlphaDropout(0.1, seed=0)
    >>> y = keras.ops.convert_to_numpy(layer(np.zeros((100, 1000)), training=False))
    >>> [round(float(v), 4) for v in np.unique(y)]  # dropped: a * alpha' + b; kept: b
    [-1.4577, 0.162]
    >>> x = np.random.default_rng(0).normal(size=(100, 1000))  # mean 0, std 1
    >>> y = keras.ops.convert_to_numpy(layer(x, training=False))
    >>> abs(float(y.mean())) < 0.01, round(float(y.std()), 2)
    (True, 1.0)

    ```

    Reference:
        Klambauer et al., "Self-Normalizing Neural Networks", NeurIPS 2017.
    """

    def call_with_noise(self, inputs: Any, noise: RowNoise) -> Any:
        if self.rate == 0:
            return inputs
        shape, shared = _dropout_noise_shape(self, inputs)
        kept = ops.cast(
            ops.greater_equal(noise.uniform(shape, shared), self.rate), inputs.dtype
        )
        # The constants of `keras.layers.AlphaDropout.call`.
        alpha_p = -1.6732632423543772848170429916717 * 1.0507009873554804934193349852946
        a = ((1 - self.rate) * (1 + self.rate * alpha_p**2)) ** -0.5
        b = -a * alpha_p * self.rate
        return a * (inputs * kept + alpha_p * (1 - kept)) + b


@keras.saving.register_keras_serializable(package="kerasx")
class MCGaussianDropout(_AlwaysStochastic, keras.layers.GaussianDropout):
    """Multiplicative Gaussian noise that stays active at inference time.

    `y = x * eps` with `eps ~ N(1, rate / (1 - rate))`, the Gaussian
    approximation of dropout with the same rate. Same arguments, state and
    config as `keras.layers.GaussianDropout`, but the noise is applied
    whatever the value of `training`.

    Args:
        rate: Float in `[0, 1)`, the equivalent dropout rate.
        seed: Integer seed for reproducible noise.
        **kwargs: Base layer keyword arguments (`name`, `dtype`, ...).

    Call arguments:
        - `inputs`: Input tensor of any rank.
        - `training`: Accepted for compatibility and ignored: the noise is
          always applied.

    Input shape:
        Arbitrary: a tensor of any rank, `(batch_size, ...)`.

    Output shape:
        Same as input.

    Raises:
        ValueError: If `rate` is not a float in [0, 1] (the check of
            `keras.layers.GaussianDropout`; `rate=1` divides by zero when
            called).

    Example:

    ```python
    >>> import keras
    >>> import numpy as np
    >>> from kerasx.layers import MCGaussianDropout
    >>> layer = MCGaussianDropout(0.2, seed=0)  # std sqrt(0.2 / 0.8) = 0.5
    >>> y = keras.ops.convert_to_numpy(layer(np.ones((1, 10000)), training=False))
    >>> round(float(y.mean()), 1), round(float(y.std()), 1)
    (1.0, 0.5)

    ```

    Reference:
        Srivastava et al., "Dropout: A Simple Way to Prevent Neural Networks
        from Overfitting", JMLR 2014, section 10.
    """

    def call_with_noise(self, inputs: Any, noise: RowNoise) -> Any:
        if self.rate == 0:
            return inputs
        stddev = math.sqrt(self.rate / (1.0 - self.rate))
        shape = _static_row_shape(self, tuple(inputs.shape))
        return inputs * ops.cast(1.0 + stddev * noise.normal(shape), inputs.dtype)


@keras.saving.register_keras_serializable(package="kerasx")
class MCGaussianNoise(_AlwaysStochastic, keras.layers.GaussianNoise):
    """Additive zero-centred Gaussian noise that stays active at inference time.

    `y = x + eps` with `eps ~ N(0, stddev^2)`. Same arguments, state and
    config as `keras.layers.GaussianNoise`, but the noise is applied whatever
    the value of `training`.

    Args:
        stddev: Float in `[0, 1]`, standard deviation of the noise.
        seed: Integer seed for reproducible noise.
        **kwargs: Base layer keyword arguments (`name`, `dtype`, ...).

    Call arguments:
        - `inputs`: Input tensor of any rank.
        - `training`: Accepted for compatibility and ignored: the noise is
          always applied.

    Input shape:
        Arbitrary: a tensor of any rank, `(batch_size, ...)`.

    Output shape:
        Same as input.

    Raises:
        ValueError: If `stddev` is not a float in [0, 1] (the check of
            `keras.layers.GaussianNoise`).

    Example:

    ```python
    >>> import keras
    >>> import numpy as np
    >>> from kerasx.layers import MCGaussianNoise
    >>> layer = MCGaussianNoise(0.1, seed=0)
    >>> y = keras.ops.convert_to_numpy(layer(np.ones((1, 10000)), training=False))
    >>> round(float(y.mean()), 1), round(float(y.std()), 2)
    (1.0, 0.1)

    ```

    Reference:
        Keras `keras.layers.GaussianNoise`, with the training switch removed.
    """

    def call_with_noise(self, inputs: Any, noise: RowNoise) -> Any:
        if self.stddev == 0:
            return inputs
        shape = _static_row_shape(self, tuple(inputs.shape))
        return inputs + ops.cast(self.stddev * noise.normal(shape), inputs.dtype)


@keras.saving.register_keras_serializable(package="kerasx")
class MCSpatialDropout1D(_AlwaysStochastic, keras.layers.SpatialDropout1D):
    """Spatial 1D dropout (whole channels) that stays active at inference time.

    For inputs `(batch, steps, channels)` one Bernoulli variable per
    `(sample, channel)` decides whether the whole feature map is zeroed;
    kept maps are scaled by `1 / (1 - rate)`. Same arguments, state and
    config as `keras.layers.SpatialDropout1D`, but the masks are drawn
    whatever the value of `training`.

    Args:
        rate: Float in `[0, 1]`, fraction of the channels to drop.
        seed: Integer seed for reproducible masks.
        name: Layer name.
        dtype: Layer dtype policy.

    Call arguments:
        - `inputs`: A 3D tensor.
        - `training`: Accepted for compatibility and ignored: dropout is
          always applied.

    Input shape:
        3D tensor with shape `(batch_size, timesteps, channels)`.

    Output shape:
        Same as input.

    Raises:
        ValueError: If `rate` is not a float in [0, 1] (the check of
            `keras.layers.SpatialDropout1D`), or, when called, the input is
            not 3D.

    Example:

    ```python
    >>> import keras
    >>> import numpy as np
    >>> from kerasx.layers import MCSpatialDropout1D
    >>> layer = MCSpatialDropout1D(0.5, seed=0)
    >>> y = keras.ops.convert_to_numpy(layer(np.ones((2, 5, 8)), training=False))
    >>> np.unique(y).tolist()  # dropped (0) or scaled by 1 / (1 - 0.5)
    [0.0, 2.0]
    >>> bool(np.all(y == y[:, :1, :]))  # one value per channel, over all steps
    True

    ```

    Reference:
        Tompson et al., "Efficient Object Localization Using Convolutional
        Networks", CVPR 2015.
    """


@keras.saving.register_keras_serializable(package="kerasx")
class MCSpatialDropout2D(_AlwaysStochastic, keras.layers.SpatialDropout2D):
    """Spatial 2D dropout (whole feature maps) that stays active at inference.

    One Bernoulli variable per `(sample, channel)` zeroes the whole 2D map;
    kept maps are scaled by `1 / (1 - rate)`. Same arguments, state and
    config as `keras.layers.SpatialDropout2D`, but the masks are drawn
    whatever the value of `training`.

    Args:
        rate: Float in `[0, 1]`, fraction of the channels to drop.
        data_format: `"channels_last"` or `"channels_first"` (default: the
            Keras `image_data_format`).
        seed: Integer seed for reproducible masks.
        name: Layer name.
        dtype: Layer dtype policy.

    Call arguments:
        - `inputs`: A 4D tensor.
        - `training`: Accepted for compatibility and ignored: dropout is
          always applied.

    Input shape:
        4D tensor with shape `(batch_size, rows, cols, channels)` if
        `data_format="channels_last"`, or `(batch_size, channels, rows, cols)`
        if `data_format="channels_first"`.

    Output shape:
        Same as input.

    Raises:
        ValueError: If `rate` is not a float in [0, 1], or `data_format` is
            not `"channels_first"`, `"channels_last"` or `None` (the checks of
            `keras.layers.SpatialDropout2D`), or, when called, the input is
            not 4D.

    Example:

    ```python
    >>> import keras
    >>> import numpy as np
    >>> from kerasx.layers import MCSpatialDropout2D
    >>> layer = MCSpatialDropout2D(0.5, seed=0)
    >>> x = np.ones((2, 4, 4, 8))  # channels last
    >>> y = keras.ops.convert_to_numpy(layer(x, training=False))
    >>> np.unique(y).tolist()  # dropped (0) or scaled by 1 / (1 - 0.5)
    [0.0, 2.0]
    >>> bool(np.all(y == y[:, :1, :1, :]))  # one value per channel, whole map
    True

    ```

    Reference:
        Tompson et al., "Efficient Object Localization Using Convolutional
        Networks", CVPR 2015.
    """


@keras.saving.register_keras_serializable(package="kerasx")
class MCSpatialDropout3D(_AlwaysStochastic, keras.layers.SpatialDropout3D):
    """Spatial 3D dropout (whole feature volumes) that stays active at inference.

    One Bernoulli variable per `(sample, channel)` zeroes the whole 3D volume;
    kept volumes are scaled by `1 / (1 - rate)`. Same arguments, state and
    config as `keras.layers.SpatialDropout3D`, but the masks are drawn
    whatever the value of `training`.

    Args:
        rate: Float in `[0, 1]`, fraction of the channels to drop.
        data_format: `"channels_last"` or `"channels_first"` (default: the
            Keras `image_data_format`).
        seed: Integer seed for reproducible masks.
        name: Layer name.
        dtype: Layer dtype policy.

    Call arguments:
        - `inputs`: A 5D tensor.
        - `training`: Accepted for compatibility and ignored: dropout is
          always applied.

    Input shape:
        5D tensor with shape `(batch_size, dim1, dim2, dim3, channels)` if
        `data_format="channels_last"`, or
        `(batch_size, channels, dim1, dim2, dim3)` if
        `data_format="channels_first"`.

    Output shape:
        Same as input.

    Raises:
        ValueError: If `rate` is not a float in [0, 1], or `data_format` is
            not `"channels_first"`, `"channels_last"` or `None` (the checks of
            `keras.layers.SpatialDropout3D`), or, when called, the input is
            not 5D.

    Example:

    ```python
    >>> import keras
    >>> import numpy as np
    >>> from kerasx.layers import MCSpatialDropout3D
    >>> layer = MCSpatialDropout3D(0.5, seed=0)
    >>> x = np.ones((2, 2, 2, 2, 8))  # channels last
    >>> y = keras.ops.convert_to_numpy(layer(x, training=False))
    >>> np.unique(y).tolist()  # dropped (0) or scaled by 1 / (1 - 0.5)
    [0.0, 2.0]
    >>> bool(np.all(y == y[:, :1, :1, :1, :]))  # one value per channel, whole volume
    True

    ```

    Reference:
        Tompson et al., "Efficient Object Localization Using Convolutional
        Networks", CVPR 2015.
    """


#: Keras layer class -> MC twin, matched by exact type (`SpatialDropout*`
#: subclasses `Dropout`, so `isinstance` would pick the wrong twin).
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
