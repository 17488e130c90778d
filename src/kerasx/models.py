"""Model builders for the architectures of the Hands-On ML deep-network exercises.

Each builder returns a plain functional `keras.Model` whose layer names show
its structure in `model.summary()` (`block3_dense`, `block3_bn`, `block3_elu`,
`block3_dropout`, ..., `output`). Arguments are validated before any layer is
created. `update_batchnorm` recomputes a model's BatchNorm statistics for its
current weights (after weight averaging).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import keras

from kerasx import _checks
from kerasx._batch_norm_statistics import update_batchnorm
from kerasx.layers import BatchNormActivation, MCAlphaDropout, MCDropout

__all__ = ["build_cnn", "build_mlp", "build_selu_mlp", "update_batchnorm"]

_BATCH_NORM = (None, "before", "after")
_DROPOUT = ("standard", "alpha", "mc", "mc_alpha")
_DROPOUT_POSITION = ("every", "last")


def _model_name(name: Any) -> str | None:
    """None or a non-empty name without `/`, which Keras refuses in names."""
    name = _checks.optional_name(name)
    if name is not None and "/" in name:
        raise _checks.invalid("name", "None or a non-empty string without '/'", name)
    return name


def _dropout_layer(kind: str, rate: float, name: str) -> keras.layers.Layer:
    if kind == "standard":
        return keras.layers.Dropout(rate, name=name)
    if kind == "alpha":
        return keras.layers.AlphaDropout(rate, name=name)
    if kind == "mc":
        return MCDropout(rate, name=name)
    return MCAlphaDropout(rate, name=name)


def build_mlp(
    input_shape: Sequence[int],
    num_classes: int,
    *,
    hidden_units: Sequence[int] = (100,) * 20,
    activation: str | Callable = "elu",
    kernel_initializer: Any = "he_normal",
    batch_norm: str | None = None,
    dropout_rate: float = 0.0,
    dropout: str = "standard",
    dropout_position: str = "every",
    kernel_regularizer: Any = None,
    output_activation: str | Callable | None = "softmax",
    preprocessing: keras.layers.Layer | None = None,
    name: str | None = None,
) -> keras.Model:
    """Builds a deep fully connected classifier.

    The input is passed through `preprocessing` (if any), flattened, then
    through one block per entry of `hidden_units`, then a `Dense(num_classes)`
    output layer named `output`. Block `i` is, by `batch_norm`:

    - `None`: `Dense(activation)` → dropout
    - `"before"`: `Dense(use_bias=False)` → `BatchNormalization` →
      `Activation` → dropout. The bias is dropped because BN's `beta`
      shifts the same pre-activation and would make it redundant.
    - `"after"`: `Dense(activation)` → `BatchNormalization` → dropout

    Dropout layers are added only when `dropout_rate > 0`, after every hidden
    block (`dropout_position="every"`) or once, after the last hidden block
    and before the output layer (`"last"`, as the AlphaDropout of Hands-On ML
    ch. 11 exercise 8(e) and many classifier heads); `dropout` picks
    `keras.layers.Dropout` (`"standard"`), `keras.layers.AlphaDropout`
    (`"alpha"`, for SELU networks) or their always-stochastic Monte Carlo
    twins `kerasx.layers.MCDropout` (`"mc"`) / `MCAlphaDropout` (`"mc_alpha"`).
    `kernel_regularizer` applies to every `Dense` kernel, output included.

    Args:
        input_shape: Shape of one example, without the batch axis, e.g.
            `(32, 32, 3)`. Inputs of rank > 1 are flattened.
        num_classes: Number of output units (>= 1).
        hidden_units: Units of each hidden layer; the default is the
            20 × 100 network of the CIFAR-10 exercise.
        activation: Hidden activation name or callable.
        kernel_initializer: Hidden-layer initializer (name, config or instance).
        batch_norm: `None`, `"before"` or `"after"` the activation.
        dropout_rate: Dropout rate, in [0, 1); 0 adds no dropout layers.
        dropout: One of `"standard"`, `"alpha"`, `"mc"`, `"mc_alpha"`.
        dropout_position: `"every"` (a dropout layer after each hidden
            block) or `"last"` (one, after the last hidden block).
        kernel_regularizer: `None` or a regularizer for every kernel.
        output_activation: Output activation (`"softmax"`; `None` for logits).
        preprocessing: Optional layer applied to the input first, e.g.
            `keras.layers.Rescaling(1 / 255)` or an adapted
            `keras.layers.Normalization()`. It is used as given, not copied.
        name: Model name; defaults to `"mlp"`.

    Returns:
        An uncompiled functional `keras.Model`.

    Raises:
        ValueError: If `input_shape` is not a non-empty tuple of positive
            integers; if `num_classes` is not an integer >= 1; if
            `hidden_units` is not a non-empty sequence of positive integers;
            if `activation` (or `output_activation`, which may also be None)
            is not a Keras activation name or a callable; if
            `kernel_initializer` is not a Keras initializer; if `batch_norm`,
            `dropout` or `dropout_position` is not one of the values above; if
            `dropout_rate` is not a float in [0, 1); if `kernel_regularizer`
            is not None or a Keras regularizer; if `preprocessing` is not None
            or a `keras.layers.Layer`; if `name` is not None or a non-empty
            string without `/`.

    Example:

    ```python
    >>> from kerasx.models import build_mlp
    >>> model = build_mlp((28, 28), 10, hidden_units=(64, 32), batch_norm="before")
    >>> [layer.name for layer in model.layers[2:6]]
    ['block1_dense', 'block1_bn', 'block1_elu', 'block2_dense']
    >>> model.count_params()  # 784*64 + 4*64 + 64*32 + 4*32 + 32*10+10
    52938
    >>> model = build_mlp((8,), 3, hidden_units=(16, 16, 16), dropout_rate=0.1,
    ...                   dropout_position="last")
    >>> [layer.name for layer in model.layers[1:]]
    ['block1_dense', 'block2_dense', 'block3_dense', 'block3_dropout', 'output']

    ```

    Reference:
        Géron, *Hands-On Machine Learning*, 2nd ed., chapter 11 and
        exercise 8 (deep MLP on CIFAR-10).
    """
    input_shape = _checks.input_shape(input_shape)
    num_classes = _checks.integer("num_classes", num_classes, minimum=1)
    hidden_units = _checks.positive_ints("hidden_units", hidden_units)
    activation_fn = _checks.activation("activation", activation)
    _checks.initializer("kernel_initializer", kernel_initializer)
    _checks.choice("batch_norm", batch_norm, _BATCH_NORM)
    dropout_rate = _checks.rate("dropout_rate", dropout_rate)
    _checks.choice("dropout", dropout, _DROPOUT)
    _checks.choice("dropout_position", dropout_position, _DROPOUT_POSITION)
    _checks.regularizer("kernel_regularizer", kernel_regularizer)
    _checks.activation("output_activation", output_activation, allow_none=True)
    _checks.optional_layer("preprocessing", preprocessing)
    name = _model_name(name)

    act_name = _checks.activation_name(activation)
    inputs = keras.Input(shape=input_shape, name="input")
    x = inputs if preprocessing is None else preprocessing(inputs)
    if len(input_shape) > 1:
        x = keras.layers.Flatten(name="flatten")(x)
    for index, units in enumerate(hidden_units, start=1):
        prefix = f"block{index}"
        x = keras.layers.Dense(
            units,
            activation=None if batch_norm == "before" else activation_fn,
            use_bias=batch_norm != "before",
            kernel_initializer=kernel_initializer,
            kernel_regularizer=kernel_regularizer,
            name=f"{prefix}_dense",
        )(x)
        if batch_norm is not None:
            x = keras.layers.BatchNormalization(name=f"{prefix}_bn")(x)
        if batch_norm == "before":
            x = keras.layers.Activation(activation_fn, name=f"{prefix}_{act_name}")(x)
        is_last = index == len(hidden_units)
        if dropout_rate > 0 and (dropout_position == "every" or is_last):
            x = _dropout_layer(dropout, dropout_rate, f"{prefix}_dropout")(x)
    outputs = keras.layers.Dense(
        num_classes,
        activation=output_activation,
        kernel_regularizer=kernel_regularizer,
        name="output",
    )(x)
    return keras.Model(inputs, outputs, name=name or "mlp")


def build_selu_mlp(
    input_shape: Sequence[int],
    num_classes: int,
    *,
    hidden_units: Sequence[int] = (100,) * 20,
    alpha_dropout_rate: float = 0.0,
    mc: bool = False,
    dropout_position: str = "every",
    kernel_regularizer: Any = None,
    output_activation: str | Callable | None = "softmax",
    preprocessing: keras.layers.Layer | None = None,
    name: str | None = None,
) -> keras.Model:
    """Builds a self-normalising network: SELU, LeCun normal, AlphaDropout.

    Equivalent to `build_mlp(..., activation="selu",
    kernel_initializer="lecun_normal", batch_norm=None,
    dropout_rate=alpha_dropout_rate, dropout="alpha", dropout_position=...)`;
    with `mc=True` the dropout is `kerasx.layers.MCAlphaDropout`. Hands-On ML
    ch. 11 exercise 8(e) is `build_selu_mlp(..., alpha_dropout_rate=0.1,
    dropout_position="last")`: one AlphaDropout before the output layer.
    Self-normalisation also needs standardised inputs (mean 0, standard
    deviation 1): pass an adapted `keras.layers.Normalization()` as
    `preprocessing`, or standardise the data.

    Args:
        input_shape: Shape of one example, without the batch axis.
        num_classes: Number of output units (>= 1).
        hidden_units: Units of each hidden layer (default 20 × 100).
        alpha_dropout_rate: AlphaDropout rate, in [0, 1); 0 adds no
            dropout layers.
        mc: Use `MCAlphaDropout` (stochastic at inference) instead.
        dropout_position: `"every"` (after each hidden layer) or `"last"`
            (one AlphaDropout, after the last hidden layer).
        kernel_regularizer: `None` or a regularizer for every kernel.
        output_activation: Output activation (`None` for logits).
        preprocessing: Optional layer applied to the input first.
        name: Model name; defaults to `"selu_mlp"`.

    Returns:
        An uncompiled functional `keras.Model`.

    Raises:
        ValueError: If `mc` is not a bool; if `alpha_dropout_rate` is not a
            float in [0, 1); if any other argument is refused by `build_mlp`
            (`input_shape`, `num_classes`, `hidden_units`, `dropout_position`,
            `kernel_regularizer`, `output_activation`, `preprocessing`,
            `name`).

    Example:

    ```python
    >>> from kerasx.models import build_selu_mlp
    >>> model = build_selu_mlp((8,), 3, hidden_units=(16, 16), alpha_dropout_rate=0.1)
    >>> [layer.name for layer in model.layers[1:]]
    ['block1_dense', 'block1_dropout', 'block2_dense', 'block2_dropout', 'output']
    >>> model = build_selu_mlp((8,), 3, hidden_units=(16, 16), alpha_dropout_rate=0.1,
    ...                        dropout_position="last")
    >>> [layer.name for layer in model.layers[1:]]
    ['block1_dense', 'block2_dense', 'block2_dropout', 'output']
    >>> model.get_layer("block1_dense").activation.__name__
    'selu'

    ```

    Reference:
        Klambauer et al., 2017, "Self-Normalizing Neural Networks",
        https://arxiv.org/abs/1706.02515
    """
    _checks.boolean("mc", mc)
    return build_mlp(
        input_shape,
        num_classes,
        hidden_units=hidden_units,
        activation="selu",
        kernel_initializer="lecun_normal",
        batch_norm=None,
        dropout_rate=_checks.rate("alpha_dropout_rate", alpha_dropout_rate),
        dropout="mc_alpha" if mc else "alpha",
        dropout_position=dropout_position,
        kernel_regularizer=kernel_regularizer,
        output_activation=output_activation,
        preprocessing=preprocessing,
        name=name or "selu_mlp",
    )


_DOWNSAMPLE = ("maxpool", "stride")
_HEAD = ("gap", "flatten")


def _conv_activation(x, *, batch_norm, fused_bn, activation, act_name, name_template):
    """BN before the activation (optionally fused into one layer).

    `name_template` is e.g. `"block2_{}1"`; the layer kind fills the braces so
    names read `block2_bn1`, `block2_relu1` or, fused, `block2_bn_relu1`.
    """
    if not batch_norm:
        return x
    if fused_bn:
        return BatchNormActivation(
            activation=activation, name=name_template.format(f"bn_{act_name}")
        )(x)
    x = keras.layers.BatchNormalization(name=name_template.format("bn"))(x)
    return keras.layers.Activation(activation, name=name_template.format(act_name))(x)


def _check_spatial_size(
    input_shape: tuple, filters: tuple, downsample: str, where: str = ""
):
    """Every block halves the spatial size; refuse to shrink below 1 pixel."""
    for size in input_shape[:2]:
        if size is None:
            continue
        for _ in filters:
            # Pooling floors (valid padding); a stride-2 `same` conv ceils.
            size = size // 2 if downsample == "maxpool" else -(-size // 2)
        if size < 1:
            raise _checks.invalid(
                "filters",
                f"at most as many blocks as halvings of the spatial size "
                f"{input_shape[:2]}{where} allow with downsample='{downsample}'",
                filters,
            )


def _check_preprocessed(preprocessing, shape: tuple, filters: tuple, downsample):
    """The preprocessed input is still an image the blocks can halve."""
    if len(shape) != 3 or shape[2] is None:
        raise _checks.invalid_described(
            "preprocessing",
            "a layer whose output is (height, width, channels) with known channels",
            f"layer '{preprocessing.name}' with output shape {shape}",
        )
    _check_spatial_size(shape, filters, downsample, where=" after preprocessing")


def build_cnn(
    input_shape: Sequence[int | None],
    num_classes: int,
    *,
    filters: Sequence[int] = (32, 64, 128),
    convs_per_block: int = 2,
    kernel_size: int = 3,
    batch_norm: bool = True,
    activation: str | Callable = "relu",
    downsample: str = "maxpool",
    head: str = "gap",
    dense_units: Sequence[int] = (),
    dropout_rate: float = 0.0,
    kernel_regularizer: Any = None,
    fused_bn: bool = False,
    kernel_initializer: Any = "he_normal",
    preprocessing: keras.layers.Layer | None = None,
    name: str | None = None,
) -> keras.Model:
    """Builds a VGG-style image classifier of convolutional blocks.

    Block `b` (one per entry of `filters`) stacks `convs_per_block` units of
    `Conv2D(filters[b], kernel_size, padding="same")` → `BatchNormalization`
    → `Activation` (BN before the activation, conv bias dropped since BN's
    `beta` replaces it), then halves the spatial size: `downsample="maxpool"`
    appends `MaxPooling2D(2)`, `downsample="stride"` gives the block's last
    conv `strides=2` instead. With `batch_norm=False` the activation is fused
    into the conv and the conv keeps its bias; with `fused_bn=True` each
    BN + Activation pair is one `kerasx.layers.BatchNormActivation`.

    The head is `GlobalAveragePooling2D` (`"gap"`) or `Flatten`
    (`"flatten"`), then one `Dense(activation)` per entry of `dense_units`,
    then `Dense(num_classes, softmax)` named `output`. When
    `dropout_rate > 0`, a `Dropout` precedes every `Dense` of the head.
    `kernel_regularizer` applies to every conv and dense kernel.

    Args:
        input_shape: `(height, width, channels)` (channels last). Height and
            width may be `None` with `head="gap"`.
        num_classes: Number of output units (>= 1).
        filters: Filters of each block.
        convs_per_block: Convolutions per block (>= 1).
        kernel_size: Square kernel size (>= 1).
        batch_norm: Put `BatchNormalization` before every conv activation.
        activation: Activation name or callable (conv and head layers).
        downsample: `"maxpool"` or `"stride"`.
        head: `"gap"` or `"flatten"`.
        dense_units: Units of the hidden dense layers of the head.
        dropout_rate: Rate of the dropout before each head `Dense`, in [0, 1).
        kernel_regularizer: `None` or a regularizer for every kernel.
        fused_bn: Use `BatchNormActivation` (needs `batch_norm=True`).
        kernel_initializer: Kernel initializer of conv and hidden dense layers.
        preprocessing: Optional layer applied to the input first, e.g.
            `keras.layers.Rescaling(1 / 255)`. It is used as given, not copied.
        name: Model name; defaults to `"cnn"`.

    Returns:
        An uncompiled functional `keras.Model`.

    Raises:
        ValueError: If `head` is not `"gap"` or `"flatten"`; if `input_shape`
            is not a tuple of 3 positive integers (height and width may be
            None with `head="gap"`, the channels never); if `filters` has more
            blocks than halvings of the spatial size allow (before or after
            `preprocessing`); if `num_classes`, `convs_per_block` or
            `kernel_size` is not an integer >= 1; if `filters` is not a
            non-empty sequence of positive integers, or `dense_units` not a
            sequence of positive integers; if `batch_norm` or `fused_bn` is
            not a bool, or `fused_bn=True` with `batch_norm=False`; if
            `activation` is not a Keras activation name or a callable; if
            `downsample` is not `"maxpool"` or `"stride"`; if `dropout_rate`
            is not a float in [0, 1); if `kernel_regularizer` is not None or a
            Keras regularizer; if `kernel_initializer` is not a Keras
            initializer; if `preprocessing` is not None or a
            `keras.layers.Layer`, or its output is not `(height, width,
            channels)` with known channels; if `name` is not None or a
            non-empty string without `/`.

    Example:

    ```python
    >>> from kerasx.models import build_cnn
    >>> model = build_cnn((32, 32, 3), 10, filters=(8, 16), convs_per_block=1)
    >>> [layer.name for layer in model.layers[1:5]]
    ['block1_conv1', 'block1_bn1', 'block1_relu1', 'block1_pool']
    >>> model.count_params()  # 27*8 + 4*8 + 72*16 + 4*16 + 16*10+10
    1634
    >>> model.output_shape
    (None, 10)

    ```

    Reference:
        Géron, *Hands-On Machine Learning*, 2nd ed., chapter 14 (CNNs);
        Ioffe & Szegedy, 2015, "Batch Normalization",
        https://arxiv.org/abs/1502.03167
    """
    head = _checks.choice("head", head, _HEAD)
    input_shape = _checks.input_shape(input_shape, rank=3, allow_none=head == "gap")
    if input_shape[2] is None:
        raise _checks.invalid(
            "input_shape", "a known number of channels (last axis)", input_shape
        )
    num_classes = _checks.integer("num_classes", num_classes, minimum=1)
    filters = _checks.positive_ints("filters", filters)
    convs_per_block = _checks.integer("convs_per_block", convs_per_block, minimum=1)
    kernel_size = _checks.integer("kernel_size", kernel_size, minimum=1)
    _checks.boolean("batch_norm", batch_norm)
    activation_fn = _checks.activation("activation", activation)
    downsample = _checks.choice("downsample", downsample, _DOWNSAMPLE)
    dense_units = _checks.positive_ints("dense_units", dense_units, allow_empty=True)
    dropout_rate = _checks.rate("dropout_rate", dropout_rate)
    _checks.regularizer("kernel_regularizer", kernel_regularizer)
    if _checks.boolean("fused_bn", fused_bn) and not batch_norm:
        raise _checks.invalid(
            "fused_bn", "a bool, True only with batch_norm=True", fused_bn
        )
    _checks.initializer("kernel_initializer", kernel_initializer)
    _checks.optional_layer("preprocessing", preprocessing)
    name = _model_name(name)
    _check_spatial_size(input_shape, filters, downsample)

    act_name = _checks.activation_name(activation)
    inputs = keras.Input(shape=input_shape, name="input")
    x = inputs if preprocessing is None else preprocessing(inputs)
    if preprocessing is not None:
        _check_preprocessed(preprocessing, tuple(x.shape[1:]), filters, downsample)
    for block, block_filters in enumerate(filters, start=1):
        for conv in range(1, convs_per_block + 1):
            is_strided = downsample == "stride" and conv == convs_per_block
            prefix = f"block{block}"
            x = keras.layers.Conv2D(
                block_filters,
                kernel_size,
                strides=2 if is_strided else 1,
                padding="same",
                activation=None if batch_norm else activation_fn,
                use_bias=not batch_norm,
                kernel_initializer=kernel_initializer,
                kernel_regularizer=kernel_regularizer,
                name=f"{prefix}_conv{conv}",
            )(x)
            x = _conv_activation(
                x,
                batch_norm=batch_norm,
                fused_bn=fused_bn,
                activation=activation_fn,
                act_name=act_name,
                name_template=f"{prefix}_{{}}{conv}",
            )
        if downsample == "maxpool":
            x = keras.layers.MaxPooling2D(2, name=f"block{block}_pool")(x)
    if head == "gap":
        x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    else:
        x = keras.layers.Flatten(name="flatten")(x)
    for index, units in enumerate(dense_units, start=1):
        if dropout_rate > 0:
            x = keras.layers.Dropout(dropout_rate, name=f"head{index}_dropout")(x)
        x = keras.layers.Dense(
            units,
            activation=activation_fn,
            kernel_initializer=kernel_initializer,
            kernel_regularizer=kernel_regularizer,
            name=f"head{index}_dense",
        )(x)
    if dropout_rate > 0:
        x = keras.layers.Dropout(dropout_rate, name="output_dropout")(x)
    outputs = keras.layers.Dense(
        num_classes,
        activation="softmax",
        kernel_regularizer=kernel_regularizer,
        name="output",
    )(x)
    return keras.Model(inputs, outputs, name=name or "cnn")
