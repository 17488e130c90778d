"""examples/why_deep_nets_were_hard.py on synthetic data: what each part claims.

Dropout is active under `training=True` and off in `predict`; the ensemble's
probabilities are the mean of its members'; the gradient norms are exact.
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
    "4-layer sigmoid, SGD",
    "4-layer tanh, SGD",
    "4-layer relu, SGD",
    "4-layer leaky_relu, SGD",
    "4-layer elu, SGD",
    "XOR: linear (no hidden layer)",
    "XOR: 2-4-1 tanh",
    "relu, init random normal (0.05)",
    "relu, init Glorot uniform",
    "relu, init He normal",
    "MLP 300-100, dropout 0.5",
    "best single MLP 100-100",
    "ensemble of 2 (mean probabilities)",
]


LIMIT, ENSEMBLE_SIZE = 400, 2


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
    # Vanishing gradients: the sigmoid stack's first kernel gets a far smaller
    # gradient, relative to its last, than the relu stack's.
    sigmoid = by_variant["4-layer sigmoid, SGD"]["extra"]["grad norm layer 1 / last"]
    relu = by_variant["4-layer relu, SGD"]["extra"]["grad norm layer 1 / last"]
    assert sigmoid < relu / 5


def test_plots_are_pngs(run):
    _, _, output = run
    for name in ("gradient_norms.png", "xor.png", "learning_curves.png"):
        assert_png(output / name)
    assert_png(output / "val_accuracy.png")


def test_kernel_gradient_norms_match_an_exact_gradient(run):
    """One-layer softmax regression: dL/dW = x^T (p - onehot(y)) / batch."""
    example, _, _ = run
    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).normal(size=(8, 5)).astype("float32")
    y = np.array([0, 1, 2, 0, 1, 2, 0, 1])
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(3, "softmax")])
    weights = [w.copy() for w in model.get_weights()]
    (norm,) = example.kernel_gradient_norms(model, x, y)
    probs = keras.ops.convert_to_numpy(model(x))
    expected = x.T.astype("float64") @ (probs - np.eye(3)[y]) / len(x)
    # fp32 round-off of w - (w - g) on weights of order 1: relative 1e-5.
    np.testing.assert_allclose(norm, np.linalg.norm(expected), rtol=1e-5)
    for before, after in zip(weights, model.get_weights(), strict=True):
        np.testing.assert_array_equal(before, after)
