"""examples/why_deep_nets_were_hard.py on synthetic data: what each part claims.

Dropout is active under `training=True` and off in `predict`; the ensemble's
probabilities are the mean of its members'; the per-layer gradient norms and
activation statistics of part 1 are those of a NumPy float64 forward and
backward pass through the saved networks.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
from example_helpers import (
    EXAMPLE_BACKEND,
    assert_dropout_on_in_training_off_in_predict,
    assert_png,
    check_rows,
    load_example,
)

pytestmark = pytest.mark.backend(EXAMPLE_BACKEND)

VARIANTS = [
    "4-layer sigmoid + normal(0.05), SGD",
    "4-layer ReLU + He, SGD",
    "4-layer SELU + LeCun, SGD",
    "4-layer ReLU + He + BatchNorm, SGD",
    "XOR: linear (no hidden layer)",
    "XOR: 2-4-1 tanh",
    "relu, init random normal (0.05)",
    "relu, init Glorot uniform",
    "relu, init He normal",
    "MLP 300-100, dropout 0.5",
    "best single MLP 100-100",
    "ensemble of 2 (mean probabilities)",
]


LIMIT, ENSEMBLE_SIZE, DEPTH, BATCH = 400, 2, 4, 32
NETS = ["sigmoid", "relu", "selu", "relu_bn"]


@pytest.fixture(scope="module")
def run(synthetic_data_dir, tmp_path_factory):
    output = tmp_path_factory.mktemp("why")
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv("KERASX_DATA", str(synthetic_data_dir))
        example = load_example("why_deep_nets_were_hard")
        rows = example.main(
            [
                "--dataset", "fashion_mnist", "--limit", str(LIMIT), "--epochs", "1",
                "--depth", "4", "--units", "16", "--ensemble-size", str(ENSEMBLE_SIZE),
                "--output", str(output), "--quiet",
            ]
        )  # fmt: skip
    return example, rows, output


@pytest.fixture(scope="module")
def data(run, synthetic_data_dir):
    example, _, _ = run
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv("KERASX_DATA", str(synthetic_data_dir))
        return example._common.load_split("fashion_mnist", limit=LIMIT)


def accuracy(y, probs):
    return float(np.mean(np.argmax(probs, axis=-1) == y))


def test_dropout_active_in_training_off_in_predict(run, data):
    from kerasx.saving import load

    _, rows, output = run
    model = load(output / "dropout_mlp.keras")
    x = data.x_train[:16]
    assert_dropout_on_in_training_off_in_predict(model, x)
    # The table's inference-time training accuracy is that of `predict`.
    extra = {row["variant"]: row for row in rows}["MLP 300-100, dropout 0.5"]["extra"]
    sample = data.x_train[:2000]
    off = accuracy(data.y_train[:2000], model.predict(sample, verbose=0))
    assert extra["train acc, dropout off"] == off


def test_ensemble_probabilities_are_the_mean_of_its_members(run, data):
    from kerasx.saving import load

    _, rows, output = run
    members = [
        load(output / f"ensemble_member{i}.keras") for i in range(1, ENSEMBLE_SIZE + 1)
    ]
    member_probs = np.stack([m.predict(data.x_test, verbose=0) for m in members])
    ensemble = np.load(output / "ensemble_test_probs.npy")
    assert ensemble.shape == member_probs.shape[1:]
    # float32 means of the same values: the summation order is the only
    # difference, relative 1e-6.
    np.testing.assert_allclose(ensemble, member_probs.mean(axis=0), rtol=1e-6)
    assert not np.allclose(member_probs[0], member_probs[1])  # distinct members
    row = {row["variant"]: row for row in rows}["ensemble of 2 (mean probabilities)"]
    assert row["extra"]["test accuracy"] == accuracy(data.y_test, ensemble)


def test_table_rows(run):
    _, rows, _ = run
    by_variant = check_rows(rows, VARIANTS)
    # A linear model gets at most 3 of the 4 XOR points; 4 tanh units get all.
    assert by_variant["XOR: linear (no hidden layer)"]["best_val_accuracy"] <= 0.75
    assert by_variant["XOR: 2-4-1 tanh"]["best_val_accuracy"] == 1.0
    dropout = by_variant["MLP 300-100, dropout 0.5"]["extra"]
    assert 0 <= dropout["train acc, dropout on"] <= 1
    assert 0 <= dropout["train acc, dropout off"] <= 1
    for name in ("best single MLP 100-100", "ensemble of 2 (mean probabilities)"):
        assert 0 <= by_variant[name]["extra"]["test accuracy"] <= 1
    # Vanishing gradients: the sigmoid stack's first layer gets a far smaller
    # gradient, relative to its last, than the relu stack's.
    sigmoid = by_variant[VARIANTS[0]]["extra"]["grad norm layer 1 / last"]
    relu = by_variant[VARIANTS[1]]["extra"]["grad norm layer 1 / last"]
    assert sigmoid < relu / 5


def test_table_ratios_are_those_of_the_saved_norms(run):
    _, rows, output = run
    stats = np.load(output / "layer_stats.npz")
    for net, variant in zip(NETS, VARIANTS, strict=False):
        extra = {row["variant"]: row for row in rows}[variant]["extra"]
        norms = stats[f"{net}/grad_start"]
        assert norms.shape == (DEPTH + 1,)  # 4 hidden Dense + the output layer
        assert extra["grad norm layer 1 / last"] == norms[0] / norms[-1]
        assert extra["last hidden: std"] == stats[f"{net}/act_std_start"][-1]
        # 400 images / batch 32 = 13 steps: every batch records, from the first.
        np.testing.assert_array_equal(stats[f"{net}/grad_steps"], np.arange(13))


def numpy_forward_backward(model, x, y, activation):
    """Float64 hidden activations and per-Dense-layer gradient norms.

    Loss: mean sparse categorical cross-entropy of the softmax output, so the
    output pre-activation's gradient is `(p - onehot(y)) / n`; back through
    each Dense layer `dW = a_prev^T dz`, `db = sum(dz)`, `da_prev = dz W^T`,
    `dz = da * f'(z)`.
    """
    act = {
        "sigmoid": lambda z: 1 / (1 + np.exp(-z)),
        "relu": lambda z: np.maximum(z, 0),
    }[activation]
    slope = {
        "sigmoid": lambda z, a: a * (1 - a),
        "relu": lambda z, a: (z > 0).astype("float64"),
    }[activation]
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    params = [[w.astype("float64") for w in layer.get_weights()] for layer in dense]
    a = x.reshape(len(x), -1).astype("float64")
    inputs, pre, hidden = [], [], []
    for kernel, bias in params[:-1]:
        inputs.append(a)
        z = a @ kernel + bias
        a = act(z)
        pre.append(z)
        hidden.append(a)
    inputs.append(a)
    logits = a @ params[-1][0] + params[-1][1]
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    dz = (p - np.eye(p.shape[1])[y]) / len(x)
    norms = []
    for i in range(len(params) - 1, -1, -1):
        kernel = params[i][0]
        norms.append(np.sqrt(np.sum((inputs[i].T @ dz) ** 2) + np.sum(dz.sum(0) ** 2)))
        if i > 0:
            dz = (dz @ kernel.T) * slope(pre[i - 1], hidden[i - 1])
    return hidden, norms[::-1]


@pytest.mark.parametrize("net", ["sigmoid", "relu"])
def test_layer_stats_match_a_numpy_pass_through_the_saved_net(run, net):
    from kerasx.saving import load

    _, _, output = run
    stats = np.load(output / "layer_stats.npz")
    model = load(output / f"deep_{net}.keras")
    x, y = stats["probe_x"], stats["probe_y"]
    assert x.shape[0] == 256
    hidden, norms = numpy_forward_backward(model, x, y, net)
    # The model's float32 pass vs float64: relative 1e-4 on norms that span
    # orders of magnitude (the sigmoid stack's first layer).
    np.testing.assert_allclose(stats[f"{net}/grad_end"], norms, rtol=1e-4)
    np.testing.assert_allclose(
        stats[f"{net}/act_mean_end"], [a.mean() for a in hidden], rtol=1e-5, atol=1e-7
    )
    np.testing.assert_allclose(
        stats[f"{net}/act_std_end"], [a.std() for a in hidden], rtol=1e-5, atol=1e-7
    )
    # A float32 value can only cross 0.05 by rounding: at most a few elements.
    near_zero = [np.mean(np.abs(a) <= 0.05) for a in hidden]
    np.testing.assert_allclose(
        stats[f"{net}/act_near_zero_end"], near_zero, atol=3 / hidden[0].size
    )
    saturated = stats[f"{net}/act_saturated_end"]
    if net == "sigmoid":
        expected = [np.mean((a <= 0.005) | (a >= 0.995)) for a in hidden]
        np.testing.assert_allclose(saturated, expected, atol=3 / hidden[0].size)
    else:
        assert np.all(np.isnan(saturated))  # no saturation for relu


def test_plots_are_pngs(run):
    _, _, output = run
    names = [
        "gradient_norms.png",
        "activation_stats.png",
        "gradient_norms_training.png",
        "xor.png",
        "learning_curves.png",
        *(f"colorful_dimension_{net}.png" for net in NETS),
    ]
    for name in names:
        assert_png(output / name)
    assert_png(output / "val_accuracy.png")
