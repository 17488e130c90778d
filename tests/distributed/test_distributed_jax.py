"""kerasx under `keras.distribution.DataParallel` (JAX) on 2 CPU devices.

One subprocess (`_worker_jax.py`, with
`XLA_FLAGS=--xla_force_host_platform_device_count=2`) runs every scenario; the
tests compare its numbers with NumPy float64 references on the global batch
and with the same run on one device. Tolerance 1e-5 (relative, fp32).
"""

from __future__ import annotations

import numpy as np
import pytest
from _runner import run_worker
from test_distributed_tf import (
    BETA,
    GAMMA,
    batch_norm_relu,
    hands_on_one_cycle,
    mc_reference_checks,
    no_error,
    worker_inputs,
)

pytestmark = pytest.mark.backend("jax")
TOLERANCE = dict(rtol=1e-5, atol=1e-5)


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    return run_worker("_worker_jax.py", "jax", tmp_path_factory.mktemp("jax"))


def test_one_cycle_scheduler_rate_per_global_step_with_resume(measured):
    no_error(measured, "one_cycle_scheduler")
    rates = measured["one_cycle_rates"]  # across save / load / fit(initial_epoch=1)
    np.testing.assert_allclose(rates, hands_on_one_cycle(np.arange(18)), rtol=1e-6)
    np.testing.assert_array_equal(rates, measured["one_cycle_single_rates"])
    np.testing.assert_array_equal(measured["one_cycle_copies"], [2] * 18)
    np.testing.assert_allclose(
        measured["one_cycle_weights"],
        measured["one_cycle_single_weights"],
        rtol=1e-5,
        atol=1e-6,
    )


def test_fit_batch_statistics_are_global(measured):
    # DataParallel shards one global array, so plain (synchronized=False)
    # statistics already reduce over the whole batch: no all-reduce to add.
    no_error(measured, "bn_fit")
    x, upstream, _, _ = worker_inputs()
    ref = batch_norm_relu(x, upstream, GAMMA, BETA)
    for device in range(2):
        np.testing.assert_allclose(
            measured["fit_moving_mean"][device], ref["mean"], **TOLERANCE
        )
        np.testing.assert_allclose(
            measured["fit_moving_variance"][device], ref["variance"], **TOLERANCE
        )


def test_fused_kernel_on_sharded_batch_matches_global_reference(measured):
    no_error(measured, "bn_direct")
    assert int(measured["direct_x_devices"]) == 2  # really sharded
    assert int(measured["direct_y_devices"]) == 2
    x, upstream, _, _ = worker_inputs()
    ref = batch_norm_relu(x, upstream, GAMMA, BETA)
    for name in ("y", "dx", "dgamma", "dbeta", "mean", "variance"):
        np.testing.assert_allclose(measured[f"direct_{name}"], ref[name], **TOLERANCE)


def test_mc_predict_equals_single_device(measured):
    no_error(measured, "mc")
    assert bool(measured["mc_state_unchanged"])
    mc_reference_checks(
        measured["mc_samples"],
        measured["mc_mean"],
        measured["mc_std"],
        measured["mc_x"],
    )
    np.testing.assert_array_equal(measured["mc_samples"], measured["mc_single_samples"])


def test_find_learning_rate_under_data_parallel(measured):
    no_error(measured, "lr_finder")
    rates = measured["finder_rates"]
    np.testing.assert_allclose(rates, 1e-4 * 1e4 ** (np.arange(6) / 5), rtol=1e-6)
    np.testing.assert_allclose(
        measured["finder_losses"], measured["finder_single_losses"], rtol=1e-5
    )
    assert int(measured["finder_copies"]) == 2  # one copy per device
    assert bool(measured["finder_restored"])  # every device's copy, bit for bit
