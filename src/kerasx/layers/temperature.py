"""`Temperature`: the temperature-scaling layer appended by `calibrate`."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
from keras import ops

from kerasx import _checks

__all__ = ["Temperature"]

#: Probabilities are floored here before the logarithm, as in
#: `kerasx.uncertainty.apply_temperature` (the float64 machine epsilon).
LOG_FLOOR = float(np.finfo(np.float64).eps)


@keras.saving.register_keras_serializable(package="kerasx")
class Temperature(keras.layers.Layer):
    """Temperature scaling: `softmax(z / T)` of logits or of `log(probs)`.

    With `from_logits=False` the inputs are probabilities along the last axis
    and `z = log(max(p, 2.22e-16))`: a per-row constant cancels in the
    softmax, so this is temperature scaling of whatever logits produced `p`.
    A last axis of size 1 holds the positive-class probability (or logit) of
    a binary problem, and the output is `sigmoid(logit(p) / T)` of the same
    shape. The temperature is a config float, not a weight: it is set once by
    `kerasx.uncertainty.calibrate` (or `fit_temperature`) and round-trips with
    the config through `.keras`, `.h5` and JSON. The layer has no weights and
    behaves the same in training and inference; `T > 1` softens the
    probabilities, `T < 1` sharpens them, and the argmax never changes.

    Args:
        temperature: The temperature `T > 0` (1 leaves the input unchanged).
        from_logits: Whether the inputs are logits (else probabilities).
        **kwargs: Base layer arguments (`name`, `dtype`, ...).

    Input shape:
        `(batch_size, ..., n_classes)`: probabilities (or, with
        `from_logits=True`, logits) with the classes on the last axis, or
        `(batch_size, ..., 1)` for the positive class of a binary problem.

    Output shape:
        Same as input: probabilities along the last axis.

    Raises:
        ValueError: If `temperature` is not a finite float > 0, or
            `from_logits` is not a bool.

    Example:

    ```python
    >>> import keras
    >>> import numpy as np
    >>> from kerasx.layers import Temperature
    >>> layer = Temperature(2.0)  # sqrt(0.8) : sqrt(0.2) = 2 : 1
    >>> np.round(keras.ops.convert_to_numpy(layer(np.array([[0.8, 0.2]]))), 4)
    array([[0.6667, 0.3333]], dtype=float32)
    >>> binary = Temperature(2.0, from_logits=True)  # sigmoid(z / 2)
    >>> np.round(keras.ops.convert_to_numpy(binary(np.array([[2.0], [0.0]]))), 4)
    array([[0.7311],
           [0.5   ]], dtype=float32)
    >>> model = keras.Sequential([keras.Input((3,)), Temperature(1.5)])
    >>> model.output_shape
    (None, 3)

    ```

    Reference:
        Guo et al., "On Calibration of Modern Neural Networks", ICML 2017.
    """

    def __init__(
        self, temperature: float = 1.0, from_logits: bool = False, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.temperature = _checks.number(
            "temperature", temperature, low=0.0, low_open=True
        )
        self.from_logits = _checks.boolean("from_logits", from_logits)
        self.supports_masking = True

    def call(self, inputs: Any) -> Any:
        inputs = ops.cast(inputs, self.compute_dtype)
        binary = inputs.shape[-1] == 1
        if self.from_logits:
            if binary:
                return ops.sigmoid(inputs / self.temperature)
            return ops.softmax(inputs / self.temperature, axis=-1)
        log_probs = ops.log(ops.maximum(inputs, LOG_FLOOR))
        if binary:
            log_odds = log_probs - ops.log(ops.maximum(1.0 - inputs, LOG_FLOOR))
            return ops.sigmoid(log_odds / self.temperature)
        return ops.softmax(log_probs / self.temperature, axis=-1)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return input_shape

    def get_config(self) -> dict:
        base_config = super().get_config()
        config = {"temperature": self.temperature, "from_logits": self.from_logits}
        return {**base_config, **config}
