"""The benchmark runs at a tiny size and prints valid JSON; lazy imports."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import keras
import pytest

ROOT = Path(__file__).resolve().parents[2]


def _run(code_or_args, timeout=600):
    env = {**os.environ, "KERAS_BACKEND": keras.backend.backend()}
    return subprocess.run(
        [sys.executable, *code_or_args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=timeout,
        check=True,
    ).stdout


def test_benchmark_tiny_prints_json(run_benchmark):
    report = run_benchmark("batch_norm_activation", ["--tiny"])
    assert report["backend"] == keras.backend.backend()
    # 2 shapes x 2 dtypes x modes x {fwd, fwd+bwd}; TensorFlow adds `graph`
    modes = {"tensorflow": {"eager", "graph", "jit"}, "jax": {"eager", "jit"}}
    expected = modes.get(keras.backend.backend(), {"eager"})
    assert {row["mode"] for row in report["timings"]} == expected
    assert len(report["timings"]) == 2 * 2 * len(expected) * 2
    assert all(row["ratio"] > 0 for row in report["timings"])
    if keras.backend.backend() == "jax":
        assert {row["dtype"] for row in report["training_memory"]} == {
            "float32",
            "bfloat16",
        }
    else:
        assert report["training_memory"] is None


@pytest.mark.backend("jax")
def test_jax_path_never_imports_tensorflow():
    code = (
        "import sys, numpy as np\n"
        "from kerasx.layers import BatchNormActivation\n"
        "BatchNormActivation()(np.ones((2, 3), 'float32'), training=True)\n"
        "print('tensorflow' in sys.modules)\n"
    )
    assert _run(["-c", code]).strip().splitlines()[-1] == "False"
