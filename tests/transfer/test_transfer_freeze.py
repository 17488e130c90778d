"""`freeze` / `unfreeze`: which layers, BatchNorm kept in inference mode, refusals."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from kerasx.layers import BatchNormActivation
from kerasx.transfer import freeze, unfreeze


def _model():
    return keras.Sequential(
        [
            keras.Input((3,)),
            keras.layers.Dense(4, name="a"),
            keras.layers.BatchNormalization(name="bn"),
            keras.layers.Dense(4, name="b"),
            keras.layers.Dense(1, name="head"),
        ]
    )


def _flags(model):
    return [layer.trainable for layer in model.layers]


@pytest.mark.parametrize(
    ("up_to", "expected"),
    [
        (None, [False, False, False, True]),
        (2, [False, False, True, True]),
        (-3, [False, True, True, True]),
        ("bn", [False, False, True, True]),
        (["a", "b"], [False, True, False, True]),
        (lambda layer: layer.name.startswith("b"), [True, False, False, True]),
    ],
)
def test_freeze_selects_the_named_part(up_to, expected):
    model = _model()
    frozen = freeze(model, up_to)
    assert _flags(model) == expected
    assert [layer.trainable for layer in frozen] == [False] * expected.count(False)


@pytest.mark.parametrize(
    ("from_", "expected"),
    [
        (None, [True, False, True, True]),
        (2, [False, False, True, True]),
        ("b", [False, False, True, True]),
        (["head"], [False, False, False, True]),
    ],
)
def test_unfreeze_keeps_frozen_batchnorm_frozen(from_, expected):
    model = _model()
    freeze(model, len(model.layers))
    unfreeze(model, from_)
    assert _flags(model) == expected


def test_unfreeze_batchnorm_true_unfreezes_batchnorm_too():
    model = _model()
    freeze(model)
    unfreeze(model, batchnorm=True)
    assert _flags(model) == [True, True, True, True]


def test_unfreeze_leaves_a_trainable_batchnorm_trainable():
    model = _model()
    freeze(model, ["a"])
    unfreeze(model)
    assert _flags(model) == [True, True, True, True]


def test_nested_base_model_batchnorm_and_fused_layer_stay_frozen():
    base = keras.Sequential(
        [
            keras.Input((3,)),
            keras.layers.Dense(4, name="inner_dense"),
            keras.layers.BatchNormalization(name="inner_bn"),
            BatchNormActivation("relu", name="inner_bna"),
        ],
        name="base",
    )
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(1, name="head")(base(inputs)))
    freeze(model, "base")
    assert [layer.trainable for layer in base.layers] == [False, False, False]
    unfreeze(model)
    assert base.trainable
    assert [layer.trainable for layer in base.layers] == [True, False, False]
    # gamma, beta of both BatchNorms are non-trainable, the Dense kernel trains.
    assert sorted(v.path.split("/")[-1] for v in model.trainable_weights) == [
        "bias",
        "bias",
        "kernel",
        "kernel",
    ]


def test_frozen_batchnorm_runs_in_inference_mode_after_unfreeze(rng):
    model = _model()
    model.build((None, 3))
    bn = model.get_layer("bn")
    bn.moving_mean.assign(np.array([1.0, -1.0, 0.5, 2.0], "float32"))
    bn.moving_variance.assign(np.array([4.0, 1.0, 0.25, 9.0], "float32"))
    freeze(model)
    unfreeze(model)
    x = rng.normal(size=(8, 4)).astype("float32")
    out = keras.ops.convert_to_numpy(bn(x, training=True))
    # Inference mode: (x - moving_mean) / sqrt(moving_variance + epsilon).
    mean = np.array([1.0, -1.0, 0.5, 2.0])
    variance = np.array([4.0, 1.0, 0.25, 9.0])
    expected = (x.astype("float64") - mean) / np.sqrt(variance + 1e-3)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)
    model.compile(keras.optimizers.SGD(0.1), "mse")
    model.fit(x[:, :3], np.zeros((8, 1)), batch_size=4, epochs=1, verbose=0)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(bn.moving_mean), mean)


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        (5, r"argument `up_to`. Expected an integer index in \[-4, 4\]"),
        (-5, r"argument `up_to`. Expected an integer index in \[-4, 4\]"),
        ("nope", r"argument `up_to`.*layer names of this model: \['a', 'bn'"),
        (["a", "nope"], r"argument `up_to`.*layer names of this model"),
        ([], r"argument `up_to`.*\(a non-empty list\). Received: up_to=\[\]"),
        (["a", 3], r"argument `up_to`.*\(a non-empty list\)"),
        (1.5, r"argument `up_to`. Expected an integer index.*Received: up_to=1.5"),
        (True, r"argument `up_to`. Expected an integer index.*Received: up_to=True"),
        (0, r"argument `up_to`.*that selects at least one layer. Received: up_to=0"),
        (lambda layer: False, r"argument `up_to`.*that selects at least one layer"),
    ],
)
def test_freeze_refuses(spec, match):
    with pytest.raises(ValueError, match=match):
        freeze(_model(), spec)


def test_freeze_refuses_a_layer_as_spec():
    model = _model()
    with pytest.raises(ValueError, match=r"argument `up_to`. Expected an integer"):
        freeze(model, model.layers[0])


def test_freeze_refuses_a_non_model():
    with pytest.raises(ValueError, match=r"argument `model`. Expected a keras.Model"):
        freeze(keras.layers.Dense(2))


def test_unfreeze_refuses_a_non_model():
    with pytest.raises(ValueError, match=r"argument `model`. Expected a keras.Model"):
        unfreeze("model")


def test_unfreeze_refuses_an_index_that_selects_nothing():
    with pytest.raises(ValueError, match=r"argument `from_`.*Received: from_=4"):
        unfreeze(_model(), 4)


def test_unfreeze_refuses_a_non_bool_batchnorm():
    with pytest.raises(ValueError, match=r"argument `batchnorm`"):
        unfreeze(_model(), batchnorm="yes")
