"""kerasx under `tf.distribute.MirroredStrategy` on 2 logical CPU devices.

One subprocess (`_worker_tf.py`) runs every scenario; the tests compare what it
measured with NumPy float64 references on the concatenated global batch, and
with the same run on one device. Tolerance 1e-5 (relative, fp32) unless said.
"""

from __future__ import annotations

import numpy as np
import pytest
from _runner import run_worker

pytestmark = pytest.mark.backend("tensorflow")


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    return run_worker("_worker_tf.py", "tensorflow", tmp_path_factory.mktemp("tf"))


def no_error(measured, check):
    assert check not in measured["errors"], measured["errors"][check]


def hands_on_one_cycle(steps):
    # iterations=18, max_rate=0.1: start 0.01, last 1e-5, half = (18 - 2) // 2.
    return np.interp(steps, [0, 8, 16, 17], [0.01, 0.1, 0.01, 1e-5])


def test_one_cycle_scheduler_rate_per_global_step_with_resume(measured):
    no_error(measured, "one_cycle_scheduler")
    rates = measured["one_cycle_rates"]  # (step, replica), across save/load/resume
    assert rates.shape == (18, 2)
    expected = hands_on_one_cycle(np.arange(18))
    np.testing.assert_allclose(rates[:, 0], expected, rtol=1e-6)
    np.testing.assert_array_equal(rates[:, 0], rates[:, 1])
    np.testing.assert_array_equal(rates[:, 0], measured["one_cycle_single_rates"][:, 0])
    np.testing.assert_array_equal(measured["one_cycle_iterations"], [18, 18])
    np.testing.assert_allclose(
        measured["one_cycle_weights"],
        measured["one_cycle_single_weights"],
        rtol=1e-5,
        atol=1e-6,
    )


def torch_one_cycle(steps, max_rate=0.1, total=12, pct_start=0.3):
    """PyTorch OneCycleLR (cos, div 25, final div 1e4) at each step, float64."""
    initial = max_rate / 25.0
    minimum = initial / 1e4
    peak = pct_start * total - 1
    steps = np.asarray(steps, np.float64)

    def cos(start, end, pct):
        return end + (start - end) / 2.0 * (np.cos(np.pi * pct) + 1)

    up = cos(initial, max_rate, steps / peak)
    down = cos(max_rate, minimum, (steps - peak) / (total - 1 - peak))
    return np.where(steps <= peak, up, down)


def test_one_cycle_schedule_in_optimizer_matches_single_device(measured):
    no_error(measured, "one_cycle_schedule")
    rates = measured["schedule_rates"]  # the rate each of the 12 steps used
    np.testing.assert_allclose(rates, torch_one_cycle(np.arange(12)), rtol=1e-5)
    np.testing.assert_array_equal(rates, measured["schedule_single_rates"])
    np.testing.assert_allclose(
        measured["schedule_weights"],
        measured["schedule_single_weights"],
        rtol=1e-5,
        atol=1e-6,
    )


def batch_norm_relu(x, upstream, gamma, beta, epsilon=1e-3):
    """Forward and backward of relu(BN(x)) in float64 for loss = sum(upstream * y)."""
    x, upstream = x.astype(np.float64), upstream.astype(np.float64)
    axes = tuple(range(x.ndim - 1))
    mean, variance = x.mean(axes), x.var(axes)
    rstd = 1.0 / np.sqrt(variance + epsilon)
    xhat = (x - mean) * rstd
    z = gamma * xhat + beta
    g = upstream * (z > 0)
    dx = gamma * rstd * (g - g.mean(axes) - xhat * (g * xhat).mean(axes))
    return dict(
        y=np.maximum(z, 0),
        dx=dx,
        dgamma=(g * xhat).sum(axes),
        dbeta=g.sum(axes),
        mean=mean,
        variance=variance,
    )


GAMMA = np.linspace(0.5, 1.5, 5)
BETA = np.linspace(-0.2, 0.2, 5)


def worker_inputs():
    """The worker's BN inputs, regenerated from the same seeded stream."""
    data = np.random.default_rng(0)
    data.normal(size=(96, 4)), data.normal(size=(96, 1))
    x = data.normal(size=(12, 3, 5)).astype("float32") * 2.0 + 0.5
    upstream = data.normal(size=(12, 3, 5)).astype("float32")
    offset_x = (data.normal(size=(12, 5)) + 100.0).astype("float32")
    offset_up = data.normal(size=(12, 5)).astype("float32")
    return x, upstream, offset_x, offset_up


def check_synchronized(measured, prefix, kind, x, upstream):
    ref = batch_norm_relu(x, upstream, GAMMA, BETA)
    halves = lambda a: np.stack(np.split(a, 2))  # noqa: E731
    tol = dict(rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(measured[f"{prefix}_{kind}_y"], halves(ref["y"]), **tol)
    np.testing.assert_allclose(
        measured[f"{prefix}_{kind}_dx"], halves(ref["dx"]), **tol
    )
    # Each replica differentiates its own part of the loss; the optimizer sums them.
    np.testing.assert_allclose(
        measured[f"{prefix}_{kind}_dgamma"].sum(0), ref["dgamma"], **tol
    )
    np.testing.assert_allclose(
        measured[f"{prefix}_{kind}_dbeta"].sum(0), ref["dbeta"], **tol
    )
    # momentum=0: the moving statistics are the batch statistics, on every replica.
    for replica in range(2):
        np.testing.assert_allclose(
            measured[f"{prefix}_{kind}_moving_mean"][replica], ref["mean"], **tol
        )
        np.testing.assert_allclose(
            measured[f"{prefix}_{kind}_moving_variance"][replica],
            ref["variance"],
            **tol,
        )


@pytest.mark.parametrize("kind", ["kerasx", "keras"])
def test_synchronized_batch_norm_uses_global_batch_statistics(measured, kind):
    no_error(measured, "bn_synchronized")
    x, upstream, _, _ = worker_inputs()
    check_synchronized(measured, "sync", kind, x, upstream)


def test_synchronized_batch_norm_offset_data(measured):
    no_error(measured, "bn_synchronized_offset")
    _, _, x, upstream = worker_inputs()
    check_synchronized(measured, "sync_offset", "kerasx", x, upstream)


def test_unsynchronized_batch_norm_is_per_replica_like_keras(measured):
    no_error(measured, "bn_local")
    x, upstream, _, _ = worker_inputs()
    for replica, (x_local, up_local) in enumerate(
        zip(np.split(x, 2), np.split(upstream, 2), strict=True)
    ):
        ref = batch_norm_relu(x_local, up_local, GAMMA, BETA)
        for name in ("y", "dx", "dgamma", "dbeta"):
            got = measured[f"local_kerasx_{name}"][replica]
            np.testing.assert_allclose(got, ref[name], rtol=1e-5, atol=1e-5)
            keras_got = measured[f"local_keras_{name}"][replica]
            np.testing.assert_allclose(got, keras_got, rtol=1e-5, atol=1e-5)
        # Like Keras BN, each replica's copy of the moving statistics follows
        # its own shard (the copies diverge; replica 0's is what gets saved).
        for stat in ("mean", "variance"):
            got = measured[f"local_kerasx_moving_{stat}"][replica]
            np.testing.assert_allclose(got, ref[stat], rtol=1e-5, atol=1e-5)
            np.testing.assert_allclose(
                got,
                measured[f"local_keras_moving_{stat}"][replica],
                rtol=1e-5,
                atol=1e-5,
            )


@pytest.mark.parametrize("prefix", ["moments", "moments_offset"])
def test_cross_replica_moments(measured, prefix):
    no_error(measured, "moments_function")
    x, _, offset_x, _ = worker_inputs()
    x = (x if prefix == "moments" else offset_x).astype(np.float64)
    axes = tuple(range(x.ndim - 1))
    count = np.prod([x.shape[a] for a in axes])
    mean, variance = x.mean(axes), x.var(axes)
    for replica in range(2):
        np.testing.assert_allclose(measured[f"{prefix}_mean"][replica], mean, rtol=1e-6)
        np.testing.assert_allclose(
            measured[f"{prefix}_variance"][replica], variance, rtol=1e-5
        )
    # Each replica's loss sum(mean * GAMMA) + sum(variance * BETA) is the same
    # global function, and the all-reduce sums the 2 replicas' gradients.
    dx = 2 * (GAMMA / count + BETA * 2 * (x - mean) / count)
    np.testing.assert_allclose(
        measured[f"{prefix}_dx"], np.stack(np.split(dx, 2)), rtol=1e-4, atol=1e-6
    )


def mc_reference_checks(samples, mean, std, x):
    assert samples.shape == (64, 3, 1)
    kept = samples[..., 0] / x.sum(1)  # not a reference, just the scale per row
    assert np.all(np.isfinite(kept))
    # Every sample is 2 * (sum of a subset of the row); rows are multiples of row 0.
    units = samples[..., 0] * 32 / 2 / np.array([1, 2, 3])
    np.testing.assert_allclose(units, np.round(units), atol=1e-4)
    assert len(np.unique(samples[:, 0, 0])) > 32  # independent masks, not repeats
    np.testing.assert_allclose(mean, samples.mean(0), rtol=1e-5)
    np.testing.assert_allclose(std, samples.std(0), rtol=1e-4)


def test_mc_predict_outside_scope_equals_single_device(measured):
    no_error(measured, "mc")
    assert bool(measured["mc_state_unchanged"])
    mc_reference_checks(
        measured["mc_outside_samples"],
        measured["mc_outside_mean"],
        measured["mc_outside_std"],
        measured["mc_x"],
    )
    np.testing.assert_array_equal(
        measured["mc_outside_samples"], measured["mc_single_samples"]
    )


def test_mc_predict_inside_scope(measured):
    no_error(measured, "mc")
    mc_reference_checks(
        measured["mc_samples"],
        measured["mc_mean"],
        measured["mc_std"],
        measured["mc_x"],
    )


def test_find_learning_rate_under_strategy(measured):
    no_error(measured, "lr_finder")
    rates = measured["finder_rates"]
    np.testing.assert_allclose(rates, 1e-4 * 1e4 ** (np.arange(6) / 5), rtol=1e-6)
    np.testing.assert_allclose(
        measured["finder_losses"], measured["finder_single_losses"], rtol=1e-5
    )
    assert int(measured["finder_copies"]) == 2  # really MirroredVariables
    assert bool(measured["finder_restored"])  # every component, bit for bit
