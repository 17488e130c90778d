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
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946

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
