"""Gradient functions of a scalar function, by the backend's own autodiff.

`gradient_function(fn)` takes `fn(values, others) -> scalar` (two lists of
tensors) and returns `run(values, others) -> (fn(values, others), [d fn /
d value, ...])`, differentiating with respect to `values` only. One builder per
backend, picked by `keras.backend.backend()` when called, each importing its
backend inside, so importing kerasx on JAX never imports TensorFlow:

* `tensorflow`: a `tf.GradientTape` watching `values`, in a `tf.function`
  traced on the first call;
* `jax`: `jax.jit(jax.value_and_grad(fn))`, traced on the first call (pass
  everything that changes between calls through `values` and `others`: what
  `fn` reads from a closure is a constant of the compiled function);
* `torch`: `torch.autograd.grad` on detached copies of `values` that require
  grad, under `torch.enable_grad()` (a callback may run inside
  `torch.no_grad()`).

`compiled_function(fn)` compiles a function without gradients the same way
(`tf.function`, `jax.jit`; torch runs it eagerly).

A value the function does not depend on gets a zero gradient on every backend
(TensorFlow and torch would return None). `fn` must not assign variables; the
callers run the model inside a `keras.StatelessScope`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras

GradientFunction = Callable[[list, list], tuple[Any, list]]


def _tensorflow(fn: Callable) -> GradientFunction:
    import tensorflow as tf

    def run(values, others):
        values = [tf.convert_to_tensor(value) for value in values]
        with tf.GradientTape() as tape:
            tape.watch(values)
            loss = fn(values, others)
        grads = tape.gradient(
            loss, values, unconnected_gradients=tf.UnconnectedGradients.ZERO
        )
        return loss, list(grads)

    return tf.function(run, reduce_retracing=True)


def _jax(fn: Callable) -> GradientFunction:
    import jax

    compiled = jax.jit(jax.value_and_grad(fn))

    def run(values, others):
        loss, grads = compiled(list(values), list(others))
        return loss, list(grads)

    return run


def _torch(fn: Callable) -> GradientFunction:
    import torch

    def run(values, others):
        values = [torch.as_tensor(v).detach().requires_grad_(True) for v in values]
        with torch.enable_grad():
            loss = fn(values, others)
            grads = torch.autograd.grad(loss, values, allow_unused=True)
        grads = [
            torch.zeros_like(value) if grad is None else grad
            for value, grad in zip(values, grads, strict=True)
        ]
        return loss.detach(), grads

    return run


_BACKENDS = {"tensorflow": _tensorflow, "jax": _jax, "torch": _torch}


def gradient_function(fn: Callable) -> GradientFunction:
    """`run(values, others) -> (fn(values, others), d fn / d values)`, this backend."""
    backend = keras.backend.backend()
    builder = _BACKENDS.get(backend)
    if builder is None:
        raise NotImplementedError(
            f"kerasx computes gradients on the tensorflow, jax and torch backends; "
            f"the current backend is {backend!r}."
        )
    return builder(fn)


def compiled_function(fn: Callable) -> Callable:
    """`fn` compiled for the current backend: `tf.function`, `jax.jit`, or as is."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.function(fn, reduce_retracing=True)
    if backend == "jax":
        import jax

        return jax.jit(fn)
    return fn
