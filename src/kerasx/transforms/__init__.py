"""Model-to-model transforms for BatchNormalization.

* `fold_batchnorm`: inference model with every BatchNorm that directly follows
  a Conv/Dense folded into that layer's kernel and bias.
* `fuse_batchnorm_activation`: BatchNorm + activation pairs replaced by one
  `kerasx.layers.BatchNormActivation` carrying the same weights.

Both are one rule passed to `rewrite_model`, the graph rewrite behind them and
`kerasx.uncertainty.to_mc`, public here for your own rules: the original model
is never modified.
"""

from __future__ import annotations

import keras
import numpy as np

from kerasx import _checks, _keras_internals
from kerasx.layers import BatchNormActivation
from kerasx.ops import resolve_activation
from kerasx.transforms._rewrite import SKIP, RewriteContext, rewrite_model

__all__ = [
    "SKIP",
    "RewriteContext",
    "fold_batchnorm",
    "fuse_batchnorm_activation",
    "rewrite_model",
]

_LINEAR_TYPES = (
    keras.layers.Dense,
    keras.layers.Conv1D,
    keras.layers.Conv2D,
    keras.layers.Conv3D,
    keras.layers.DepthwiseConv1D,
    keras.layers.DepthwiseConv2D,
)
_DEPTHWISE_TYPES = (keras.layers.DepthwiseConv1D, keras.layers.DepthwiseConv2D)
_NORM_TYPES = (keras.layers.BatchNormalization, BatchNormActivation)


def _is_single_link(producer, consumer, context: RewriteContext) -> bool:
    """`producer` feeds only `consumer`, which reads only `producer`, once."""
    consumers, producers = context.consumers(producer), context.producers(consumer)
    return (
        len(consumers) == 1
        and consumers[0] is consumer
        and len(producers) == 1
        and producers[0] is producer
        and context.num_calls(producer) == 1
        and context.num_calls(consumer) == 1
        and context.num_consumer_calls(producer) == 1
        and not context.is_output(producer)
    )


def _pair_rule(can_pair, first_becomes, second_becomes):
    """A rule rewriting linked `(first, second)` layer pairs that `can_pair` accepts.

    The first layer of a pair becomes `first_becomes(first, second)` and the
    second `second_becomes(second)` (often `SKIP`); other layers are kept.
    """

    def rule(layer, context: RewriteContext):
        consumers = context.consumers(layer)
        if len(consumers) == 1 and can_pair(layer, consumers[0], context):
            return first_becomes(layer, consumers[0])
        producers = context.producers(layer)
        if len(producers) == 1 and can_pair(producers[0], layer, context):
            return second_becomes(layer)
        return None

    return rule


# ---------------------------------------------------------------- folding


def _channel_axis(linear) -> int:
    if isinstance(linear, keras.layers.Dense):
        return -1
    return 1 if linear.data_format == "channels_first" else -1


def _can_fold(linear, norm, context: RewriteContext) -> bool:
    if type(linear) not in _LINEAR_TYPES or type(norm) not in _NORM_TYPES:
        return False
    if getattr(linear, "quantization_mode", None) is not None:
        return False
    if linear.activation is not keras.activations.linear:
        return False
    if not isinstance(norm.axis, int) or not _is_single_link(linear, norm, context):
        return False
    rank = len(_keras_internals.built_input_shape(norm))
    return norm.axis % rank == _channel_axis(linear) % rank


def _affine(norm) -> tuple[np.ndarray, np.ndarray]:
    """Inference-mode BatchNorm as `x * scale + shift`, in float64."""
    mean = np.asarray(keras.ops.convert_to_numpy(norm.moving_mean), "float64")
    variance = np.asarray(keras.ops.convert_to_numpy(norm.moving_variance), "float64")
    gamma = keras.ops.convert_to_numpy(norm.gamma) if norm.scale else 1.0
    beta = keras.ops.convert_to_numpy(norm.beta) if norm.center else 0.0
    scale = np.asarray(gamma, "float64") / np.sqrt(variance + norm.epsilon)
    return scale, np.asarray(beta, "float64") - mean * scale


def _folded_layer(linear, norm) -> keras.layers.Layer:
    config = {**linear.get_config(), "use_bias": True}
    if "lora_rank" in config:
        config["lora_rank"] = None
    folded = type(linear).from_config(config)
    folded.build_from_config(linear.get_build_config())
    kernel = np.asarray(keras.ops.convert_to_numpy(linear.kernel), "float64")
    if linear.use_bias:
        bias = np.asarray(keras.ops.convert_to_numpy(linear.bias), "float64")
    else:
        bias = np.zeros(folded.bias.shape, "float64")
    scale, shift = _affine(norm)
    if isinstance(linear, _DEPTHWISE_TYPES):
        # Kernel (*kernel_size, in_channels, depth_multiplier): output channel
        # c * depth_multiplier + m comes from kernel[..., c, m].
        kernel = kernel * scale.reshape(kernel.shape[-2:])
    else:
        kernel = kernel * scale
    folded.set_weights([kernel, bias * scale + shift])
    return folded


def _activation_after_fold(norm):
    """What stays of a folded norm: nothing, or its activation as a layer."""
    if isinstance(norm, keras.layers.BatchNormalization):
        return SKIP
    function = keras.activations.get(norm.activation)
    if function is keras.activations.linear:
        return SKIP
    if function is keras.activations.leaky_relu:
        return keras.layers.LeakyReLU(norm.negative_slope, name=norm.name)
    return keras.layers.Activation(norm.activation, name=norm.name)


_fold_rule = _pair_rule(_can_fold, _folded_layer, _activation_after_fold)


def fold_batchnorm(model: keras.Model) -> keras.Model:
    """Folds each BatchNorm into the Conv/Dense layer right before it.

    In inference mode a BatchNormalization over the channel axis is the
    per-channel affine map `y = x * s + (beta - mean * s)` with
    `s = gamma / sqrt(moving_variance + epsilon)`. When it directly follows a
    linear layer `x = W * u + b` this is the same linear layer with

        W' = W * s        (per output channel)
        b' = (b - mean) * s + beta

    so the pair becomes one new layer (a bias is created if there was none).
    Folded pairs: `Dense`, `Conv1D/2D/3D`, `DepthwiseConv1D/2D` (any
    `data_format`) without activation, followed by `BatchNormalization` or
    `kerasx.layers.BatchNormActivation` over the channel axis, the linear
    layer's output feeding nothing else and not being a model output. A
    `BatchNormActivation` with a non-linear activation leaves that activation
    behind as a `keras.layers.Activation` (`LeakyReLU` for `leaky_relu`).
    Every other layer, including BatchNorms after e.g. `Add`, is shared with
    `model` (same objects, same variables); nested Sequential/Functional
    models are folded too.

    The result computes what `model` computes in inference mode, with one
    pass less over each activation map. It is meant for inference: training
    it trains the folded kernels without batch statistics.

    Args:
        model: A built Sequential or Functional `keras.Model`; not
            modified.

    Returns:
        A new model of the same kind, uncompiled.

    Raises:
        ValueError: If `model` is not a `keras.Model`, is an unbuilt
            Sequential model, or is (or nests) a subclassed model without a
            functional graph.

    Example:

    ```python
    >>> import keras
    >>> import numpy as np
    >>> from kerasx.transforms import fold_batchnorm
    >>> keras.utils.set_random_seed(0)
    >>> model = keras.Sequential(
    ...     [
    ...         keras.Input((4, 4, 3)),
    ...         keras.layers.Conv2D(8, 3, use_bias=False),
    ...         keras.layers.BatchNormalization(),
    ...         keras.layers.ReLU(),
    ...     ]
    ... )
    >>> folded = fold_batchnorm(model)
    >>> [type(layer).__name__ for layer in folded.layers]
    ['Conv2D', 'ReLU']
    >>> x = np.random.default_rng(0).random((2, 4, 4, 3)).astype("float32")
    >>> to_numpy = keras.ops.convert_to_numpy
    >>> bool(np.allclose(to_numpy(folded(x)), to_numpy(model(x)), atol=1e-5))
    True

    ```

    Reference:
        Jacob et al., "Quantization and Training of Neural Networks for
        Efficient Integer-Arithmetic-Only Inference", CVPR 2018, section 3.2.
    """
    _checks.model(model, expected="a Sequential or Functional keras.Model")
    if isinstance(model, keras.Sequential) and not model.built:
        # Folding multiplies weights that an unbuilt model does not have yet
        # (Functional models are built; subclassed ones are refused below).
        raise _checks.invalid_described(
            "model",
            "a built model (folding reads its weights: start a Sequential with "
            "keras.Input, or build or call it first)",
            f"unbuilt {type(model).__name__} '{model.name}'",
        )
    return rewrite_model(model, _fold_rule)


# ----------------------------------------------------------------- fusion


def _fused_activation(layer) -> tuple[str, float] | None:
    """`(activation, negative_slope)` of an activation layer, if fusable."""
    slope = 0.2
    if type(layer) is keras.layers.Activation:
        # The fused name of Keras' own activation functions, None for others.
        name, _ = resolve_activation(layer.activation)
    elif type(layer) is keras.layers.ReLU:
        if layer.threshold != 0.0:
            return None
        if layer.negative_slope != 0.0:
            if layer.max_value is not None:
                return None
            name, slope = "leaky_relu", layer.negative_slope
        else:
            name = {None: "relu", 6.0: "relu6"}.get(layer.max_value)
    elif type(layer) is keras.layers.LeakyReLU:
        name, slope = "leaky_relu", layer.negative_slope
    elif type(layer) is keras.layers.ELU:
        name = "elu" if layer.alpha == 1.0 else None
    else:
        return None
    return None if name is None else (name, float(slope))


def _can_fuse(norm, activation, context: RewriteContext) -> bool:
    return (
        type(norm) is keras.layers.BatchNormalization
        and not norm.renorm
        and _fused_activation(activation) is not None
        and _is_single_link(norm, activation, context)
    )


def _fused_layer(norm, activation) -> BatchNormActivation:
    name, slope = _fused_activation(activation)
    config = norm.get_config()
    for key in ("renorm", "renorm_clipping", "renorm_momentum"):
        config.pop(key, None)
    fused = BatchNormActivation(activation=name, negative_slope=slope, **config)
    fused.build_from_config(norm.get_build_config())
    fused.set_weights(norm.get_weights())
    return fused


_fuse_rule = _pair_rule(_can_fuse, _fused_layer, lambda layer: SKIP)


def fuse_batchnorm_activation(model: keras.Model) -> keras.Model:
    """Replaces BatchNorm + activation pairs by one `BatchNormActivation`.

    A `keras.layers.BatchNormalization` whose output feeds only an activation
    layer that `kerasx.layers.BatchNormActivation` fuses becomes one
    `BatchNormActivation` with the same configuration and copies of the same
    weights (`gamma`, `beta`, `moving_mean`, `moving_variance`), so
    `act(gamma * (x - mean) / sqrt(var + epsilon) + beta)` is computed by one
    layer, with the kernel `kerasx.ops.KERNEL_TABLE` picks for the call, in
    training (batch statistics, same moving-statistic updates) and in
    inference. Fused activation layers: `Activation` with relu, relu6,
    leaky_relu, elu, selu, gelu, silu/swish, sigmoid, tanh, softplus or
    linear; `ReLU` (plain, `max_value=6` as relu6, `negative_slope` as
    leaky_relu; not with a `threshold`); `LeakyReLU`; `ELU` with `alpha=1`.
    Anything else (BatchNorms with `renorm`, a BatchNorm output that is also
    used elsewhere or is a model output, `Softmax`, ...) is shared with
    `model` unchanged. The fused layer keeps the BatchNorm's name. Its
    variables are copies, while every other layer is shared with `model`
    (training the result also trains those layers of `model`).

    Args:
        model: A Sequential or Functional `keras.Model`; not modified.

    Returns:
        A new model of the same kind, uncompiled and trainable.

    Raises:
        ValueError: If `model` is not a `keras.Model`, or is (or nests) a
            subclassed model without a functional graph.

    Example:

    ```python
    >>> import keras
    >>> import numpy as np
    >>> from kerasx.transforms import fuse_batchnorm_activation
    >>> keras.utils.set_random_seed(0)
    >>> model = keras.Sequential(
    ...     [
    ...         keras.Input((8,)),
    ...         keras.layers.Dense(4),
    ...         keras.layers.BatchNormalization(),
    ...         keras.layers.ReLU(),
    ...     ]
    ... )
    >>> fused = fuse_batchnorm_activation(model)
    >>> [type(layer).__name__ for layer in fused.layers]
    ['Dense', 'BatchNormActivation']
    >>> fused.layers[1].activation, fused.layers[1].name == model.layers[1].name
    ('relu', True)
    >>> x = np.random.default_rng(0).random((3, 8)).astype("float32")
    >>> to_numpy = keras.ops.convert_to_numpy
    >>> bool(np.allclose(to_numpy(fused(x)), to_numpy(model(x)), atol=1e-5))
    True

    ```

    Reference:
        Ioffe and Szegedy, "Batch Normalization: Accelerating Deep Network
        Training by Reducing Internal Covariate Shift", ICML 2015.
    """
    _checks.model(model, expected="a Sequential or Functional keras.Model")
    return rewrite_model(model, _fuse_rule)
