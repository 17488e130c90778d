"""Freezing and unfreezing leading layers, BatchNorm kept in inference mode."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import keras

from kerasx import _checks, _keras_internals
from kerasx.layers import BatchNormActivation

#: How a part of a model is named: an index (a slice bound), a layer name, a list
#: of layer names, or a predicate on layers.
LayerSpec = int | str | Sequence[str] | Callable[[keras.layers.Layer], bool]

_EXPECTED = (
    "an integer index, a layer name, a list of layer names or a predicate "
    "`layer -> bool`"
)


def _is_batch_norm(layer: keras.layers.Layer) -> bool:
    return isinstance(layer, (keras.layers.BatchNormalization, BatchNormActivation))


def _batch_norm_layers(layers: Sequence[keras.layers.Layer]) -> list:
    found = []
    for layer in layers:
        for candidate in [layer, *_keras_internals.nested_layers(layer)]:
            if _is_batch_norm(candidate) and candidate not in found:
                found.append(candidate)
    return found


def _index_of(model: keras.Model, name: str, argument: str, spec) -> int:
    names = [layer.name for layer in model.layers]
    if name not in names:
        raise _checks.invalid(
            argument, f"{_EXPECTED}; layer names of this model: {names}", spec
        )
    return names.index(name)


def select_layers(
    model: keras.Model, spec: LayerSpec, argument: str, leading: bool
) -> list[keras.layers.Layer]:
    """The layers of `model.layers` that `spec` names (never empty).

    `leading=True` reads an index or a name as the end of the part (`freeze`,
    `fine_tune`'s `base`): index `k` is `model.layers[:k]`, a name is every layer
    up to and including it. `leading=False` reads it as the start (`unfreeze`):
    `model.layers[k:]`, or from the named layer on. A list of names is exactly
    those layers, a predicate the layers for which it returns True.
    """
    layers = list(model.layers)
    if _checks.is_integer(spec):
        count = len(layers)
        if not -count <= spec <= count:
            raise _checks.invalid(
                argument,
                f"an integer index in [-{count}, {count}] (this model has "
                f"{count} layers)",
                spec,
            )
        selected = layers[:spec] if leading else layers[spec:]
    elif isinstance(spec, str):
        index = _index_of(model, spec, argument, spec)
        selected = layers[: index + 1] if leading else layers[index:]
    elif isinstance(spec, (list, tuple)):
        if not spec or not all(isinstance(name, str) for name in spec):
            raise _checks.invalid(argument, f"{_EXPECTED} (a non-empty list)", spec)
        indices = sorted({_index_of(model, name, argument, spec) for name in spec})
        selected = [layers[i] for i in indices]
    elif callable(spec) and not isinstance(spec, keras.layers.Layer):
        selected = [layer for layer in layers if spec(layer)]
    else:
        raise _checks.invalid(argument, _EXPECTED, spec)
    if not selected:
        raise _checks.invalid(
            argument, f"{_EXPECTED} that selects at least one layer", spec
        )
    return selected


def freeze(model: keras.Model, up_to: LayerSpec | None = None) -> list:
    """Sets `trainable=False` on the leading layers of `model`.

    `up_to` names the part to freeze: `None` (the default) freezes every layer
    but the last, as fastai's `Learner.freeze`; an integer `k` freezes
    `model.layers[:k]` (negative counts from the end); a layer name freezes every
    layer up to and including that one; a list of names freezes exactly those
    layers; a predicate `layer -> bool` freezes the layers it selects. Setting
    `trainable` on a layer sets it on every layer nested inside it (a nested
    base model is frozen whole).

    Keras' `trainable` semantics apply: the frozen weights move to
    `non_trainable_weights`, and a `BatchNormalization` (or kerasx
    `BatchNormActivation`) with `trainable=False` runs in inference mode — it
    normalises with its moving statistics and stops updating them, even inside
    `fit`. A change of `trainable` takes effect at the next `compile`: call
    `model.compile(...)` again before training (`fine_tune` does this itself).

    Args:
        model: A `keras.Model`.
        up_to: The part to freeze, as above.

    Returns:
        The list of layers that were frozen (from `model.layers`).

    Raises:
        ValueError: If `model` is not a `keras.Model`; if `up_to` is an
            integer outside `[-len(model.layers), len(model.layers)]`, a name
            (or a list holding a name) of no layer of `model`, an empty list
            or one with a non-string, or of any other type; if it selects no
            layer (`up_to=0`, a predicate that is always False, or the default
            on a model of one layer).

    Example:

    ```python
    >>> import keras
    >>> from kerasx.transfer import freeze
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8),
    ...                           keras.layers.Dense(8), keras.layers.Dense(1)])
    >>> [layer.trainable for layer in freeze(model)]
    [False, False]
    >>> [layer.trainable for layer in model.layers]
    [False, False, True]
    >>> len(model.trainable_weights)  # the last layer's kernel and bias
    2

    ```

    Reference:
        - Keras guide "Transfer learning & fine-tuning" (`trainable`, BatchNorm in
          inference mode, recompiling after a change).
        - fastai `Learner.freeze` / `freeze_to`.
    """
    model = _checks.model(model)
    selected = select_layers(model, -1 if up_to is None else up_to, "up_to", True)
    for layer in selected:
        layer.trainable = False
    return selected


def unfreeze(
    model: keras.Model, from_: LayerSpec | None = None, *, batchnorm: bool = False
) -> list:
    """Sets `trainable=True` on the trailing layers of `model`, BatchNorm excepted.

    `from_` names the part to unfreeze: `None` (the default) unfreezes every
    layer, as fastai's `Learner.unfreeze`; an integer `k` unfreezes
    `model.layers[k:]`; a layer name unfreezes that layer and every later one;
    a list of names exactly those layers; a predicate the layers it selects.

    Every `BatchNormalization` (or `BatchNormActivation`) inside the unfrozen
    part keeps the `trainable` flag it had, unless `batchnorm=True`: a frozen
    BatchNorm stays in inference mode (moving statistics used, not updated, its
    `gamma` and `beta` fixed), as the Keras transfer-learning guide advises, so
    that the first unfrozen steps on a small data set do not replace the
    pretrained statistics with those of a few batches. (fastai's `train_bn=True`
    differs: it trains the affine parameters of BatchNorm layers in frozen
    groups, and PyTorch's BatchNorm uses batch statistics whenever the module
    is in training mode.) Call `model.compile(...)` again before training.

    Args:
        model: A `keras.Model`.
        from_: The part to unfreeze, as above.
        batchnorm: Also unfreeze the BatchNorm layers of that part (they then
            train, with batch statistics).

    Returns:
        The list of layers that were unfrozen (from `model.layers`).

    Raises:
        ValueError: If `model` is not a `keras.Model`; if `batchnorm` is not
            a bool; if `from_` is an integer outside
            `[-len(model.layers), len(model.layers)]`, a name (or a list
            holding a name) of no layer of `model`, an empty list or one with
            a non-string, or of any other type; if it selects no layer (e.g.
            `from_=len(model.layers)`).

    Example:

    ```python
    >>> import keras
    >>> from kerasx.transfer import freeze, unfreeze
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8),
    ...                           keras.layers.BatchNormalization(),
    ...                           keras.layers.Dense(1)])
    >>> _ = freeze(model)
    >>> _ = unfreeze(model)
    >>> [layer.trainable for layer in model.layers]
    [True, False, True]

    ```

    Reference:
        - Keras guide "Transfer learning & fine-tuning", "An important note about
          BatchNormalization layers".
        - fastai `Learner.unfreeze`, `train_bn`.
    """
    model = _checks.model(model)
    batchnorm = _checks.boolean("batchnorm", batchnorm)
    selected = select_layers(model, 0 if from_ is None else from_, "from_", False)
    kept_frozen = [
        layer for layer in _batch_norm_layers(selected) if not layer.trainable
    ]
    for layer in selected:
        layer.trainable = True
    if not batchnorm:
        for layer in kept_frozen:
            layer.trainable = False
    return selected
