"""Model builders for the architectures of the Hands-On ML deep-network exercises.

Each builder returns a plain functional `keras.Model` whose layer names show
its structure in `model.summary()` (`block3_dense`, `block3_bn`, `block3_elu`,
`block3_dropout`, ..., `output`). Arguments are validated before any layer is
created.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import keras

from kerasx import _model_args as args
from kerasx._cnn_blocks import build_cnn

__all__ = ["build_cnn", "build_mlp", "build_selu_mlp"]

_BATCH_NORM = (None, "before", "after")
_DROPOUT = ("standard", "alpha", "mc", "mc_alpha")


def _dropout_layer(kind: str, rate: float, name: str) -> keras.layers.Layer:
    if kind == "standard":
        return keras.layers.Dropout(rate, name=name)
    if kind == "alpha":
        return keras.layers.AlphaDropout(rate, name=name)
    if kind == "mc":
        from kerasx.layers import MCDropout

        return MCDropout(rate, name=name)
    from kerasx.layers import MCAlphaDropout

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

    Dropout layers are added only when `dropout_rate > 0`; `dropout` picks
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
        dropout_rate: Rate of the dropout after every hidden block, in [0, 1).
        dropout: One of `"standard"`, `"alpha"`, `"mc"`, `"mc_alpha"`.
        kernel_regularizer: `None` or a regularizer for every kernel.
        output_activation: Output activation (`"softmax"`; `None` for logits).
        preprocessing: Optional layer applied to the input first, e.g.
            `keras.layers.Rescaling(1 / 255)` or an adapted
            `keras.layers.Normalization()`. It is used as given, not copied.
        name: Model name; defaults to `"mlp"`.

    Returns:
        An uncompiled functional `keras.Model`.

    Example:

    ```python
    >>> model = build_mlp((28, 28), 10, hidden_units=(64, 32), batch_norm="before")
    >>> [layer.name for layer in model.layers[2:6]]
    ['block1_dense', 'block1_bn', 'block1_elu', 'block2_dense']
    >>> model.count_params()  # 784*64 + 4*64 + 64*32 + 4*32 + 32*10+10
    52938

    ```

    Reference:
        Géron, *Hands-On Machine Learning*, 2nd ed., chapter 11 and
        exercise 8 (deep MLP on CIFAR-10).
    """
    input_shape = args.input_shape(input_shape)
    num_classes = args.positive_int("num_classes", num_classes)
    hidden_units = args.positive_ints("hidden_units", hidden_units)
    activation_fn = args.activation("activation", activation)
    args.initializer("kernel_initializer", kernel_initializer)
    args.choice("batch_norm", batch_norm, _BATCH_NORM)
    dropout_rate = args.rate("dropout_rate", dropout_rate)
    args.choice("dropout", dropout, _DROPOUT)
    args.regularizer("kernel_regularizer", kernel_regularizer)
    args.activation("output_activation", output_activation, allow_none=True)
    args.optional_layer("preprocessing", preprocessing)
    name = args.optional_name(name)

    act_name = args.activation_name(activation)
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
        if dropout_rate > 0:
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
    kernel_regularizer: Any = None,
    output_activation: str | Callable | None = "softmax",
    preprocessing: keras.layers.Layer | None = None,
    name: str | None = None,
) -> keras.Model:
    """Builds a self-normalising network: SELU, LeCun normal, AlphaDropout.

    Equivalent to `build_mlp(..., activation="selu",
    kernel_initializer="lecun_normal", batch_norm=None,
    dropout_rate=alpha_dropout_rate, dropout="alpha")`; with `mc=True` the
    dropout is `kerasx.layers.MCAlphaDropout`. Self-normalisation also needs
    standardised inputs (mean 0, standard deviation 1): pass an adapted
    `keras.layers.Normalization()` as `preprocessing`, or standardise the data.

    Args:
        input_shape: Shape of one example, without the batch axis.
        num_classes: Number of output units (>= 1).
        hidden_units: Units of each hidden layer (default 20 × 100).
        alpha_dropout_rate: Rate of the AlphaDropout after every hidden
            layer, in [0, 1); 0 adds no dropout layers.
        mc: Use `MCAlphaDropout` (stochastic at inference) instead.
        kernel_regularizer: `None` or a regularizer for every kernel.
        output_activation: Output activation (`None` for logits).
        preprocessing: Optional layer applied to the input first.
        name: Model name; defaults to `"selu_mlp"`.

    Returns:
        An uncompiled functional `keras.Model`.

    Example:

    ```python
    >>> model = build_selu_mlp((8,), 3, hidden_units=(16, 16), alpha_dropout_rate=0.1)
    >>> [layer.name for layer in model.layers[1:]]
    ['block1_dense', 'block1_dropout', 'block2_dense', 'block2_dropout', 'output']

    ```

    Reference:
        Klambauer et al., 2017, "Self-Normalizing Neural Networks",
        https://arxiv.org/abs/1706.02515
    """
    if not isinstance(mc, bool):
        raise args.invalid("mc", "a bool", mc)
    return build_mlp(
        input_shape,
        num_classes,
        hidden_units=hidden_units,
        activation="selu",
        kernel_initializer="lecun_normal",
        batch_norm=None,
        dropout_rate=args.rate("alpha_dropout_rate", alpha_dropout_rate),
        dropout="mc_alpha" if mc else "alpha",
        kernel_regularizer=kernel_regularizer,
        output_activation=output_activation,
        preprocessing=preprocessing,
        name=name or "selu_mlp",
    )
