"""`benchmarks/callback_overhead.py --tiny` runs and prints the JSON report."""

from __future__ import annotations


def test_callback_overhead_runs_tiny(run_benchmark):
    report = run_benchmark("callback_overhead", ["--tiny"])
    assert report["benchmark"] == "callback_overhead"
    assert report["repeats"] == 1 and report["probe_samples"] == 32
    for arm in ("gradient_stats", "activation_stats"):
        assert report[f"ratio_{arm}"] > 0
        assert report[f"ratio_full_epoch_{arm}"] > 0
        assert report[f"hook_s_per_epoch_{arm}"] > 0
        assert report[f"hook_ratio_{arm}"] > 1
