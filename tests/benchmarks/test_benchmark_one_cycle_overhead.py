"""`benchmarks/one_cycle_overhead.py --tiny` runs and prints the JSON report."""

from __future__ import annotations


def test_one_cycle_overhead_runs_tiny(run_benchmark):
    report = run_benchmark("one_cycle_overhead", ["--tiny"])
    assert report["benchmark"] == "one_cycle_overhead"
    assert report["ratio"] > 0 and report["repeats"] == 1
