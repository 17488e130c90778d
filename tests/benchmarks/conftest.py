"""Runs a benchmark script's `main(argv)` in the test process.

The benchmarks are scripts, but each has `main(argv)`: calling it here costs
only the tiny run itself, not a fresh interpreter importing the backend again
(5-8 s per script on a 2-core machine).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture
def run_benchmark(capsys: pytest.CaptureFixture):
    """`run_benchmark("train_step", ["--tiny"])` -> the JSON report it printed."""

    def run(name: str, argv: list[str]) -> dict:
        spec = importlib.util.spec_from_file_location(
            f"benchmark_{name}", BENCHMARKS / f"{name}.py"
        )
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        capsys.readouterr()
        module.main(argv)
        stdout = capsys.readouterr().out.strip()
        try:
            return json.loads(stdout)
        except json.JSONDecodeError:  # a one-line report after other output
            return json.loads(stdout.splitlines()[-1])

    return run
