"""Smoke test: benchmarks/mc_predict.py runs at a tiny size and prints JSON."""

from __future__ import annotations

import keras


def test_benchmark_runs_tiny_and_prints_json(run_benchmark):
    report = run_benchmark("mc_predict", ["--tiny"])
    assert report["benchmark"] == "mc_predict"
    assert report["backend"] == keras.backend.backend()
    assert [row["batch"] for row in report["results"]] == [1, 3]
    for row in report["results"]:
        assert row["loop_ms"] > 0 and row["mc_predict_ms"] > 0
        # Rounded to 3 decimals in ms and 2 in the ratio: agree within 1 %.
        ratio = row["loop_ms"] / row["mc_predict_ms"]
        assert abs(row["speedup"] - ratio) <= 0.01 * ratio + 0.01
    dataset = report["dataset"]
    assert dataset["rows"] == 3 and dataset["dataset_batch"] == 2
    ratio = dataset["dataset_ms"] / dataset["array_ms"]
    assert abs(dataset["dataset_ratio"] - ratio) <= 0.01 * ratio + 0.001
