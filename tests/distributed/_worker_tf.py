"""TensorFlow worker: kerasx under MirroredStrategy on 2 logical CPU devices.

Run by `test_distributed_tf.py` through `_runner.run_worker`; it records what
kerasx does under the strategy (and on one device, for comparison) and the
parent test checks the numbers against NumPy float64 references.
"""

from __future__ import annotations

import os
import sys
import tempfile

import tensorflow as tf

_cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    _cpu, [tf.config.LogicalDeviceConfiguration()] * 2
)

import keras  # noqa: E402
import numpy as np  # noqa: E402
from _runner import run_checks  # noqa: E402
from _worker_common import RecordRate, mlp  # noqa: E402
from keras import ops  # noqa: E402

from kerasx.callbacks import OneCycleScheduler  # noqa: E402
from kerasx.layers import BatchNormActivation, MCDropout  # noqa: E402
from kerasx.lr_finder import find_learning_rate  # noqa: E402
from kerasx.ops._tensorflow import cross_replica_moments  # noqa: E402
from kerasx.schedules import OneCycle  # noqa: E402
from kerasx.uncertainty import mc_predict  # noqa: E402

STRATEGY = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
DATA = np.random.default_rng(0)
X = DATA.normal(size=(96, 4)).astype("float32")
Y = DATA.normal(size=(96, 1)).astype("float32")
BATCH = 16  # global batch: 8 rows per replica


def components(variable) -> list[np.ndarray]:
    """Every replica's copy of a Keras variable (one for a plain variable)."""
    inner = getattr(variable, "value", variable)
    return [np.array(v.numpy(), copy=True) for v in getattr(inner, "values", [inner])]


def fit_one_cycle(strategy, path=None):
    with strategy.scope():
        model = mlp()
        model.compile(keras.optimizers.SGD(0.01), "mse")
    record = RecordRate(components)
    cycle = OneCycleScheduler(iterations=18, max_rate=0.1)
    model.fit(
        X,
        Y,
        batch_size=BATCH,
        epochs=1,
        shuffle=False,
        callbacks=[cycle, record],
        verbose=0,
    )
    first = np.array(record.rates)
    if path is not None:
        model.save(path)
        with strategy.scope():
            model = keras.saving.load_model(path)
    model.fit(
        X,
        Y,
        batch_size=BATCH,
        epochs=3,
        initial_epoch=1,
        shuffle=False,
        callbacks=[OneCycleScheduler(iterations=18, max_rate=0.1), record],
        verbose=0,
    )
    rates = np.concatenate([first, np.array(record.rates)])
    iterations = components(model.optimizer.iterations)
    return rates, np.array(iterations), model.get_weights()


def one_cycle_scheduler(results):
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "model.keras")
        rates, iterations, weights = fit_one_cycle(STRATEGY, path)
    results["one_cycle_rates"] = rates[..., 0] if rates.ndim == 3 else rates
    results["one_cycle_iterations"] = iterations
    single_rates, _, single_weights = fit_one_cycle(tf.distribute.get_strategy())
    results["one_cycle_single_rates"] = single_rates
    results["one_cycle_weights"] = np.concatenate([w.ravel() for w in weights])
    results["one_cycle_single_weights"] = np.concatenate(
        [w.ravel() for w in single_weights]
    )


def one_cycle_schedule(results):
    def run(strategy):
        with strategy.scope():
            model = mlp()
            schedule = OneCycle(0.1, total_steps=12)
            model.compile(keras.optimizers.SGD(schedule), "mse")
        seen = []

        class Record(keras.callbacks.Callback):
            def on_train_batch_begin(self, batch, logs=None):
                optimizer = self.model.optimizer
                step = int(components(optimizer.iterations)[0])
                seen.append(float(ops.convert_to_numpy(schedule(step))))

        model.fit(
            X,
            Y,
            batch_size=BATCH,
            epochs=2,
            shuffle=False,
            callbacks=[Record()],
            verbose=0,
        )
        return np.array(seen), np.concatenate([w.ravel() for w in model.get_weights()])

    results["schedule_rates"], results["schedule_weights"] = run(STRATEGY)
    single = run(tf.distribute.get_strategy())
    results["schedule_single_rates"], results["schedule_single_weights"] = single


def per_replica(fn, *arrays):
    """Runs `fn` on each replica's half (along axis 0) of `arrays`."""
    halves = [np.split(a, 2) for a in arrays]

    def values(context):
        return tuple(h[context.replica_id_in_sync_group] for h in halves)

    inputs = STRATEGY.experimental_distribute_values_from_function(values)
    outputs = STRATEGY.run(fn, args=inputs)
    return tf.nest.map_structure(
        lambda t: np.stack([v.numpy() for v in STRATEGY.experimental_local_results(t)]),
        outputs,
    )


BN_X = DATA.normal(size=(12, 3, 5)).astype("float32") * 2.0 + 0.5
BN_UPSTREAM = DATA.normal(size=(12, 3, 5)).astype("float32")
BN_OFFSET_X = (DATA.normal(size=(12, 5)) + 100.0).astype("float32")
BN_OFFSET_UP = DATA.normal(size=(12, 5)).astype("float32")
GAMMA = np.linspace(0.5, 1.5, 5).astype("float32")
BETA = np.linspace(-0.2, 0.2, 5).astype("float32")


def bn_replicas(layers, x, upstream):
    """Per replica: output, d(loss)/dx and d(loss)/d(trainables) for each layer."""

    @tf.function
    def step(x_local, up_local):
        outputs = []
        for layer in layers:
            with tf.GradientTape() as tape:
                tape.watch(x_local)
                y = layer(x_local, training=True)
                loss = tf.reduce_sum(y * up_local)
            grads = tape.gradient(loss, [x_local, *layer.trainable_variables])
            outputs.append((y, *grads))
        return outputs

    return per_replica(step, x, upstream)


def make_bn(kind, synchronized):
    kwargs = dict(
        momentum=0.0,
        epsilon=1e-3,
        gamma_initializer=keras.initializers.Constant(GAMMA),
        beta_initializer=keras.initializers.Constant(BETA),
    )
    if kind == "kerasx":
        return BatchNormActivation("relu", synchronized=synchronized, **kwargs)
    return keras.Sequential(
        [
            keras.layers.BatchNormalization(synchronized=synchronized, **kwargs),
            keras.layers.Activation("relu"),
        ]
    )


def bn_layers(results, x, upstream, prefix, synchronized, kinds=("kerasx", "keras")):
    with STRATEGY.scope():
        layers = [make_bn(kind, synchronized) for kind in kinds]
        for layer in layers:
            layer.build((None, *x.shape[1:]))
    outputs = bn_replicas(layers, x, upstream)
    for kind, layer, (y, dx, dgamma, dbeta) in zip(kinds, layers, outputs, strict=True):
        results[f"{prefix}_{kind}_y"] = y
        results[f"{prefix}_{kind}_dx"] = dx
        results[f"{prefix}_{kind}_dgamma"] = dgamma
        results[f"{prefix}_{kind}_dbeta"] = dbeta
        stats = layer.non_trainable_variables
        results[f"{prefix}_{kind}_moving_mean"] = np.array(components(stats[0]))
        results[f"{prefix}_{kind}_moving_variance"] = np.array(components(stats[1]))


def bn_synchronized(results):
    bn_layers(results, BN_X, BN_UPSTREAM, "sync", True)


def bn_synchronized_offset(results):
    bn_layers(
        results, BN_OFFSET_X, BN_OFFSET_UP, "sync_offset", True, kinds=("kerasx",)
    )


def bn_local(results):
    bn_layers(results, BN_X, BN_UPSTREAM, "local", False)


def moments_function(results):
    for prefix, x in (("moments", BN_X), ("moments_offset", BN_OFFSET_X)):

        @tf.function
        def step(x_local):
            with tf.GradientTape() as tape:
                tape.watch(x_local)
                mean, variance = cross_replica_moments(
                    x_local, [0, 1][: x_local.shape.rank - 1]
                )
                loss = tf.reduce_sum(mean * GAMMA) + tf.reduce_sum(variance * BETA)
            return mean, variance, tape.gradient(loss, x_local)

        mean, variance, dx = per_replica(step, x)
        results[f"{prefix}_mean"], results[f"{prefix}_variance"] = mean, variance
        results[f"{prefix}_dx"] = dx


def mc(results):
    with STRATEGY.scope():
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
        before = [components(v) for v in model.variables]
        result = mc_predict(
            model, x, n_samples=64, seed=5, task="regression", return_samples=True
        )
        after = [components(v) for v in model.variables]
    results["mc_x"] = x
    results["mc_samples"] = result.samples
    results["mc_mean"], results["mc_std"] = result.mean, result.std
    outside = mc_predict(
        model, x, n_samples=64, seed=5, task="regression", return_samples=True
    )
    keras.utils.set_random_seed(3)
    plain = keras.Sequential(
        [keras.Input((32,)), MCDropout(0.5), keras.layers.Dense(1, use_bias=False)]
    )
    plain.set_weights(model.get_weights())
    reference = mc_predict(
        plain, x, n_samples=64, seed=5, task="regression", return_samples=True
    )
    results["mc_outside_samples"] = outside.samples
    results["mc_outside_mean"], results["mc_outside_std"] = outside.mean, outside.std
    results["mc_single_samples"] = reference.samples
    results["mc_state_unchanged"] = np.array(
        all(
            np.array_equal(a, b)
            for va, vb in zip(before, after, strict=True)
            for a, b in zip(va, vb, strict=True)
        )
    )


def lr_finder(results):
    def run(strategy):
        with strategy.scope():
            model = mlp(seed=4)
            model.compile(keras.optimizers.Adam(0.003), "mse")
            model.fit(X[:32], Y[:32], batch_size=BATCH, epochs=1, verbose=0)
            variables = [*model.variables, *model.optimizer.variables]
            before = [components(v) for v in variables]
            result = find_learning_rate(
                model, X, Y, batch_size=BATCH, min_rate=1e-4, max_rate=1.0
            )
            after = [components(v) for v in variables]
        identical = all(
            len(a) == len(b)
            and all(x.tobytes() == y.tobytes() for x, y in zip(a, b, strict=True))
            for a, b in zip(before, after, strict=True)
        )
        return (
            np.array(result.rates),
            np.array(result.losses),
            identical,
            len(before[0]),
        )

    rates, losses, identical, copies = run(STRATEGY)
    results["finder_rates"], results["finder_losses"] = rates, losses
    results["finder_restored"] = np.array(identical)
    results["finder_copies"] = np.array(copies)
    single_rates, single_losses, _, _ = run(tf.distribute.get_strategy())
    results["finder_single_rates"], results["finder_single_losses"] = (
        single_rates,
        single_losses,
    )


if __name__ == "__main__":
    run_checks(
        [
            one_cycle_scheduler,
            one_cycle_schedule,
            bn_synchronized,
            bn_synchronized_offset,
            bn_local,
            moments_function,
            mc,
            lr_finder,
        ],
        sys.argv[1],
    )
