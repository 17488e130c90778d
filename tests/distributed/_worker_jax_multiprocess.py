"""JAX worker for multi-process training: two processes, or one with 2 devices.

`python _worker_jax_multiprocess.py OUT.npz process PROCESS_ID PORT` is one of
two processes joined by `keras.distribution.initialize` on `127.0.0.1:PORT`
(one CPU device each, gloo collectives); it is fed only its own half of every
global batch (`auto_shard_dataset=False`). `python ... OUT.npz single` is the
reference: one process with 2 local devices fed the whole global batches, so
both runs see the same global batch at every step.

Run by `test_distributed_jax.py` through `_runner.run_processes` and
`_runner.run_worker`.
"""

from __future__ import annotations

import contextlib
import sys

import jax

OUTPUT, MODE = sys.argv[1], sys.argv[2]
if MODE == "process":
    PROCESS_ID, PORT = int(sys.argv[3]), int(sys.argv[4])
    jax.config.update("jax_cpu_collectives_implementation", "gloo")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from _runner import run_checks  # noqa: E402
from _worker_common import RecordRate  # noqa: E402

from kerasx.callbacks import OneCycleScheduler  # noqa: E402
from kerasx.layers import BatchNormActivation, MCDropout  # noqa: E402
from kerasx.lr_finder import find_learning_rate  # noqa: E402
from kerasx.uncertainty import mc_predict  # noqa: E402

if MODE == "process":
    keras.distribution.initialize(
        job_addresses=f"127.0.0.1:{PORT}", num_processes=2, process_id=PROCESS_ID
    )
DISTRIBUTION = keras.distribution.DataParallel(
    devices=jax.devices(), auto_shard_dataset=False
)
GLOBAL_BATCH = 16
DATA = np.random.default_rng(0)
X = DATA.normal(1.0, 2.0, size=(96, 4)).astype("float32")
Y = DATA.normal(size=(96, 1)).astype("float32")


def half(data: np.ndarray, process_id: int) -> np.ndarray:
    """Process `process_id`'s rows: its half of every global batch."""
    halves = data.reshape(-1, 2, GLOBAL_BATCH // 2, *data.shape[1:])
    return halves[:, process_id].reshape(-1, *data.shape[1:])


def local(data: np.ndarray) -> np.ndarray:
    """What this process is fed: its half, or everything in `single` mode."""
    return data if MODE == "single" else half(data, PROCESS_ID)


def local_batch_size() -> int:
    return GLOBAL_BATCH if MODE == "single" else GLOBAL_BATCH // 2


def shards(variable) -> list[np.ndarray]:
    """This process's copies of a Keras variable (one per local device)."""
    value = variable.value
    # `addressable_data`, not `addressable_shards`: a variable not yet written
    # by a jitted step can hold one multi-device buffer, which JAX refuses to
    # split into shards across processes.
    count = len(value.sharding.addressable_devices)
    return [np.array(value.addressable_data(i), copy=True) for i in range(count)]


def first_copy(variables) -> np.ndarray:
    return np.concatenate([shards(v)[0].ravel() for v in variables])


def bn_mlp(seed: int) -> keras.Model:
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(8),
            BatchNormActivation("relu", momentum=0.5),
            keras.layers.Dense(1),
        ]
    )


def one_cycle_fit(results):
    """Two epochs of 1cycle SGD: rates per step, BN statistics and weights."""
    with DISTRIBUTION.scope():
        model = bn_mlp(seed=1)
        model.compile(keras.optimizers.SGD(0.01), "mse")
        record = RecordRate(shards)
        model.fit(
            local(X),
            local(Y),
            batch_size=local_batch_size(),
            epochs=2,
            shuffle=False,
            verbose=0,
            callbacks=[OneCycleScheduler(iterations=12, max_rate=0.1), record],
        )
    layer = model.layers[1]
    results["rates"] = np.array([copies[0] for copies in record.rates])
    results["rate_copies"] = np.array([len(copies) for copies in record.rates])
    results["moving_mean"] = np.array(shards(layer.moving_mean))
    results["moving_variance"] = np.array(shards(layer.moving_variance))
    results["weights"] = first_copy(model.weights)
    results["devices"] = np.array(len(jax.devices()))


def lr_finder(results):
    """`find_learning_rate` restores every local copy bit for bit."""
    with DISTRIBUTION.scope():
        model = bn_mlp(seed=4)
        model.compile(keras.optimizers.Adam(0.003), "mse")
        model.fit(
            local(X[:32]),
            local(Y[:32]),
            batch_size=local_batch_size(),
            epochs=1,
            shuffle=False,
            verbose=0,
        )
        variables = [*model.variables, *model.optimizer.variables]
        before = [shards(v) for v in variables]
        result = find_learning_rate(
            model,
            local(X),
            local(Y),
            batch_size=local_batch_size(),
            min_rate=1e-4,
            max_rate=1.0,
            # Per-process data: shuffling each half on its own would change
            # which rows meet in a global batch.
            shuffle=False,
        )
        after = [shards(v) for v in variables]
    results["finder_restored"] = np.array(
        all(
            len(a) == len(b)
            and all(p.tobytes() == q.tobytes() for p, q in zip(a, b, strict=True))
            for a, b in zip(before, after, strict=True)
        )
    )
    results["finder_rates"] = np.array(result.rates)
    results["finder_losses"] = np.array(result.losses)


def mc(results):
    """`mc_predict` on each process's shard, in the scope; plain in `single`."""

    def run(x, scope):
        with scope():
            keras.utils.set_random_seed(3)
            model = keras.Sequential(
                [keras.Input((4,)), MCDropout(0.5), keras.layers.Dense(2)]
            )
            before = first_copy(model.variables)
            result = mc_predict(
                model, x, n_samples=16, seed=5, task="regression", return_samples=True
            )
            unchanged = np.array_equal(before, first_copy(model.variables))
        return result, unchanged

    if MODE == "single":
        # The reference for each process: its shard on one device, no scope.
        for process_id in range(2):
            plain, _ = run(half(X[:GLOBAL_BATCH], process_id), contextlib.nullcontext)
            results[f"mc_plain_samples_{process_id}"] = plain.samples
        return
    result, unchanged = run(local(X[:GLOBAL_BATCH]), DISTRIBUTION.scope)
    results["mc_x"], results["mc_samples"] = local(X[:GLOBAL_BATCH]), result.samples
    results["mc_mean"], results["mc_std"] = result.mean, result.std
    results["mc_state_unchanged"] = np.array(unchanged)


if __name__ == "__main__":
    expected_devices = 2 if MODE == "single" else 1
    assert len(jax.local_devices()) == expected_devices, jax.local_devices()
    assert len(jax.devices()) == 2, jax.devices()
    run_checks([one_cycle_fit, lr_finder, mc], OUTPUT)
