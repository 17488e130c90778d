"""`benchmarks/profile_train_step.py --tiny`: train-step ops per BN layer."""

from __future__ import annotations

import keras
import pytest

# Op and HLO counts exist on TensorFlow and JAX only.
pytestmark = pytest.mark.backend("tensorflow", "jax")

# The count each backend reports, and the fused layer's variants it profiles.
COUNT = {"tensorflow": "ops", "jax": "entry_instructions"}
FUSED = {
    "tensorflow": ("fused", "fused_compiled", "fused_fused_batch_norm"),
    "jax": ("fused", "fused_compiled"),
}


def test_profile_train_step_tiny_counts_bn_ops(run_benchmark):
    backend = keras.backend.backend()
    # One run covers both: each extra run traces five train steps again.
    timing = ["--timing", "1"] if backend == "tensorflow" else []
    report = run_benchmark("profile_train_step", ["--tiny", *timing])
    assert report["benchmark"] == "profile_train_step"
    assert report["backend"] == backend
    [row] = report["results"]
    assert row["case"] == "mlp"
    assert row["batch"] == 16
    # The tiny MLP has hidden_units=(8, 8): one BN layer after each Dense.
    assert row["bn_layers"] == 2
    count = COUNT[backend]
    no_bn = row[f"no_bn_{count}"]
    assert isinstance(no_bn, int) and no_bn > 0
    for name in ("plain", *FUSED[backend]):
        total = row[f"{name}_{count}"]
        assert isinstance(total, int) and total > no_bn
        assert row[f"{name}_{count}_per_bn"] == pytest.approx(
            (total - no_bn) / 2, abs=0.01
        )
        per_type = row[f"{name}_op_types_per_bn"]
        assert per_type and all(n > 0 for n in per_type.values())
    # The table's choice for a small 2-D input: in a TF graph without XLA the
    # plain-op closed form, fewer ops than Keras; under jax.jit on a CPU Keras'
    # own composition, the same step kernel for kernel as plain Keras.
    if backend == "tensorflow":
        assert row["fused_kernel"] == ["graph"]
        assert row[f"fused_{count}"] < row[f"plain_{count}"]
    else:
        assert row["fused_kernel"] == ["composed"]
        assert row[f"fused_{count}"] == row[f"plain_{count}"]
    assert row["fused_compiled_kernel"] == ["compiled"]
    if backend == "tensorflow":
        assert row["fused_fused_batch_norm_kernel"] == ["fused_batch_norm"]
        # One closed-form gradient op (or FusedBatchNormV3 and its grad) instead
        # of autodiff through a dozen elementwise ops: fewer graph ops.
        assert row["fused_compiled_ops"] < row["plain_ops"]
        assert row["fused_fused_batch_norm_ops"] < row["plain_ops"]
        _check_timing(row)
    else:
        assert row["no_bn_fusions"] > 0
        assert row["plain_fusions"] > row["no_bn_fusions"]
        assert row["plain_all_instructions"] > row["plain_entry_instructions"]


def _check_timing(row):
    """Executor time per op type (tf.profiler), one profiled step per variant."""
    assert row["timing_steps"] == 1
    times = row["executor_us_per_step"]
    if times is None:
        pytest.skip("tf.profiler's XPlane is not readable in this TensorFlow build")
    assert set(times) == {
        "plain",
        "fused",
        "fused_compiled",
        "fused_fused_batch_norm",
        "no_bn",
    }
    assert all(us > 0 for us in times.values())
    assert row["executor_ratio_over_no_bn"]["no_bn"] == 1.0
    without = row["executor_us_per_step_without_matmul"]
    assert all(0 < without[name] <= times[name] for name in times)
    # Only op types are summed, not the executor's enclosing "Run" spans.
    by_type = row["plain_executor_us_per_step_by_type"]
    assert "Run" not in by_type
    # Which op types one profiled step records depends on the build and the
    # CPU (oneDNN may run the tiny MatMuls inline, unrecorded); what is
    # recorded adds up (`by_type` holds the top types only), and the
    # MatMul-free sum leaves out at least the MatMuls among them.
    assert sum(by_type.values()) <= times["plain"] + 0.2
    matmul = sum(us for op, us in by_type.items() if "MatMul" in op)
    assert without["plain"] <= times["plain"] - matmul + 0.2
