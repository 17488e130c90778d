"""JAX worker: kerasx under keras.distribution.DataParallel on 2 CPU devices.

Run by `test_distributed_jax.py` through `_runner.run_worker` (which sets
`XLA_FLAGS=--xla_force_host_platform_device_count=2`).
"""

from __future__ import annotations

import os
import sys
import tempfile

import jax
import keras
import numpy as np
from _runner import run_checks
from _worker_common import RecordRate, mlp

from kerasx.callbacks import OneCycleScheduler
from kerasx.layers import BatchNormActivation, MCDropout
from kerasx.lr_finder import find_learning_rate
from kerasx.uncertainty import mc_predict

DISTRIBUTION = keras.distribution.DataParallel(devices=jax.devices())
DATA = np.random.default_rng(0)
X = DATA.normal(size=(96, 4)).astype("float32")
Y = DATA.normal(size=(96, 1)).astype("float32")
BATCH = 16
BN_X = DATA.normal(size=(12, 3, 5)).astype("float32") * 2.0 + 0.5
BN_UPSTREAM = DATA.normal(size=(12, 3, 5)).astype("float32")
GAMMA = np.linspace(0.5, 1.5, 5).astype("float32")
BETA = np.linspace(-0.2, 0.2, 5).astype("float32")


def shards(variable) -> list[np.ndarray]:
    """Every device's copy of a Keras variable."""
    value = variable.value
    return [np.array(shard.data, copy=True) for shard in value.addressable_shards]


def fit_one_cycle(distributed: bool, path=None):
    scope = DISTRIBUTION.scope if distributed else tempfile.TemporaryDirectory
    with scope():
        model = mlp()
        model.compile(keras.optimizers.SGD(0.01), "mse")
        record = RecordRate(shards)
        fit = dict(batch_size=BATCH, shuffle=False, verbose=0)
        cycle = OneCycleScheduler(iterations=18, max_rate=0.1)
        model.fit(X, Y, epochs=1, callbacks=[cycle, record], **fit)
        first = record.rates
        if path is not None:
            model.save(path)
            model = keras.saving.load_model(path)
        cycle = OneCycleScheduler(iterations=18, max_rate=0.1)
        model.fit(X, Y, epochs=3, initial_epoch=1, callbacks=[cycle, record], **fit)
        weights = np.concatenate([w.ravel() for w in model.get_weights()])
        rates = first + record.rates
        copies = np.array([len(r) for r in rates])
        return np.array([r[0] for r in rates]), copies, weights


def one_cycle_scheduler(results):
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "model.keras")
        rates, copies, weights = fit_one_cycle(True, path)
    results["one_cycle_rates"], results["one_cycle_copies"] = rates, copies
    results["one_cycle_weights"] = weights
    single_rates, _, single_weights = fit_one_cycle(False)
    results["one_cycle_single_rates"] = single_rates
    results["one_cycle_single_weights"] = single_weights


def bn_fit(results):
    """One `fit` step on the whole global batch: moving stats are global stats."""
    with DISTRIBUTION.scope():
        layer = BatchNormActivation("relu", momentum=0.0)
        model = keras.Sequential([keras.Input((3, 5)), layer])
        model.compile(keras.optimizers.SGD(0.0), "mse")
        model.fit(BN_X, np.zeros_like(BN_X), batch_size=12, epochs=1, verbose=0)
        results["fit_moving_mean"] = np.array(shards(layer.moving_mean))
        results["fit_moving_variance"] = np.array(shards(layer.moving_variance))


def bn_direct(results):
    """The fused kernel on a batch sharded over both devices, with gradients."""
    with DISTRIBUTION.scope():
        layer = BatchNormActivation(
            "relu",
            momentum=0.0,
            gamma_initializer=keras.initializers.Constant(GAMMA),
            beta_initializer=keras.initializers.Constant(BETA),
        )
        layer.build((None, 3, 5))
        layout = DISTRIBUTION.get_data_layout(BN_X.shape)
        sharding = layout.backend_layout
        x = jax.device_put(BN_X, sharding)
        upstream = jax.device_put(BN_UPSTREAM, sharding)
        trainable = [v.value for v in layer.trainable_variables]
        non_trainable = [v.value for v in layer.non_trainable_variables]

        def loss(trainable, x):
            y, updated = layer.stateless_call(
                trainable, non_trainable, x, training=True
            )
            return (y * upstream).sum(), (y, updated)

        grad = jax.jit(jax.grad(loss, argnums=(0, 1), has_aux=True))
        (dtrainable, dx), (y, updated) = grad(trainable, x)
    results["direct_y_devices"] = np.array(len(y.sharding.device_set))
    results["direct_x_devices"] = np.array(len(x.sharding.device_set))
    results["direct_y"], results["direct_dx"] = np.asarray(y), np.asarray(dx)
    results["direct_dgamma"] = np.asarray(dtrainable[0])
    results["direct_dbeta"] = np.asarray(dtrainable[1])
    results["direct_mean"] = np.asarray(updated[0])
    results["direct_variance"] = np.asarray(updated[1])


def mc(results):
    def run(distributed):
        scope = DISTRIBUTION.scope if distributed else tempfile.TemporaryDirectory
        with scope():
            keras.utils.set_random_seed(3)
            model = keras.Sequential(
                [
                    keras.Input((32,)),
                    MCDropout(0.5),
                    keras.layers.Dense(1, use_bias=False, kernel_initializer="ones"),
                ]
            )
            x = np.arange(1, 33, dtype="float32")[None] / 32.0
            x = np.repeat(x, 3, axis=0) * np.array([[1.0], [2.0], [3.0]], "float32")
            before = [shards(v) for v in model.variables]
            result = mc_predict(
                model, x, n_samples=64, seed=5, task="regression", return_samples=True
            )
            after = [shards(v) for v in model.variables]
        same = all(
            np.array_equal(a, b)
            for va, vb in zip(before, after, strict=True)
            for a, b in zip(va, vb, strict=True)
        )
        return x, result, same

    x, result, same = run(True)
    results["mc_x"], results["mc_samples"] = x, result.samples
    results["mc_mean"], results["mc_std"] = result.mean, result.std
    results["mc_state_unchanged"] = np.array(same)
    results["mc_single_samples"] = run(False)[1].samples


def lr_finder(results):
    def run(distributed):
        scope = DISTRIBUTION.scope if distributed else tempfile.TemporaryDirectory
        with scope():
            model = mlp(seed=4)
            model.compile(keras.optimizers.Adam(0.003), "mse")
            model.fit(X[:32], Y[:32], batch_size=BATCH, epochs=1, verbose=0)
            variables = [*model.variables, *model.optimizer.variables]
            before = [shards(v) for v in variables]
            result = find_learning_rate(
                model, X, Y, batch_size=BATCH, min_rate=1e-4, max_rate=1.0
            )
            after = [shards(v) for v in variables]
        identical = all(
            len(a) == len(b)
            and all(p.tobytes() == q.tobytes() for p, q in zip(a, b, strict=True))
            for a, b in zip(before, after, strict=True)
        )
        return result, identical, len(before[0])

    result, identical, copies = run(True)
    results["finder_rates"] = np.array(result.rates)
    results["finder_losses"] = np.array(result.losses)
    results["finder_restored"] = np.array(identical)
    results["finder_copies"] = np.array(copies)
    results["finder_single_losses"] = np.array(run(False)[0].losses)


if __name__ == "__main__":
    assert len(jax.devices()) == 2, jax.devices()
    run_checks([one_cycle_scheduler, bn_fit, bn_direct, mc, lr_finder], sys.argv[1])
