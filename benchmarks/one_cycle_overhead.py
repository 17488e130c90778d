"""Overhead of OneCycleScheduler on `fit` versus a constant learning rate.

Both arms train the same MLP (same initial weights, same data, Nadam) in one
process, interleaved (A B B A ...), after a warm-up run of each. Every trial
builds and compiles a fresh model, so both arms trace the train function once
per `fit`, as a user's run does. Reported: the median whole-`fit` time per arm
and their ratio, plus the ratio of median epoch times after the first epoch
(steady state, tracing excluded) and the extra time of the first epoch (the
one-off cost of tracing the schedule into the train step). Goal: ratio <= 1.03.

    KERAS_BACKEND=jax python benchmarks/one_cycle_overhead.py [--repeats 5] [--tiny]

Prints one JSON object on the last line.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import time

import keras
import numpy as np

from kerasx.callbacks import OneCycleScheduler


class EpochTimer(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.durations = []

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.durations.append(time.perf_counter() - self.start)


def build(input_dim, depth, width, classes):
    layers = [keras.Input((input_dim,))]
    layers += [keras.layers.Dense(width, activation="elu") for _ in range(depth)]
    layers.append(keras.layers.Dense(classes, activation="softmax"))
    return keras.Sequential(layers)


def trial(template, x, y, batch_size, epochs, one_cycle):
    model = keras.models.clone_model(template)
    model.set_weights(template.get_weights())
    model.compile(keras.optimizers.Nadam(5e-4), "sparse_categorical_crossentropy")
    timer = EpochTimer()
    callbacks = [timer]
    if one_cycle:
        iterations = epochs * math.ceil(len(x) / batch_size)
        callbacks.append(OneCycleScheduler(iterations, max_rate=1e-2))
    start = time.perf_counter()
    model.fit(
        x, y, batch_size=batch_size, epochs=epochs, callbacks=callbacks, verbose=0
    )
    return time.perf_counter() - start, timer.durations


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--samples", type=int, default=16384)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--depth", type=int, default=10)
    parser.add_argument("--tiny", action="store_true", help="smoke-test size")
    args = parser.parse_args(argv)
    if args.tiny:
        args.repeats, args.samples, args.epochs, args.depth = 1, 256, 2, 2

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(args.samples, 784)).astype("float32")
    y = rng.integers(0, 10, size=args.samples)
    template = build(784, args.depth, 100, 10)
    batch_size = 32

    for one_cycle in (False, True):  # warm-up: imports, first traces, allocator
        trial(
            template, x[: batch_size * 4], y[: batch_size * 4], batch_size, 1, one_cycle
        )
    fits = {False: [], True: []}
    first_epochs = {False: [], True: []}
    epochs = {False: [], True: []}
    for repeat in range(args.repeats):
        order = (False, True) if repeat % 2 == 0 else (True, False)
        for one_cycle in order:
            seconds, durations = trial(
                template, x, y, batch_size, args.epochs, one_cycle
            )
            fits[one_cycle].append(seconds)
            first_epochs[one_cycle].append(durations[0])
            epochs[one_cycle].extend(durations[1:])

    constant, cycled = statistics.median(fits[False]), statistics.median(fits[True])
    report = {
        "benchmark": "one_cycle_overhead",
        "backend": keras.backend.backend(),
        "machine": platform.machine(),
        "repeats": args.repeats,
        "samples": args.samples,
        "epochs": args.epochs,
        "batch_size": batch_size,
        "depth": args.depth,
        "median_fit_s_constant": round(constant, 4),
        "median_fit_s_one_cycle": round(cycled, 4),
        "ratio": round(cycled / constant, 4),
        "steady_epoch_ratio": round(
            statistics.median(epochs[True]) / statistics.median(epochs[False]), 4
        ),
        "first_epoch_extra_s": round(
            statistics.median(first_epochs[True])
            - statistics.median(first_epochs[False]),
            4,
        ),
        "goal": "ratio <= 1.03",
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
