"""Epoch-time overhead of GradientStats and ActivationStats at `every=1` per epoch.

The exercise MLP (20 x Dense(100), ELU, He normal, softmax over 10 classes,
Nadam(5e-4), batch 32) trains on Fashion-MNIST-shaped random data (784 inputs)
in one process, one arm after the other, interleaved with the order rotated
each repeat (A B C, B C A, C A B, ...), after a warm-up `fit` of each arm. Every
trial builds and compiles a fresh model from the same initial weights, so each
arm traces its train function (and the callback its probe) once per `fit`, as a
user's run does. An epoch is timed from the first callback's `on_epoch_begin`
to the last callback's `on_epoch_end`, so the probe's work is inside it.

Reported per callback: the ratio of median steady-state epoch times (epochs
after the first) to the plain arm, the median extra seconds per epoch, the
extra time of the first epoch (the one-off trace of the probe), and the ratio
extrapolated to a full Fashion-MNIST epoch (55 000 samples), where the same
per-epoch probe cost is spread over more steps. Also the median time spent
inside the callback's own epoch hooks (steady state) and the ratios it gives,
`(plain + hook) / plain`: on a loaded machine epoch times swing by tens of per
cent between epochs, the hook time much less. Goal: ratio <= 1.05.

    KERAS_BACKEND=jax python benchmarks/callback_overhead.py [--repeats 3] [--tiny]

Prints one JSON object on the last line.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import keras
import numpy as np

from kerasx.callbacks import ActivationStats, GradientStats

FULL_EPOCH_SAMPLES = 55_000
ARMS = ("plain", "gradient_stats", "activation_stats")


class EpochStart(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.starts = []

    def on_epoch_begin(self, epoch, logs=None):
        self.starts.append(time.perf_counter())


class EpochEnd(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.ends = []

    def on_epoch_end(self, epoch, logs=None):
        self.ends.append(time.perf_counter())


def build(input_dim, depth, width, classes):
    layers = [keras.Input((input_dim,))]
    layers += [
        keras.layers.Dense(width, activation="elu", kernel_initializer="he_normal")
        for _ in range(depth)
    ]
    layers.append(keras.layers.Dense(classes, activation="softmax"))
    return keras.Sequential(layers)


def time_hooks(callback):
    """Records the seconds spent in `callback`'s epoch hooks, per epoch."""
    callback.hook_seconds = []

    def begin(epoch, logs=None, method=callback.on_epoch_begin):
        start = time.perf_counter()
        method(epoch, logs)
        callback.hook_seconds.append(time.perf_counter() - start)

    def end(epoch, logs=None, method=callback.on_epoch_end):
        start = time.perf_counter()
        method(epoch, logs)
        callback.hook_seconds[-1] += time.perf_counter() - start

    callback.on_epoch_begin, callback.on_epoch_end = begin, end
    return callback


def trial(template, x, y, probe, batch_size, epochs, arm):
    model = keras.models.clone_model(template)
    model.set_weights(template.get_weights())
    model.compile(keras.optimizers.Nadam(5e-4), "sparse_categorical_crossentropy")
    start, end = EpochStart(), EpochEnd()
    callbacks = [start]
    if arm == "gradient_stats":
        callbacks.append(time_hooks(GradientStats(probe)))
    elif arm == "activation_stats":
        callbacks.append(time_hooks(ActivationStats(probe[0])))
    callbacks.append(end)
    model.fit(
        x, y, batch_size=batch_size, epochs=epochs, callbacks=callbacks, verbose=0
    )
    durations = [b - a for a, b in zip(start.starts, end.ends, strict=True)]
    hooks = callbacks[1].hook_seconds if len(callbacks) == 3 else [0.0] * epochs
    return durations, hooks


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--samples", type=int, default=16384)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--depth", type=int, default=20)
    parser.add_argument("--probe", type=int, default=256, help="probe batch size")
    parser.add_argument(
        "--tiny", action="store_true", help="smoke-test size, no warm-up"
    )
    args = parser.parse_args(argv)
    if args.tiny:
        args.repeats, args.samples, args.epochs, args.depth = 1, 256, 2, 2
        args.probe = 32

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(args.samples, 784)).astype("float32")
    y = rng.integers(0, 10, size=args.samples)
    probe = (x[: args.probe], y[: args.probe])
    template = build(784, args.depth, 100, 10)
    batch_size = 32

    warm = batch_size * 4
    for arm in ARMS if not args.tiny else ():  # warm-up: first traces, allocator
        trial(template, x[:warm], y[:warm], probe, batch_size, 1, arm)
    first_epochs = {arm: [] for arm in ARMS}
    epochs = {arm: [] for arm in ARMS}
    hooks = {arm: [] for arm in ARMS}
    for repeat in range(args.repeats):
        shift = repeat % len(ARMS)
        for arm in ARMS[shift:] + ARMS[:shift]:
            durations, seconds = trial(
                template, x, y, probe, batch_size, args.epochs, arm
            )
            first_epochs[arm].append(durations[0])
            epochs[arm].extend(durations[1:])
            hooks[arm].extend(seconds[1:])

    plain = statistics.median(epochs["plain"])
    full_plain = plain * FULL_EPOCH_SAMPLES / args.samples
    report = {
        "benchmark": "callback_overhead",
        "backend": keras.backend.backend(),
        "machine": platform.machine(),
        "repeats": args.repeats,
        "samples": args.samples,
        "epochs": args.epochs,
        "batch_size": batch_size,
        "depth": args.depth,
        "probe_samples": args.probe,
        "median_epoch_s_plain": round(plain, 4),
    }
    for arm in ARMS[1:]:
        median = statistics.median(epochs[arm])
        extra = median - plain
        report[f"median_epoch_s_{arm}"] = round(median, 4)
        report[f"ratio_{arm}"] = round(median / plain, 4)
        report[f"extra_s_per_epoch_{arm}"] = round(extra, 4)
        report[f"first_epoch_extra_s_{arm}"] = round(
            statistics.median(first_epochs[arm])
            - statistics.median(first_epochs["plain"]),
            4,
        )
        report[f"ratio_full_epoch_{arm}"] = round((full_plain + extra) / full_plain, 4)
        # The time inside the callback's own hooks: what it adds to an epoch,
        # free of the epoch-to-epoch noise of a loaded machine.
        hook = statistics.median(hooks[arm])
        report[f"hook_s_per_epoch_{arm}"] = round(hook, 4)
        report[f"hook_ratio_{arm}"] = round((plain + hook) / plain, 4)
        report[f"hook_ratio_full_epoch_{arm}"] = round(
            (full_plain + hook) / full_plain, 4
        )
    report["goal"] = "ratio <= 1.05"
    print(json.dumps(report))


if __name__ == "__main__":
    main()
