"""`benchmarks/train_step.py --tiny` runs and prints the JSON report."""

from __future__ import annotations

import keras
import pytest

KEYS = {
    "case",
    "mode",
    "policy",
    "compute_dtype",
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
    assert report["policy"] == "float32"
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
    assert all(row["compute_dtype"] == "float32" for row in rows)


def test_train_step_policy_option_trains_in_low_precision(run_benchmark):
    # The MLP only: the policy is applied the same way to both models, and the
    # bfloat16 CNN is the slowest of the smoke runs.
    report = run_benchmark(
        "train_step",
        [
            "--tiny",
            "--cases",
            "mlp",
            "--modes",
            "default",
            "--alternations",
            "1",
            "--policy",
            "mixed_bfloat16",
        ],
    )
    assert report["policy"] == "mixed_bfloat16"
    rows = report["results"]
    assert [row["case"] for row in rows] == ["mlp"]
    for row in rows:
        assert (row["policy"], row["compute_dtype"]) == ("mixed_bfloat16", "bfloat16")
        assert row["plain_ms"] > 0 and row["fused_ms"] > 0


def test_train_step_refuses_a_policy_the_backend_cannot_train(monkeypatch, capsys):
    """The refusal names the policy, the backend and the backend's own reason."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "train_step.py"
    spec = importlib.util.spec_from_file_location("benchmark_train_step_refusal", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    # The probe step fails as a backend without float16 CPU kernels would.
    monkeypatch.setattr(
        module, "policy_refusal", lambda policy: "NotImplementedError: no half conv"
    )
    with pytest.raises(SystemExit) as exit_info:
        module.main(["--tiny", "--policy", "mixed_float16"])
    assert exit_info.value.code == 2
    message = capsys.readouterr().err
    backend = keras.backend.backend()
    assert (
        f"--policy mixed_float16 does not train on the {backend} backend on this "
        "machine: NotImplementedError: no half conv"
    ) in message
    with pytest.raises(SystemExit):
        module.main(["--tiny", "--policy", "float64"])
    assert "invalid choice: 'float64'" in capsys.readouterr().err
