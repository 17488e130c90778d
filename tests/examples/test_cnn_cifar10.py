"""examples/cnn_cifar10.py on synthetic 28x28 images: rows, checkpoints, plots."""

from __future__ import annotations

import importlib.util

import pytest
from example_helpers import assert_png, check_rows, load_example

VARIANTS = [
    "max-pool + GAP",
    "stride-2 conv + GAP",
    "max-pool + flatten",
    "max-pool + GAP + L2(1e-4)",
]


@pytest.fixture(scope="module")
def run(synthetic_data_dir, tmp_path_factory):
    output = tmp_path_factory.mktemp("cnn")
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv("KERASX_DATA", str(synthetic_data_dir))
        example = load_example("cnn_cifar10")
        rows = example.main(
            [
                "--dataset", "fashion_mnist", "--limit", "200", "--epochs", "1",
                "--filters", "4", "8", "--output", str(output), "--quiet",
            ]
        )  # fmt: skip
    return example, rows, output


def test_rows(run):
    _, rows, output = run
    by_variant = check_rows(rows, VARIANTS)
    for row in rows:
        assert 0 <= row["extra"]["test accuracy"] <= 1
        assert 0 <= row["extra"]["test ECE"] <= 1
    # Structure shows in the parameter counts: stride-2 convs have the same
    # kernels as max-pooling, the flatten head adds a 7*7*8 -> 128 Dense layer.
    params = {name: row["extra"]["params"] for name, row in by_variant.items()}
    assert params["stride-2 conv + GAP"] == params["max-pool + GAP"]
    assert params["max-pool + GAP + L2(1e-4)"] == params["max-pool + GAP"]
    assert params["max-pool + flatten"] > params["max-pool + GAP"] + 7 * 7 * 8 * 128
    for name in ("maxpool_gap", "stride_gap", "maxpool_flatten", "maxpool_gap_l2"):
        assert (output / f"{name}.keras").is_file()


def test_plots_are_pngs(run):
    _, _, output = run
    assert_png(output / "learning_curves.png")
    assert_png(output / "val_accuracy.png")
    if importlib.util.find_spec("kerasx.plotting") is not None:
        assert_png(output / "reliability.png")
