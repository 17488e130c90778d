"""Benchmark: kerasx BatchNormActivation vs keras BatchNormalization + Activation.

Prints one JSON object. Times are medians over interleaved A/B repeats in one
process after warm-up; `ratio` is `keras_time / kerasx_time` (> 1 means
kerasx is faster), measured with the same compilation on both sides: `eager`
(no outer function; Keras runs op by op, kerasx calls its own kernel),
`graph` (TensorFlow only: the step in a `tf.function` without XLA, which is
what `fit` runs on TensorFlow without a GPU) and `jit` (the whole step under
`tf.function(jit_compile=True)` or `jax.jit`). Peak training memory of a conv
net is reported on JAX from the compiled step's
`memory_analysis().temp_size_in_bytes`; TensorFlow exposes no allocator peak
on CPU, so it is `null` there. `residual_mb` adds what the differentiated step
keeps for the backward pass (the leaves of `jax.vjp`'s closure), before XLA's
buffer assignment. The end-to-end figures are `benchmarks/train_step.py`'s.

Usage:

    KERAS_BACKEND=tensorflow python benchmarks/batch_norm_activation.py --small
    KERAS_BACKEND=jax python benchmarks/batch_norm_activation.py --tiny
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import keras
import numpy as np

from kerasx.layers import BatchNormActivation

# `graph` is TensorFlow's `tf.function` without XLA: what `fit` runs on a
# machine without a GPU (Keras resolves `jit_compile="auto"` to False there).
# torch: eager only, what Keras' `fit` runs on torch by default.
MODES = {
    "tensorflow": ("eager", "graph", "jit"),
    "jax": ("eager", "jit"),
    "torch": ("eager",),
}
SIZES = {
    "full": ([(128, 112, 112, 64), (32768, 4096)], 20, (32, 56, 56, 64)),
    "small": ([(32, 28, 28, 64), (4096, 1024)], 20, (8, 32, 32, 16)),
    "tiny": ([(4, 4, 4, 8), (16, 32)], 2, (2, 8, 8, 4)),
}


def _sync(value):
    for leaf in keras.tree.flatten(value):
        keras.ops.convert_to_numpy(keras.ops.sum(keras.ops.cast(leaf, "float32")))


def _make_step(layer, x, dy, backward, mode):
    """A zero-argument callable running fwd (+ bwd) of `layer` in training."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        x, dy = tf.constant(x), tf.constant(dy)

        def step():
            if not backward:
                return layer(x, training=True)
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = tf.cast(layer(x, training=True), "float32")
                loss = tf.reduce_sum(y * tf.cast(dy, "float32"))
            return tape.gradient(loss, [x, *layer.trainable_weights])

        if mode == "eager":
            return step
        return tf.function(step, jit_compile=mode == "jit")
    if backend == "torch":
        import torch

        x = keras.ops.convert_to_tensor(x).detach().requires_grad_(True)
        dy = keras.ops.convert_to_tensor(dy, "float32")

        def torch_step():
            y = layer(x, training=True)
            if not backward:
                return y
            loss = (y.float() * dy).sum()
            weights = [v.value for v in layer.trainable_weights]
            return torch.autograd.grad(loss, [x, *weights])

        return torch_step
    import jax
    import jax.numpy as jnp

    x, dy = jnp.asarray(x), jnp.asarray(dy)
    trainable = [v.value for v in layer.trainable_weights]
    non_trainable = [v.value for v in layer.non_trainable_weights]

    def forward(x, trainable):
        y, _ = layer.stateless_call(trainable, non_trainable, x, training=True)
        return y

    def loss(x, trainable):
        return jnp.sum(forward(x, trainable).astype("float32") * dy)

    fn = jax.grad(loss, argnums=(0, 1)) if backward else forward
    fn = jax.jit(fn) if mode == "jit" else fn
    return lambda: fn(x, trainable)


def _interleaved(steps, repeats):
    for step in steps.values():  # warm-up: compile and first-touch memory
        for _ in range(2):
            _sync(step())
    times = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            start = time.perf_counter()
            _sync(step())
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def _pair(activation, policy, shape):
    layers = {
        "keras": keras.Sequential(
            [
                keras.layers.BatchNormalization(dtype=policy),
                keras.layers.Activation(activation, dtype=policy),
            ]
        ),
        "kerasx": BatchNormActivation(activation, dtype=policy),
    }
    for layer in layers.values():
        layer.build(shape)
    return layers


def time_layers(shapes, repeats, activation):
    rng = np.random.default_rng(0)
    results = []
    for shape in shapes:
        for dtype, policy in (("float32", "float32"), ("bfloat16", "mixed_bfloat16")):
            x = rng.normal(0.5, 2.0, size=shape).astype(dtype)
            dy = rng.normal(size=shape).astype(dtype)
            layers = _pair(activation, policy, shape)
            for mode in MODES.get(keras.backend.backend(), ("eager",)):
                for backward in (False, True):
                    steps = {
                        name: _make_step(layer, x, dy, backward, mode)
                        for name, layer in layers.items()
                    }
                    median = _interleaved(steps, repeats)
                    results.append(
                        {
                            "shape": list(shape),
                            "dtype": dtype,
                            "mode": mode,
                            "pass": "fwd+bwd" if backward else "fwd",
                            "keras_ms": round(median["keras"] * 1e3, 3),
                            "kerasx_ms": round(median["kerasx"] * 1e3, 3),
                            "ratio": round(median["keras"] / median["kerasx"], 3),
                        }
                    )
    return results


def _conv_net(n_blocks, input_shape, variant, policy):
    inputs = keras.Input(input_shape[1:], dtype=policy.split("_")[-1])
    x = inputs
    for _ in range(n_blocks):
        x = keras.layers.Conv2D(
            input_shape[-1], 3, padding="same", use_bias=False, dtype=policy
        )(x)
        if variant == "keras":
            x = keras.layers.BatchNormalization(dtype=policy)(x)
            x = keras.layers.LeakyReLU(0.01, dtype=policy)(x)
        else:
            x = BatchNormActivation(
                "leaky_relu", negative_slope=0.01, memory=variant, dtype=policy
            )(x)
    return keras.Model(inputs, x)


def training_memory(n_blocks, input_shape):
    """Temp bytes of the compiled JAX training step per variant and dtype."""
    if keras.backend.backend() != "jax":
        return None
    import jax
    import jax.numpy as jnp

    results = []
    for dtype, policy in (("float32", "float32"), ("bfloat16", "mixed_bfloat16")):
        row = {"dtype": dtype, "blocks": n_blocks, "input": list(input_shape)}
        for variant in ("keras", "recompute", "invert"):
            keras.utils.set_random_seed(0)
            model = _conv_net(n_blocks, input_shape, variant, policy)
            trainable = [v.value for v in model.trainable_variables]
            non_trainable = [v.value for v in model.non_trainable_variables]
            x = jnp.ones(input_shape, dtype)

            def loss(trainable, model=model, non_trainable=non_trainable, x=x):
                y, _ = model.stateless_call(trainable, non_trainable, x, training=True)
                return jnp.mean(jnp.square(y.astype("float32")))

            compiled = jax.jit(jax.grad(loss)).lower(trainable).compile()
            row[f"{variant}_temp_mb"] = round(
                compiled.memory_analysis().temp_size_in_bytes / 2**20, 3
            )
            # The leaves of the VJP closure are exactly the saved residuals.
            vjp_fn = jax.eval_shape(lambda t, f=loss: jax.vjp(f, t)[1], trainable)
            leaves = jax.tree_util.tree_leaves(vjp_fn)
            row[f"{variant}_residual_mb"] = round(
                sum(leaf.size * leaf.dtype.itemsize for leaf in leaves) / 2**20, 3
            )
        for variant in ("recompute", "invert"):
            for kind in ("temp", "residual"):
                row[f"{variant}_{kind}_vs_keras"] = round(
                    row[f"{variant}_{kind}_mb"] / row[f"keras_{kind}_mb"], 3
                )
        results.append(row)
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--small", action="store_true", help="CPU-sized shapes")
    size.add_argument("--tiny", action="store_true", help="smoke-test shapes")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--activation", default="relu")
    args = parser.parse_args(argv)
    size_name = "tiny" if args.tiny else "small" if args.small else "full"
    shapes, n_blocks, conv_input = SIZES[size_name]
    repeats = args.repeats or (3 if args.tiny else 15)
    report = {
        "benchmark": "batch_norm_activation",
        "backend": keras.backend.backend(),
        "keras": keras.__version__,
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "size": size_name,
        "activation": args.activation,
        "repeats": repeats,
        "ratio": "keras_ms / kerasx_ms (>1: kerasx faster)",
        "timings": time_layers(shapes, repeats, args.activation),
        "training_memory": training_memory(n_blocks, conv_input),
    }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
