"""`update_batchnorm`: BatchNorm moving statistics recomputed for the current weights.

Used by `kerasx.models` (which exports it) and by the SWA callback.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from kerasx import _checks, _keras_internals
from kerasx.layers import BatchNormActivation

_BATCH_NORM_TYPES = (keras.layers.BatchNormalization, BatchNormActivation)


def batch_norm_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """Every `BatchNormalization` / `BatchNormActivation` in `model`, any depth."""
    layers, seen = [], set()
    for layer in [model, *_keras_internals.nested_layers(model)]:
        if isinstance(layer, _BATCH_NORM_TYPES) and id(layer) not in seen:
            seen.add(id(layer))
            layers.append(layer)
    return layers


def update_batchnorm(
    model: keras.Model,
    data: Any,
    steps: int | None = None,
    *,
    batch_size: int | None = None,
) -> int:
    """Recomputes the BatchNorm moving statistics of `model` for its current weights.

    After weight averaging (SWA) or any other change of the weights, the
    moving mean and variance of the BatchNorm layers describe the activations
    of weights the model no longer has. This makes one pass over `data`, as
    PyTorch's `torch.optim.swa_utils.update_bn` does: every trainable
    `keras.layers.BatchNormalization` (synchronized or not) and
    `kerasx.layers.BatchNormActivation` is reset (mean 0, variance 1), then
    the whole model is called with `training=True` on each batch, and each
    layer's moving statistics become the equal-weight average of its batch
    statistics over the `K` batches read,
    `moving_mean = (1 / K) sum_k mean_k` (momentum ignored). Each layer's own
    update `moving = moving * momentum + batch * (1 - momentum)` computes
    that average when batch `k` (from 0) runs with
    `momentum = k / (k + 1)`: by induction, if `moving` is the average of
    the first `k` batch statistics, `moving * k / (k + 1) + batch_k / (k + 1)`
    is the average of the first `k + 1`. Each layer's `momentum` is restored
    afterwards, and on an error the moving statistics are restored too.

    Conventions to know:

    - The variance is Keras' biased batch variance (divided by the number of
      values `n` per channel), the one Keras BatchNorm uses everywhere;
      PyTorch's `running_var` averages the unbiased one (divided by `n - 1`),
      larger by `n / (n - 1)` for equal batches.
    - As `update_bn` puts the whole model in train mode, every layer sees
      `training=True`: dropout is active during the pass (the model's
      outputs are not used, but dropout changes what later BatchNorm layers
      see, and the layers' seed generators advance).
    - A BatchNorm layer with `trainable=False` runs in inference mode in
      Keras even with `training=True` (a frozen base stays frozen): its
      statistics are left as they are.
    - A BatchNorm layer called several times per forward pass (shared) gets
      the average over all its calls weighted as one per batch; call such
      models on one input at a time.

    Args:
        model: A built `keras.Model`.
        data: The inputs, as `Model.predict` takes them: NumPy / backend
            arrays (split in batches of `batch_size`), a `tf.data.Dataset`, a
            `keras.utils.PyDataset`, a generator, or a `torch` DataLoader,
            yielding `x` or `(x, y[, sample_weight])` (targets are ignored).
        steps: Number of batches to read, or None for all of `data` (needed
            for a generator that never ends).
        batch_size: Batch size for array inputs (default 32, as `predict`).

    Returns:
        The number of batches read (0, reading nothing, when the model has no
        trainable BatchNorm layer).

    Raises:
        ValueError: If `model` is not a `keras.Model`, or not built; if
            `steps` or `batch_size` is not None or an integer >= 1; if `data`
            yields no batch (the statistics are then left as they were).
            Inputs that `predict` refuses raise as `predict` does.

    Example:

    ```python
    >>> import keras, numpy as np
    >>> from kerasx.models import update_batchnorm
    >>> model = keras.Sequential([keras.Input((2,)),
    ...     keras.layers.BatchNormalization(momentum=0.99)])
    >>> x = np.array([[0.0, 1.0], [2.0, 3.0], [4.0, 5.0], [6.0, 7.0]])
    >>> update_batchnorm(model, x, batch_size=2)  # batch means 1, 3 and 5, 7
    2
    >>> model.layers[0].moving_mean.numpy().tolist()
    [3.0, 4.0]
    >>> model.layers[0].moving_variance.numpy().tolist()  # biased: 1 per batch
    [1.0, 1.0]
    >>> model.layers[0].momentum
    0.99

    ```

    Reference:
        PyTorch `torch.optim.swa_utils.update_bn`; Izmailov et al., 2018,
        "Averaging Weights Leads to Wider Optima and Better Generalization".
    """
    _checks.model(model)
    steps = _checks.integer("steps", steps, minimum=1, allow_none=True)
    batch_size = _checks.integer("batch_size", batch_size, minimum=1, allow_none=True)
    if not model.built:
        raise _checks.invalid(
            "model", "a built model (call it or build it first)", model
        )
    layers = [layer for layer in batch_norm_layers(model) if layer.trainable]
    if not layers:
        return 0
    momenta = [layer.momentum for layer in layers]
    saved = [
        (ops.copy(layer.moving_mean.value), ops.copy(layer.moving_variance.value))
        for layer in layers
    ]
    done = False
    n_batches = 0
    try:
        for layer in layers:
            mean, variance = layer.moving_mean, layer.moving_variance
            mean.assign(ops.zeros(mean.shape, mean.dtype))
            variance.assign(ops.ones(variance.shape, variance.dtype))
        for x in _keras_internals.predict_batches(data, batch_size, steps):
            for layer in layers:
                layer.momentum = n_batches / (n_batches + 1)
            model(x, training=True)
            n_batches += 1
        if n_batches == 0:
            raise _checks.invalid_described(
                "data", "at least one batch of inputs", "no batch"
            )
        done = True
    finally:
        for layer, momentum, (mean, variance) in zip(
            layers, momenta, saved, strict=True
        ):
            layer.momentum = momentum
            if not done:
                layer.moving_mean.assign(mean)
                layer.moving_variance.assign(variance)
    return n_batches
