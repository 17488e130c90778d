"""`benchmarks/train_step.py --tiny` runs and prints the JSON report."""

from __future__ import annotations

import keras

KEYS = {
    "case",
    "mode",
    "jit_compile",
    "batch",
    "plain_ms",
    "fused_ms",
    "no_bn_ms",
    "speedup",
    "bn_limit",
    "share_of_bn_cost_removed",
    "speedup_iqr",
}


def test_train_step_tiny_prints_json(run_benchmark):
    backend = keras.backend.backend()
    # The default fit mode only: each extra mode compiles three more steps.
    report = run_benchmark("train_step", ["--tiny", "--modes", "default"])
    assert report["benchmark"] == "train_step"
    assert report["backend"] == backend
    rows = report["results"]
    assert [(row["case"], row["mode"]) for row in rows] == [
        ("cnn", "default"),
        ("mlp", "default"),
    ]
    for row in rows:
        assert set(row) == KEYS
        assert row["plain_ms"] > 0 and row["fused_ms"] > 0 and row["no_bn_ms"] > 0
        ratio = row["plain_ms"] / row["fused_ms"]
        assert abs(row["speedup"] - ratio) < 1e-2
    # Keras' own resolution of jit_compile="auto": no XLA on TensorFlow without
    # a GPU, jax.jit on JAX.
    expected_jit = {"tensorflow": False, "jax": True, "torch": False}[backend]
    assert all(row["jit_compile"] is expected_jit for row in rows)
