"""examples/why_deep_nets_were_hard.py on synthetic data: rows, gradients, PNGs."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from example_helpers import assert_png, check_rows, load_example

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


@pytest.fixture(scope="module")
def run(synthetic_data_dir, tmp_path_factory):
    output = tmp_path_factory.mktemp("why")
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv("KERASX_DATA", str(synthetic_data_dir))
        example = load_example("why_deep_nets_were_hard")
        rows = example.main(
            [
                "--dataset", "fashion_mnist", "--limit", "400", "--epochs", "1",
                "--depth", "4", "--units", "16", "--ensemble-size", "2",
                "--output", str(output), "--quiet",
            ]
        )  # fmt: skip
    return example, rows, output


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
