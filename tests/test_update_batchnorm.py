"""update_batchnorm: torch's update_bn on the same inputs, by-hand values, errors."""

from __future__ import annotations

import json
import pathlib

import keras
import numpy as np
import pytest

from kerasx.layers import BatchNormActivation
from kerasx.models import update_batchnorm

FIXTURE = json.loads(
    (pathlib.Path(__file__).parent / "fixtures/swa_peers.json").read_text()
)


def fixture_model(fused: bool) -> keras.Model:
    """The fixture's MLP: Dense -> BN -> ReLU twice, then Dense (torch's layout)."""
    sizes, epsilon = FIXTURE["sizes"], FIXTURE["epsilon"]
    layers = [keras.Input((sizes[0],))]
    for units in sizes[1:-1]:
        layers.append(keras.layers.Dense(units))
        if fused:
            layers.append(BatchNormActivation("relu", epsilon=epsilon, momentum=0.9))
        else:
            layers.append(
                keras.layers.BatchNormalization(epsilon=epsilon, momentum=0.9)
            )
            layers.append(keras.layers.ReLU())
    layers.append(keras.layers.Dense(sizes[-1]))
    return keras.Sequential(layers)


def assign_parameters(model: keras.Model, arrays) -> None:
    variables = [w for w in model.weights if w.trainable]
    assert len(variables) == len(arrays)
    for variable, array in zip(variables, arrays, strict=True):
        variable.assign(np.asarray(array, "float32"))


def norms(model):
    return [
        layer
        for layer in model.layers
        if isinstance(layer, (keras.layers.BatchNormalization, BatchNormActivation))
    ]


@pytest.mark.parametrize("fused", [False, True], ids=["bn", "bn_activation"])
def test_equals_torch_update_bn_on_the_averaged_weights(fused):
    model = fixture_model(fused)
    assign_parameters(model, FIXTURE["average"])
    data = np.asarray(FIXTURE["data"], "float32")
    batch_size = FIXTURE["batch_size"]
    assert update_batchnorm(model, data, batch_size=batch_size) == 3
    # torch keeps the unbiased batch variance (divided by n - 1), Keras the
    # biased one (divided by n): with equal batches the two differ by n/(n-1).
    biased = (batch_size - 1) / batch_size
    for layer, peer in zip(
        norms(model), FIXTURE["update_bn"]["statistics"], strict=True
    ):
        assert peer["num_batches_tracked"] == 3
        # fp32 means of 4 values and a 3-term average: a few ulp of values ~1.
        np.testing.assert_allclose(
            layer.moving_mean.numpy(), peer["running_mean"], rtol=1e-6, atol=1e-6
        )
        np.testing.assert_allclose(
            layer.moving_variance.numpy(),
            np.asarray(peer["running_var"]) * biased,
            rtol=1e-6,
            atol=1e-6,
        )
        assert layer.momentum == 0.9
    outputs = model.predict(data, verbose=0)
    np.testing.assert_allclose(
        outputs, FIXTURE["update_bn"]["outputs_with_biased_variance"], atol=1e-6
    )


def test_cumulative_average_with_an_uneven_last_batch_by_hand():
    model = keras.Sequential([keras.Input((1,)), keras.layers.BatchNormalization()])
    x = np.array([[0.0], [2.0], [4.0], [8.0], [10.0]])
    assert update_batchnorm(model, x, batch_size=2) == 3
    # Batches [0, 2], [4, 8], [10]: means 1, 6, 10; biased variances 1, 4, 0.
    layer = model.layers[0]
    np.testing.assert_allclose(layer.moving_mean.numpy(), [17.0 / 3.0], rtol=1e-6)
    np.testing.assert_allclose(layer.moving_variance.numpy(), [5.0 / 3.0], rtol=1e-6)
    assert layer.momentum == 0.99


class Batches(keras.utils.PyDataset):
    def __init__(self, batches):
        super().__init__()
        self.batches = batches

    def __len__(self):
        return len(self.batches)

    def __getitem__(self, index):
        x = self.batches[index]
        return x, np.zeros((len(x), 1))


def test_pydataset_and_generator_with_steps_ignore_targets():
    model = keras.Sequential([keras.Input((1,)), keras.layers.BatchNormalization()])
    batches = [np.array([[1.0], [3.0]]), np.array([[5.0], [9.0]])]
    assert update_batchnorm(model, Batches(batches)) == 2
    np.testing.assert_allclose(model.layers[0].moving_mean.numpy(), [4.5], rtol=1e-6)

    def forever():
        while True:
            for x in batches:
                yield x, np.zeros((2, 1))

    assert update_batchnorm(model, forever(), steps=3) == 3
    # Means 2, 7, 2; biased variances 1, 4, 1.
    np.testing.assert_allclose(model.layers[0].moving_mean.numpy(), [11 / 3], rtol=1e-6)
    np.testing.assert_allclose(
        model.layers[0].moving_variance.numpy(), [2.0], rtol=1e-6
    )


def test_nested_model_is_updated_and_frozen_layer_is_left_alone():
    inner = keras.Sequential(
        [keras.Input((1,)), keras.layers.BatchNormalization(name="inner_bn")]
    )
    frozen = keras.layers.BatchNormalization(name="frozen_bn")
    model = keras.Sequential([keras.Input((1,)), inner, frozen])
    frozen.trainable = False
    frozen.moving_mean.assign([0.25])
    assert update_batchnorm(model, np.array([[1.0], [5.0]]), batch_size=2) == 1
    np.testing.assert_allclose(inner.layers[0].moving_mean.numpy(), [3.0])
    np.testing.assert_allclose(inner.layers[0].moving_variance.numpy(), [4.0])
    np.testing.assert_allclose(frozen.moving_mean.numpy(), [0.25])


class DoubledInTraining(keras.layers.Layer):
    """x in inference, 2x in training: shows the mode the other layers run in."""

    def call(self, inputs, training=None):
        return inputs * 2.0 if training else inputs


def test_the_whole_model_runs_in_training_mode_as_torch_update_bn():
    model = keras.Sequential(
        [keras.Input((1,)), DoubledInTraining(), keras.layers.BatchNormalization()]
    )
    assert update_batchnorm(model, np.array([[1.0], [3.0]]), batch_size=2) == 1
    np.testing.assert_allclose(model.layers[-1].moving_mean.numpy(), [4.0])
    np.testing.assert_allclose(model.layers[-1].moving_variance.numpy(), [4.0])


@pytest.mark.backend("tensorflow")
def test_synchronized_batch_norm_is_updated():
    layer = keras.layers.BatchNormalization(synchronized=True)
    model = keras.Sequential([keras.Input((1,)), layer])
    x = np.array([[1.0], [3.0], [5.0], [9.0]])
    assert update_batchnorm(model, x, batch_size=2) == 2
    np.testing.assert_allclose(layer.moving_mean.numpy(), [4.5], rtol=1e-6)
    np.testing.assert_allclose(layer.moving_variance.numpy(), [2.5], rtol=1e-6)


def test_model_without_batch_norm_reads_nothing():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])

    def never_read():
        raise AssertionError("read")
        yield

    assert update_batchnorm(model, never_read()) == 0


def test_failure_midway_restores_statistics_and_momentum():
    model = keras.Sequential(
        [keras.Input((1,)), keras.layers.BatchNormalization(momentum=0.5)]
    )
    layer = model.layers[0]
    layer.moving_mean.assign([7.0])
    layer.moving_variance.assign([3.0])

    def breaks():
        yield np.array([[1.0], [2.0]])
        raise RuntimeError("disk gone")

    with pytest.raises(RuntimeError, match=r"disk gone"):
        update_batchnorm(model, breaks())
    np.testing.assert_allclose(layer.moving_mean.numpy(), [7.0])
    np.testing.assert_allclose(layer.moving_variance.numpy(), [3.0])
    assert layer.momentum == 0.5


def bn_model():
    return keras.Sequential([keras.Input((1,)), keras.layers.BatchNormalization()])


def test_refuses_a_model_that_is_not_a_model():
    with pytest.raises(ValueError, match=r"argument `model`. Expected a keras.Model"):
        update_batchnorm("model", np.ones((2, 1)))


def test_refuses_steps_below_one():
    with pytest.raises(ValueError, match=r"`steps`. Expected an integer >= 1 or None"):
        update_batchnorm(bn_model(), np.ones((2, 1)), steps=0)


def test_refuses_batch_size_below_one():
    with pytest.raises(ValueError, match=r"`batch_size`. Expected an integer >= 1"):
        update_batchnorm(bn_model(), np.ones((2, 1)), batch_size=0)


def test_refuses_an_unbuilt_model():
    model = keras.Sequential([keras.layers.BatchNormalization()])
    with pytest.raises(ValueError, match=r"Expected a built model"):
        update_batchnorm(model, np.ones((2, 1)))


def test_refuses_data_without_a_batch_and_keeps_statistics():
    model = bn_model()
    model.layers[0].moving_mean.assign([2.0])
    with pytest.raises(ValueError, match=r"`data`. Expected at least one batch"):
        update_batchnorm(model, Batches([]))
    np.testing.assert_allclose(model.layers[0].moving_mean.numpy(), [2.0])
