"""`BatchNormActivation`: BatchNormalization followed by an activation, fused.

The layer holds the variables and updates the moving statistics; what it
computes (the fused ops, the Keras composition for what they do not cover, and
the choice of kernel) is in `kerasx.ops`, the backend kernels in one module of
`kerasx.ops` per backend.
"""

from __future__ import annotations

import keras
from keras import constraints, initializers, ops, regularizers

from kerasx import _checks
from kerasx import ops as kx_ops


@keras.saving.register_keras_serializable(package="kerasx")
class BatchNormActivation(keras.layers.Layer):
    """Batch normalisation followed by an activation, as one fused layer.

    Equivalent to `keras.layers.BatchNormalization` followed by
    `keras.layers.Activation(activation)`, with the same variables (`gamma`,
    `beta`, `moving_mean`, `moving_variance`: names, shapes, order), so
    weights transfer both ways with `get_weights`/`set_weights`.

    In training (`training=True` and `trainable`), per channel `c`:

        mean_c, var_c = batch mean and biased variance (float32)
        y = act(gamma_c * (x - mean_c) / sqrt(var_c + epsilon) + beta_c)
        moving_mean = moving_mean * momentum + mean_c * (1 - momentum)
        moving_variance = moving_variance * momentum + var_c * (1 - momentum)

    In inference the moving statistics replace the batch ones;
    `trainable=False` means inference mode, as in Keras. Training with a fused
    activation runs `kerasx.ops.batch_norm_activation`, whose kernel
    `kerasx.ops.KERNEL_TABLE` picks for the call (the table names the benchmark
    row behind each choice): a compiled kernel with the closed-form gradient
    `dx = gamma * rstd * (g - mean(g) - xhat * mean(g * xhat))`,
    `g = dy * act'(z)` (XLA-compiled on TensorFlow and JAX, an autograd
    Function on torch), TensorFlow's `FusedBatchNormV3` then the activation
    (channels-last float32 in a TensorFlow graph without XLA, the default `fit`
    mode without a GPU), or Keras' own composition where XLA fuses it best or
    a kernel's fixed cost does not pay (inside `jax.jit` on a CPU, small 2-D
    inputs). Every kernel updates the moving statistics with the biased batch
    variance, as Keras. Inference with a fused activation runs
    `kerasx.ops.batch_norm_activation_inference`. Callable activations, masks
    and `synchronized=True` use the Keras composition (`keras.ops.moments`,
    `keras.ops.batch_normalization`, then the activation, differentiated by
    autodiff). An empty batch gives an empty output on every path and, in
    training, NaN moving statistics (the statistics of no elements), as Keras'
    BatchNormalization.

    Args:
        activation: Activation name (`"relu"`, `"relu6"`,
            `"leaky_relu"`, `"elu"`, `"selu"`, `"gelu"` (exact erf),
            `"silu"`/`"swish"`, `"sigmoid"`, `"tanh"`, `"softplus"`,
            `"linear"`), a Keras activation function, or any callable.
        axis: Channel axis (any axis of inputs of rank 2 to 5).
        momentum: Momentum of the moving averages, in `[0, 1)`.
        epsilon: Positive float added to the variance.
        center: Whether to add `beta`.
        scale: Whether to multiply by `gamma`.
        beta_initializer: Initializer of `beta`.
        gamma_initializer: Initializer of `gamma`.
        moving_mean_initializer: Initializer of `moving_mean`.
        moving_variance_initializer: Initializer of `moving_variance`.
        beta_regularizer: Optional regularizer of `beta`.
        gamma_regularizer: Optional regularizer of `gamma`.
        beta_constraint: Optional constraint of `beta`.
        gamma_constraint: Optional constraint of `gamma`.
        synchronized: Cross-replica statistics; as in Keras, TensorFlow only.
            Runs on the unfused `keras.ops` path (the fused kernel does not
            all-reduce yet).
        memory: `"recompute"` (save the input, recompute `xhat` in the
            backward) or `"invert"` (save only the output and invert the
            activation, InPlace-ABN style; only `leaky_relu`, `elu`,
            `linear`; `|gamma|` is floored at `1e-5` when inverting, so a
            zero `gamma` gets no gradient in this mode).
        negative_slope: Slope of `leaky_relu` for negative inputs; default
            0.2 like `keras.activations.leaky_relu` (the `LeakyReLU` layer
            defaults to 0.3).
        **kwargs: Base layer keyword arguments (`name`, `dtype`, ...).

    Call arguments:
        - `inputs`: Floating tensor (float32, float16 or bfloat16) of rank 2-5.
        - `training`: Whether to use batch statistics and update moving ones.
        - `mask`: Optional boolean mask of rank `inputs.ndim - 1` (as Keras BN:
            masked positions are excluded from the statistics).

    Input shape:
        Arbitrary, of rank 2 to 5 with a known size on `axis`:
        `(batch_size, ..., channels)` for the default `axis=-1`.

    Output shape:
        Same shape as input.

    Raises:
        ValueError: If `activation` is neither a callable nor the name of a
            fused activation; if `axis` is not an integer, `momentum` not in
            `[0, 1)`, `epsilon` not a positive finite number, or `center`,
            `scale` or `synchronized` not a bool; if `memory` is not
            `"recompute"` or `"invert"`, or is `"invert"` with an activation
            that cannot be inverted; if `negative_slope` is negative, not
            finite, or 0 for an inverted `leaky_relu`; if `synchronized=True`
            on a backend other than TensorFlow; if an initializer, regularizer
            or constraint is not one Keras can interpret. When built: if the
            inputs are not of rank 2 to 5, `axis` is out of range for them, or
            their size on `axis` is unknown. When called: if the inputs are not
            floating, or the mask's rank is not one less than theirs.

    Example:

    ```python
    >>> import keras
    >>> import numpy as np
    >>> from kerasx.layers import BatchNormActivation
    >>> layer = BatchNormActivation("relu", epsilon=1e-8)
    >>> x = np.array([[1.0], [3.0]], "float32")
    >>> y = layer(x, training=True)
    >>> np.round(keras.ops.convert_to_numpy(y), 4).tolist()
    [[0.0], [1.0]]
    >>> [weight.name for weight in layer.weights]
    ['gamma', 'beta', 'moving_mean', 'moving_variance']
    >>> [round(float(v), 4) for v in keras.ops.convert_to_numpy(layer.moving_mean)]
    [0.02]
    >>> y = layer(x, training=False)  # moving statistics: mean 0.02, variance 1
    >>> [round(float(v), 4) for v in keras.ops.convert_to_numpy(y).ravel()]
    [0.98, 2.98]

    ```

    Reference:
        Ioffe & Szegedy, "Batch Normalization", ICML 2015;
        `keras.layers.BatchNormalization` (semantics);
        Rota Bulò et al., "In-Place Activated BatchNorm", CVPR 2018.
    """

    def __init__(
        self,
        activation="relu",
        axis: int = -1,
        momentum: float = 0.99,
        epsilon: float = 1e-3,
        center: bool = True,
        scale: bool = True,
        beta_initializer="zeros",
        gamma_initializer="ones",
        moving_mean_initializer="zeros",
        moving_variance_initializer="ones",
        beta_regularizer=None,
        gamma_regularizer=None,
        beta_constraint=None,
        gamma_constraint=None,
        synchronized: bool = False,
        memory: str = "recompute",
        negative_slope: float = 0.2,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self._fused_name, self._activation_fn = kx_ops.resolve_activation(activation)
        self.activation = activation
        axis = _checks.integer("axis", axis)
        momentum = _checks.number("momentum", momentum, low=0, high=1, high_open=True)
        epsilon = _checks.number("epsilon", epsilon, low=0, low_open=True)
        center = _checks.boolean("center", center)
        scale = _checks.boolean("scale", scale)
        synchronized = _checks.boolean("synchronized", synchronized)
        kx_ops.check_memory(memory, self._fused_name)
        negative_slope = kx_ops.check_negative_slope(
            negative_slope, self._fused_name, memory
        )
        if synchronized and keras.backend.backend() != "tensorflow":
            raise _checks.invalid(
                "synchronized",
                "False on backends other than tensorflow (as Keras BN)",
                synchronized,
            )
        self.axis = axis
        self.momentum = momentum
        self.epsilon = epsilon
        self.center = center
        self.scale = scale
        self.synchronized = synchronized
        self.memory = memory
        self.negative_slope = negative_slope
        self.beta_initializer = initializers.get(beta_initializer)
        self.gamma_initializer = initializers.get(gamma_initializer)
        self.moving_mean_initializer = initializers.get(moving_mean_initializer)
        self.moving_variance_initializer = initializers.get(moving_variance_initializer)
        self.beta_regularizer = regularizers.get(beta_regularizer)
        self.gamma_regularizer = regularizers.get(gamma_regularizer)
        self.beta_constraint = constraints.get(beta_constraint)
        self.gamma_constraint = constraints.get(gamma_constraint)
        self.supports_masking = True
        self.gamma = None
        self.beta = None

    def build(self, input_shape):
        rank = len(input_shape)
        if not 2 <= rank <= 5:
            raise _checks.invalid("inputs", "a tensor of rank 2 to 5", input_shape)
        if not -rank <= self.axis < rank:
            raise _checks.invalid("axis", f"an integer in [-{rank}, {rank})", self.axis)
        if input_shape[self.axis] is None:
            raise _checks.invalid_described(
                "inputs",
                f"a known size on the channel axis (axis={self.axis})",
                f"shape {tuple(input_shape)}",
            )
        shape = (input_shape[self.axis],)
        if self.scale:
            self.gamma = self.add_weight(
                shape=shape,
                name="gamma",
                initializer=self.gamma_initializer,
                regularizer=self.gamma_regularizer,
                constraint=self.gamma_constraint,
                trainable=True,
                autocast=False,
            )
        if self.center:
            self.beta = self.add_weight(
                shape=shape,
                name="beta",
                initializer=self.beta_initializer,
                regularizer=self.beta_regularizer,
                constraint=self.beta_constraint,
                trainable=True,
                autocast=False,
            )
        self.moving_mean = self.add_weight(
            shape=shape,
            name="moving_mean",
            initializer=self.moving_mean_initializer,
            trainable=False,
            autocast=False,
        )
        self.moving_variance = self.add_weight(
            shape=shape,
            name="moving_variance",
            initializer=self.moving_variance_initializer,
            trainable=False,
            autocast=False,
        )
        self.input_spec = keras.layers.InputSpec(
            ndim=rank, axes={self.axis: input_shape[self.axis]}
        )

    def compute_output_shape(self, input_shape):
        return input_shape

    def call(self, inputs, training=None, mask=None):
        dtype = keras.backend.standardize_dtype(inputs.dtype)
        if "float" not in dtype:
            raise _checks.invalid("inputs", "a floating tensor", f"<tensor of {dtype}>")
        if mask is not None and len(mask.shape) != len(inputs.shape) - 1:
            raise ValueError(
                "The mask provided should be one dimension less than the "
                f"inputs. Received: mask.shape={mask.shape}, "
                f"inputs.shape={inputs.shape}"
            )
        channels = inputs.shape[self.axis]
        gamma = self.gamma if self.scale else ops.ones((channels,), "float32")
        beta = self.beta if self.center else ops.zeros((channels,), "float32")
        gamma = ops.convert_to_tensor(gamma, "float32")
        beta = ops.convert_to_tensor(beta, "float32")
        fused = self._fused_name is not None
        common = dict(axis=self.axis, epsilon=self.epsilon)
        if not (training and self.trainable):
            if fused:
                return kx_ops.batch_norm_activation_inference(
                    inputs,
                    self.moving_mean,
                    self.moving_variance,
                    gamma,
                    beta,
                    activation=self._fused_name,
                    negative_slope=self.negative_slope,
                    output_dtype=self.compute_dtype,
                    **common,
                )
            return kx_ops.composed_normalize_activate(
                ops.cast(inputs, "float32"),
                ops.convert_to_tensor(self.moving_mean),
                ops.convert_to_tensor(self.moving_variance),
                gamma,
                beta,
                activation_fn=self._activation_fn,
                out_dtype=self.compute_dtype,
                **common,
            )
        if fused and mask is None and not self.synchronized:
            outputs, mean, variance = kx_ops.batch_norm_activation(
                inputs,
                gamma,
                beta,
                activation=self._fused_name,
                negative_slope=self.negative_slope,
                memory=self.memory,
                output_dtype=self.compute_dtype,
                differentiable_statistics=False,
                **common,
            )
        else:
            outputs, mean, variance = kx_ops.composed_batch_norm_activation(
                inputs,
                gamma,
                beta,
                activation_fn=self._activation_fn,
                out_dtype=self.compute_dtype,
                mask=mask,
                synchronized=self.synchronized,
                **common,
            )
        moving_mean = ops.cast(self.moving_mean, "float32")
        moving_variance = ops.cast(self.moving_variance, "float32")
        self.moving_mean.assign(
            moving_mean * self.momentum + mean * (1.0 - self.momentum)
        )
        self.moving_variance.assign(
            moving_variance * self.momentum + variance * (1.0 - self.momentum)
        )
        return outputs

    def get_config(self):
        activation = self.activation
        if callable(activation):
            activation = keras.saving.serialize_keras_object(activation)
        config = {
            "activation": activation,
            "axis": self.axis,
            "momentum": self.momentum,
            "epsilon": self.epsilon,
            "center": self.center,
            "scale": self.scale,
            "beta_initializer": initializers.serialize(self.beta_initializer),
            "gamma_initializer": initializers.serialize(self.gamma_initializer),
            "moving_mean_initializer": initializers.serialize(
                self.moving_mean_initializer
            ),
            "moving_variance_initializer": initializers.serialize(
                self.moving_variance_initializer
            ),
            "beta_regularizer": regularizers.serialize(self.beta_regularizer),
            "gamma_regularizer": regularizers.serialize(self.gamma_regularizer),
            "beta_constraint": constraints.serialize(self.beta_constraint),
            "gamma_constraint": constraints.serialize(self.gamma_constraint),
            "synchronized": self.synchronized,
            "memory": self.memory,
            "negative_slope": self.negative_slope,
        }
        return {**super().get_config(), **config}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        activation = config.get("activation")
        if isinstance(activation, dict):
            config["activation"] = keras.saving.deserialize_keras_object(activation)
        return cls(**config)
