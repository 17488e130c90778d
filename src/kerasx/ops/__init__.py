"""Fused BatchNorm + activation: the kernel dispatch and its decision table.

The backend is picked by `keras.backend.backend()` at call time and its
module is imported lazily, so importing kerasx on JAX never imports
TensorFlow. The backend modules only implement kernels:

* `_tensorflow`: `tf.function(jit_compile=True)` forward and backward tied by
  `tf.custom_gradient`, and `FusedBatchNormV3` followed by the activation;
* `_jax`: `jax.custom_vjp` under `jax.jit`;
* `_torch`: a `torch.autograd.Function` with the same closed-form backward;
* `_kernel`: the backend-neutral math the TensorFlow and JAX kernels compile
  (run op by op on a backend without a kernel module);
* `_reference`: the Keras composition (`keras.ops.moments`, then
  `batch_normalization`, then the activation, differentiated by autodiff).

Which one a training call runs is decided here, by `KERNEL_TABLE` alone.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import importlib
from collections.abc import Callable, Iterator

import keras

from kerasx import _checks
from kerasx.ops import _activations, _kernel, _reference, _validation

__all__ = ["batch_norm_activation", "batch_norm_activation_inference"]

_COMPILED_BACKENDS = {"tensorflow": "_tensorflow", "jax": "_jax", "torch": "_torch"}

#: The training kernels (`path` in `KERNEL_TABLE`).
PATHS = ("compiled", "fused_batch_norm", "composed", "keras_ops")

#: `FusedBatchNormV3` raises smaller epsilons to this value (cuDNN's floor), so
#: a smaller one would silently change the result.
FUSED_OP_MIN_EPSILON = 1.001e-5
#: Element count of a 2-D input from which the backend kernel beats the Keras
#: composition on a CPU (TensorFlow graph: the fused op; torch: the autograd
#: Function); see the rows of `KERNEL_TABLE` that use it.
LARGE_2D_ELEMENTS = 2**16


@dataclasses.dataclass(frozen=True)
class Call:
    """What the decision reads about one training call (all static or host-side).

    `xla`: TensorFlow ops built inside `jit_compile=True`, or a JAX tracer;
    `eager`: TensorFlow executing eagerly (always True off TensorFlow);
    `gpu`: an accelerator runs the step (TensorFlow: a GPU is visible; JAX: the
    default backend is not the CPU; torch: `x` is not on the CPU).
    """

    backend: str
    shape: tuple
    axis: int
    dtype: str
    out_dtype: str
    epsilon: float
    memory: str
    differentiable_statistics: bool
    xla: bool
    eager: bool
    gpu: bool

    @property
    def dense(self) -> bool:
        """A channels-last 2-D input (the output of a `Dense` layer)."""
        return len(self.shape) == 2 and self.axis == 1

    @property
    def elements(self) -> int | None:
        """Static element count, or None while a size is unknown."""
        if None in self.shape:
            return None
        size = 1
        for extent in self.shape:
            size *= extent
        return size

    @property
    def fusable(self) -> bool:
        """Whether `FusedBatchNormV3` computes exactly this call's result."""
        return (
            self.backend == "tensorflow"
            and self.dtype == "float32"
            and self.out_dtype == "float32"
            and self.epsilon >= FUSED_OP_MIN_EPSILON
            and self.axis == len(self.shape) - 1
            and len(self.shape) in (2, 4)
            # Zero channels: the op's count per channel would divide by zero.
            and self.shape[-1] != 0
            # The op's gradient ignores cotangents of the statistics.
            and not self.differentiable_statistics
            and self.memory == "recompute"
        )


@dataclasses.dataclass(frozen=True)
class Case:
    """One row of `KERNEL_TABLE`: where `applies`, run `path`, because `measured`."""

    backend: str  # "tensorflow", "jax", "torch", "other" or "any"
    case: str
    applies: Callable[[Call], bool]
    path: str
    measured: str


def _large(call: Call) -> bool:
    return call.elements is not None and call.elements >= LARGE_2D_ELEMENTS


#: The kernel of a training call: the first row whose `backend` and `applies`
#: match. Ratios are Keras BN + Activation time / the path's time, forward +
#: backward, 2-CPU machine unless stated (benchmarks/batch_norm_activation.py,
#: benchmarks/train_step.py; docs/batch_norm_activation.md and
#: /work/shared/ANCHORS.md keep the tables).
KERNEL_TABLE: tuple[Case, ...] = (
    Case(
        "other",
        "a backend without a kernel module",
        lambda call: True,
        "keras_ops",
        "no kernel to measure: `_kernel`'s math op by op, autodiff",
    ),
    Case(
        "any",
        "gradients must flow through the returned statistics",
        lambda call: call.differentiable_statistics,
        "compiled",
        "contract, not speed: the closed-form backward carries their cotangents",
    ),
    Case(
        "any",
        'memory="invert"',
        lambda call: call.memory == "invert",
        "compiled",
        "contract, not speed: only the kernels save just the output",
    ),
    Case(
        "tensorflow",
        "inside XLA on a CPU, 2-D channels-last",
        lambda call: call.xla and call.dense and not call.gpu,
        "composed",
        "(4096, 1024) under XLA: compiled kernel 0.75-0.91x, XLA fuses Keras' ops",
    ),
    Case(
        "tensorflow",
        "inside XLA, otherwise",
        lambda call: call.xla,
        "compiled",
        "(64, 32, 32, 64) jit, 2-D reduction view: 1.7-2.0x",
    ),
    Case(
        "tensorflow",
        "fusable 4-D, eagerly or in a graph without XLA",
        lambda call: call.fusable and len(call.shape) == 4,
        "fused_batch_norm",
        "graph (128, 28, 28, 32): fused op 5.3x vs compiled 3.1x; "
        "(128, 14, 14, 64): 1.9x vs 1.2x",
    ),
    Case(
        "tensorflow",
        "fusable 2-D of >= LARGE_2D_ELEMENTS elements, no XLA",
        lambda call: call.fusable and _large(call),
        "fused_batch_norm",
        "graph (4096, 1024) as (N, 1, 1, C): 2.8x vs 1.6x; (1024, 256): 1.5x vs 1.5x",
    ),
    Case(
        "tensorflow",
        "fusable 2-D below that (or of unknown batch size), graph without XLA",
        lambda call: call.fusable and not call.eager,
        "composed",
        "graph (256, 100): fused op 0.6-0.8x, compiled 0.7-1.0x, composed 1.0x",
    ),
    Case(
        "tensorflow",
        "otherwise (eager small 2-D, bfloat16/float16, small epsilon, "
        "channels-first, rank 3 or 5)",
        lambda call: True,
        "compiled",
        "eager: one compiled call instead of a dozen eager ops",
    ),
    Case(
        "jax",
        "inside `jax.jit` on a CPU",
        lambda call: call.xla and not call.gpu,
        "composed",
        "train step of build_cnn((28, 28, 1), 10): custom VJP 0.94x, "
        "XLA temp bytes 175 -> 197 MB",
    ),
    Case(
        "jax",
        "otherwise (eager, or an accelerator)",
        lambda call: True,
        "compiled",
        "H100 (128, 112, 112, 64): custom VJP 1.40x float32, 1.25x bfloat16",
    ),
    Case(
        "torch",
        "2-D below LARGE_2D_ELEMENTS on a CPU",
        lambda call: len(call.shape) == 2 and not _large(call) and not call.gpu,
        "composed",
        "train step of the 20 x Dense(100) MLP, batch 256: autograd Function 0.54x",
    ),
    Case(
        "torch",
        "otherwise",
        lambda call: True,
        "compiled",
        "(32, 28, 28, 64) and (4096, 1024) float32: 1.6x",
    ),
)


def decide(call: Call) -> Case:
    """The first row of `KERNEL_TABLE` that applies to `call`."""
    for case in KERNEL_TABLE:
        if case.backend in (call.backend, "any") and case.applies(call):
            return case
    raise AssertionError(f"KERNEL_TABLE has no row for {call}")


def _backend_module():
    module_name = _COMPILED_BACKENDS.get(keras.backend.backend())
    if module_name is None:
        return None
    return importlib.import_module(f"kerasx.ops.{module_name}")


def _describe(
    x, *, axis, epsilon, output_dtype, memory, differentiable_statistics
) -> Call:
    """The `Call` `KERNEL_TABLE` decides on for `x` (`axis` non-negative)."""
    module = _backend_module()
    backend = keras.backend.backend() if module is not None else "other"
    context = module.context(x) if module is not None else {}
    return Call(
        backend=backend,
        shape=tuple(x.shape),
        axis=axis,
        dtype=keras.backend.standardize_dtype(x.dtype),
        out_dtype=output_dtype,
        epsilon=float(epsilon),
        memory=memory,
        differentiable_statistics=differentiable_statistics,
        xla=context.get("xla", False),
        eager=context.get("eager", True),
        gpu=context.get("gpu", False),
    )


def _kernels(axis, epsilon, activation, negative_slope, memory, out_dtype):
    module = _backend_module()
    if module is None:
        common = dict(
            axis=axis,
            epsilon=float(epsilon),
            activation=activation,
            negative_slope=float(negative_slope),
        )

        def train(x, gamma, beta):
            return _kernel.forward(x, gamma, beta, out_dtype=out_dtype, **common)

        def infer(*args):
            return _kernel.inference(*args, out_dtype=out_dtype, **common)

        return train, infer
    static = (axis, float(epsilon), activation, float(negative_slope))
    return module.compiled(*static, memory, out_dtype)


# (forced path or None, list the chosen paths are appended to) of the innermost
# `_use_kernel`; a context variable, so threads and tasks do not share it.
_OVERRIDE: contextvars.ContextVar = contextvars.ContextVar("kerasx_kernel")


@contextlib.contextmanager
def _use_kernel(path: str | None = None) -> Iterator[list[str]]:
    """Package-private (tests, benchmarks): force and record the training kernel.

    Inside the block every `batch_norm_activation` call runs `path` instead of
    the table's choice (None: the table's choice), and the list it yields gets
    the path of each call, appended when the call is traced or run. A forced
    path that cannot compute the call (`fused_batch_norm` off TensorFlow or for
    a bfloat16 input, `compiled` on a backend without a kernel module,
    `composed` with `memory="invert"`) raises a `ValueError` at the call.
    """
    if path is not None:
        _checks.choice("path", path, PATHS)
    chosen: list[str] = []
    token = _OVERRIDE.set((path, chosen))
    try:
        yield chosen
    finally:
        _OVERRIDE.reset(token)


def _can_run(path: str, call: Call) -> bool:
    if path == "fused_batch_norm":
        return call.fusable
    if path == "composed":
        return call.memory == "recompute"
    return (path == "keras_ops") == (call.backend == "other")


def _kernel_choice(call: Call) -> str:
    """The training kernel `batch_norm_activation` runs for `call`.

    `KERNEL_TABLE`'s choice, or the path forced by `_use_kernel`; recorded in
    the list `_use_kernel` yields.
    """
    forced, chosen = _OVERRIDE.get((None, None))
    path = decide(call).path if forced is None else forced
    if not _can_run(path, call):
        raise ValueError(
            f"Invalid value received for argument `path`. Expected a kernel that "
            f"can compute this call ({call}). Received: path={path!r}"
        )
    if chosen is not None:
        chosen.append(path)
    return path


def _prepare(x, axis, epsilon, activation, negative_slope, memory, output_dtype):
    """Checks the shared arguments; returns `(x, name, axis, channels, out_dtype)`."""
    name, _ = _validation.resolve_activation(activation)
    if name is None:
        raise ValueError(
            "Invalid value received for argument `activation`. Expected the "
            "name of a fused activation; callables run on the unfused path "
            f"of `BatchNormActivation`. Received: activation={activation!r}"
        )
    _validation.check_memory(memory, name)
    _validation.check_negative_slope(negative_slope, name, memory)
    _checks.number("epsilon", epsilon, low=0, low_open=True)
    x, axis, channels = _validation.floating_input(x, axis)
    dtype = keras.backend.standardize_dtype(x.dtype)
    out_dtype = _validation.output_dtype(output_dtype, dtype)
    return x, name, axis, channels, out_dtype


def batch_norm_activation(
    x,
    gamma,
    beta,
    *,
    axis: int = -1,
    epsilon: float = 1e-3,
    activation: str = "relu",
    negative_slope: float = 0.2,
    memory: str = "recompute",
    output_dtype: str | None = None,
    differentiable_statistics: bool = True,
):
    """Training-mode fused batch normalisation followed by an activation.

    Computes `y = act(gamma * (x - mean) / sqrt(var + epsilon) + beta)` with
    the biased batch mean and variance over every axis except `axis`
    (one-pass, shifted, in float32) and differentiates it with the closed-form
    gradient through the batch statistics. An empty batch gives an empty `y`
    and NaN statistics, as `keras.ops.moments`.

    Args:
        x: Floating tensor of rank >= 2 with a static size `C` on `axis`.
        gamma: Per-channel scale, shape `(C,)`; float or int, cast to float32.
        beta: Per-channel offset, shape `(C,)`; float or int, cast to float32.
        axis: Channel axis.
        epsilon: Added to the variance.
        activation: Name of a fused activation (`relu`, `relu6`,
            `leaky_relu`, `elu`, `selu`, `gelu`, `silu`/`swish`,
            `sigmoid`, `tanh`, `softplus`, `linear`).
        negative_slope: Slope of `leaky_relu` for negative inputs.
        memory: `"recompute"` saves `x` for the backward pass;
            `"invert"` saves only `y` and inverts the activation.
        output_dtype: Floating dtype of `y`; defaults to `x.dtype`.
        differentiable_statistics: Whether gradients flow through the
            returned statistics. `False` (what `BatchNormActivation` passes: it
            only feeds them to the moving averages) lets `KERNEL_TABLE` pick
            TensorFlow's fused op or the Keras composition where they measured
            faster.

    Returns:
        `(y, mean, variance)`; the statistics are float32 of shape `(C,)`.

    Example:

    ```python
    >>> import numpy as np
    >>> x = np.array([[0.0], [2.0]], "float32")
    >>> y, mean, variance = batch_norm_activation(
    ...     x, np.ones(1, "float32"), np.zeros(1, "float32"), epsilon=1e-8)
    >>> np.round(np.asarray(y).ravel(), 4).tolist(), float(mean[0])
    ([0.0, 1.0], 1.0)

    ```

    Reference:
        Ioffe & Szegedy, "Batch Normalization", 2015; Rota Bulò et al.,
        "In-Place Activated BatchNorm", 2018 (invert mode).
    """
    x, name, axis, channels, out_dtype = _prepare(
        x, axis, epsilon, activation, negative_slope, memory, output_dtype
    )
    _checks.boolean("differentiable_statistics", differentiable_statistics)
    gamma = _validation.channel_vector("gamma", gamma, channels)
    beta = _validation.channel_vector("beta", beta, channels)
    choice = _kernel_choice(
        _describe(
            x,
            axis=axis,
            epsilon=epsilon,
            output_dtype=out_dtype,
            memory=memory,
            differentiable_statistics=differentiable_statistics,
        )
    )
    if choice == "fused_batch_norm":
        return _backend_module().fused_batch_norm_activation(
            x,
            gamma,
            beta,
            epsilon=float(epsilon),
            activation=name,
            negative_slope=float(negative_slope),
        )
    if choice == "composed":
        spec = _activations.get(name)
        # Keras' backends reshape the statistics for any axis but -1.
        last = axis == len(x.shape) - 1
        return _reference.batch_norm_activation(
            x,
            gamma,
            beta,
            axis=-1 if last else axis,
            epsilon=float(epsilon),
            activation_fn=lambda z: spec.forward(z, float(negative_slope)),
            out_dtype=out_dtype,
        )
    train, _ = _kernels(axis, epsilon, name, negative_slope, memory, out_dtype)
    return train(x, gamma, beta)


def batch_norm_activation_inference(
    x,
    mean,
    variance,
    gamma,
    beta,
    *,
    axis: int = -1,
    epsilon: float = 1e-3,
    activation: str = "relu",
    negative_slope: float = 0.2,
    output_dtype: str | None = None,
):
    """Inference-mode fused `act(gamma * (x - mean) * rsqrt(var + eps) + beta)`.

    Uses the given (moving) statistics; computed as `act(x * a + b)` with
    `a = gamma * rsqrt(variance + epsilon)` and `b = beta - mean * a`,
    the same expression Keras uses, and differentiated by autodiff.

    The four per-channel vectors may be float or int; they are cast to
    float32.

    Args:
        x: Floating tensor of rank >= 2 with a static size `C` on `axis`.
        mean: Per-channel mean, shape `(C,)`.
        variance: Per-channel variance, shape `(C,)`.
        gamma: Per-channel scale, shape `(C,)`.
        beta: Per-channel offset, shape `(C,)`.
        axis: Channel axis.
        epsilon: Added to the variance.
        activation: Name of a fused activation.
        negative_slope: Slope of `leaky_relu` for negative inputs.
        output_dtype: Floating dtype of the result; defaults to `x.dtype`.

    Returns:
        The activated, normalised tensor.

    Example:

    ```python
    >>> import numpy as np
    >>> y = batch_norm_activation_inference(
    ...     np.array([[3.0]], "float32"), np.ones(1, "float32"),
    ...     np.full(1, 4.0, "float32"), np.ones(1, "float32"),
    ...     np.zeros(1, "float32"), epsilon=1e-8, activation="linear")
    >>> round(float(y[0, 0]), 4)
    1.0

    ```

    Reference:
        Ioffe & Szegedy, "Batch Normalization", 2015.
    """
    x, name, axis, channels, out_dtype = _prepare(
        x, axis, epsilon, activation, negative_slope, "recompute", output_dtype
    )
    vectors = {"mean": mean, "variance": variance, "gamma": gamma, "beta": beta}
    tensors = [
        _validation.channel_vector(key, value, channels)
        for key, value in vectors.items()
    ]
    _, infer = _kernels(axis, epsilon, name, negative_slope, "recompute", out_dtype)
    return infer(x, *tensors)
