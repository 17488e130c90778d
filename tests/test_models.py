"""Tests for kerasx.models: parameter counts by hand, structure, training, saving."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from kerasx.models import build_cnn, build_mlp, build_selu_mlp


def _types(model: keras.Model) -> list[str]:
    return [type(layer).__name__ for layer in model.layers]


# ---------------------------------------------------------------- param counts
def test_blog_elu_mlp_parameter_count():
    model = build_mlp((32, 32, 3), 10)  # 20 x 100 ELU, He normal, CIFAR-10
    expected = 3072 * 100 + 100 + 19 * (100 * 100 + 100) + 100 * 10 + 10
    assert expected == 500_210
    assert model.count_params() == expected
    assert len(model.layers) == 1 + 1 + 20 + 1  # input, flatten, 20 dense, output


def test_batch_norm_before_drops_bias():
    model = build_mlp((32, 32, 3), 10, batch_norm="before")
    dense = 3072 * 100 + 19 * 100 * 100  # no bias
    bn = 20 * 4 * 100  # gamma, beta, moving mean, moving variance
    assert model.count_params() == dense + bn + 100 * 10 + 10
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert trainable == dense + 20 * 2 * 100 + 100 * 10 + 10


def test_batch_norm_after_keeps_bias():
    model = build_mlp((32, 32, 3), 10, batch_norm="after")
    expected = 3072 * 100 + 100 + 19 * (100 * 100 + 100) + 20 * 4 * 100 + 1010
    assert model.count_params() == expected


def test_mnist_sigmoid_mlp_parameter_count():
    model = build_mlp(
        (28, 28), 10, hidden_units=(64, 128, 256, 128, 64), activation="sigmoid"
    )
    expected = (
        784 * 64 + 64
        + 64 * 128 + 128
        + 128 * 256 + 256
        + 256 * 128 + 128
        + 128 * 64 + 64
        + 64 * 10 + 10
    )  # fmt: skip
    assert model.count_params() == expected == 133_386


def test_selu_mlp_parameter_count_and_recipe():
    model = build_selu_mlp((32, 32, 3), 10, alpha_dropout_rate=0.1)
    assert model.count_params() == 3072 * 100 + 100 + 19 * 10_100 + 1010
    dense = [layer for layer in model.layers if layer.name.endswith("_dense")]
    assert len(dense) == 20
    for layer in dense:
        assert layer.activation.__name__ == "selu"
        assert type(layer.kernel_initializer).__name__ == "LecunNormal"
    drops = [layer for layer in model.layers if "dropout" in layer.name]
    assert [type(layer) for layer in drops] == [keras.layers.AlphaDropout] * 20
    assert {layer.rate for layer in drops} == {0.1}


def test_cnn_default_parameter_count():
    model = build_cnn((32, 32, 3), 10)  # BN before ReLU, max-pool, GAP
    convs = (
        3 * 3 * 3 * 32
        + 3 * 3 * 32 * 32
        + 3 * 3 * 32 * 64
        + 3 * 3 * 64 * 64
        + 3 * 3 * 64 * 128
        + 3 * 3 * 128 * 128
    )  # fmt: skip  (no conv bias: BN beta replaces it)
    bn = 4 * (2 * 32 + 2 * 64 + 2 * 128)
    assert model.count_params() == convs + bn + 128 * 10 + 10
    assert model.output_shape == (None, 10)


def test_cnn_stride_flatten_dense_head_parameter_count():
    model = build_cnn(
        (32, 32, 3), 10, filters=(8, 16), convs_per_block=1, batch_norm=False,
        downsample="stride", head="flatten", dense_units=(32,), dropout_rate=0.5,
    )  # fmt: skip
    # 32 -> 16 -> 8 pixels, so Flatten gives 8 * 8 * 16 = 1024 features.
    expected = (3 * 3 * 3 * 8 + 8) + (3 * 3 * 8 * 16 + 16) + (1024 * 32 + 32) + 330
    assert model.count_params() == expected
    assert _types(model) == [
        "InputLayer", "Conv2D", "Conv2D", "Flatten",
        "Dropout", "Dense", "Dropout", "Dense",
    ]  # fmt: skip
    assert model.get_layer("block2_conv1").strides == (2, 2)


# ------------------------------------------------------------------- structure
def test_batch_norm_before_layer_order():
    model = build_mlp((4,), 3, hidden_units=(5, 6), batch_norm="before")
    assert [layer.name for layer in model.layers] == [
        "input", "block1_dense", "block1_bn", "block1_elu",
        "block2_dense", "block2_bn", "block2_elu", "output",
    ]  # fmt: skip
    assert not model.get_layer("block1_dense").use_bias
    assert model.get_layer("block1_dense").activation.__name__ == "linear"
    assert model.get_layer("block1_elu").activation.__name__ == "elu"


def test_batch_norm_after_layer_order():
    model = build_mlp((4,), 3, hidden_units=(5,), batch_norm="after")
    assert _types(model) == ["InputLayer", "Dense", "BatchNormalization", "Dense"]
    assert model.get_layer("block1_dense").use_bias
    assert model.get_layer("block1_dense").activation.__name__ == "elu"


@pytest.mark.parametrize(
    ("dropout", "class_name"),
    [
        ("standard", "Dropout"),
        ("alpha", "AlphaDropout"),
        ("mc", "MCDropout"),
        ("mc_alpha", "MCAlphaDropout"),
    ],
)
def test_dropout_variants(dropout, class_name):
    model = build_mlp((4,), 3, hidden_units=(5, 5), dropout_rate=0.25, dropout=dropout)
    drops = [model.get_layer(f"block{i}_dropout") for i in (1, 2)]
    assert [type(layer).__name__ for layer in drops] == [class_name] * 2
    assert [layer.rate for layer in drops] == [0.25, 0.25]


@pytest.mark.parametrize("dropout", ["standard", "alpha", "mc", "mc_alpha"])
def test_dropout_position_last_adds_one_layer_before_the_output(dropout):
    model = build_mlp(
        (4,),
        3,
        hidden_units=(5, 6, 7),
        dropout_rate=0.25,
        dropout=dropout,
        dropout_position="last",
    )
    assert [layer.name for layer in model.layers] == [
        "input",
        "block1_dense",
        "block2_dense",
        "block3_dense",
        "block3_dropout",
        "output",
    ]
    assert model.get_layer("block3_dropout").rate == 0.25
    # Dropout has no weights: the count is the plain 4-5-6-7-3 network's.
    assert model.count_params() == 4 * 5 + 5 + 5 * 6 + 6 + 6 * 7 + 7 + 7 * 3 + 3


def test_dropout_position_last_with_batch_norm_follows_the_last_block():
    model = build_mlp(
        (4,),
        3,
        hidden_units=(5, 5),
        batch_norm="before",
        dropout_rate=0.5,
        dropout_position="last",
    )
    assert [layer.name for layer in model.layers[-3:]] == [
        "block2_elu",
        "block2_dropout",
        "output",
    ]
    assert _types(model).count("Dropout") == 1


def test_dropout_position_every_is_the_default():
    every = build_mlp((4,), 3, hidden_units=(5, 5, 5), dropout_rate=0.1)
    assert _types(every).count("Dropout") == 3


def test_selu_mlp_exercise_8e_has_one_alpha_dropout_before_the_output():
    model = build_selu_mlp(
        (32, 32, 3), 10, alpha_dropout_rate=0.1, dropout_position="last"
    )
    drops = [layer for layer in model.layers if "dropout" in layer.name]
    assert [(layer.name, type(layer)) for layer in drops] == [
        ("block20_dropout", keras.layers.AlphaDropout)
    ]
    assert drops[0].rate == 0.1
    assert model.layers[-2] is drops[0]
    assert model.count_params() == 3072 * 100 + 100 + 19 * 10_100 + 1010
    mc = build_selu_mlp(
        (8,), 2, hidden_units=(4, 4), alpha_dropout_rate=0.1, mc=True,
        dropout_position="last",
    )  # fmt: skip
    assert [type(layer).__name__ for layer in mc.layers[1:]] == [
        "Dense",
        "Dense",
        "MCAlphaDropout",
        "Dense",
    ]


def test_no_dropout_layer_at_rate_zero():
    assert "Dropout" not in _types(build_mlp((4,), 3, hidden_units=(5,), dropout="mc"))


def test_selu_mc_uses_mc_alpha_dropout():
    model = build_selu_mlp((4,), 3, hidden_units=(5,), alpha_dropout_rate=0.2, mc=True)
    assert type(model.get_layer("block1_dropout")).__name__ == "MCAlphaDropout"


def test_cnn_maxpool_bn_order_and_fused_bn():
    plain = build_cnn((8, 8, 1), 2, filters=(4,), convs_per_block=2)
    assert [layer.name for layer in plain.layers] == [
        "input", "block1_conv1", "block1_bn1", "block1_relu1",
        "block1_conv2", "block1_bn2", "block1_relu2", "block1_pool", "gap", "output",
    ]  # fmt: skip
    assert not plain.get_layer("block1_conv1").use_bias
    fused = build_cnn((8, 8, 1), 2, filters=(4,), convs_per_block=2, fused_bn=True)
    assert [layer.name for layer in fused.layers[1:4]] == [
        "block1_conv1",
        "block1_bn_relu1",
        "block1_conv2",
    ]
    assert type(fused.get_layer("block1_bn_relu1")).__name__ == "BatchNormActivation"
    assert fused.count_params() == plain.count_params() == 9 * 4 + 9 * 16 + 2 * 16 + 10


def test_preprocessing_layer_is_applied_first():
    rescale = keras.layers.Rescaling(0.5, name="rescale")
    with_pre = build_mlp((3,), 2, hidden_units=(4,), preprocessing=rescale)
    without = build_mlp((3,), 2, hidden_units=(4,))
    without.set_weights(with_pre.get_weights())
    assert with_pre.layers[1] is rescale
    x = np.arange(6, dtype="float32").reshape(2, 3)
    np.testing.assert_allclose(
        with_pre.predict(x, verbose=0), without.predict(x * 0.5, verbose=0), rtol=1e-6
    )


@pytest.mark.parametrize("builder", [build_mlp, build_cnn])
def test_regularisation_losses_are_l2_sum_of_squares(builder):
    kwargs = (
        {"hidden_units": (5,)}
        if builder is build_mlp
        else {"filters": (2,), "convs_per_block": 1}
    )
    model = builder(
        (4, 4, 1), 3, kernel_regularizer=keras.regularizers.L2(0.01), **kwargs
    )
    kernels = [layer.kernel for layer in model.layers if hasattr(layer, "kernel")]
    assert len(model.losses) == len(kernels) == 2
    expected = [0.01 * np.sum(np.square(k.numpy().astype("float64"))) for k in kernels]
    np.testing.assert_allclose(
        sorted(float(loss) for loss in model.losses), sorted(expected), rtol=1e-5
    )


# -------------------------------------------------------- training and saving
_BUILDS = {
    "mlp_bn_before": lambda: build_mlp(
        (6, 6, 1), 3, hidden_units=(8, 8), batch_norm="before"
    ),
    "mlp_bn_after": lambda: build_mlp(
        (6, 6, 1), 3, hidden_units=(8,), batch_norm="after"
    ),
    "selu_mlp": lambda: build_selu_mlp((6, 6, 1), 3, hidden_units=(8, 8)),
    "cnn": lambda: build_cnn((6, 6, 1), 3, filters=(4, 8), dense_units=(8,)),
    "cnn_stride": lambda: build_cnn(
        (6, 6, 1), 3, filters=(4,), downsample="stride", head="flatten"
    ),
    "cnn_fused": lambda: build_cnn((6, 6, 1), 3, filters=(4,), fused_bn=True),
}


@pytest.mark.parametrize("build", list(_BUILDS.values()), ids=list(_BUILDS))
def test_trains_one_step(build, rng, seed):
    model = build()
    x = rng.normal(size=(8, 6, 6, 1)).astype("float32")
    y = np.arange(8) % 3
    probs = keras.ops.convert_to_numpy(model(x, training=True)).astype("float64")
    expected_loss = -np.mean(np.log(probs[np.arange(8), y]))
    before = [w.numpy().copy() for w in model.trainable_weights]
    model.compile(keras.optimizers.SGD(0.1), "sparse_categorical_crossentropy")
    loss = model.train_on_batch(x, y)
    # The step reports the loss of the forward pass before its update.
    np.testing.assert_allclose(loss, expected_loss, rtol=1e-5)
    after = model.trainable_weights
    assert all(
        not np.array_equal(b, a.numpy()) for b, a in zip(before, after, strict=True)
    )


@pytest.mark.parametrize("build", list(_BUILDS.values()), ids=list(_BUILDS))
def test_keras_round_trip_predictions_equal(build, rng, tmp_path):
    model = build()
    x = rng.normal(size=(4, 6, 6, 1)).astype("float32")
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert [layer.name for layer in loaded.layers] == [
        layer.name for layer in model.layers
    ]
    np.testing.assert_array_equal(
        loaded.predict(x, verbose=0), model.predict(x, verbose=0)
    )
