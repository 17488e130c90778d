"""kerasx under `keras.distribution.DataParallel` (JAX) on 2 CPU devices.

Also across two processes on 127.0.0.1 (`keras.distribution.initialize`, gloo
CPU collectives, one device each, each fed its half of every global batch),
compared bit for bit with one process driving 2 devices on the same global
batches (`_worker_jax_multiprocess.py`).

One subprocess (`_worker_jax.py`, with
`XLA_FLAGS=--xla_force_host_platform_device_count=2`) runs every scenario; the
tests compare its numbers with NumPy float64 references on the global batch
and with the same run on one device. Tolerance 1e-5 (relative, fp32).
"""

from __future__ import annotations

import numpy as np
import pytest
from _runner import run_processes, run_worker
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


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory):
    """`(per-process results, single-process 2-device results)`."""
    directory = tmp_path_factory.mktemp("jax_multiprocess")
    script = "_worker_jax_multiprocess.py"
    processes = run_processes(script, directory)
    single = run_worker(script, "jax", directory, ("single",))
    return processes, single


def test_two_processes_one_cycle_rates_statistics_and_weights(two_processes):
    processes, single = two_processes
    no_error(single, "one_cycle_fit")
    assert int(single["devices"]) == 2
    # Hands-On ML curve, iterations=12: start 0.01, peak 0.1, last 1e-5.
    np.testing.assert_allclose(single["rates"][[0, 11]], [0.01, 1e-5], rtol=1e-6)
    assert single["rates"].max() == pytest.approx(0.1, rel=1e-6)
    for measured in processes:
        no_error(measured, "one_cycle_fit")
        assert int(measured["devices"]) == 2
        np.testing.assert_array_equal(measured["rate_copies"], [1] * 12)
        np.testing.assert_array_equal(measured["rates"], single["rates"])
        for name in ("moving_mean", "moving_variance"):
            np.testing.assert_array_equal(measured[name][0], single[name][0])
        np.testing.assert_array_equal(measured["weights"], single["weights"])


def test_two_processes_find_learning_rate_restores_every_process(two_processes):
    processes, single = two_processes
    no_error(single, "lr_finder")
    for measured in processes:
        no_error(measured, "lr_finder")
        assert bool(measured["finder_restored"])
        np.testing.assert_array_equal(measured["finder_rates"], single["finder_rates"])
        np.testing.assert_array_equal(
            measured["finder_losses"], single["finder_losses"]
        )


def test_two_processes_mc_predict_on_each_shard(two_processes):
    processes, single = two_processes
    no_error(single, "mc")
    for process_id, measured in enumerate(processes):
        no_error(measured, "mc")
        assert bool(measured["mc_state_unchanged"])
        assert measured["mc_samples"].shape == (16, 8, 2)  # this process's 8 rows
        np.testing.assert_array_equal(
            measured["mc_samples"], single[f"mc_plain_samples_{process_id}"]
        )
        samples = measured["mc_samples"].astype(np.float64)
        np.testing.assert_allclose(measured["mc_mean"], samples.mean(0), rtol=1e-5)
        np.testing.assert_allclose(
            measured["mc_std"], samples.std(0), rtol=1e-4, atol=1e-6
        )
