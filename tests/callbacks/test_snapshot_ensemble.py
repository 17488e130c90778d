"""SnapshotEnsemble: Huang et al.'s cosine restarts per step, saved members, errors."""

from __future__ import annotations

import math
import os
import pathlib

import keras
import numpy as np
import pytest

from kerasx import saving
from kerasx.callbacks import OneCycleScheduler, SnapshotEnsemble
from kerasx.uncertainty import ensemble_predict


def classification_data(n=8):
    rng = np.random.default_rng(5)
    x = rng.normal(size=(n, 3)).astype("float32")
    y = (x[:, 0] > 0).astype("int64")
    return x, y


def small_model(learning_rate=0.1):
    model = keras.Sequential(
        [keras.Input((3,)), keras.layers.Dense(2, activation="softmax")]
    )
    model.compile(
        keras.optimizers.SGD(learning_rate), "sparse_categorical_crossentropy"
    )
    return model


class StepRates(keras.callbacks.Callback):
    """The rate each optimizer step used (read from the variable after the step)."""

    def on_train_begin(self, logs=None):
        self.rates = []

    def on_train_batch_end(self, batch, logs=None):
        if keras.backend.backend() == "jax":
            self.model.jax_state_sync()
        self.rates.append(float(self.model.optimizer.learning_rate.numpy()))


class EpochWeights(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.weights = []

    def on_epoch_end(self, epoch, logs=None):
        self.weights.append([w.numpy() for w in self.model.weights])


def huang_rate(t, alpha_0, total_iterations, n_cycles):
    """Huang et al. 2017, eq. 2, iteration t counted from 1."""
    period = math.ceil(total_iterations / n_cycles)
    return alpha_0 / 2 * (math.cos(math.pi * ((t - 1) % period) / period) + 1)


def test_rates_equal_huang_et_al_and_members_are_the_cycle_end_weights(tmp_path, seed):
    x, y = classification_data()
    model = small_model()
    rates, weights = StepRates(), EpochWeights()
    snapshots = SnapshotEnsemble(tmp_path / "members", cycle_length=2, max_rate=0.2)
    # 2 steps per epoch, 6 epochs: 3 cycles of 4 iterations each.
    model.fit(
        x, y, batch_size=4, epochs=6, callbacks=[snapshots, rates, weights], verbose=0
    )
    expected = [huang_rate(t, 0.2, 12, 3) for t in range(1, 13)]
    np.testing.assert_allclose(rates.rates, expected, rtol=1e-6, atol=1e-9)
    assert [os.path.basename(p) for p in snapshots.paths] == [
        "snapshot_001.keras",
        "snapshot_002.keras",
        "snapshot_003.keras",
    ]
    for path, epoch in zip(snapshots.paths, (1, 3, 5), strict=True):
        member = saving.load(path, compile=False)
        for variable, reference in zip(
            member.weights, weights.weights[epoch], strict=True
        ):
            np.testing.assert_array_equal(variable.numpy(), reference)
    # The hook is gone; the optimizer keeps the last applied rate.
    assert "apply" not in model.optimizer.__dict__
    np.testing.assert_allclose(
        float(model.optimizer.learning_rate.numpy()), expected[-1], rtol=1e-6
    )


def test_min_rate_and_resume_from_initial_epoch(tmp_path, seed):
    x, y = classification_data()
    model = small_model()
    rates = StepRates()
    snapshots = SnapshotEnsemble(tmp_path, cycle_length=2, max_rate=0.2, min_rate=0.05)
    model.fit(
        x,
        y,
        batch_size=4,
        epochs=3,
        initial_epoch=1,
        callbacks=[snapshots, rates],
        verbose=0,
    )
    # Epochs 1 and 2: steps 2..5 of cycles of 4 steps.
    expected = [
        0.05 + 0.075 * (1 + math.cos(math.pi * (s % 4) / 4)) for s in range(2, 6)
    ]
    np.testing.assert_allclose(rates.rates, expected, rtol=1e-6)
    assert [os.path.basename(p) for p in snapshots.paths] == ["snapshot_001.keras"]


def test_one_member_per_fit_with_one_cycle_and_ensemble_predict(tmp_path, seed):
    x, y = classification_data()
    model = small_model()
    snapshots = SnapshotEnsemble(str(tmp_path), format=".h5")
    for _ in range(2):
        cycle = OneCycleScheduler(max_rate=0.3)
        model.fit(x, y, batch_size=4, epochs=2, callbacks=[cycle, snapshots], verbose=0)
    assert [os.path.basename(p) for p in snapshots.paths] == [
        "snapshot_001.h5",
        "snapshot_002.h5",
    ]
    members = [saving.load(p, compile=False) for p in snapshots.paths]
    predictions = np.stack([m.predict(x, verbose=0) for m in members]).astype("float64")
    result = ensemble_predict([snapshots.paths[0], pathlib.Path(snapshots.paths[1])], x)
    np.testing.assert_allclose(result.mean, predictions.mean(axis=0), rtol=1e-6)
    mixed = ensemble_predict([members[0], snapshots.paths[1]], x)
    np.testing.assert_allclose(mixed.mean, predictions.mean(axis=0), rtol=1e-6)
    # The second member is the model as the second fit left it.
    np.testing.assert_allclose(predictions[1], model.predict(x, verbose=0), rtol=1e-6)


class StopAt(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        if batch == 1:
            raise KeyboardInterrupt


def test_interrupted_fit_leaves_nothing_installed(tmp_path, seed):
    x, y = classification_data()
    model = small_model(0.1)
    snapshots = SnapshotEnsemble(tmp_path, cycle_length=1, max_rate=0.2)
    with pytest.raises(KeyboardInterrupt):
        model.fit(
            x, y, batch_size=4, epochs=3, callbacks=[snapshots, StopAt()], verbose=0
        )
    assert snapshots.paths == []
    rates = StepRates()
    model.fit(x, y, batch_size=4, epochs=1, callbacks=[rates], verbose=0)
    last = 0.1 * (1 + math.cos(math.pi / 2))  # step 1 of a 2-step cycle
    np.testing.assert_allclose(rates.rates, [last, last], rtol=1e-6)
    assert "apply" not in model.optimizer.__dict__


def test_refuses_a_second_per_step_schedule(tmp_path):
    x, y = classification_data()
    model = small_model()
    snapshots = SnapshotEnsemble(tmp_path, cycle_length=1, max_rate=0.2)
    cycle = OneCycleScheduler(max_rate=0.3)
    with pytest.raises(ValueError, match=r"at most one kerasx learning-rate schedule"):
        model.fit(x, y, batch_size=4, epochs=1, callbacks=[cycle, snapshots], verbose=0)


def test_refuses_max_rate_with_a_schedule_learning_rate(tmp_path):
    x, y = classification_data()
    model = small_model()
    schedule = keras.optimizers.schedules.ExponentialDecay(0.1, 10, 0.9)
    model.compile(keras.optimizers.SGD(schedule), "sparse_categorical_crossentropy")
    snapshots = SnapshotEnsemble(tmp_path, cycle_length=1, max_rate=0.2)
    with pytest.raises(
        ValueError, match=r"`optimizer.learning_rate`. Expected a float"
    ):
        model.fit(x, y, batch_size=4, epochs=1, callbacks=[snapshots], verbose=0)


def test_refuses_max_rate_when_steps_per_epoch_is_unknown(tmp_path):
    x, y = classification_data()
    model = small_model()

    def batches():
        while True:
            yield x[:4], y[:4]

    snapshots = SnapshotEnsemble(tmp_path, cycle_length=1, max_rate=0.2)
    with pytest.raises(ValueError, match=r"steps per epoch is unknown"):
        model.fit(batches(), epochs=1, shuffle=False, callbacks=[snapshots], verbose=0)


def test_get_config_round_trip_and_registration(tmp_path):
    snapshots = SnapshotEnsemble(
        tmp_path, cycle_length=3, max_rate=0.1, min_rate=0.01, format=".json"
    )
    config = snapshots.get_config()
    assert config == dict(
        directory=os.fspath(tmp_path),
        cycle_length=3,
        max_rate=0.1,
        min_rate=0.01,
        format=".json",
    )
    restored = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(snapshots)
    )
    assert isinstance(restored, SnapshotEnsemble)
    assert restored.get_config() == config


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(directory=3), r"`directory`. Expected a non-empty str or os.PathLike"),
        (dict(directory=""), r"`directory`. Expected a non-empty str or os.PathLike"),
        (
            dict(directory="d", cycle_length=0),
            r"`cycle_length`. Expected an integer >= 1",
        ),
        (dict(directory="d", max_rate=-1.0), r"`max_rate`. Expected a float > 0"),
        (dict(directory="d", min_rate=0.1), r"`min_rate`. Expected 0.0 when max_rate"),
        (
            dict(directory="d", max_rate=0.1, min_rate=0.1),
            r"`min_rate`. Expected a float >= 0 and < max_rate \(0.1\)",
        ),
        (dict(directory="d", format=".weights.h5"), r"`format`. Expected one of"),
    ],
)
def test_refuses_invalid_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SnapshotEnsemble(**kwargs)


def test_ensemble_predict_refuses_a_single_path_and_other_members(tmp_path):
    x, _ = classification_data()
    with pytest.raises(ValueError, match=r"saved-model paths"):
        ensemble_predict(str(tmp_path / "a.keras"), x)
    with pytest.raises(ValueError, match=r"saved-model paths"):
        ensemble_predict([small_model(), 3], x)
    with pytest.raises(FileNotFoundError, match=r"missing.keras"):
        ensemble_predict([small_model(), tmp_path / "missing.keras"], x)
