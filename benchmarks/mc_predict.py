"""`mc_predict` versus the Python loop users write for MC dropout.

Baseline (Hands-On ML ch. 11): `np.stack([model(x, training=True) for _ in
range(n_samples)]).mean(axis=0)` on the Keras model, which also puts any
BatchNormalization in training mode. Candidate: `mc_predict(to_mc(model), x,
n_samples=n_samples)`, which returns the mean and all uncertainty measures.
Both use the ch. 11 MC-dropout MLP (Flatten, 3 x Dropout(0.2), 2 x Dense(100),
softmax) with the same weights, in one process, interleaved (A B A B ...)
after a warm-up call of each (tracing excluded: `mc_predict` reuses its
compiled sampler across calls). Reported per batch size: median milliseconds
per call and `speedup = loop / mc_predict`. Goals: >= 100x at batch 1, >= 2x
at batch 32, >= 1x at batch 2000.

A second table times the same rows of the largest batch given to `mc_predict`
as a `keras.utils.PyDataset` of 500-row batches against the array, interleaved:
`dataset_ratio = dataset time / array time`, goal <= 1.10 (streaming costs at
most 10 % of the array path's throughput).

    KERAS_BACKEND=tensorflow python benchmarks/mc_predict.py [--repeats 7] [--tiny]

Prints one JSON object on the last line.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

import keras
import numpy as np

from kerasx.uncertainty import mc_predict, to_mc

GOALS = {1: 100.0, 32: 2.0, 2000: 1.0}
DATASET_GOAL = 1.10


class RowBatches(keras.utils.PyDataset):
    """The rows of `x` in batches of `batch_size`, as a data pipeline yields them."""

    def __init__(self, x, batch_size):
        super().__init__()
        self.x, self.batch_size = x, batch_size

    def __len__(self):
        return -(-len(self.x) // self.batch_size)

    def __getitem__(self, index):
        return (self.x[index * self.batch_size : (index + 1) * self.batch_size],)


def build_model():
    return keras.Sequential(
        [
            keras.Input((28, 28)),
            keras.layers.Flatten(),
            keras.layers.Dropout(0.2),
            keras.layers.Dense(100, activation="relu", kernel_initializer="he_normal"),
            keras.layers.Dropout(0.2),
            keras.layers.Dense(100, activation="relu", kernel_initializer="he_normal"),
            keras.layers.Dropout(0.2),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )


def loop_baseline(model, x, n_samples):
    samples = [
        keras.ops.convert_to_numpy(model(x, training=True)) for _ in range(n_samples)
    ]
    return np.stack(samples).mean(axis=0)


def timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--n-samples", type=int, default=100)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 32, 2000])
    parser.add_argument("--dataset-batch", type=int, default=500)
    parser.add_argument("--tiny", action="store_true", help="smoke-test sizes")
    args = parser.parse_args(argv)
    if args.tiny:
        args.repeats, args.n_samples, args.batches = 2, 4, [1, 3]
        args.dataset_batch = 2

    keras.utils.set_random_seed(0)
    model = build_model()
    mc_model = to_mc(model)
    rng = np.random.default_rng(0)
    results = []
    for batch in args.batches:
        x = rng.random((batch, 28, 28), dtype=np.float32)
        loop = lambda x=x: loop_baseline(model, x, args.n_samples)  # noqa: E731
        vectorised = lambda x=x: mc_predict(mc_model, x, n_samples=args.n_samples)  # noqa: E731
        loop(), vectorised()  # Warm-up: tracing and first-call allocations.
        loop_times, mc_times = [], []
        for _ in range(args.repeats):
            loop_times.append(timed(loop))
            mc_times.append(timed(vectorised))
        loop_ms = 1e3 * statistics.median(loop_times)
        mc_ms = 1e3 * statistics.median(mc_times)
        speedup = loop_ms / mc_ms
        row = {
            "batch": batch,
            "loop_ms": round(loop_ms, 3),
            "mc_predict_ms": round(mc_ms, 3),
            "speedup": round(speedup, 2),
        }
        if batch in GOALS:
            row["goal"] = GOALS[batch]
            row["meets_goal"] = speedup >= GOALS[batch]
        results.append(row)
        print(
            f"batch {batch}: loop {loop_ms:.2f} ms, mc_predict {mc_ms:.2f} ms, "
            f"speedup {speedup:.2f}x",
            flush=True,
        )

    x = rng.random((max(args.batches), 28, 28), dtype=np.float32)
    dataset = RowBatches(x, args.dataset_batch)
    from_array = lambda: mc_predict(mc_model, x, n_samples=args.n_samples, seed=0)  # noqa: E731
    from_dataset = lambda: mc_predict(  # noqa: E731
        mc_model, dataset, n_samples=args.n_samples, seed=0
    )
    from_array(), from_dataset()
    array_times, dataset_times = [], []
    for _ in range(args.repeats):
        array_times.append(timed(from_array))
        dataset_times.append(timed(from_dataset))
    array_ms = 1e3 * statistics.median(array_times)
    dataset_ms = 1e3 * statistics.median(dataset_times)
    dataset_row = {
        "rows": len(x),
        "dataset_batch": args.dataset_batch,
        "array_ms": round(array_ms, 3),
        "dataset_ms": round(dataset_ms, 3),
        "dataset_ratio": round(dataset_ms / array_ms, 3),
        "goal": DATASET_GOAL,
        "meets_goal": dataset_ms / array_ms <= DATASET_GOAL,
    }
    print(
        f"{len(x)} rows: array {array_ms:.2f} ms, PyDataset of {args.dataset_batch}"
        f"-row batches {dataset_ms:.2f} ms, ratio {dataset_ms / array_ms:.3f}",
        flush=True,
    )

    report = {
        "benchmark": "mc_predict",
        "backend": keras.backend.backend(),
        "keras": keras.__version__,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "n_samples": args.n_samples,
        "repeats": args.repeats,
        "results": results,
        "dataset": dataset_row,
    }
    print(json.dumps(report))
    return report


if __name__ == "__main__":
    main()
