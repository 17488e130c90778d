"""examples/deep_mlp.py on a tiny synthetic dataset: rows, checkpoints, plots."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
from example_helpers import assert_png, check_rows, load_example

VARIANTS = [
    "ELU + He normal",
    "+ BatchNorm",
    "SELU + LeCun",
    "SELU + AlphaDropout(0.1)",
    "SELU, 1cycle",
]


@pytest.fixture(scope="module")
def run(synthetic_data_dir, tmp_path_factory):
    output = tmp_path_factory.mktemp("deep_mlp")
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv("KERASX_DATA", str(synthetic_data_dir))
        example = load_example("deep_mlp")
        rows = example.main(
            [
                "--dataset", "fashion_mnist", "--limit", "600", "--epochs", "2",
                "--depth", "3", "--units", "32", "--mc-samples", "8",
                "--output", str(output), "--quiet",
            ]
        )  # fmt: skip
    return example, rows, output


def test_table_rows(run):
    _, rows, output = run
    by_variant = check_rows(rows, VARIANTS)
    # The synthetic classes are bands of bright rows: a 3-layer ELU net learns
    # them well above chance (0.1) in two epochs.
    assert by_variant["ELU + He normal"]["best_val_accuracy"] > 0.3
    mc_accuracy = by_variant["SELU + AlphaDropout(0.1)"]["extra"]["MC dropout accuracy"]
    assert 0.0 <= mc_accuracy <= 1.0
    assert by_variant["ELU + He normal"]["extra"]["LR sweep valley"] > 0
    assert json.loads((output / "results.json").read_text()) == rows
    table = (output / "results.md").read_text()
    for variant in VARIANTS:
        assert f"| {variant} |" in table


def test_best_checkpoint_matches_table(run, kerasx_data):
    from kerasx.saving import load

    example, rows, output = run
    model = load(output / "elu_he.keras")
    data = example._common.load_split("fashion_mnist", limit=600)
    _, accuracy = model.evaluate(data.x_valid, data.y_valid, verbose=0)
    np.testing.assert_allclose(accuracy, rows[0]["best_val_accuracy"], atol=1e-6)


def test_plots_are_pngs(run):
    _, _, output = run
    for name in ("learning_curves.png", "val_accuracy.png", "lr_vs_loss.png"):
        assert_png(output / name)
    if importlib.util.find_spec("kerasx.plotting") is not None:
        assert_png(output / "reliability.png")
