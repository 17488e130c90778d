"""Independent float64 NumPy reference for BatchNorm + activation tests.

Written from the textbook definitions (not from kerasx code): the forward
pass, and gradients by central finite differences through the batch
statistics.
"""

from __future__ import annotations

import math

import keras
import numpy as np

_erf = np.vectorize(math.erf)
# SELU's constants from their closed forms (Klambauer et al. 2017, eq. 14 with
# mean 0 and variance 1), not copied from kerasx or Keras.
_ERFC = math.erfc(1 / math.sqrt(2))
_E = math.e
SELU_ALPHA = -math.sqrt(2 / math.pi) / (_ERFC * math.sqrt(_E) - 1)
SELU_SCALE = (
    (1 - _ERFC * math.sqrt(_E))
    * math.sqrt(2 * math.pi)
    * (
        2 * math.erfc(math.sqrt(2)) * _E**2
        + math.pi * _ERFC**2 * _E
        - 2 * (2 + math.pi) * _ERFC * math.sqrt(_E)
        + math.pi
        + 2
    )
    ** -0.5
)

ACTIVATIONS = {
    "relu": lambda z: np.maximum(z, 0.0),
    "relu6": lambda z: np.clip(z, 0.0, 6.0),
    "leaky_relu": lambda z: np.where(z >= 0, z, 0.2 * z),
    "elu": lambda z: np.where(z > 0, z, np.expm1(np.minimum(z, 0.0))),
    "selu": lambda z: (
        SELU_SCALE * np.where(z > 0, z, SELU_ALPHA * np.expm1(np.minimum(z, 0.0)))
    ),
    "gelu": lambda z: 0.5 * z * (1.0 + _erf(z / math.sqrt(2.0))),
    "silu": lambda z: z / (1.0 + np.exp(-z)),
    "sigmoid": lambda z: 1.0 / (1.0 + np.exp(-z)),
    "tanh": np.tanh,
    "softplus": lambda z: np.log1p(np.exp(-np.abs(z))) + np.maximum(z, 0.0),
    "linear": lambda z: z,
}


def forward(x, gamma, beta, *, axis=-1, epsilon=1e-3, activation="relu"):
    """Returns ``(y, mean, variance)`` in float64 with biased batch variance."""
    x = np.asarray(x, np.float64)
    axis = axis % x.ndim
    axes = tuple(i for i in range(x.ndim) if i != axis)
    shape = [1] * x.ndim
    shape[axis] = -1
    mean = x.mean(axis=axes, keepdims=True)
    variance = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
    xhat = (x - mean) / np.sqrt(variance + epsilon)
    z = np.reshape(gamma, shape) * xhat + np.reshape(beta, shape)
    return ACTIVATIONS[activation](z), mean.ravel(), variance.ravel()


def finite_difference_grads(x, gamma, beta, dy, *, step=1e-6, **kwargs):
    """Central differences of ``sum(y * dy)`` w.r.t. x, gamma and beta."""
    params = [np.array(p, np.float64) for p in (x, gamma, beta)]
    dy = np.asarray(dy, np.float64)

    def loss():
        return float(np.sum(forward(*params, **kwargs)[0] * dy))

    grads = []
    for param in params:
        grad = np.zeros_like(param)
        for index in np.ndindex(param.shape):
            original = param[index]
            param[index] = original + step
            upper = loss()
            param[index] = original - step
            lower = loss()
            param[index] = original
            grad[index] = (upper - lower) / (2 * step)
        grads.append(grad)
    return grads


def autodiff(fn, *args):
    """``(value, grads)`` of scalar ``fn(*args)`` w.r.t. every argument."""
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        args = [tf.convert_to_tensor(a) for a in args]
        with tf.GradientTape() as tape:
            tape.watch(args)
            value = fn(*args)
        return value, tape.gradient(value, args)
    if keras.backend.backend() == "torch":
        import torch

        args = [
            keras.ops.convert_to_tensor(a).detach().requires_grad_(True) for a in args
        ]
        value = fn(*args)
        return value, torch.autograd.grad(value, args, allow_unused=True)
    import jax

    return jax.value_and_grad(fn, argnums=tuple(range(len(args))))(*args)


def relative_error(estimate, reference) -> float:
    estimate = np.asarray(keras.ops.convert_to_numpy(estimate), np.float64)
    reference = np.asarray(reference, np.float64)
    return float(np.linalg.norm(estimate - reference) / np.linalg.norm(reference))


def assert_close_and_sharp(got, want, planted, *, rtol, atol=0.0):
    """`got` matches `want` within the tolerance, and the tolerance is sharp.

    `planted` is the reference of a planted bug (e.g. epsilon doubled in the
    kernel): it must fall outside the same tolerance, so that such a bug in
    the kernel under test fails the test instead of passing within it.
    """
    got = np.asarray(keras.ops.convert_to_numpy(got), np.float64)
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)
    assert not np.allclose(planted, want, rtol=rtol, atol=atol), (
        "the tolerance cannot tell the planted bug from the reference"
    )


def training_paths(*, fused_op: bool = True) -> tuple[str, ...]:
    """The training kernels of `kerasx.ops` that run on this backend.

    `fused_op=False` leaves out TensorFlow's `FusedBatchNormV3`, which needs
    float32 channels-last inputs of rank 2 or 4 and statistics without
    gradients.
    """
    paths = ["compiled", "composed"]
    if fused_op and keras.backend.backend() == "tensorflow":
        paths.append("fused_batch_norm")
    return tuple(paths)
