"""`build_cnn`: the convolutional builder, re-exported by `kerasx.models`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import keras

from kerasx import _model_args as args

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
        from kerasx.layers import BatchNormActivation

        return BatchNormActivation(
            activation=activation, name=name_template.format(f"bn_{act_name}")
        )(x)
    x = keras.layers.BatchNormalization(name=name_template.format("bn"))(x)
    return keras.layers.Activation(activation, name=name_template.format(act_name))(x)


def _check_spatial_size(input_shape: tuple, filters: tuple, downsample: str):
    """Every block halves the spatial size; refuse to shrink below 1 pixel."""
    for size in input_shape[:2]:
        if size is None:
            continue
        for _ in filters:
            # Pooling floors (valid padding); a stride-2 `same` conv ceils.
            size = size // 2 if downsample == "maxpool" else -(-size // 2)
        if size < 1:
            raise args.invalid(
                "filters",
                f"at most as many blocks as halvings of the spatial size "
                f"{input_shape[:2]} allow with downsample='{downsample}'",
                filters,
            )


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

    Example:

    ```python
    >>> model = build_cnn((32, 32, 3), 10, filters=(8, 16), convs_per_block=1)
    >>> [layer.name for layer in model.layers[1:5]]
    ['block1_conv1', 'block1_bn1', 'block1_relu1', 'block1_pool']
    >>> model.count_params()  # 27*8 + 4*8 + 72*16 + 4*16 + 16*10+10
    1634

    ```

    Reference:
        Géron, *Hands-On Machine Learning*, 2nd ed., chapter 14 (CNNs);
        Ioffe & Szegedy, 2015, "Batch Normalization",
        https://arxiv.org/abs/1502.03167
    """
    head = args.choice("head", head, _HEAD)
    input_shape = args.input_shape(input_shape, rank=3, allow_none=head == "gap")
    if input_shape[2] is None:
        raise args.invalid(
            "input_shape", "a known number of channels (last axis)", input_shape
        )
    num_classes = args.positive_int("num_classes", num_classes)
    filters = args.positive_ints("filters", filters)
    convs_per_block = args.positive_int("convs_per_block", convs_per_block)
    kernel_size = args.positive_int("kernel_size", kernel_size)
    if not isinstance(batch_norm, bool):
        raise args.invalid("batch_norm", "a bool", batch_norm)
    activation_fn = args.activation("activation", activation)
    downsample = args.choice("downsample", downsample, _DOWNSAMPLE)
    dense_units = args.positive_ints("dense_units", dense_units, allow_empty=True)
    dropout_rate = args.rate("dropout_rate", dropout_rate)
    args.regularizer("kernel_regularizer", kernel_regularizer)
    if not isinstance(fused_bn, bool) or (fused_bn and not batch_norm):
        raise args.invalid(
            "fused_bn", "a bool, True only with batch_norm=True", fused_bn
        )
    args.initializer("kernel_initializer", kernel_initializer)
    args.optional_layer("preprocessing", preprocessing)
    name = args.optional_name(name)
    _check_spatial_size(input_shape, filters, downsample)

    act_name = args.activation_name(activation)
    inputs = keras.Input(shape=input_shape, name="input")
    x = inputs if preprocessing is None else preprocessing(inputs)
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
